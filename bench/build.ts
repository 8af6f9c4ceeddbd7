import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import ts from 'typescript'
import { REPO, TESSERA_SERVER } from './tessera.js'

/** Newest modification time under `path` (files and folders, recursively); 0 when absent. */
function newest (path: string): number {
  let stat
  try {
    stat = statSync(path)
  } catch {
    return 0
  }
  if (!stat.isDirectory()) return stat.mtimeMs
  let latest = stat.mtimeMs
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)))
  return latest
}

/** `npm run build` when dist/ is missing or older than any source it is built from. Returns whether it built. */
export function ensureTesseraBuild (say: (line: string) => void): boolean {
  const built = newest(TESSERA_SERVER)
  const sources = Math.max(...['src', 'plugins', 'schemas', 'mikro-orm.config.ts', 'tsconfig.json', 'tsconfig.build.json', 'package.json'].map((path) => newest(join(REPO, path))))
  if (built >= sources) return false
  say(built === 0 ? 'dist/ is missing: npm run build' : 'dist/ is older than the sources: npm run build')
  const build = spawnSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'inherit' })
  if (build.status !== 0) throw new Error('npm run build failed')
  return true
}

/**
 * The reference and peer servers run as plain JavaScript, like Tessera's dist/: no TypeScript
 * loader (tsx, or Node's type stripping, which alone adds ~16 MB of resident set) in the process
 * being measured. They import packages and bench/wire.ts only (compiled beside them), so each
 * file compiles on its own. Written under dist/bench/, where the packages resolve from the
 * repository's node_modules.
 */
export function compileBenchServer (name: 'reference' | 'minimal' | 'oidc-peer' | 'wire'): string {
  if (name !== 'wire') compileBenchServer('wire')
  const source = join(REPO, 'bench', `${name}.ts`)
  const { outputText } = ts.transpileModule(readFileSync(source, 'utf8'), {
    fileName: basename(source),
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2024, verbatimModuleSyntax: true }
  })
  const outputDir = join(REPO, 'dist', 'bench')
  mkdirSync(outputDir, { recursive: true })
  const output = join(outputDir, `${name}.js`)
  writeFileSync(output, outputText)
  return output
}
