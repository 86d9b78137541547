// The state each fastApi() object keeps for its record calls (src/raw_record.rs) is freed with
// the last of its functions and its buffer: collected objects, worker threads that come and go,
// and copies used after the object that made them is gone must neither crash nor mix up names.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

const dir = fileURLToPath(new URL('..', import.meta.url))

test('fastApi objects collected, and functions kept past their object, still record right', () => {
  const code = `
    const ace = require(${JSON.stringify(dir + 'ace.js')})
    const native = require(${JSON.stringify(dir + 'index.js')})
    const eng = new ace.Ace()
    // Functions and a scratch view kept, their object dropped.
    const { recordStage, recordStageSame, recordError } = native.fastApi()
    let scratch = new Float64Array(native.fastApi().errorScratch)
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 200; i++) {
        const f = native.fastApi()
        f.recordStage(eng._h, 'a-' + (i % 3), 't', 'planning', 0.5, true)
        f.recordStageSame(eng._h, 0.5, true)
      }
      globalThis.gc()
      recordStage(eng._h, 'kept', 't', 'planning', 0.5, true)
      recordStageSame(eng._h, 0.5, true)
      recordError(eng._h, 'kept', 't', 'planning', 'E', 'same message')
      eng.recordStage('engine', 't', 'planning', 0.5)
    }
    scratch = null
    globalThis.gc()
    const r = recordError(eng._h, 'kept', 't', 'planning', 'E', 'same message')
    const counts = ['a-0', 'a-1', 'a-2', 'kept', 'engine'].map((a) => eng.baseline(a, 'planning')?.count ?? 0)
    console.log(JSON.stringify({ counts, recorded: eng.stats().recorded, r: typeof r }))
  `
  const out = spawnSync(process.execPath, ['--expose-gc', '-e', code], { encoding: 'utf8' })
  assert.equal(out.status, 0, out.stderr)
  const { counts, recorded, r } = JSON.parse(out.stdout)
  // 20 rounds: 200 fastApi objects, each a full call and a same-names call.
  assert.deepEqual(counts, [20 * 134, 20 * 134, 20 * 132, 40, 20])
  assert.equal(recorded, 20 * 400 + 40 + 20)
  assert.equal(r, 'string')
})

test('worker threads each keep their own names, and leave cleanly', async () => {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const ace = require(${JSON.stringify(dir + 'ace.js')})
    const eng = new ace.Ace()
    for (let i = 0; i < 2000; i++) eng.recordStage(workerData.agent + (i >> 7) % 2, 't', 'planning', 0.5)
    for (let i = 0; i < 50; i++) eng.recordError(workerData.agent, 't', 'planning', 'E', 'boom ' + i)
    parentPort.postMessage({
      a0: eng.baseline(workerData.agent + '0', 'planning')?.count ?? 0,
      a1: eng.baseline(workerData.agent + '1', 'planning')?.count ?? 0,
      errors: eng.stats().errors,
    })
  `
  for (let round = 0; round < 3; round++) {
    const results = await Promise.all(
      ['w-a', 'w-b', 'w-c'].map(
        (agent) =>
          new Promise((resolve, reject) => {
            const w = new Worker(code, { eval: true, workerData: { agent } })
            let got
            w.on('message', (m) => (got = m))
            w.on('error', reject)
            w.on('exit', (c) => (c === 0 ? resolve(got) : reject(new Error(`worker exited ${c}`))))
          }),
      ),
    )
    for (const r of results) assert.deepEqual(r, { a0: 1024, a1: 976, errors: 50 })
  }
})
