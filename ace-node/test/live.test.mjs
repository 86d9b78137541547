// The in-process listener (`ace.serve`) and the read-back calls, against the real addon and a
// real HTTP client (fetch over TCP).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { Ace } from '../ace.js'

async function busy() {
  const ace = await Ace.open('memory')
  for (let i = 0; i < 6; i++) ace.recordError('agent-a', `t${i}`, 'execution', 'Timeout', `call ${i} timed out`)
  ace.recordError('agent-b', 't1', 'planning', 'ValueError', 'bad plan')
  await ace.flush()
  return ace
}

test('serve shows the host engine and close() stops it', async () => {
  const ace = await busy()
  const server = ace.serve('127.0.0.1:0')
  assert.ok(server.running)
  assert.match(server.address, /^127\.0\.0\.1:\d+$/)
  const page = await fetch(server.url)
  assert.equal(page.status, 200)
  assert.match(await page.text(), /<title>ace: live<\/title>/)
  const errors = await (await fetch(server.url + 'api/errors?agent=agent-b')).json()
  assert.deepEqual(errors.map((e) => e.message), ['bad plan'])
  const patterns = await (await fetch(server.url + 'api/patterns')).json()
  assert.ok(patterns.some((p) => p.kind === 'Timeout' && p.count === 6))
  assert.match(await (await fetch(server.url + 'metrics')).text(), /ace_errors_total/)
  assert.equal((await fetch(server.url + 'api/nope')).status, 404)
  await ace.close()
  assert.equal(server.running, false)
  await assert.rejects(fetch(server.url))
  server.stop()
})

test('serve with a token; bad arguments are typed errors', async () => {
  const ace = await busy()
  const server = ace.serve('127.0.0.1:0', { token: 's3cret' })
  assert.equal((await fetch(server.url + 'api/overview')).status, 401)
  const ok = await fetch(server.url + 'api/overview', { headers: { Authorization: 'Bearer s3cret' } })
  assert.equal(ok.status, 200)
  assert.equal((await ok.json()).stats.errors, 7)
  server.stop()
  assert.equal(server.running, false)
  assert.throws(() => ace.serve('127.0.0.1:0', { token: '' }), { code: 'invalid_input' })
  assert.throws(() => ace.serve('not an address'), { code: 'config' })
  await ace.close()
  assert.throws(() => ace.serve('127.0.0.1:0'), { code: 'closed' })
})

test('interventions and errors read back newest first', async () => {
  const ace = await busy()
  const errors = await ace.errors()
  assert.equal(errors.length, 7)
  assert.equal(errors[0].agent, 'agent-b')
  const two = await ace.errors({ agent: 'agent-a', limit: 2 })
  assert.deepEqual(two.map((e) => e.message), ['call 5 timed out', 'call 4 timed out'])
  assert.equal((await ace.errors({ since: Date.now() / 1000 + 3600 })).length, 0)
  const interventions = await ace.interventions()
  assert.ok(interventions.length > 0, 'six timeouts draw an intervention')
  assert.ok(interventions[0].reason.length > 0)
  assert.equal(typeof interventions[0].signalKind, 'string')
  assert.equal(interventions[0].outcome, null)
  assert.match(interventions[0].id, /^\d+$/, 'a decimal string, as interventions carry it')
  ace.reportOutcome(interventions[0].id, true)
  await ace.flush()
  assert.equal((await ace.interventions({ limit: 1 }))[0].outcome, true)
  assert.deepEqual(await ace.interventions({ agent: 'nobody' }), [])
  await assert.rejects(ace.errors({ limit: 10_000_000 }), { code: 'invalid_input' })
  await assert.rejects(ace.errors({ since: Number.NaN }), { code: 'invalid_input' })
  await ace.close()
  await assert.rejects(ace.interventions(), { code: 'closed' })
})

test('storedPatterns reads the store, recentSignals the engine', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ace-live-'))
  const url = `sqlite://${join(dir, 'ace.db')}`
  // Two engines on one file, as two processes would be: the reader's miner sees none of the
  // writer's errors (an engine loads the stored patterns only when it starts), its store all.
  const reader = await Ace.open(url)
  const writer = await Ace.open(url)
  for (let i = 0; i < 6; i++) writer.recordError('agent-a', `t${i}`, 'execution', 'Timeout', `call ${i} timed out`)
  await writer.close()
  assert.deepEqual(reader.patterns(), [])
  const stored = await reader.storedPatterns()
  assert.deepEqual(stored.map((p) => [p.kind, p.count]), [['Timeout', 6]])
  assert.match(stored[0].template, /<\*>/)
  assert.deepEqual(reader.recentSignals(), [], 'signals are held in memory, per engine')
  reader.recordError('agent-b', 't1', 'planning', 'ValueError', 'bad plan')
  const signals = reader.recentSignals({ agent: 'agent-b', limit: 5 })
  assert.deepEqual(signals.map((s) => [s.agent, s.task, s.kind]), [['agent-b', 't1', 'task_error']])
  assert.equal(signals[0].evidence.errorKind, 'ValueError')
  assert.deepEqual(reader.recentSignals({ agent: 'nobody' }), [])
  await reader.close()
  await assert.rejects(reader.storedPatterns(), { code: 'closed' })
  assert.throws(() => reader.recentSignals(), { code: 'closed' })
  rmSync(dir, { recursive: true, force: true })
})
