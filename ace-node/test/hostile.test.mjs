// Hostile input found by probing: each test failed before its fix.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'
import prometheus from '../prometheus.js'

const { Ace } = ace

test('a permit completed twice is an InvalidInputError and touches the permit that reused its slot not at all', async () => {
  const eng = new Ace()
  const b = eng.breaker('aba', { failures: 1 })
  const first = b.tryAcquire()
  first.success()
  const second = b.tryAcquire()
  assert.equal(b._native.outstanding, 1)
  for (const complete of [() => first.failure(), () => first.success(), () => first.release(), () => first.error(new Error('x'))]) {
    assert.throws(complete, ace.InvalidInputError)
  }
  assert.equal(b.state, 'closed', 'a stale failure did not open the breaker')
  assert.equal(b._native.outstanding, 1, 'the live permit is still held')
  second.failure()
  assert.equal(b.state, 'open')
  assert.throws(() => second.success(), ace.InvalidInputError)
  // The class methods and the task-scoped path number permits the same way.
  b.reset()
  const scoped = b.tryAcquire('agent', 'task')
  scoped.release()
  const again = b.tryAcquire('agent', 'task')
  assert.throws(() => b._native.failure(scoped._slot), /invalid_input/)
  assert.equal(b.state, 'closed')
  again.success()
  for (const bad of [NaN, -1, 1.5, 2 ** 60, Infinity]) {
    assert.throws(() => new ace.Permit(b, bad).success(), ace.InvalidInputError, String(bad))
  }
  await eng.close()
})

test('a throwing intervention listener is reported, never thrown into the caller', async () => {
  const eng = new Ace()
  const warnings = []
  eng.on('warning', (e) => warnings.push(e))
  eng.on('intervention', () => {
    throw new Error('listener bug')
  })
  const seen = []
  eng.on('intervention', (i) => seen.push(i.strategy))
  let intervened = null
  for (let p = 0; p < 6 && !intervened; p++) {
    const r = eng.recordError('a', 't', 'execution', 'ConnectionError', `connection to db-${p}:5432 refused`)
    if (r.intervention) intervened = r
  }
  assert.ok(intervened, 'repeated errors raise an intervention')
  assert.equal(eng.listenerErrors, 1)
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0].message, 'listener bug')
  assert.equal(seen.length, 1, 'the listeners after the throwing one still hear it')

  const b = eng.breaker('flaky', { failures: 1 })
  b.acquire('agent-1', 'task-1').failure()
  assert.throws(() => b.acquire('agent-1', 'task-1'), ace.CircuitOpenError)
  assert.equal(b.tryAcquire('agent-1', 'task-1'), null)
  assert.ok(eng.listenerErrors >= 1)
  await eng.close()
})

test('with no warning listener, a listener error becomes a process warning', async () => {
  const eng = new Ace()
  eng.once('intervention', () => {
    throw new Error('once bug')
  })
  const warned = new Promise((resolve) => process.once('warning', resolve))
  const b = eng.breaker('flaky2', { failures: 1 })
  b.acquire('agent-1', 'task-1').failure()
  assert.throws(() => b.acquire('agent-1', 'task-1'), ace.CircuitOpenError)
  const w = await warned
  assert.match(w.message, /once bug/)
  assert.equal(eng.listenerCount('intervention'), 0, 'a once listener is removed even when it throws')
  await eng.close()
})

test('counts: NaN, negative, fractional and out-of-range are InvalidInputError, not wrapped', async () => {
  const eng = new Ace()
  const pb = eng.playbooks
  await pb.add('airline', 'strategies', 'Read the booking back', 'manual')
  const before = await pb.stats('airline')
  for (const v of [NaN, -1, 0.5, 2 ** 32, Infinity, -Infinity]) {
    await assert.rejects(pb.rollback('airline', v), ace.InvalidInputError, String(v))
  }
  assert.deepEqual(await pb.stats('airline'), before, 'the domain is untouched')
  await assert.rejects(pb.retrieve('airline', 'booking', { k: -1 }), ace.InvalidInputError)
  await assert.rejects(pb.render('airline', { tokenBudget: NaN }), ace.InvalidInputError)
  for (const v of [NaN, -1, 1.5, 2 ** 32]) {
    assert.throws(() => eng.rateLimiter(`r${v}`, 1, v), ace.InvalidInputError, `burst ${v}`)
    assert.throws(() => eng.bulkhead(`b${v}`, v), ace.InvalidInputError, `bulkhead ${v}`)
    assert.throws(() => eng.breaker(`f${v}`, { failures: v }), ace.InvalidInputError, `failures ${v}`)
    assert.throws(() => eng.breaker(`m${v}`, { window: 'count:10', minimumCalls: v }), ace.InvalidInputError)
    assert.throws(() => eng.breaker(`h${v}`, { halfOpenPermits: v }), ace.InvalidInputError)
  }
  assert.equal(eng.rateLimiter('ok', 1, 3).tryAcquire(), true)
  await eng.close()
})

test('prometheus parse() undoes label escapes in one pass from the left', () => {
  const escape = (v) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
  const values = ['agent\\n1', 'say "hi"', 'C:\\temp\\', 'two\nlines', '\\\\n', '\\"', 'plain']
  const text = ['# TYPE ace_x counter', ...values.map((v, i) => `ace_x_total{agent="${escape(v)}",n="${i}"} 1`), '# EOF'].join('\n')
  const samples = prometheus.parse(text).get('ace_x').samples
  assert.deepEqual(
    samples.map((s) => s.labels.agent),
    values,
  )
})

test('arguments of the wrong type are InvalidInputError, not plain napi errors', async () => {
  const eng = new Ace()
  for (const f of [
    () => eng.endTask(42, 't'),
    () => eng.baseline({}, 'planning'),
    () => eng.contextStaleness(7),
    () => eng.recordMetric('a', 't', 'planning', 'tokens', 'many'),
    () => eng.recordStage('a', 't', 'planning', 1, true, { tokens: 'many' }),
    () => eng.recordStage(42, 't', 'planning', 1),
    () => eng.breaker('typed', { failures: 'five' }),
    () => eng.rateLimiter('typed', 'fast', 1),
    () => eng.bulkhead('typed', 'two'),
  ]) {
    assert.throws(f, (e) => e instanceof ace.InvalidInputError && e.code === 'invalid_input', f.toString())
  }
  await assert.rejects(eng.playbooks.add('d', 's', 42), ace.InvalidInputError)
  await eng.close()
})

test('a bullet provenance past 1 KiB is InvalidInputError', async () => {
  const eng = new Ace()
  const pb = eng.playbooks
  await assert.rejects(pb.add('d', 's', 'Read the booking back', 'p'.repeat(1_000_000)), (e) => e instanceof ace.InvalidInputError && e.field === 'provenance')
  const report = await pb.merge('d', [{ section: 's', content: 'Check the fare', provenance: 'p'.repeat(2000) }])
  assert.deepEqual([report.added.length, report.skipped.length], [0, 1])
  assert.deepEqual(await pb.bullets('d'), [])
  await pb.add('d', 's', 'Read the booking back', 'p'.repeat(1024))
  await eng.close()
})
