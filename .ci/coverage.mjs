// Prints the line and branch coverage of the embedded test run and fails below the given
// minimums (node-tap 21 itself only knows "100%" or "allow incomplete").
// Usage: node .ci/coverage.mjs <min lines %> <min branches %>
import { existsSync, readFileSync } from 'node:fs'

const [linesMin, branchesMin] = [Number(process.argv[2] ?? 0), Number(process.argv[3] ?? 0)]
const path = '.tap/report/coverage-summary.json'
if (!existsSync(path)) {
  console.log('coverage: no summary was written')
  process.exit(linesMin > 0 || branchesMin > 0 ? 1 : 0)
}
const { total } = JSON.parse(readFileSync(path, 'utf8'))
console.log(`coverage: lines ${total.lines.pct}% of ${total.lines.total} (minimum ${linesMin}%), branches ${total.branches.pct}% of ${total.branches.total} (minimum ${branchesMin}%)`)
if (total.lines.pct < linesMin || total.branches.pct < branchesMin) {
  console.error('coverage is below the threshold')
  process.exit(1)
}
