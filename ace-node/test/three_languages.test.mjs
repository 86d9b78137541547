// One trace, three languages, one answer: the events of tests/fixtures/three_languages.jsonl go
// through the Node package one call each, and the signals and interventions of every call must
// equal, field by field, what the Rust API gives for the same calls
// (tests/fixtures/three_languages.decisions.json, checked by tests/three_languages.rs; the Python
// package is checked against the same file). See tests/three_languages.rs for what is compared.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import ace from '../ace.js'

const { Ace } = ace
const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'fixtures')
const settings = { tool_repeat: 3, tool_alternation: 4, tool_retry_failures: 2 }

// Node's evidence keys are camelCase; the shared file's are snake_case.
const snake = (v) => {
  if (Array.isArray(v)) return v.map(snake)
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase()), snake(x)]))
  }
  return v
}

const timeless = (evidence) => {
  const e = snake(evidence)
  if (e.type === 'staleness') {
    delete e.seconds_since_refresh
    delete e.score
  }
  return e
}

function decision(event, signals, intervention) {
  if (signals.length === 0 && !intervention) return null
  return {
    event,
    signals: signals.map((s) => ({ kind: s.kind, severity: s.severity, message: s.message, evidence: timeless(s.evidence) })),
    intervention: intervention
      ? {
          agent: intervention.agent,
          task: intervention.task,
          strategy: intervention.strategy,
          severity: intervention.severity,
          reason: intervention.reason,
          signals: intervention.signals.map((s) => s.kind),
          confidence: intervention.confidence.score,
          runner_up: intervention.confidence.runnerUp,
          outcomes: intervention.confidence.outcomes,
          novel: intervention.confidence.novel,
        }
      : null,
  }
}

// Equal, numbers within a relative 1e-9 (as tests/three_languages.rs compares).
function same(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b), 1)
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]))
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort()
    const kb = Object.keys(b).sort()
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]))
  }
  return a === b
}

test('the Node package gives the Rust API its answer', async () => {
  const eng = new Ace({ config: settings })
  const decisions = []
  const lines = readFileSync(join(fixtures, 'three_languages.jsonl'), 'utf8').split('\n').filter(Boolean)
  lines.forEach((line, i) => {
    const e = JSON.parse(line)
    const task = e.task ?? ''
    let found = null
    if (e.type === 'stage') {
      const r = e.tool
        ? eng.recordTool(e.agent, task, e.tool, e.duration_s, e.success, { argsDigest: e.args_digest, stage: e.stage })
        : eng.recordStage(e.agent, task, e.stage, e.duration_s, e.success, e.metrics)
      found = decision(i, r.signals, r.intervention)
    } else if (e.type === 'error') {
      const r = eng.recordError(e.agent, task, e.stage, e.kind, e.message, e.severity)
      found = decision(i, r.signals, r.intervention)
    } else if (e.type === 'context_refresh') {
      eng.refreshContext(e.agent)
    } else if (e.type === 'task_end') {
      eng.endTask(e.agent, task, e.success)
    } else {
      assert.equal(e.type, 'task_start')
    }
    if (found) decisions.push(found)
  })
  await eng.close()
  const expected = JSON.parse(readFileSync(join(fixtures, 'three_languages.decisions.json'), 'utf8'))
  assert.ok(expected.length > 0)
  assert.equal(decisions.length, expected.length)
  decisions.forEach((got, i) => assert.ok(same(got, expected[i]), JSON.stringify({ got, want: expected[i] })))
})
