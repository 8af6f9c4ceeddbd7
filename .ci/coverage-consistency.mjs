// Fails when two processes of one test run compiled a source file into different code.
//
// c8 merges the V8 coverage each process wrote for a file by byte offset in the code that process
// ran, then maps the result through one process's source map: if a child process compiled the
// file otherwise (another TypeScript loader), the merged figures are scrambled, and which process
// wins depends on the order c8 reads the files in. Seen once: functions 75 % instead of 80 %.
// Usage: node .ci/coverage-consistency.mjs [coverage/tmp]
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const directory = process.argv[2] ?? 'coverage/tmp'
const compiled = new Map() // source URL -> Map(shape -> first process file)
for (const file of readdirSync(directory).filter((name) => name.endsWith('.json'))) {
  const report = JSON.parse(readFileSync(join(directory, file), 'utf8'))
  for (const [url, entry] of Object.entries(report['source-map-cache'] ?? {})) {
    if (!url.includes('/src/') && !url.includes('/plugins/') && !url.includes('/schemas/')) continue
    const shape = JSON.stringify(entry.lineLengths)
    if (!compiled.has(url)) compiled.set(url, new Map())
    if (!compiled.get(url).has(shape)) compiled.get(url).set(shape, file)
  }
}
const inconsistent = [...compiled].filter(([, shapes]) => shapes.size > 1)
if (inconsistent.length > 0) {
  for (const [url, shapes] of inconsistent) console.error(`${url}: compiled ${shapes.size} ways (e.g. by ${[...shapes.values()].join(', ')})`)
  console.error('coverage: processes compiled the same sources differently; start child processes with typescriptCommand() (test/helper.ts)')
  process.exit(1)
}
console.log(`coverage: ${compiled.size} source files, each compiled one way by every process`)
