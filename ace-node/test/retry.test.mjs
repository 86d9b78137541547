// Retry through the built addon: backoff and jitter decided by the core, waits on a fake clock
// (nothing sleeps), rejections by an open breaker not retried unless asked.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'

const { Ace, Retry } = ace

test('retries back off exponentially, count, and give the last error', async () => {
  const waits = []
  const r = new Retry('llm', { maxAttempts: 4, jitter: 0, sleep: (s) => { waits.push(s) } })
  let n = 0
  const flaky = r.wrap(async () => {
    if (++n < 3) throw new Error('slow')
    return 'ok'
  })
  assert.equal(await flaky(), 'ok')
  assert.deepEqual(waits, [0.5, 1])
  await assert.rejects(r.call(() => { throw new TypeError('always') }), TypeError)
  assert.deepEqual(waits, [0.5, 1, 0.5, 1, 2])
  const picky = new Retry('picky', { retryIf: (e) => !(e instanceof RangeError), sleep: (s) => { waits.push(s) } })
  await assert.rejects(picky.call(() => { throw new RangeError('no') }), RangeError)
  assert.equal(waits.length, 5, 'retryIf said no: no wait')
  assert.deepEqual(r.counts(), {
    succeededWithoutRetry: 0, succeededWithRetry: 1, failedWithoutRetry: 0, failedWithRetry: 1, retries: 5,
  })
  assert.equal(picky.counts().failedWithoutRetry, 1)
})

test('jitter spreads each wait within its band', () => {
  const r = new Retry('j', { jitter: 0.5, waitSeconds: 1 })
  const draws = Array.from({ length: 500 }, () => r.wait(1))
  assert.ok(draws.every((w) => w >= 0.5 && w <= 1.5))
  assert.ok(Math.min(...draws) < 0.75 && Math.max(...draws) > 1.25)
})

test('an open breaker stops the retries unless asked', async () => {
  const eng = new Ace()
  for (const [retryRejected, expectedWaits] of [[false, 2], [true, 4]]) {
    const waits = []
    const b = eng.breaker(`dep-${retryRejected}`, { failures: 2 })
    const r = new Retry(`r-${retryRejected}`, { maxAttempts: 5, jitter: 0, retryRejected, sleep: (s) => { waits.push(s) } })
    let calls = 0
    await assert.rejects(r.call(() => b.call(async () => { calls++; throw new Error('down') })), ace.CircuitOpenError)
    assert.equal(calls, 2, 'the breaker turned the later attempts away')
    assert.equal(waits.length, expectedWaits)
  }
  await eng.close()
})

test('bad settings are typed errors', () => {
  assert.throws(() => new Retry('r', { maxAttempts: 0 }), ace.ConfigError)
  assert.throws(() => new Retry('r', { jitter: 1.5 }), ace.ConfigError)
  assert.throws(() => new Retry('r', { waitSeconds: NaN }), ace.InvalidInputError)
  assert.throws(() => new Retry(''), ace.InvalidInputError)
})
