// Policy through the built addon: retry, breaker, timeout and fallback composed in the core's
// order, fallback ( retry ( breaker ( timeout ( call ) ) ) ). Retry waits run on a fake clock;
// timeouts are tens of milliseconds against calls that would take seconds (stopped by the signal
// or released by the test), and nothing asserts on speed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'

const { Ace, Policy, Retry, TimedOutError } = ace

const fakeClock = () => {
  const waits = []
  return [waits, (s) => { waits.push(s) }]
}

/** Resolves after `seconds`, or rejects with the signal's reason when it aborts first. */
const slow = (signal, seconds = 30) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, seconds * 1000, 'late')
  signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason) }, { once: true })
})

test('an open breaker stops the retries unless asked', async () => {
  const eng = new Ace()
  for (const [retryRejected, expectedWaits, notPermitted] of [[false, 2, 1], [true, 4, 3]]) {
    const [waits, sleep] = fakeClock()
    const breaker = eng.breaker(`dep-${retryRejected}`, { failures: 2 })
    const retry = new Retry(`r-${retryRejected}`, { maxAttempts: 5, jitter: 0, retryRejected, sleep })
    const policy = new Policy({ breaker, retry }) // the order given does not matter
    const attempts = []
    await assert.rejects(policy.execute(({ attempt }) => { attempts.push(attempt); throw new Error('down') }), ace.CircuitOpenError)
    assert.deepEqual(attempts, [1, 2], 'the breaker turned the later attempts away')
    assert.equal(waits.length, expectedWaits)
    assert.equal(retry.counts().retries, expectedWaits)
    assert.equal(breaker.snapshot().notPermitted, notPermitted)
  }
  await eng.close()
})

test('a timeout aborts the signal, raises TimedOutError and is a breaker failure', async () => {
  const eng = new Ace()
  const breaker = eng.breaker('slow', { failures: 2 })
  const [waits, sleep] = fakeClock()
  const policy = new Policy({ retry: new Retry('slow', { maxAttempts: 4, jitter: 0, sleep }), breaker, timeoutSeconds: 0.02 })
  const reasons = []
  await assert.rejects(
    policy.execute(async ({ signal }) => {
      try {
        return await slow(signal)
      } catch (e) {
        reasons.push(e)
        throw e
      }
    }),
    ace.CircuitOpenError,
  )
  assert.equal(reasons.length, 2, 'two attempts timed out, then the open breaker refused the third')
  assert.ok(reasons.every((e) => e instanceof TimedOutError && e instanceof ace.AceError))
  assert.equal(reasons[0].code, 'timed_out')
  assert.equal(reasons[0].timeout, 0.02)
  assert.equal(breaker.state, 'open')
  assert.equal(waits.length, 2)
  assert.deepEqual(policy.counts(), { timeouts: 2, fallbacks: 0 })
  await eng.close()
})

test('an engine retry and a policy timeout are Prometheus series', async () => {
  const eng = new Ace()
  const breaker = eng.breaker('series', { failures: 10 })
  const [waits, sleep] = fakeClock()
  const retry = eng.retry('series', { maxAttempts: 3, jitter: 0, sleep })
  const policy = new Policy({ retry, breaker, timeoutSeconds: 0.02 })
  await assert.rejects(policy.execute(({ signal }) => slow(signal)), TimedOutError)
  assert.equal(await policy.execute(async () => 'ok'), 'ok')
  assert.equal(waits.length, 2)
  const text = eng.metricsText()
  for (const line of [
    'ace_retry_calls_total{name="series",outcome="failed_with_retry"} 1',
    'ace_retry_calls_total{name="series",outcome="successful_without_retry"} 1',
    'ace_retry_attempts_total{name="series"} 2',
    'ace_timeouts_total{name="series"} 3',
  ]) {
    assert.ok(text.includes(line), `${line} in\n${text}`)
  }
  const alone = new Policy({ retry: new Retry('alone', { maxAttempts: 1 }), timeoutSeconds: 0.02 })
  await assert.rejects(alone.execute(({ signal }) => slow(signal)), TimedOutError)
  assert.ok(!eng.metricsText().includes('alone'), 'a retry made alone belongs to no engine')
  await eng.close()
})

test('a call that ignores the signal finishes on its own and its result is dropped', async () => {
  const eng = new Ace()
  const breaker = eng.breaker('deaf', { failures: 1 })
  const policy = new Policy({ breaker, timeoutSeconds: 0.02 })
  let release
  const released = new Promise((resolve) => { release = resolve })
  let finished = false
  let sawAbort = false
  await assert.rejects(
    policy.execute(async ({ signal }) => {
      await released
      sawAbort = signal.aborted
      finished = true
      throw new Error('too late to matter')
    }),
    (e) => e instanceof TimedOutError && e.message === 'timed out after 0.020 s',
  )
  assert.equal(breaker.state, 'open', 'the breaker judged the attempt at its timeout, not when it ended')
  release()
  await new Promise((resolve) => setImmediate(resolve))
  assert.ok(finished && sawAbort, 'the attempt ran to its end with its signal aborted')
  breaker.reset()
  assert.equal(await policy.execute(({ signal, attempt }) => (signal.aborted ? 'aborted' : attempt)), 1)
  await assert.rejects(policy.execute(() => { throw new RangeError('own') }), RangeError)
  await eng.close()
})

test('the fallback gets the last error after every attempt', async () => {
  const [waits, sleep] = fakeClock()
  const retry = new Retry('fb', { maxAttempts: 3, jitter: 0, sleep })
  const seen = []
  const policy = new Policy({ retry, fallback: async (e) => { seen.push(e); return 'cached' } })
  assert.equal(await policy.execute(({ attempt }) => { throw new Error(`attempt ${attempt}`) }), 'cached')
  assert.deepEqual(seen.map((e) => e.message), ['attempt 3'])
  assert.equal(waits.length, 2)
  assert.equal(policy.counts().fallbacks, 1)
  assert.equal(retry.counts().failedWithRetry, 1)

  assert.equal(await new Policy({ fallback: 0 }).execute(() => { throw new Error('x') }), 0, 'a value is returned as is')
  assert.equal(await new Policy({ fallback: null }).execute(() => { throw new Error('x') }), null)
  const onlyRange = new Policy({ fallback: 'fb', fallbackIf: (e) => e instanceof RangeError })
  await assert.rejects(onlyRange.execute(() => { throw new TypeError('not handled') }), TypeError)
  assert.equal(await onlyRange.execute(() => { throw new RangeError('handled') }), 'fb')
  assert.equal(onlyRange.counts().fallbacks, 1)
})

test('the fallback answers for an open breaker', async () => {
  const eng = new Ace()
  const breaker = eng.breaker('fb-open', { failures: 1 })
  breaker.forceOpen()
  const seen = []
  const policy = new Policy({ breaker, fallback: (e) => { seen.push(e); return 'stale' } })
  let called = false
  assert.equal(await policy.execute(() => { called = true; return 'live' }), 'stale')
  assert.ok(!called && seen[0] instanceof ace.CircuitOpenError && seen[0].breaker === 'fb-open')
  await eng.close()
})

test('wrap runs every call through the policy with its own arguments and this', async () => {
  const [waits, sleep] = fakeClock()
  const policy = new Policy({ retry: new Retry('w', { jitter: 0, sleep }) })
  let n = 0
  const obj = {
    k: 20,
    add: policy.wrap(async function (x) {
      if (++n < 2) throw new Error('flaky')
      return this.k + x
    }),
  }
  assert.equal(await obj.add(22), 42)
  assert.equal(n, 2)
  assert.deepEqual(waits, [0.5])
})

test('TimedOutError carries its code', () => {
  const e = new TimedOutError('timed out after 1.000 s', { timeout: 1 })
  assert.ok(e instanceof ace.AceError && e instanceof Error)
  assert.equal(e.code, 'timed_out')
  assert.equal(e.name, 'TimedOutError')
  assert.equal(e.timeout, 1)
})

test('bad settings are typed errors', async () => {
  const eng = new Ace()
  const bad = [
    [{ timeoutSeconds: -1 }, 'timeoutSeconds'],
    [{ timeoutSeconds: 0 }, 'timeoutSeconds'],
    [{ timeoutSeconds: NaN }, 'timeoutSeconds'],
    [{ timeoutSeconds: Infinity }, 'timeoutSeconds'],
    [{ timeoutSeconds: '1' }, 'timeoutSeconds'],
    [{ timeoutSeconds: 3e6 }, 'timeoutSeconds'],
    [{ retry: 'r' }, 'retry'],
    [{ retry: eng.breaker('b') }, 'retry'],
    [{ breaker: new Retry('r') }, 'breaker'],
    [{ fallbackIf: 'x' }, 'fallbackIf'],
    [{ timeoutMs: 10 }, 'options'],
    [[], 'options'],
    ['fast', 'options'],
  ]
  for (const [options, field] of bad) {
    assert.throws(() => new Policy(options), (e) => e instanceof ace.InvalidInputError && e.field === field, JSON.stringify(options))
  }
  await assert.rejects(new Policy().execute('not a function'), ace.InvalidInputError)
  await eng.close()
})
