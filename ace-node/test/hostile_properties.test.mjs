// Property tests with hostile values (fast-check) over the public calls of the package, the
// Node counterpart of ace-py/tests/test_hostile_properties.py: NaN, infinities, huge and negative
// numbers, control characters, lone surrogates, multibyte characters cut near the 255/256-byte
// fast-path limit, huge strings and values of the wrong type. Each call returns, or throws (or
// rejects with) an `AceError` subclass (`InvalidInputError` for a value of the wrong type, as
// docs/node.md states), never another error, a crash or a hang; what is accepted reads back
// unchanged (a string holding a lone surrogate, which UTF-8 cannot hold, is refused).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import ace from '../ace.js'
import prometheus from '../prometheus.js'

const { Ace } = ace

// A fixed seed, so a failure replays; the count keeps the whole file to a few seconds.
const RUNS = { numRuns: 120, seed: 0x5eed21 }
// A hang fails the test instead of stalling the run.
const LIMIT = { timeout: 30_000 }

const hostileNumber = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, 1e-300, 1e300, -1, 5e-324, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 31), 4294967295, 4294967296),
  fc.double(),
  fc.integer(),
)
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))
// Multibyte characters placed to straddle the 255/256-byte buffer of the fast path.
const cutNearLimit = fc
  .tuple(fc.integer({ min: 248, max: 260 }), fc.constantFrom('é', '日', '😀', '\u{10ffff}'))
  .map(([n, c]) => 'a'.repeat(n) + c)
const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.oneof(loneSurrogate, fc.constantFrom('a', '\0', '\n', '\u2028', 'é')), maxLength: 12 }),
  cutNearLimit,
  fc.constantFrom('', '\n', '\0', '\ud800', 'a\udfffb', 'é'.repeat(200), '\x1b[31m', '\u2028', '\ufeff', 'a'.repeat(100_000)),
)
const wrongType = fc.constantFrom(null, undefined, [], {}, [1, 2], { toString: () => 'x' }, () => 1, 10n, Symbol('s'), true, false, new Date(0), Buffer.from('x'))
const any = fc.oneof(hostileString, hostileNumber, wrongType)
// Valid values among the hostile ones, so that what is accepted gets read back too.
const id = fc.oneof(
  fc.constantFrom('agent-1', 'tâche-日本', 'a'.repeat(256), 'a'.repeat(254) + 'é', 'a"b', 'a\\nb', 'x" # {y', 'back\\', '{agent_id="z"}'),
  cutNearLimit,
  hostileString,
)
const text = fc.oneof(fc.constantFrom('Verify the total', 'Réservez ✓ 日本', 'x'.repeat(5000)), hostileString)

/** A count the core takes: a whole number from 0 to 2^32 - 1 (absent aside). */
const isCount = (n) => n === undefined || n === null || (Number.isInteger(n) && n >= 0 && n <= 4294967295)
/** A duration the core takes: a finite number >= 0. */
const isSeconds = (n) => typeof n === 'number' && Number.isFinite(n) && n >= 0

/** Whether `v` is not a string holding a lone surrogate (those are refused). */
const wellFormed = (v) => typeof v !== 'string' || v.isWellFormed()
/** What an accepted string reads back as: itself. */
const crossed = (s) => s

/** `f()`'s value, or undefined when it threw an AceError; any other throw fails the test. */
function attempt(f, what) {
  try {
    return { ok: true, value: f() }
  } catch (e) {
    assert.ok(e instanceof ace.AceError, `${what}: ${e && e.constructor && e.constructor.name}: ${e && e.message}`)
    assert.equal(typeof e.code, 'string')
    return { ok: false, error: e }
  }
}

/** The same for a call that returns a Promise (or throws before it). */
async function settle(f, what) {
  try {
    return { ok: true, value: await f() }
  } catch (e) {
    assert.ok(e instanceof ace.AceError, `${what}: ${e && e.constructor && e.constructor.name}: ${e && e.message}`)
    assert.equal(typeof e.code, 'string')
    return { ok: false, error: e }
  }
}

test('recording calls take hostile values or throw an AceError', LIMIT, () => {
  const eng = new Ace()
  fc.assert(
    fc.property(any, any, any, any, any, any, (agent, task, stage, duration, success, extra) => {
      const r = attempt(() => eng.recordStage(agent, task, stage, duration, success), 'recordStage')
      if (r.ok) assert.ok(isSeconds(duration) && typeof agent === 'string', `accepted a duration of ${String(duration)}`)
      if (r.ok) assert.ok([agent, task, stage].every(wellFormed), 'accepted a lone surrogate')
      const m = attempt(() => eng.recordStage(agent, task, stage, duration, success, { [String(typeof extra)]: extra }), 'recordStage+metrics')
      if (m.ok) assert.ok(typeof extra === 'number' && Number.isFinite(extra), `accepted a metric of ${String(extra)}`)
      attempt(() => eng.recordStage(agent, task, stage, duration, success, extra), 'recordStage metrics')
      attempt(() => eng.recordMetric(agent, task, stage, extra, duration), 'recordMetric')
      attempt(() => eng.recordError(agent, task, stage, extra, success, 'low'), 'recordError')
      attempt(() => eng.recordError(agent, task, stage, 'E', 'm', extra), 'recordError severity')
      attempt(() => eng.recordTool(agent, task, extra, duration, success, { args: stage }), 'recordTool')
      attempt(() => eng.recordTool(agent, task, 'search', duration, success, extra), 'recordTool options')
      attempt(() => eng.endTask(agent, task, success), 'endTask')
      attempt(() => eng.refreshContext(agent), 'refreshContext')
      attempt(() => eng.contextStaleness(agent), 'contextStaleness')
      attempt(() => eng.reportOutcome(extra, success), 'reportOutcome')
      attempt(() => eng.baseline(agent, stage, extra), 'baseline')
    }),
    RUNS,
  )
  assert.equal(typeof eng.metricsText(), 'string')
  assert.equal(eng.stats().dropped, 0)
  eng.patterns()
  return eng.flush().then(() => eng.health()).then(() => eng.close())
})

test('an accepted stage or error reads back with its ids and message unchanged', LIMIT, async () => {
  const eng = new Ace()
  let accepted = 0
  await fc.assert(
    fc.asyncProperty(id, id, text, hostileNumber, async (agent, task, message, duration) => {
      const stage = attempt(() => eng.recordStage(agent, task, 'planning', duration, true), 'recordStage')
      if (stage.ok) {
        accepted++
        const b = eng.baseline(agent, 'planning')
        assert.ok(b !== null, 'an accepted stage has a baseline')
      }
      const error = attempt(() => eng.recordError(agent, task, 'execution', 'ToolError', message), 'recordError')
      if (error.ok) {
        await eng.flush()
        const rows = await eng.errors({ agent: crossed(agent), limit: 1 })
        assert.equal(rows.length, 1, 'an accepted error is stored')
        assert.ok(rows[0].agent === crossed(agent) && rows[0].task === crossed(task), 'the ids read back unchanged')
        // A message over 16 KiB is cut, says so (`truncated`) and is stored with a marker.
        const stored = error.value.truncated ? rows[0].message.replace(/ …\[truncated\]$/, '') : rows[0].message
        assert.ok(error.value.truncated ? crossed(message).startsWith(stored) : stored === crossed(message), `message of ${message.length} chars read back as ${rows[0].message.length}`)
      }
    }),
    { ...RUNS, numRuns: 80 },
  )
  assert.ok(accepted > 0, 'some hostile ids are valid ones')
  await eng.close()
})

test('an accepted agent id reads back unchanged from the metrics text, through prometheus.parse', LIMIT, async () => {
  const eng = new Ace()
  let accepted = 0
  fc.assert(
    fc.property(id, (agent) => {
      if (!attempt(() => eng.recordStage(agent, 'task-1', 'planning', 0.5, true), 'recordStage').ok) return
      accepted++
      const labels = new Set()
      for (const family of prometheus.parse(eng.metricsText()).values()) {
        for (const sample of family.samples) labels.add(sample.labels.agent_id)
      }
      assert.ok(labels.has(crossed(agent)), `agent ${JSON.stringify(agent).slice(0, 80)} is not a label of the exposition`)
    }),
    { ...RUNS, numRuns: 60 },
  )
  assert.ok(accepted > 0)
  await eng.close()
})

test('read-back calls take hostile queries or reject with an AceError', LIMIT, async () => {
  const eng = new Ace()
  eng.recordError('agent-1', 'task-1', 'execution', 'ToolError', 'db timed out')
  await fc.assert(
    fc.asyncProperty(any, any, any, async (since, agent, limit) => {
      for (const q of [{ since }, { agent }, { limit }, { since, agent, limit }]) {
        const a = await settle(() => eng.interventions(q), 'interventions')
        const e = await settle(() => eng.errors(q), 'errors')
        for (const r of [a, e]) {
          if (!r.ok) continue
          assert.ok(Array.isArray(r.value))
          assert.ok(isCount(q.limit), `accepted a limit of ${String(q.limit)}`)
          assert.ok(r.value.length <= (q.limit || 100_000))
        }
      }
    }),
    { ...RUNS, numRuns: 60 },
  )
  await settle(() => eng.interventions(7), 'interventions(7)')
  await eng.close()
})

test('task context and tool digests take hostile values', LIMIT, async () => {
  const eng = new Ace()
  await fc.assert(
    fc.asyncProperty(any, any, any, async (agent, task, args) => {
      const r = await settle(
        () =>
          eng.task(agent, task, { end: true }, async () => {
            const current = ace.currentTask()
            assert.equal(current.agent, agent, 'the current task is the one given')
            if (task !== null && task !== undefined) assert.equal(current.task, task)
            return 'done'
          }),
        'task',
      )
      if (r.ok) assert.equal(r.value, 'done')
      const digest = attempt(() => ace.argsDigest(args), 'argsDigest')
      if (digest.ok) assert.match(digest.value, /^[0-9a-f]{16}$/)
      attempt(() => ace.argsDigestJson(args), 'argsDigestJson')
      await settle(() => eng.stage(agent, task, 'planning', (s) => s.metric(args, task)), 'stage')
      await settle(() => eng.stage(null, null, 'planning', async (s) => s.metric('tokens', args)), 'stage in no task')
    }),
    { ...RUNS, numRuns: 80 },
  )
  await eng.close()
})

test('playbook add reads back what it accepts, unchanged', LIMIT, async () => {
  const eng = new Ace()
  const pb = eng.playbooks
  const added = new Set()
  let accepted = 0
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.constantFrom('airline', 'd-1'), any), fc.oneof(fc.constantFrom('strategies', 'pitfalls'), any), fc.oneof(text, any), fc.oneof(text, any), async (domain, section, content, provenance) => {
      const r = await settle(() => pb.add(domain, section, content, provenance), 'add')
      if (!r.ok) return
      assert.ok([domain, section, content, provenance].every(wellFormed), 'accepted a lone surrogate')
      accepted++
      const key = `${crossed(domain)}\0${r.value}`
      // A near-duplicate of an earlier bullet is merged into it: the earlier bullet's id comes back.
      if (added.has(key)) return
      added.add(key)
      const b = await pb.bullet(crossed(domain), r.value)
      assert.deepEqual(
        [b.section, b.content, b.provenance ?? undefined],
        [crossed(section), crossed(content), provenance === undefined || provenance === null ? undefined : crossed(provenance)],
      )
    }),
    RUNS,
  )
  assert.ok(accepted > 0, 'some hostile bullets are valid ones')
  await eng.close()
})

test('playbook reads, edits and imports take hostile values or reject with an AceError', LIMIT, async () => {
  const eng = new Ace()
  const pb = eng.playbooks
  const id = await pb.add('d', 'strategies', 'Verify the total before charging')
  await fc.assert(
    fc.asyncProperty(any, any, any, any, any, any, async (domain, query, k, stage, budget, text) => {
      for (const d of [domain, 'd']) {
        await settle(() => pb.retrieve(d, query, { k, minStage: stage }), 'retrieve')
        const r = await settle(() => pb.render(d, { query, k, minStage: stage, tokenBudget: budget }), 'render')
        if (r.ok) for (const line of r.value.text.split('\n').filter(Boolean)) assert.match(line, /^(## |\[)/)
        const back = await settle(() => pb.rollback(d, k), 'rollback')
        if (back.ok) assert.ok(Number.isInteger(k) && k >= 0, `rolled back to version ${String(k)}`)
        await settle(() => pb.importText(d, text, { trusted: stage }), 'importText')
        await settle(() => pb.importJson(d, text, { trusted: budget }), 'importJson')
        await settle(() => pb.feedback(d, query, text), 'feedback')
        await settle(() => pb.update(d, query, { section: text, content: query }), 'update')
        await settle(() => pb.merge(d, [[query, text], { section: stage, content: text, provenance: budget }]), 'merge')
        await settle(() => pb.merge(d, text), 'merge iterable')
        for (const read of ['bullets', 'stats', 'exportText', 'exportJson', 'history']) await settle(() => pb[read](d), read)
        await settle(() => pb.bullet(d, query), 'bullet')
        await settle(() => pb.remove(d, query), 'remove')
      }
    }),
    { ...RUNS, numRuns: 60 },
  )
  await settle(() => pb.feedback('d', id, 'helpful'), 'feedback')
  await eng.close()
})

test('breakers take hostile names, options and durations or throw an AceError', LIMIT, async () => {
  const eng = new Ace()
  const keys = ['failures', 'waitSeconds', 'window', 'failureRate', 'minimumCalls', 'slowCallSeconds', 'slowCallRate', 'halfOpenPermits', 'maxHalfOpenSeconds', 'threshold', 'halfOpenBusy', 'trippingCall', 'trialVerdict', 'automaticHalfOpen', 'isFailure', 'isIgnored', 'isFailureResult']
  let made = 0
  await fc.assert(
    fc.asyncProperty(any, fc.constantFrom(...keys), any, any, any, async (name, key, value, agent, seconds) => {
      const b = attempt(() => eng.breaker(name, { [key]: value }), 'breaker')
      if (!b.ok) return
      made++
      if (['failures', 'minimumCalls', 'halfOpenPermits'].includes(key)) assert.ok(isCount(value), `accepted ${key} ${String(value)}`)
      if (['waitSeconds', 'slowCallSeconds', 'maxHalfOpenSeconds'].includes(key)) assert.ok(value === undefined || value === null || isSeconds(value), `accepted ${key} ${String(value)}`)
      const breaker = b.value
      assert.equal(breaker.name, crossed(String(name)))
      const permit = attempt(() => breaker.tryAcquire(agent, agent), 'tryAcquire')
      if (permit.ok && permit.value) permit.value.failure()
      const p = attempt(() => breaker.acquire(agent, seconds), 'acquire')
      if (p.ok) attempt(() => p.value.error(value), 'permit.error')
      await settle(() => breaker.call(() => value), 'call')
      await settle(() => breaker.wrap(async (x) => x)(value), 'wrap')
      attempt(() => breaker.onEvent(value), 'onEvent')
      const opened = attempt(() => breaker.openFor(seconds), 'openFor')
      if (opened.ok) assert.ok(isSeconds(seconds), `opened for ${String(seconds)} s`)
      attempt(() => breaker.openUntil(seconds), 'openUntil')
      attempt(() => breaker.snapshot(), 'snapshot')
      for (const move of ['halfOpen', 'close', 'reset', 'disable', 'forceOpen', 'metricsOnly', 'reset']) attempt(() => breaker[move](), move)
      assert.equal(typeof breaker.state, 'string')
    }),
    RUNS,
  )
  assert.ok(made > 0, 'some hostile breakers are valid ones')
  eng.breakerStates()
  await eng.close()
})

test('rate limiters and bulkheads take hostile values, never hang', LIMIT, async () => {
  const eng = new Ace()
  await fc.assert(
    fc.asyncProperty(any, any, any, any, any, async (name, rate, burst, timeout, size) => {
      const l = attempt(() => eng.rateLimiter(name, rate, burst), 'rateLimiter')
      if (l.ok) {
        assert.ok(isCount(burst) && burst !== null && burst !== undefined, `accepted a burst of ${String(burst)}`)
        assert.ok(typeof rate === 'number' && Number.isFinite(rate) && rate > 0, `accepted a rate of ${String(rate)}`)
        assert.equal(l.value.name, crossed(String(name)))
        attempt(() => l.value.tryAcquire(), 'tryAcquire')
        // A valid long timeout waits as long as it says; only tiny ones and invalid ones are tried.
        const tiny = typeof timeout === 'number' && timeout >= 0 && timeout <= 0.01
        if (tiny || typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) {
          await settle(() => l.value.acquire(timeout), 'acquire')
        }
      }
      const b = attempt(() => eng.bulkhead(name, size), 'bulkhead')
      if (b.ok) {
        assert.ok(isCount(size) && size !== null && size !== undefined, `accepted a bulkhead of ${String(size)}`)
        assert.equal(b.value.name, crossed(String(name)))
        await settle(() => b.value.run(() => timeout), 'run')
        assert.equal(b.value.inFlight, 0, 'a place taken by run is given back')
      }
    }),
    RUNS,
  )
  await eng.close()
})

test('retries take hostile options and attempts or throw an AceError', LIMIT, async () => {
  const keys = ['maxAttempts', 'waitSeconds', 'multiplier', 'maxWaitSeconds', 'jitter', 'retryRejected']
  await fc.assert(
    fc.asyncProperty(any, fc.constantFrom(...keys), any, any, async (name, key, value, n) => {
      const r = attempt(() => new ace.Retry(name, { [key]: value, sleep: () => {} }), 'Retry')
      if (!r.ok) return
      const retry = r.value
      const wait = attempt(() => retry.wait(n), 'wait')
      if (wait.ok) assert.ok(Number.isFinite(wait.value) && wait.value >= 0, `wait ${wait.value}`)
      let calls = 0
      const out = await settle(
        () =>
          retry.call(() => {
            calls++
            if (calls < 2) throw new Error('once')
            return 'ok'
          }),
        'call',
      ).catch((e) => ({ ok: false, error: e }))
      if (out.ok) assert.equal(out.value, 'ok')
      await settle(() => retry.wrap((x) => x)(value), 'wrap')
      assert.equal(typeof retry.counts(), 'object')
    }),
    { ...RUNS, numRuns: 80 },
  )
})

test('engines, settings, servers and replay take hostile values or reject with an AceError', LIMIT, async () => {
  await fc.assert(
    fc.asyncProperty(any, any, any, async (url, key, value) => {
      const made = attempt(() => new Ace({ config: { [String(typeof key === 'symbol' ? 'x' : key)]: value } }), 'new Ace')
      if (made.ok) await made.value.close()
      const opened = await settle(() => Ace.open(url === undefined ? 'memory' : url, { embedderDim: value, persist: key }), 'open')
      if (opened.ok) await opened.value.close()
      await settle(() => ace.replay(url, { [String(typeof key === 'symbol' ? 'x' : key)]: value }), 'replay')
      const embedded = await settle(() => Ace.open('memory', { embedder: value, embedderDim: 3 }), 'open with an embedder')
      if (embedded.ok) {
        assert.ok(value === undefined || value === null || typeof value === 'function', `accepted an embedder ${String(value)}`)
        await embedded.value.close()
      } else if (typeof value !== 'function' && value !== undefined && value !== null) {
        assert.equal(embedded.error.field, 'embedder', embedded.error.message)
      }
    }),
    { ...RUNS, numRuns: 60 },
  )
  const eng = new Ace()
  for (const addr of [NaN, -1, {}, [], '', ':::', '127.0.0.1:99999', '127.0.0.1:-1', '999.0.0.1:0', '\0', '127.0.0.1:0\n', 'a'.repeat(300)]) {
    for (const options of [undefined, { token: 7 }, { token: '\ud800' }, { token: '' }, 5]) {
      const s = attempt(() => eng.serve(addr, options), `serve ${String(addr)}`)
      if (s.ok) s.value.stop()
    }
  }
  await eng.close()
  // A closed engine's calls are ClosedError, whatever the values.
  for (const f of [() => eng.recordStage('a', 't', 'planning', 1), () => eng.breaker('after-close'), () => eng.rateLimiter('after-close', 1, 1), () => eng.bulkhead('after-close', 1)]) {
    assert.throws(f, ace.ClosedError, f.toString())
  }
  await assert.rejects(eng.playbooks.add('d', 's', 'c'), ace.ClosedError)
})
