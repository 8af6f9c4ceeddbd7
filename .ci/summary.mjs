// Prints "N passed, N failed" from node-tap's closing line "# { total: N, pass: N, fail: N }".
// Usage: node .ci/summary.mjs <label> <log> [<log> …]  (several logs are added up)
import { readFileSync } from 'node:fs'

const [label, ...logs] = process.argv.slice(2)
let passed = 0
let failed = 0
for (const log of logs) {
  const line = readFileSync(log, 'utf8').split('\n').reverse().find((l) => l.startsWith('# { total:'))
  if (line === undefined) {
    failed += 1 // no closing line: the run did not finish
    continue
  }
  const count = (key) => Number(line.match(new RegExp(`${key}: (\\d+)`))?.[1] ?? 0)
  passed += count('pass')
  failed += count('total') - count('pass') - count('skip') - count('todo')
}
console.log(`${label}: ${passed} passed, ${failed} failed`)
