// Breakers at parity with resilience4j by default, and the peers' behaviours as named settings,
// through the built addon. Every wait passes on a ManualClock, so nothing sleeps (but for the
// 5 ms that shows the event loop running while a call waits for a trial). docs/breakers.md
// ("where each behaviour is pinned") maps each behaviour of issue 24 to its test here.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'

const { Ace, CircuitOpenError, ConfigError, InvalidInputError, ManualClock } = ace
const START = 1_700_000_000
const fail = async () => { throw new Error('down') }

function timed() {
  const clock = new ManualClock(START)
  return { clock, eng: new Ace({ clock }) }
}

function watch(b) {
  const events = []
  b.onEvent((e) => events.push(e))
  return events
}

/** The events seen so far as [kind, from, to, rate], and forgets them. */
function drained(events) {
  const out = events.map((e) => [e.kind, e.from ?? null, e.to ?? null, e.rate ?? null])
  events.length = 0
  return out
}

test('notPermitted counts since the last transition; notPermittedTotal since the start', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('np', { failures: 2, waitSeconds: 30 })
  for (let i = 0; i < 2; i++) await assert.rejects(b.call(fail))
  for (let i = 0; i < 3; i++) await assert.rejects(b.call(async () => 1), ace.CircuitOpenError)
  let snap = b.snapshot()
  assert.deepEqual([snap.notPermitted, snap.notPermittedTotal], [3, 3])
  clock.advance(31)
  assert.equal(await b.call(async () => 7), 7, 'the wait is over: this call is the trial')
  snap = b.snapshot()
  assert.deepEqual([snap.state, snap.notPermitted, snap.notPermittedTotal], ['closed', 0, 3])
  await eng.close()
})

test('the snapshot shows the half-open trial', async () => {
  const eng = new Ace()
  const b = eng.breaker('trial', { window: 'count:4', minimumCalls: 4, halfOpenPermits: 3 })
  b.halfOpen()
  assert.equal(b.state, 'half_open')
  await assert.rejects(b.call(fail))
  assert.equal(await b.call(async () => 1), 1)
  const snap = b.snapshot()
  assert.deepEqual(
    [snap.state, snap.windowCalls, snap.windowFailures, snap.failureRate, snap.slowSuccesses, snap.slowFailures],
    ['half_open', 2, 1, null, 0, 0],
  )
  await eng.close()
})

test('threshold reached or exceeded', async () => {
  const eng = new Ace()
  for (const [rule, opens] of [['reached', true], ['exceeded', false]]) {
    const b = eng.breaker(`th-${rule}`, { window: 'count:4', minimumCalls: 4, threshold: rule })
    for (let i = 0; i < 2; i++) await b.call(async () => 1)
    for (let i = 0; i < 2; i++) await assert.rejects(b.call(fail))
    assert.equal(b.state === 'open', opens, rule)
  }
  await eng.close()
})

test('a lost trial re-opens after all permits or at once', async () => {
  const eng = new Ace()
  for (const [verdict, openAfterTwo] of [['after_all_permits', false], ['at_once', true]]) {
    const b = eng.breaker(`tv-${verdict}`, { window: 'count:4', minimumCalls: 4, halfOpenPermits: 4, trialVerdict: verdict })
    b.halfOpen()
    for (let i = 0; i < 2; i++) await assert.rejects(b.call(fail))
    assert.equal(b.state === 'open', openAfterTwo, verdict)
  }
  await eng.close()
})

test('halfOpenBusy wait: a call finding the trial busy waits for its verdict, without blocking the loop', async () => {
  const eng = new Ace()
  for (const trialOk of [true, false]) {
    const b = eng.breaker(`busy-wait-${trialOk}`, { halfOpenBusy: 'wait' })
    const events = []
    b.onEvent((e) => events.push(e.kind))
    b.halfOpen()
    let release
    const gate = new Promise((resolve) => { release = resolve })
    const trial = b.call(async () => {
      await gate
      if (!trialOk) throw new Error('trial failed')
      return 'trial'
    })
    let waited = 'pending'
    const waiter = b.call(async () => 'waiter').then((v) => { waited = v }, (e) => { waited = e })
    // The event loop runs on while the waiter waits: timers fire, the waiter has no answer.
    await new Promise((resolve) => setTimeout(resolve, 5))
    assert.equal(waited, 'pending', 'the waiter waits for the verdict')
    assert.equal(b.state, 'half_open')
    assert.equal(b.tryAcquire(), null, 'tryAcquire never waits')
    release()
    if (trialOk) {
      assert.equal(await trial, 'trial')
      await waiter
      assert.equal(waited, 'waiter', 'the trial closed the breaker: the waiter goes through')
      assert.equal(b.state, 'closed')
    } else {
      await assert.rejects(trial, /trial failed/)
      await waiter
      assert.ok(waited instanceof CircuitOpenError, 'the trial opened it again: the waiter is rejected')
      assert.equal(waited.state, 'open')
    }
    assert.equal(events.filter((k) => k === 'not_permitted').length, trialOk ? 1 : 2,
      'tryAcquire was turned away (and the waiter, once the breaker opened); waiting counts nothing')
  }
  await eng.close()
})

test('halfOpenBusy wait: a trial that never reports ends at maxHalfOpenSeconds, and the waiter is told', async () => {
  const clock = new ace.ManualClock(1_700_000_000)
  const eng = new Ace({ clock })
  const b = eng.breaker('stuck', { halfOpenBusy: 'wait', maxHalfOpenSeconds: 0.001 })
  b.halfOpen()
  const held = b.tryAcquire()
  assert.ok(held)
  const waiter = b.call(async () => 'never')
  clock.advance(1)
  // No verdict comes; the waiter asks again on its own (after at most the half-open limit in
  // real time) and finds the breaker opened by the limit.
  await assert.rejects(waiter, CircuitOpenError)
  assert.equal(b.state, 'open')
  held.release()
  await eng.close()
})

test('bad or unsupported setting values are InvalidInputError', async () => {
  const eng = new Ace()
  for (const key of ['threshold', 'halfOpenBusy', 'trippingCall', 'trialVerdict']) {
    assert.throws(() => eng.breaker(`bad-${key}`, { [key]: 'sometimes' }), ace.InvalidInputError, key)
  }
  assert.throws(() => eng.breaker('until').openUntil(NaN), ace.InvalidInputError)
  await eng.close()
})

test('a count window smaller than minimumCalls clamps it', async () => {
  const eng = new Ace()
  const b = eng.breaker('clamp', { window: 'count:3', minimumCalls: 10 })
  for (let i = 0; i < 3; i++) await assert.rejects(b.call(fail))
  assert.equal(b.state, 'open')
  await eng.close()
})

test('the tripping call throws its own error or the breaker\'s', async () => {
  const eng = new Ace()
  const own = eng.breaker('own', { failures: 1 })
  await assert.rejects(own.call(fail), (e) => e.message === 'down')
  for (const [name, options] of [['consecutive', { failures: 2 }], ['windowed', { window: 'count:2', minimumCalls: 2 }]]) {
    const b = eng.breaker(`pyb-${name}`, { ...options, trippingCall: 'breaker_error' })
    await assert.rejects(b.call(fail), (e) => e.message === 'down', `${name}: the first failure is its own`)
    await assert.rejects(b.call(fail), (e) => {
      assert.ok(e instanceof ace.CircuitOpenError, `${name}: ${e}`)
      assert.equal(e.state, 'open')
      assert.equal(e.cause.message, 'down')
      return true
    })
    await assert.rejects(b.call(async () => 1), ace.CircuitOpenError)
  }
  const p = eng.breaker('pyb-permit', { failures: 1, trippingCall: 'breaker_error' })
  const permit = p.acquire()
  const instead = permit.error(new Error('db'))
  assert.ok(instead instanceof ace.CircuitOpenError)
  assert.equal(instead.cause.message, 'db')
  await eng.close()
})

test('events reach a listener after the call that caused them', async () => {
  const eng = new Ace()
  const b = eng.breaker('ev', { window: 'count:4', minimumCalls: 4, isIgnored: (e) => e instanceof RangeError })
  const events = []
  b.onEvent((e) => events.push(e))
  const others = []
  eng.breaker('other').onEvent((e) => others.push(e))
  await assert.rejects(b.call(() => { throw new RangeError('ignored') }))
  for (let i = 0; i < 4; i++) await assert.rejects(b.call(fail))
  await assert.rejects(b.call(async () => 1), ace.CircuitOpenError)
  b.reset()
  assert.deepEqual(events.map((e) => e.kind), [
    'ignored_error', 'failure_rate_exceeded', 'transition', 'not_permitted', 'transition', 'reset',
  ])
  assert.equal(events[1].rate, 100)
  assert.deepEqual([events[2].from, events[2].to], ['closed', 'open'])
  assert.equal(events[3].state, 'open')
  assert.deepEqual([events[4].from, events[4].to, events[4].why], ['open', 'closed', 'reset'])
  assert.ok(events.every((e) => e.breaker === 'ev'))
  assert.deepEqual(others, [], 'each listener hears its own breaker only')
  let thrown = 0
  const noisy = eng.breaker('noisy', { failures: 1 })
  noisy.onEvent(() => { thrown++; throw new Error('listener bug') })
  eng.on('warning', () => {})
  await assert.rejects(noisy.call(fail), (e) => e.message === 'down', 'a listener\'s throw never reaches the caller')
  assert.equal(thrown, 1)
  assert.equal(eng.listenerErrors, 1)
  assert.throws(() => b.onEvent(42), ace.InvalidInputError)
  await eng.close()
})

test('automaticHalfOpen moves on a read after the wait', async () => {
  const { clock, eng } = timed()
  for (const [automatic, expected] of [[false, 'open'], [true, 'half_open']]) {
    const b = eng.breaker(`auto-${automatic}`, { automaticHalfOpen: automatic })
    b.openUntil(clock.now() + 10)
    clock.advance(10)
    assert.equal(b.state, 'open', 'not before the wait is over (strictly after it)')
    clock.advance(1)
    assert.equal(b.state, expected, String(automatic))
    assert.equal(b.snapshot().state, expected, String(automatic))
  }
  await eng.close()
})

test('the open wait backs off on each reopen, up to its most', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('bo', { failures: 1, waitSeconds: 10, backoffMultiplier: 3, maxWaitSeconds: 100 })
  const waits = []
  for (let i = 0; i < 4; i++) {
    await assert.rejects(b.call(fail), /down/) // the first opens it; each later one is a lost trial, which re-opens it
    const rejected = await b.call(async () => 1).catch((e) => e)
    assert.ok(rejected instanceof CircuitOpenError, String(rejected))
    waits.push(rejected.retryAfter)
    assert.equal(b.snapshot().attempts, i + 1, "openings in a row")
    clock.advance(rejected.retryAfter - 1)
    await assert.rejects(b.call(async () => 1), CircuitOpenError)
    clock.advance(1.5) // the wait is over: the next call is the trial
  }
  assert.deepEqual(waits, [10, 30, 90, 100])
  assert.equal(await b.call(async () => 1), 1)
  assert.equal(b.state, 'closed', 'a won trial closes it')
  await assert.rejects(b.call(fail), /down/)
  const again = await b.call(async () => 1).catch((e) => e)
  assert.equal(again.retryAfter, 10, 'closing forgot the attempt')
  for (const bad of [{ backoffMultiplier: 2 }, { maxWaitSeconds: 60 }]) {
    assert.throws(() => eng.breaker('bo-bad', bad), InvalidInputError)
  }
  assert.throws(() => eng.breaker('bo-short', { waitSeconds: 60, backoffMultiplier: 2, maxWaitSeconds: 30 }), ConfigError)
  await eng.close()
})


test('metricsOnly starts a fresh window and publishes the rate once per stay', async () => {
  const { eng } = timed()
  const b = eng.breaker('mo', { window: 'count:4', minimumCalls: 4 })
  const events = watch(b)
  const failN = async (n) => { for (let i = 0; i < n; i++) await assert.rejects(b.call(fail), /down/) }
  await failN(3)
  b.metricsOnly()
  assert.equal(b.snapshot().windowCalls, 0, 'the closed window is not carried over')
  assert.deepEqual(drained(events), [['transition', 'closed', 'metrics_only', null]])
  await failN(3)
  assert.deepEqual(drained(events), [], 'below minimumCalls, no rate')
  await failN(5)
  assert.deepEqual(drained(events), [['failure_rate_exceeded', null, null, 100]], 'once, however many failures')
  assert.equal(b.state, 'metrics_only', 'it never trips')
  b.metricsOnly()
  assert.deepEqual(drained(events), [], 'a move to the same state publishes no transition')
  await failN(4)
  assert.deepEqual(drained(events), [['failure_rate_exceeded', null, null, 100]], 'a new stay publishes again')
  await eng.close()
})

test('a manual move to the current state restarts it without a transition', async () => {
  const { eng } = timed()
  const b = eng.breaker('same')
  const events = watch(b)
  b.close()
  assert.deepEqual(drained(events), [])
  b.openFor(5)
  b.openFor(50)
  assert.deepEqual(drained(events), [['transition', 'closed', 'open', null]])
  const rejected = await b.call(async () => 1).catch((e) => e)
  assert.equal(rejected.retryAfter, 50, 'the second wait holds')
  assert.equal(b.snapshot().notPermitted, 1)
  b.openFor(50)
  assert.equal(b.snapshot().notPermitted, 0, 'the state started afresh')
  b.forceOpen()
  b.forceOpen()
  b.disable()
  b.disable()
  assert.deepEqual(drained(events), [
    ['not_permitted', null, null, null],
    ['transition', 'open', 'forced_open', null],
    ['transition', 'forced_open', 'disabled', null],
  ])
  b.reset()
  assert.deepEqual(drained(events), [['transition', 'disabled', 'closed', null], ['reset', null, null, null]])
  b.reset()
  assert.deepEqual(drained(events), [['reset', null, null, null]], 'resetting a closed breaker: only the reset')
  await eng.close()
})

test('slow calls publish their rate before the opening', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('slowrate', { window: 'count:4', minimumCalls: 4, slowCallSeconds: 1, slowCallRate: 50 })
  const events = watch(b)
  for (let i = 0; i < 2; i++) assert.equal(await b.call(async () => 1), 1)
  const slow = b.acquire()
  clock.advance(2)
  slow.success()
  const slowFailed = b.acquire()
  clock.advance(2)
  slowFailed.error(new Error('slow and failed'))
  assert.deepEqual(drained(events), [
    ['slow_call_rate_exceeded', null, null, 50],
    ['transition', 'closed', 'open', null],
  ], 'a failure rate of 25% publishes nothing; the slow rate of 50% opens it')
  const snap = b.snapshot()
  assert.deepEqual([snap.slow, snap.failures], [2, 1])
  await eng.close()
})

test('openUntil a time: the next call after it is the trial; halfOpen by hand', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('until')
  b.openUntil(clock.now() + 20)
  const rejected = await b.call(async () => 1).catch((e) => e)
  assert.deepEqual([rejected.state, rejected.retryAfter], ['open', 20])
  clock.advance(20)
  await assert.rejects(b.call(async () => 1), CircuitOpenError)
  clock.advance(0.5)
  assert.equal(b.state, 'open', 'without automaticHalfOpen, the move waits for a call')
  assert.equal(await b.call(async () => 1), 1)
  assert.equal(b.state, 'closed')
  b.halfOpen()
  assert.equal(b.state, 'half_open', 'a manual move to half-open')
  await eng.close()
})

test('isFailureResult: a returned value that is a failure, still returned', async () => {
  const { eng } = timed()
  const b = eng.breaker('res', { failures: 2, isFailureResult: (v) => v === '' })
  assert.equal(await b.call(async () => 'ok'), 'ok')
  assert.equal(await b.wrap(() => '')(), '')
  assert.equal(b.state, 'closed')
  assert.equal(await b.call(async () => ''), '')
  assert.deepEqual([b.state, b.snapshot().failures, b.snapshot().successes], ['open', 2, 1], 'the empty answers opened it')
  const pyb = eng.breaker('res-pyb', { failures: 2, trippingCall: 'breaker_error', isFailureResult: (v) => v === null })
  for (let i = 0; i < 2; i++) assert.equal(await pyb.call(async () => null), null, 'a bad value is returned, even when it trips')
  assert.equal(pyb.state, 'open')
  pyb.close()
  await assert.rejects(pyb.call(fail), (e) => e.message === 'down', 'the next failure, not tripping, throws its own error')
  await assert.rejects(pyb.call(fail), CircuitOpenError, 'the one that trips throws the breaker\'s')
  const warnings = []
  eng.on('warning', (e) => warnings.push(e))
  const boom = eng.breaker('boom', { failures: 1, isFailureResult: () => { throw new Error('predicate bug') } })
  assert.equal(await boom.call(async () => 5), 5, 'a throwing predicate never hides the call\'s value')
  assert.equal(boom.state, 'closed', 'and the call counts as a success')
  assert.equal(warnings.length, 1)
  assert.throws(() => eng.breaker('bad', { isFailureResult: 3 }), InvalidInputError)
  const byHand = eng.breaker('res-permit', { failures: 1, isFailureResult: (v) => v === '' })
  const good = byHand.acquire()
  good.result('ok')
  assert.equal(byHand.state, 'closed')
  const permit = byHand.acquire()
  permit.result('')
  assert.equal(byHand.state, 'open', 'permit.result judges the value as call does')
  assert.throws(() => permit.result(''), ace.AceError, 'a permit completes once')
  await eng.close()
})

test('a rejection left by a permit completed by hand is not thrown for a later failure', async () => {
  const { eng } = timed()
  for (const [name, options] of [['row', { failures: 2 }], ['rated', { window: 'count:2', minimumCalls: 2 }]]) {
    const b = eng.breaker(`stale-${name}`, { ...options, trippingCall: 'breaker_error' })
    b.acquire().failure()
    b.acquire().failure()
    assert.equal(b.state, 'open', name)
    b.close()
    await assert.rejects(b.call(fail), (e) => e.message === 'down', `${name}: this failure opened nothing: its own error`)
    await assert.rejects(b.call(fail), CircuitOpenError, `${name}: this one opened it: the breaker's`)
  }
  await eng.close()
})

test('the snapshot and events carry exactly the keys ace.d.ts declares', async () => {
  const { readFileSync } = await import('node:fs')
  const dts = readFileSync(new URL('../ace.d.ts', import.meta.url), 'utf8')
  const declared = (name) => new Set([...dts.match(new RegExp(`export interface ${name} \\{([^}]*)\\}`))[1]
    .matchAll(/^\s+(\w+)\??:/gm)].map((m) => m[1]))
  const { eng } = timed()
  const b = eng.breaker('shape', { window: 'count:2', minimumCalls: 2, slowCallSeconds: 1, isIgnored: (e) => e instanceof RangeError })
  assert.deepEqual(new Set(Object.keys(b.snapshot())), declared('BreakerSnapshot'))
  const events = watch(b)
  await assert.rejects(b.call(() => { throw new RangeError('ignored') }))
  for (let i = 0; i < 2; i++) await assert.rejects(b.call(fail))
  await assert.rejects(b.call(async () => 1), CircuitOpenError)
  b.reset()
  assert.deepEqual(new Set(events.map((e) => e.kind)), new Set(['ignored_error', 'failure_rate_exceeded', 'transition', 'not_permitted', 'reset']))
  const eventKeys = declared('BreakerEvent')
  for (const e of events) assert.ok(Object.keys(e).every((k) => eventKeys.has(k)), JSON.stringify(e))
  await eng.close()
})
