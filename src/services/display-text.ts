import { Errors } from '../errors.js'

/**
 * Characters that change how a name looks without being seen: controls (Cc), formatting
 * characters (Cf: the bidi overrides and isolates U+202A–U+202E and U+2066–U+2069, the zero-width
 * U+200B–U+200D, U+2060, U+FEFF, soft hyphen…) and the line and paragraph separators (Zl, Zp).
 * A name holding one can pass for another in a token list or an audit trail: with U+202E, "deploy"
 * followed by "gnp.exe" reads as "deployexe.png".
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u

/**
 * A name shown to people (a token's, an application's), as it is stored: NFC-normalised (one
 * spelling of "é", so two names that look alike compare alike), trimmed, and refused — not
 * silently cleaned, so nobody stores a name other than the one they typed — when it holds a
 * character of INVISIBLE. `field` names the input in the error. Length and blankness are the
 * caller's rules.
 */
export function displayName (value: string, field: string): string {
  const name = value.normalize('NFC').trim()
  const invisible = INVISIBLE.exec(name)
  if (invisible !== null) throw new Errors.InvalidDisplayText(field, codePoint(invisible[0]))
  return name
}

/** `U+202E`: how the error names a character it refuses (printing it would be invisible). */
function codePoint (character: string): string {
  return `U+${(character.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`
}
