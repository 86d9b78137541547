// The engine from JS: recording, reports, interventions, stages, context, stats, health, replay.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ace from '../ace.js'

const { Ace } = ace

test('a stage record returns the shared empty report while the baseline warms up', async () => {
  const eng = new Ace()
  const r = eng.recordStage('a', 't', 'planning', 0.42, true, { tokens_in: 812 })
  assert.deepEqual(r, { signals: [], intervention: null })
  assert.equal(eng.recordStage('a', 't', 'planning', 0.4), r, 'no object is built for an empty report')
  await eng.flush()
  const s = eng.stats()
  assert.deepEqual([s.recorded, s.persisted, s.dropped], [2, 2, 0])
  assert.equal(eng.baseline('a', 'planning').count, 2)
  assert.equal(eng.baseline('a', 'planning', 'tokens_in').mean, 812)
  assert.equal(eng.baseline('a', 'nope'), null)
  await eng.close()
})

test('a latency shift raises a signal and an intervention, emitted as an event', async () => {
  const eng = new Ace()
  const seen = []
  eng.on('intervention', (i) => seen.push(i))
  for (let i = 0; i < 40; i++) eng.recordStage('a', `warm-${i}`, 'planning', 1 + (i % 3) * 0.01)
  let found = null
  for (let i = 0; i < 10 && !found; i++) {
    const r = eng.recordStage('a', 'slow', 'planning', 5)
    if (r.intervention) found = r
  }
  assert.ok(found, 'a fivefold slowdown is flagged')
  assert.equal(found.signals[0].kind, 'degradation')
  const i = found.intervention
  assert.match(i.id, /^\d+$/)
  assert.ok(i.at > 1.6e9 && i.at < 4e9, 'seconds since the epoch')
  assert.deepEqual(seen.map((x) => x.id), [i.id])
  eng.reportOutcome(i, true)
  assert.throws(() => eng.reportOutcome(i.id, true), ace.InvalidInputError)
  await eng.close()
})

test('errors take an Error or a kind and message', async () => {
  const eng = new Ace()
  let r
  for (const port of [5432, 5433]) r = eng.recordError('a', 't', 'execution', new TypeError(`connection to db-${port}:${port} refused`))
  assert.equal(r.template, 'connection to <*> refused')
  assert.equal(r.occurrences, 2)
  r = eng.recordError('a', 't', 'execution', 'TypeError', 'connection to db-7:5434 refused', 'high')
  assert.deepEqual(r.signals.map((s) => s.kind), ['error_accumulation'])
  assert.equal(r.pattern.length, 16)
  assert.equal(eng.patterns()[0].template, 'connection to <*> refused')
  r = eng.recordError('a', 't', 'execution', 'Big', 'x'.repeat(1_000_000))
  assert.equal(r.truncated, true)
  r = eng.recordError('a', 't', 'execution', { weird: true })
  assert.ok(r.template !== undefined)
  await eng.close()
})

test('stage() times sync and async callbacks and records failures', async () => {
  const eng = new Ace()
  assert.equal(eng.stage('a', 't', 'tool_call', () => 7), 7)
  const v = await eng.stage('a', 't', 'llm', async (s) => {
    s.metric('tokens_out', 3)
    await new Promise((r) => setTimeout(r, 5))
    return 'ok'
  })
  assert.equal(v, 'ok')
  assert.ok(eng.baseline('a', 'llm').mean >= 0.004)
  assert.equal(eng.baseline('a', 'llm', 'tokens_out').mean, 3)
  await assert.rejects(
    eng.stage('a', 't', 'execution', async () => {
      throw new RangeError('out of range')
    }),
    RangeError,
  )
  assert.throws(() => eng.stage('a', 't', 'execution', () => {
    throw new Error('sync')
  }), /sync/)
  assert.equal(eng.baseline('a', 'execution', 'success').mean, 0)
  assert.equal(eng.stats().errors, 2)
  await eng.close()
})

test('tasks, context, metrics text, health and settings', async () => {
  const eng = new Ace({ config: { cooldownSeconds: 5, ACE_BATCH_SIZE: '50', intervention_enabled: true } })
  assert.equal(eng.contextStaleness('a'), null)
  eng.recordStage('a', 't', 'planning', 0.1)
  eng.refreshContext('a')
  assert.ok(eng.contextStaleness('a') < 1e-6)
  assert.equal(eng.endTask('a', 't'), true)
  assert.equal(eng.endTask('a', 'never'), false)
  assert.deepEqual(eng.recordMetric('a', 't2', 'planning', 'cost_usd', 0.02), { signals: [], intervention: null })
  assert.match(eng.metricsText(), /# EOF\n$/)
  const h = await eng.health()
  assert.equal(h.database, 'connected')
  assert.equal(h.redis, 'not_configured')
  assert.ok('ace-store' in h.circuit_breakers)
  assert.equal(eng.backend, 'memory')
  await eng.close()
  await eng.close()
  assert.equal(eng.closed, true)
  assert.throws(() => eng.recordStage('a', 't', 'planning', 1), (e) => e instanceof ace.ClosedError && e.code === 'closed')
  await assert.rejects(eng.flush(), ace.ClosedError)
})

test('task outcomes teach the engine which errors tasks get over', async () => {
  const eng = new Ace()
  const acted = []
  for (let t = 0; t < 20; t++) {
    const r = eng.recordError('a', `t${t}`, 'execution', 'ToolError', 'cache miss for key 7')
    // (Other signals may come and go: the agent's context grows stale with errors.)
    acted.push(r.intervention !== null && r.intervention.signals[0].kind === 'task_error')
    assert.equal(eng.endTask('a', `t${t}`, true), true)
  }
  const n = acted.filter(Boolean).length
  assert.ok(acted[0] && n <= 3 && !acted.slice(5).some(Boolean), `acted ${acted}`)
  let failing = 0
  for (let t = 0; t < 20; t++) {
    const r = eng.recordError('a', `f${t}`, 'execution', 'PaymentError', 'amount 305 does not add up')
    failing += r.intervention ? 1 : 0
    eng.endTask('a', `f${t}`, false)
  }
  assert.equal(failing, 20)
  assert.equal(eng.endTask('a', 'never', null), false)
  assert.throws(() => eng.endTask('a', 't0', 'yes'), ace.InvalidInputError)
  await eng.close()
})

test('fromEnv reads the environment', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ace-env-'))
  process.env.DATABASE_URL = `sqlite://${dir}/env.db`
  try {
    const eng = await Ace.fromEnv()
    assert.equal(eng.backend, 'sqlite')
    await eng.close()
    process.env.ACE_BATCH_SIZE = 'lots'
    await assert.rejects(Ace.fromEnv(), (e) => e instanceof ace.ConfigError && e.key === 'ACE_BATCH_SIZE')
  } finally {
    delete process.env.DATABASE_URL
    delete process.env.ACE_BATCH_SIZE
  }
})

test('replay scores a trace file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ace-replay-'))
  const lines = []
  for (let i = 0; i < 30; i++) {
    lines.push({ ts: 1_700_000_000 + i, type: 'stage', agent: 'a', task: `t${i}`, stage: 'planning', duration_s: 1, success: true })
    lines.push({ ts: 1_700_000_000 + i, type: 'label', agent: 'a', task: `t${i}`, failed: false })
  }
  writeFileSync(join(dir, 't.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n')
  const score = await ace.replay(join(dir, 't.jsonl'))
  assert.equal(score.tasks, 30)
  assert.equal(score.events, 30)
  writeFileSync(join(dir, 'bad.jsonl'), '{not json\n')
  await assert.rejects(ace.replay(join(dir, 'bad.jsonl')), ace.AceError)
  await assert.rejects(ace.replay(join(dir, 'missing.jsonl')), ace.InvalidInputError)
  assert.equal(typeof ace.version, 'string')
})

test('a closed engine with an embedder does not keep the process alive', async () => {
  // The engine stays referenced: before, its embedder's threadsafe function kept Node running
  // until the engine was collected (forever, here).
  const script = `
    const ace = require(${JSON.stringify(new URL('../ace.js', import.meta.url).pathname)})
    ace.Ace.open('memory', { embedder: (t) => t.map(() => [1, 0, 0]), embedderDim: 3 }).then(async (e) => {
      globalThis.kept = e
      await e.playbooks.add('d', 's', 'Verify the total')
      await e.close()
      console.log('closed')
    })`
  const { spawnSync } = await import('node:child_process')
  const child = spawnSync(process.execPath, ['-e', script], { timeout: 60_000, encoding: 'utf8' })
  assert.equal(child.signal, null, 'the child exited by itself, not killed at the timeout')
  assert.deepEqual([child.status, child.stdout.trim()], [0, 'closed'], child.stderr)
})
