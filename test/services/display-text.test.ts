import t from 'tap'
import { displayName } from '../../src/services/display-text.js'

/** Names shown to people cannot hide characters that change how they read (issue 12). */

t.test('a name is NFC-normalised: a decomposed é (e + U+0301) becomes the precomposed U+00E9', async (t) => {
  t.equal(displayName('caf\u0065\u0301', 'name'), 'caf\u00e9')
  t.equal(displayName('caf\u00e9', 'name'), 'caf\u00e9', 'already NFC: unchanged')
  t.equal(displayName('\u212b', 'name'), '\u00c5', 'a singleton (ANGSTROM SIGN) becomes its canonical letter')
})

t.test('a name is trimmed, as before', async (t) => {
  t.equal(displayName('  deploy bot \t\n', 'name'), 'deploy bot')
  t.equal(displayName('   ', 'name'), '', 'blank stays blank: the caller refuses it with its own error')
  t.equal(displayName('\ufeffdeploy', 'name'), 'deploy', 'a leading BOM is whitespace to trim(), so it never reaches the stored name')
})

t.test('ordinary text of any script, emoji and inner spaces are kept', async (t) => {
  for (const name of ['deploy-bot_2', 'Déploiement', 'развёртывание', '部署', 'نشر', 'deploy 🚀', 'a\u00a0b', 'x\u0301\u0302']) {
    t.equal(displayName(name, 'name'), name.normalize('NFC'), name)
  }
})

const refused: Array<[string, string, string]> = [
  ['deploy\u202egnp.exe', 'U+202E', 'RIGHT-TO-LEFT OVERRIDE'],
  ['\u202adeploy', 'U+202A', 'LEFT-TO-RIGHT EMBEDDING'],
  ['deploy\u2066x\u2069', 'U+2066', 'LEFT-TO-RIGHT ISOLATE'],
  ['deploy\u2069', 'U+2069', 'POP DIRECTIONAL ISOLATE'],
  ['dep\u200bloy', 'U+200B', 'ZERO WIDTH SPACE'],
  ['dep\u200cloy', 'U+200C', 'ZERO WIDTH NON-JOINER'],
  ['dep\u200dloy', 'U+200D', 'ZERO WIDTH JOINER'],
  ['dep\ufeffloy', 'U+FEFF', 'ZERO WIDTH NO-BREAK SPACE inside the name'],
  ['dep\u2060loy', 'U+2060', 'WORD JOINER'],
  ['dep\u00adloy', 'U+00AD', 'SOFT HYPHEN'],
  ['dep\u200eloy', 'U+200E', 'LEFT-TO-RIGHT MARK'],
  ['dep\u0000loy', 'U+0000', 'NUL'],
  ['dep\u001bloy', 'U+001B', 'ESCAPE'],
  ['dep\nloy', 'U+000A', 'a line feed inside the name'],
  ['dep\u0085loy', 'U+0085', 'NEXT LINE (C1 control)'],
  ['dep\u007floy', 'U+007F', 'DELETE'],
  ['dep\u2028loy', 'U+2028', 'LINE SEPARATOR (Zl)'],
  ['dep\u2029loy', 'U+2029', 'PARAGRAPH SEPARATOR (Zp)'],
  ['dep\u{e0001}loy', 'U+E0001', 'LANGUAGE TAG (an astral Cf)']
]
for (const [value, codePoint, what] of refused) {
  t.test(`${what} is refused, naming the field and ${codePoint}`, async (t) => {
    t.throws(() => displayName(value, 'name'), {
      code: 'TESSERA_INVALID_DISPLAY_TEXT',
      statusCode: 400,
      message: `name must not contain control or invisible formatting characters (${codePoint})`
    })
  })
}

t.test('the error names the field it is given, and the first offending character', async (t) => {
  t.throws(() => displayName('a\u200bb\u202ec', 'application name'), {
    message: 'application name must not contain control or invisible formatting characters (U+200B)'
  })
})
