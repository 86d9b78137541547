// Breaker settings tested on a ManualClock: the open wait, the half-open trial, time windows,
// automatic half-open and the durations in the snapshot, all without sleeping. The JS fast path
// (successes counted in JS while closed) must follow the engine's clock too.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'

const { Ace, CircuitOpenError, InvalidInputError, ManualClock } = ace
const START = 1_700_000_000
const fail = async () => { throw new Error('down') }
const ok = async () => 1

function timed() {
  const clock = new ManualClock(START)
  return { clock, eng: new Ace({ clock }) }
}

test('the manual clock moves only when told; bad seconds are an InvalidInputError', async () => {
  const clock = new ManualClock(START)
  assert.equal(clock.now(), START)
  clock.advance(1.5)
  assert.equal(clock.now(), START + 1.5)
  clock.set(10)
  assert.equal(clock.now(), 10)
  assert.equal(new ManualClock().now(), 0)
  for (const bad of [NaN, -1, Infinity]) {
    assert.throws(() => new ManualClock(bad), (e) => e instanceof InvalidInputError && e.field === 'start')
    assert.throws(() => clock.advance(bad), InvalidInputError)
    assert.throws(() => clock.set(bad), InvalidInputError)
  }
  assert.throws(() => clock.advance('soon'), InvalidInputError)
  assert.equal(clock.now(), 10, 'bad input moves nothing')
  assert.throws(() => new Ace({ clock: 'now' }), (e) => e instanceof InvalidInputError && e.field === 'clock')
  await assert.rejects(Ace.open(undefined, { clock: {} }), InvalidInputError)
  const opened = await Ace.open('memory', { clock })
  const b = opened.breaker('o', { failures: 1, waitSeconds: 5 })
  await assert.rejects(b.call(fail))
  clock.advance(6)
  assert.equal(await b.call(ok), 1, 'an engine from Ace.open reads the clock too')
  await opened.close()
})

test('open, the wait passes, a half-open trial closes it', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('dep', { failures: 2, waitSeconds: 30 })
  // Successes first, so the JS fast path is in use when the failures come.
  for (let i = 0; i < 40; i++) await b.call(ok)
  for (let i = 0; i < 2; i++) await assert.rejects(b.call(fail), /down/)
  assert.equal(b.state, 'open')
  clock.advance(29)
  await assert.rejects(b.call(ok), (e) => e instanceof CircuitOpenError && Math.abs(e.retryAfter - 1) < 1e-6)
  clock.advance(1)
  await assert.rejects(b.call(ok), CircuitOpenError, 'the wait ends strictly after 30 s')
  clock.advance(0.001)
  assert.equal(b.state, 'open', 'without automaticHalfOpen only a call moves it')
  const trial = b.tryAcquire()
  assert.ok(trial, 'the wait is over: a trial')
  assert.equal(b.state, 'half_open')
  assert.equal(b.tryAcquire(), null, 'one trial permit')
  trial.success()
  assert.equal(b.state, 'closed')
  await eng.close()
})

test('a failed trial opens it for another wait', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('dep2', { failures: 1, waitSeconds: 10 })
  await assert.rejects(b.call(fail))
  clock.advance(11)
  await assert.rejects(b.call(fail), /down/)
  assert.equal(b.state, 'open')
  clock.advance(10)
  await assert.rejects(b.call(ok), CircuitOpenError)
  clock.advance(1)
  assert.equal(await b.call(ok), 1)
  assert.equal(b.state, 'closed')
  await eng.close()
})

test('automaticHalfOpen moves at a read once the wait is over', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('auto', { failures: 1, waitSeconds: 5, automaticHalfOpen: true })
  await assert.rejects(b.call(fail))
  clock.advance(5)
  assert.equal(b.state, 'open')
  clock.advance(0.5)
  assert.equal(b.state, 'half_open', 'read, not called')
  await eng.close()
})

test('a time window forgets calls older than its seconds', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('tw', { window: 'time:10', minimumCalls: 4, failureRate: 50 })
  for (let i = 0; i < 3; i++) await assert.rejects(b.call(fail))
  assert.equal(b.snapshot().windowCalls, 3)
  clock.advance(10)
  assert.equal(b.snapshot().windowCalls, 0, 'the three failures left the window')
  await assert.rejects(b.call(fail))
  await b.call(ok)
  assert.equal(b.state, 'closed', 'below minimumCalls')
  for (let i = 0; i < 2; i++) await assert.rejects(b.call(fail))
  assert.equal(b.state, 'open', '3 failures of 4 calls within the ten seconds')
  await eng.close()
})

test('the half-open limit reopens without a verdict', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('hl', { failures: 1, waitSeconds: 5, maxHalfOpenSeconds: 20 })
  await assert.rejects(b.call(fail))
  clock.advance(6)
  const trial = b.tryAcquire()
  assert.equal(b.state, 'half_open')
  clock.advance(21)
  await assert.rejects(b.call(ok), CircuitOpenError)
  assert.equal(b.state, 'open')
  trial.success()
  await eng.close()
})

test('the snapshot gives the window durations on the engine clock', async () => {
  const { clock, eng } = timed()
  const b = eng.breaker('slow', { window: 'count:3', minimumCalls: 3, slowCallSeconds: 2, slowCallRate: 100 })
  let snap = b.snapshot()
  assert.deepEqual([snap.totalDuration, snap.averageDuration], [0, null])
  for (const took of [1, 3, 5]) {
    await b.call(async () => clock.advance(took))
  }
  snap = b.snapshot()
  assert.deepEqual([snap.totalDuration, snap.averageDuration], [9, 3])
  assert.deepEqual([snap.slowSuccesses, snap.slowFailures, snap.attempts], [2, 0, 0])
  const plain = eng.breaker('plain', { window: 'count:3' })
  await plain.call(ok)
  assert.equal(plain.snapshot().totalDuration, null, 'a breaker without slowCallSeconds times nothing')
  await eng.close()
})

test('isFailure returning false counts the error as a success; isIgnored counts it neither way', async () => {
  const eng = new Ace()
  const b = eng.breaker('judged', { window: 'count:4', minimumCalls: 4, isFailure: (e) => !(e instanceof RangeError), isIgnored: (e) => e instanceof TypeError })
  for (let i = 0; i < 3; i++) await assert.rejects(b.call(() => { throw new RangeError('not a failure') }), RangeError)
  await assert.rejects(b.call(() => { throw new TypeError('neither') }), TypeError)
  let snap = b.snapshot()
  assert.deepEqual([snap.successes, snap.failures, snap.ignored, snap.windowCalls], [3, 0, 1, 3])
  const p = b.acquire()
  assert.equal(p.error(new RangeError('x')), undefined)
  snap = b.snapshot()
  assert.deepEqual([snap.successes, snap.windowCalls, snap.failureRate], [4, 4, 0])
  // On the fast path (a consecutive-failures breaker, closed) too.
  const fast = eng.breaker('fast', { failures: 2, isFailure: (e) => !(e instanceof RangeError) })
  for (let i = 0; i < 40; i++) {
    await fast.call(ok)
    await assert.rejects(fast.call(() => { throw new RangeError('fine') }), RangeError)
  }
  await assert.rejects(fast.call(fail))
  await assert.rejects(fast.call(() => { throw new RangeError('fine') }), RangeError)
  await assert.rejects(fast.call(fail))
  assert.equal(fast.state, 'closed', 'the success between the failures ended the run')
  snap = fast.snapshot()
  assert.deepEqual([snap.successes, snap.failures, snap.ignored], [81, 2, 0])
  const noisy = eng.breaker('noisy', { failures: 1, isFailure: () => { throw new Error('predicate bug') } })
  eng.on('warning', () => {})
  await assert.rejects(noisy.call(fail), /down/, 'a throwing predicate never hides the call\'s error')
  assert.equal(noisy.state, 'open', 'and the call counts as a failure')
  assert.throws(() => eng.breaker('bad', { isFailure: 42 }), InvalidInputError)
  await eng.close()
})
