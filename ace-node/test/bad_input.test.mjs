// Bad input gets a typed error; nothing panics across the boundary.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'

const { Ace } = ace

test('invalid records are InvalidInputError and record nothing', async () => {
  const eng = new Ace()
  for (const args of [
    ['', 't', 'planning', 1],
    ['a', '', 'planning', 1],
    ['a', 't', 'Planning!', 1],
    ['a', 't', 'planning', NaN],
    ['a', 't', 'planning', Infinity],
    ['a', 't', 'planning', -1],
    ['a'.repeat(100_000), 't', 'planning', 1],
    ['a\u0000b', 't', 'planning', 1],
  ]) {
    assert.throws(() => eng.recordStage(...args), (e) => e instanceof ace.InvalidInputError && e.code === 'invalid_input' && !!e.field, String(args[0]).slice(0, 10))
  }
  assert.throws(() => eng.recordStage('a', 't', 'planning', 1, true, { tokens: NaN }), ace.InvalidInputError)
  assert.throws(() => eng.recordError('a', 't', 'planning', 'E', 'm', 'apocalyptic'), ace.InvalidInputError)
  assert.equal(eng.stats().recorded, 0)
  await eng.close()
})

test('wrong types are errors, never crashes', async () => {
  const eng = new Ace()
  assert.throws(() => eng.recordStage(42, 't', 'planning', 1))
  assert.throws(() => eng.recordStage('a', 't', 'planning', 'slow'))
  assert.throws(() => eng.recordStage('a', 't', 'planning', 1, true, { tokens: 'many' }))
  assert.throws(() => eng.reportOutcome('not-a-number', true), ace.InvalidInputError)
  // A lone surrogate cannot be UTF-8: refused, on the fast path and off it, never stored as U+FFFD.
  for (const f of [
    () => eng.recordStage('a\ud800', 't', 'planning', 1),
    () => eng.recordStage('a', 'é\udc00', 'planning', 1),
    () => eng.recordStage('a', 't', 'planning', 1, true, { ['x\ud800']: 1 }),
    () => eng.recordError('a', 't', 'planning', 'E', 'boom \ud800'),
    () => eng.breaker('b\ud800'),
    () => eng.rateLimiter('r\udfff', 1, 1),
  ]) {
    assert.throws(f, ace.InvalidInputError, f.toString())
  }
  await assert.rejects(eng.playbooks.add('d', 's', 'Verify \ud800'), ace.InvalidInputError)
  // U+FFFD itself is a character like any other.
  eng.recordStage('a\ufffd', 't', 'planning', 1)
  assert.equal(eng.stats().recorded, 1)
  await eng.close()
})

test('bad settings and URLs name what is wrong without credentials', async () => {
  assert.throws(() => new Ace({ config: { batchSize: 'lots' } }), (e) => e instanceof ace.ConfigError && e.key === 'ACE_BATCH_SIZE')
  assert.throws(() => new Ace({ config: { noSuchSetting: 1 } }), ace.ConfigError)
  assert.throws(() => new Ace({ config: { batchSize: { nested: 1 } } }), ace.InvalidInputError)
  await assert.rejects(Ace.open('mysql://u:hunter2@h/db'), (e) => e instanceof ace.AceError && !e.message.includes('hunter2'))
  await assert.rejects(Ace.open('redis://:s3cret@127.0.0.1:1'), (e) => e instanceof ace.StoreUnavailableError && !e.message.includes('s3cret'))
  await assert.rejects(Ace.open(undefined, { embedder: () => [] }), ace.InvalidInputError)
})

test('every error class carries its code', () => {
  const pairs = [
    [ace.ConfigError, 'config'],
    [ace.InvalidInputError, 'invalid_input'],
    [ace.ClosedError, 'closed'],
    [ace.StoreError, 'store'],
    [ace.StoreUnavailableError, 'store_unavailable'],
    [ace.CorruptError, 'corrupt'],
    [ace.CircuitOpenError, 'circuit_open'],
    [ace.LimitedError, 'limited'],
    [ace.TimedOutError, 'timed_out'],
    [ace.InternalError, 'internal'],
  ]
  for (const [cls, code] of pairs) {
    const e = new cls('m', { extra: 1 })
    assert.ok(e instanceof ace.AceError && e instanceof Error)
    assert.equal(e.code, code)
    assert.equal(e.extra, 1)
    assert.equal(e.name, cls.name)
  }
  assert.ok(new ace.StoreUnavailableError('x') instanceof ace.StoreError)
})

test('a tiny rate is a long wait, not an abort', async () => {
  const eng = new Ace()
  // 1e-300 tokens a second: the wait for the next token holds in no duration type.
  const tiny = eng.rateLimiter('tiny', 1e-300, 1)
  assert.equal(tiny.tryAcquire(), true)
  assert.equal(tiny.tryAcquire(), false)
  await assert.rejects(tiny.acquire(0.01), (e) => e instanceof ace.LimitedError && e.retryAfter > 86_400 && Number.isFinite(e.retryAfter))
  await eng.close()
})

test('the memory URL opens an engine', async () => {
  const eng = await Ace.open('memory')
  eng.recordStage('a', 't', 'planning', 1)
  const health = await eng.health()
  assert.equal(health.database_backend, 'memory')
  await eng.close()
})

test('a bad timeout is InvalidInputError, not a hang', async () => {
  const eng = new Ace()
  const drained = eng.rateLimiter('drained', 0.001, 1)
  assert.equal(drained.tryAcquire(), true)
  for (const timeout of [NaN, Infinity, -Infinity, -1]) {
    await assert.rejects(drained.acquire(timeout), (e) => e instanceof ace.InvalidInputError && e.field === 'timeout', String(timeout))
  }
  await assert.rejects(drained.acquire('soon'), ace.InvalidInputError)
  await eng.close()
})

test('ids with multibyte characters near the fast path limit are neither cut nor let through', async () => {
  const eng = new Ace()
  // 256 bytes, the longest valid id, ending in a two-byte character.
  const longest = 'a'.repeat(254) + 'é'
  eng.recordStage(longest, 't', 'planning', 1)
  assert.notEqual(eng.baseline(longest, 'planning'), null, 'stored under the whole id')
  assert.equal(eng.baseline('a'.repeat(254), 'planning'), null, 'not under a cut one')
  // 356 bytes of two-byte characters: too long, refused.
  assert.throws(() => eng.recordStage('é'.repeat(178), 't', 'planning', 1), ace.InvalidInputError)
  assert.throws(() => eng.recordStage('a', 'é'.repeat(178), 'planning', 1), ace.InvalidInputError)
  await eng.close()
})
