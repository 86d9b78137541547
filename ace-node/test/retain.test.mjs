// eng.retain(days): the engine deletes the records older than `days` days of its clock from its
// store, now, and resolves to how many went.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ace from '../ace.js'

const { Ace, ManualClock } = ace
const DAY = 86_400

test('retain deletes the old records of a SQLite file and keeps the new', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ace-retain-'))
  const clock = new ManualClock(1_700_000_000)
  const eng = await Ace.open(`sqlite://${dir}/ace.db`, { clock })
  for (let i = 0; i < 30; i++) eng.recordStage('a', `old-${i}`, 'planning', 0.5, true)
  clock.advance(10 * DAY)
  for (let i = 0; i < 5; i++) eng.recordStage('a', `new-${i}`, 'planning', 0.5, true)
  await eng.flush()
  const deleted = await eng.retain(7)
  assert.ok(deleted >= 30, `the 30 old stage records went: ${deleted}`)
  assert.equal(await eng.retain(7), 0, 'a second pass finds nothing older')
  await eng.close()
  // The new tasks are still there: an engine on the same file keeps their baseline.
  const again = await Ace.open(`sqlite://${dir}/ace.db`, { clock })
  assert.equal(again.baseline('a', 'planning').count, 35, 'baselines are kept whatever their age')
  await again.close()
})

test('retain works on the in-memory store too', async () => {
  const clock = new ManualClock(1_700_000_000)
  const eng = new Ace({ clock })
  eng.recordStage('a', 't', 'planning', 0.5, true)
  clock.advance(3 * DAY)
  await eng.flush()
  assert.equal(await eng.retain(1), 1)
  await eng.close()
})

test('retain refuses days outside 1 to 36,500 and deletes nothing', async () => {
  const clock = new ManualClock(1_700_000_000)
  const eng = new Ace({ clock })
  eng.recordStage('a', 't', 'planning', 0.5, true)
  clock.advance(3 * DAY)
  await eng.flush()
  for (const bad of [0, -1, 36_501, 1.5, NaN, Infinity, 2 ** 40]) {
    await assert.rejects(eng.retain(bad), (e) => e instanceof ace.InvalidInputError && e.field === 'days', String(bad))
  }
  for (const bad of ['7', null, undefined, {}, 7n]) {
    await assert.rejects(eng.retain(bad), (e) => e instanceof Error, String(bad))
  }
  assert.equal(await eng.retain(1), 1, 'the refused calls deleted nothing')
  await eng.close()
  await assert.rejects(eng.retain(1), ace.ClosedError)
})
