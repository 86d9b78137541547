// A composed Policy with every clock manual: the breaker on the engine's ManualClock, the retry's
// waits on a fake sleep that moves that clock, and the timeout on node:test's mock timers. The
// whole order, fallback ( retry ( breaker ( timeout ( call ) ) ) ), runs without waiting.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'

const { Ace, CircuitOpenError, ManualClock, Policy, Retry, TimedOutError } = ace
const START = 1_700_000_000
/** Lets the pending promise callbacks run (setImmediate is not mocked). */
const settle = () => new Promise((resolve) => setImmediate(resolve))
/** A call that answers only when its signal aborts (with the signal's reason). */
const hangs = ({ signal }) => new Promise((_resolve, reject) => {
  signal.addEventListener('abort', () => reject(signal.reason), { once: true })
})

test('timeouts open the breaker, the retry stops at the rejection, the fallback answers', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const clock = new ManualClock(START)
  const eng = new Ace({ clock })
  const breaker = eng.breaker('dep', { failures: 2, waitSeconds: 5 })
  const waits = []
  const sleep = (s) => { waits.push(s); clock.advance(s) }
  const retry = new Retry('dep', { maxAttempts: 4, waitSeconds: 1, multiplier: 2, jitter: 0, sleep })
  const seen = []
  const fallback = (e) => { seen.push(e); return `fallback: ${e.code}` }
  const policy = new Policy({ fallback, timeoutSeconds: 20, breaker, retry }) // any order: the same policy
  let answer = 'pending'
  const running = policy.execute(hangs).then((v) => { answer = v })
  await settle()
  t.mock.timers.tick(19_999)
  await settle()
  assert.deepEqual([answer, policy.counts().timeouts], ['pending', 0], 'not a millisecond early')
  t.mock.timers.tick(1)
  await settle()
  assert.deepEqual([policy.counts().timeouts, breaker.snapshot().failures, waits], [1, 1, [1]],
    'the timed-out attempt is a breaker failure, and the retry waits')
  t.mock.timers.tick(20_000)
  await running
  assert.equal(answer, 'fallback: circuit_open', 'the second timeout opened the breaker; its rejection is not retried')
  assert.ok(seen.length === 1 && seen[0] instanceof CircuitOpenError)
  assert.deepEqual(waits, [1, 2])
  assert.deepEqual(policy.counts(), { timeouts: 2, fallbacks: 1 })
  const counts = retry.counts()
  assert.deepEqual([counts.retries, counts.failedWithRetry], [2, 1])
  assert.equal(breaker.state, 'open')
  // Opened at START + 1 for 5 s; the retry's second wait moved the clock to START + 3.
  clock.advance(2.5)
  assert.equal(await policy.execute(async () => 'too early'), 'fallback: circuit_open')
  clock.advance(1)
  assert.equal(await policy.execute(async () => 'live'), 'live', 'the wait is over: the trial goes through')
  assert.equal(breaker.state, 'closed')
  await eng.close()
})

test('a call that ends before its timeout keeps its value; the timer is cleared', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const policy = new Policy({ timeoutSeconds: 20 })
  assert.equal(await policy.execute(async () => 'fast'), 'fast')
  t.mock.timers.tick(60_000)
  await settle()
  assert.deepEqual(policy.counts(), { timeouts: 0, fallbacks: 0 }, 'no timeout fired after the call ended')
  const timedOut = policy.execute(hangs).catch((e) => e)
  await settle()
  t.mock.timers.tick(20_000)
  const e = await timedOut
  assert.ok(e instanceof TimedOutError)
  assert.equal(e.timeout, 20)
})
