// Fails the build when line or branch coverage of the embedded test run drops below the
// threshold. node-tap 21 only knows "100% or allow incomplete"; this is the deliberate bar.
import { readFileSync } from 'node:fs'

const [linesMin, branchesMin] = [Number(process.argv[2] ?? 82), Number(process.argv[3] ?? 90)]
const summary = JSON.parse(readFileSync('.tap/report/coverage-summary.json', 'utf8')).total
const lines = summary.lines.pct
const branches = summary.branches.pct
console.log(`coverage: lines ${lines}% (minimum ${linesMin}%), branches ${branches}% (minimum ${branchesMin}%)`)
if (lines < linesMin || branches < branchesMin) {
  console.error('coverage is below the threshold')
  process.exit(1)
}
