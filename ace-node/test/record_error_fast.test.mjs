// recordError goes through the raw Node-API path (src/raw.rs): its reports must be the ones the
// class method builds, field by field, whether the call raised signals or not, and its bad
// input must get the same typed errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'

const { Ace, ManualClock } = ace

const MESSAGES = [
  'connection to db-1 timed out after 3 s',
  'connection to db-2 timed out after 5 s',
  'user 4411 not found',
  'rate limit exceeded for model gpt-x (429)',
  'é ü 東京 — a message that is not ASCII',
  'x'.repeat(300),
  'y'.repeat(20_000),
]

test('the fast path reports what the class method reports, with and without signals', async () => {
  // Two engines on one manual clock see the same calls at the same instants.
  const fast = new Ace({ clock: new ManualClock(1_000) })
  const slow = new Ace({ clock: new ManualClock(1_000) })
  let plain = 0
  let whole = 0
  for (let i = 0; i < 300; i++) {
    const task = `task-${i >> 4}`
    const message = MESSAGES[i % MESSAGES.length]
    const severity = i % 11 === 0 ? 'critical' : undefined
    const a = fast.recordError('agent-1', task, 'planning', 'TimeoutError', message, severity)
    const b = slow._engine.recordError('agent-1', task, 'planning', 'TimeoutError', message, severity)
    // The intervention's id and time are the engine's own; the rest must match.
    const strip = (r) => ({ ...r, intervention: r.intervention === null ? null : { ...r.intervention, id: 'x' } })
    assert.deepEqual(strip(a), strip(b), `call ${i}`)
    assert.deepEqual(Object.keys(a).sort(), ['intervention', 'occurrences', 'pattern', 'severity', 'signals', 'template', 'truncated'])
    assert.match(a.pattern, /^[0-9a-f]{16}$/)
    if (a.signals.length === 0 && a.intervention === null) plain++
    else whole++
  }
  assert.ok(plain > 0 && whole > 0, `both paths ran (plain ${plain}, whole ${whole})`)
  assert.equal(fast.stats().errors, 300)
  assert.equal(slow.stats().errors, 300)
  await fast.close()
  await slow.close()
})

test('an Error object gives its class name as the kind and its message', async () => {
  const eng = new Ace()
  class QuotaError extends Error {}
  const r = eng.recordError('agent-1', 'task-1', 'tools', new QuotaError('quota of 100 used'))
  assert.equal(typeof r.template, 'string')
  assert.ok(r.template.includes('quota'), r.template)
  assert.equal(r.occurrences, 1)
  await eng.close()
})

test('bad input to the fast path is a typed error and records nothing', async () => {
  const eng = new Ace()
  for (const args of [
    ['', 't', 'planning', 'E', 'm'],
    ['a', 't', 'Planning!', 'E', 'm'],
    ['a', 't', 'planning', 'E', 'm', 'apocalyptic'],
    ['a', 't', 'planning', 'E', 'lone \ud800 surrogate'],
    ['a\ud800', 't', 'planning', 'E', 'm'],
    ['a', 't', 'planning', 'E', 42],
    ['a', 't', 'planning', 'E', 'm', 7],
    [42, 't', 'planning', 'E', 'm'],
  ]) {
    assert.throws(() => eng.recordError(...args), (e) => e instanceof ace.InvalidInputError && e.code === 'invalid_input', JSON.stringify(args).slice(0, 40))
  }
  assert.equal(eng.stats().errors, 0)
  await eng.close()
})
