// Breakers, rate limiters and bulkheads.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'

const { Ace } = ace

test('call opens after five failures and then rejects without running', async () => {
  const eng = new Ace()
  const b = eng.breaker('llm')
  const ran = []
  for (let i = 0; i < 5; i++) {
    await assert.rejects(b.call(async (x) => {
      ran.push(x)
      throw new Error('timeout')
    }, i))
  }
  assert.equal(b.state, 'open')
  assert.equal(eng.breakerStates().llm, 'open')
  await assert.rejects(b.call(async () => ran.push('never')), (e) => {
    assert.ok(e instanceof ace.CircuitOpenError)
    assert.equal(e.breaker, 'llm')
    assert.equal(e.state, 'open')
    assert.ok(e.retryAfter > 0 && e.retryAfter <= 60)
    return true
  })
  assert.deepEqual(ran, [0, 1, 2, 3, 4])
  assert.equal(b.tryAcquire(), null, 'tryAcquire does not throw when open')
  const snap = b.snapshot()
  assert.equal(snap.failures, 5)
  assert.ok(snap.notPermitted >= 2)
  await eng.close()
})

test('sync functions, wrap, isFailure and manual states', async () => {
  const eng = new Ace()
  const b = eng.breaker('db', { failures: 2, waitSeconds: 30, isIgnored: (e) => e instanceof RangeError })
  assert.equal(await b.call((a, c) => a + c, 1, 2), 3)
  for (let i = 0; i < 3; i++) await assert.rejects(b.call(() => { throw new RangeError('ignored') }))
  assert.equal(b.state, 'closed', 'ignored errors count neither way')
  const obj = { n: 2, get: b.wrap(function (k) { return this.n * k }) }
  assert.equal(await obj.get(5), 10, 'wrap keeps this')
  for (let i = 0; i < 2; i++) await assert.rejects(b.call(() => { throw new Error('down') }))
  assert.equal(b.state, 'open')
  b.reset()
  assert.equal(b.state, 'closed')
  b.forceOpen()
  assert.equal(b.tryAcquire(), null)
  b.disable()
  assert.equal(await b.call(() => 1), 1)
  b.metricsOnly()
  assert.equal(b.state, 'metrics_only')
  b.close()
  b.openFor(5)
  assert.equal(b.state, 'open')
  assert.throws(() => eng.breaker('w', { window: 'sometimes:3' }), ace.InvalidInputError)
  assert.throws(() => eng.breaker('r', { window: 'count:10', failureRate: 150 }), ace.ConfigError)
  assert.throws(() => eng.breaker('s', { waitSeconds: NaN }), ace.InvalidInputError)
  await eng.close()
})

test('permits: manual completion, release, and the backoff intervention with a task', async () => {
  const eng = new Ace()
  const b = eng.breaker('api')
  const seen = []
  eng.on('intervention', (i) => seen.push(i.strategy))
  const p = b.tryAcquire('agent-1', 'task-1')
  p.release()
  assert.throws(() => p.success(), ace.InvalidInputError, 'a permit completes once')
  for (let i = 0; i < 5; i++) b.acquire('agent-1', 'task-1').error(new Error('refused'))
  assert.throws(() => b.acquire('agent-1', 'task-1'), (e) => e instanceof ace.CircuitOpenError && e.intervention.strategy === 'backoff')
  assert.ok(seen.includes('backoff'))
  assert.throws(() => b.tryAcquire('agent-1'), ace.InvalidInputError)
  await eng.close()
})

test('rate limiters and bulkheads', async () => {
  const eng = new Ace()
  const rl = eng.rateLimiter('rate', 50, 2)
  assert.ok(rl.tryAcquire() && rl.tryAcquire())
  assert.equal(rl.tryAcquire(), false)
  const started = Date.now()
  await rl.acquire()
  assert.ok(Date.now() - started < 1000)
  const slow = eng.rateLimiter('slow', 0.01, 1)
  await slow.acquire(0)
  await assert.rejects(slow.acquire(0.01), (e) => e instanceof ace.LimitedError && e.retryAfter > 1)
  assert.ok(rl.rejected >= 1)
  assert.throws(() => eng.rateLimiter('bad', 0, 1), ace.ConfigError)
  const bh = eng.bulkhead('pool', 1)
  let release
  const running = bh.run(() => new Promise((r) => { release = r }))
  assert.equal(bh.inFlight, 1)
  await assert.rejects(bh.run(async () => 1), ace.LimitedError)
  release(5)
  assert.equal(await running, 5)
  assert.equal(bh.inFlight, 0)
  assert.equal(bh.rejected, 1)
  assert.throws(() => eng.bulkhead('bad', 0), ace.ConfigError)
  await eng.close()
})

test('the fast path settles sync functions, thenables and sync throws as promises, in order', async () => {
  const eng = new Ace()
  const b = eng.breaker('sync-fns')
  for (let i = 0; i < 3; i++) await b.call(async () => i) // on the fast path from here
  // A sync value and a thenable resolve; neither is a failure.
  const value = b.call((x, y) => x + y, 2, 3)
  assert.ok(value instanceof Promise)
  assert.equal(await value, 5)
  assert.equal(await b.call(() => ({ then: (ok) => ok('thenable') })), 'thenable')
  // A sync throw is a rejection, never a throw out of `call`, and counts as a failure.
  const error = new Error('sync down')
  let rejected
  try {
    rejected = b.call(() => {
      throw error
    })
  } catch {
    assert.fail('call threw synchronously')
  }
  assert.ok(rejected instanceof Promise)
  await assert.rejects(rejected, (e) => e === error)
  // Settled in call order, on the fast path as off it.
  const order = []
  await Promise.all([1, 2, 3].map((i) => b.call(async () => i).then((v) => order.push(v))))
  assert.deepEqual(order, [1, 2, 3])
  const snap = b.snapshot()
  assert.equal(snap.successes, 8)
  assert.equal(snap.failures, 1)
  // Five sync throws in a row open it, and the next call is turned away unrun.
  for (let i = 0; i < 4; i++) await assert.rejects(b.call(() => { throw error }))
  assert.equal(b.state, 'closed')
  await assert.rejects(b.call(() => { throw error }))
  assert.equal(b.state, 'open')
  let ran = false
  await assert.rejects(b.call(() => { ran = true }), ace.CircuitOpenError)
  assert.equal(ran, false)
  await eng.close()
})

test('the JS fast path counts every call and keeps the rules', async () => {
  const eng = new Ace()
  const b = eng.breaker('fast')
  assert.equal(eng.breaker('fast'), b, 'one object per name')
  for (let i = 0; i < 100; i++) await b.call(async () => i)
  assert.equal(b.snapshot().successes, 100, 'successes counted in JS reach the core')
  const fail = () => b.call(async () => { throw new Error('down') }).catch(() => {})
  for (let i = 0; i < 4; i++) await fail()
  await b.call(async () => 1)
  for (let i = 0; i < 4; i++) await fail()
  assert.equal(b.state, 'closed', 'a success between runs of failures resets the run')
  await fail()
  assert.equal(b.state, 'open', 'the fifth failure in a row opens it')
  b.reset()
  // Opened behind the wrapper's back (as a peer process would, through the shared cache):
  // the fast path asks the core again within 32 calls.
  b._native.forceOpen()
  let through = 0
  for (let i = 0; i < 100; i++) {
    try {
      await b.call(async () => through++)
    } catch (e) {
      assert.ok(e instanceof ace.CircuitOpenError)
    }
  }
  assert.ok(through < 32, `${through} calls went through after it opened`)
  assert.match(eng.metricsText(), /ace_/)
  await eng.close()
})
