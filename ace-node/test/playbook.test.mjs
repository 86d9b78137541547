// Playbooks, a JS embedder, and the real stores.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import ace from '../ace.js'

const { Ace } = ace
const PG_URL = process.env.ACE_TEST_POSTGRES_URL || 'postgresql://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env.ACE_TEST_REDIS_URL || 'redis://127.0.0.1:6379'

test('merge, feedback, retrieve, render, versions', async () => {
  const eng = new Ace()
  const pb = eng.playbooks
  const r = await pb.merge('airline', [
    ['strategies', 'Verify the fare total before charging the card'],
    { section: 'strategies', content: 'verify the fare total before charging the card.' },
    { section: 'pitfalls', content: "Never rebook a flight without the user's consent", provenance: 't-17' },
  ])
  assert.equal(r.added.length, 2)
  assert.equal(r.merged.length, 1)
  const fare = r.added[0]
  for (let i = 0; i < 3; i++) await pb.feedback('airline', fare, 'helpful')
  const best = await pb.retrieve('airline', 'charging a card', { k: 3 })
  assert.equal(best[0].bullet.id, fare)
  const text = await pb.render('airline', { query: 'charging the card' })
  assert.ok(text.ids.includes(fare) && text.text.includes('fare total'))
  const before = (await pb.bullets('airline')).map((b) => [b.id, b.content])
  const version = (await pb.stats('airline')).version
  const added = await pb.add('airline', 'strategies', 'Read the booking back', 'manual')
  await pb.update('airline', added, { content: 'Read the whole booking back' })
  assert.equal((await pb.bullet('airline', added)).content, 'Read the whole booking back')
  await pb.remove('airline', added)
  await pb.rollback('airline', version)
  assert.deepEqual((await pb.bullets('airline')).map((b) => [b.id, b.content]), before)
  const json = await pb.exportJson('airline')
  assert.equal(await pb.importJson('copy', json), before.length)
  assert.equal(await pb.importText('txt', await pb.exportText('airline')), before.length)
  await assert.rejects(pb.feedback('airline', fare, 'great'), ace.InvalidInputError)
  await assert.rejects(pb.retrieve('airline', 'q', { minStage: 'gold' }), ace.InvalidInputError)
  await assert.rejects(pb.bullet('airline', 'missing'), ace.AceError)
  await assert.rejects(pb.importJson('d', '{not json'), ace.AceError)
  await eng.close()
})

test('a JS function embeds without blocking the event loop', async () => {
  const seen = []
  const eng = await Ace.open(undefined, {
    embedder: (texts) => {
      seen.push(...texts)
      return texts.map((t) => [1, t.length, 0.5])
    },
    embedderDim: 3,
  })
  await eng.playbooks.merge('d', [['s', 'alpha beta gamma']])
  assert.ok(seen.includes('alpha beta gamma'))
  await eng.close()
  const bad = await Ace.open(undefined, { embedder: (texts) => texts.map(() => [1]), embedderDim: 3 })
  await assert.rejects(bad.playbooks.merge('d', [['s', 'text']]), ace.AceError)
  assert.deepEqual(await bad.playbooks.bullets('d'), [])
  await bad.close()
})

test('a SQLite file persists across engines', async () => {
  const url = `sqlite://${mkdtempSync(join(tmpdir(), 'ace-node-'))}/ace.db`
  const eng = await Ace.open(url)
  assert.equal(eng.backend, 'sqlite')
  for (let i = 0; i < 25; i++) eng.recordStage('a', `t${i}`, 'planning', 0.3)
  await eng.playbooks.merge('d', [['s', 'check the fare']])
  await eng.close()
  const again = await Ace.open(url)
  assert.equal(again.baseline('a', 'planning').count, 25)
  assert.equal((await again.playbooks.bullets('d')).length, 1)
  await again.close()
})

test('PostgreSQL stores everything and reloads it', async () => {
  const agent = `node-${randomUUID().slice(0, 8)}`
  const eng = await Ace.open(PG_URL, { config: { POSTGRES_MAX_CONNECTIONS: 4 } })
  assert.equal(eng.backend, 'postgres')
  for (let i = 0; i < 500; i++) eng.recordStage(agent, `t${i % 10}`, 'planning', 0.2, true, { tokens_in: 100 })
  await eng.flush()
  const s = eng.stats()
  assert.deepEqual([s.recorded, s.dropped], [500, 0])
  assert.ok(s.persisted >= 500)
  await eng.close()
  const again = await Ace.open(PG_URL)
  assert.equal(again.baseline(agent, 'planning').count, 500)
  await again.close()
})

test('Redis shares intervention gates across engines', async () => {
  const config = { cooldownSeconds: 0, maxInterventionsPerTask: 100 }
  const one = await Ace.open(undefined, { cache: REDIS_URL, config })
  const two = await Ace.open(REDIS_URL, { config })
  assert.equal((await one.health()).redis, 'connected')
  const task = `task-${randomUUID()}`
  let k = 0
  // Three errors of a new pattern (a message of a new length) in the task: how many
  // interventions the engine issued.
  const accumulate = (e) => {
    const words = ' again'.repeat(k++)
    const reports = [0, 1, 2].map((p) => e.recordError('a', task, 'execution', 'ConnectionError', `refused${words} ${p}`))
    assert.ok(reports.some((r) => r.signals.length > 0))
    return reports.filter((r) => r.intervention).length
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  assert.equal(accumulate(one), 1)
  // The documented bound: a replica acts once on a task before it learns the task's lease.
  assert.equal(accumulate(two), 1)
  // Once the lease is settled, one replica (the holder) acts on the task, never both.
  const deadline = Date.now() + 10000
  let acted = 0
  while (acted === 0) {
    assert.ok(Date.now() < deadline, "no replica took the task's lease")
    await sleep(300)
    acted = accumulate(one) + accumulate(two)
    assert.ok(acted <= 1, 'two replicas acted on one task after its lease was asked for')
  }
  await one.close()
  await two.close()
})
