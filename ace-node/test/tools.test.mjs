// Tool calls and the current task (AsyncLocalStorage), through the built addon.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { setImmediate as tick } from 'node:timers/promises'
import ace from '../ace.js'

const { Ace, InvalidInputError, argsDigest, argsDigestJson, currentTask } = ace

const fixture = JSON.parse(
  readFileSync(new URL('../../tests/fixtures/tool_args_digests.json', import.meta.url), 'utf8'),
)

function loops(eng) {
  const line = eng.metricsText().split('\n').find((l) => l.startsWith('ace_signals_total{kind="loop"}'))
  return Number(line.split(' ').at(-1))
}

test('digests match the shared fixture that the Python binding checks too', () => {
  assert.ok(fixture.cases.length >= 8)
  for (const { args, digest } of fixture.cases) {
    assert.equal(argsDigest(args), digest, JSON.stringify(args))
    assert.equal(argsDigestJson(JSON.stringify(args, null, 2)), digest)
  }
  // Key order and number spelling do not matter; values do.
  assert.equal(argsDigest({ b: 1, a: [1.5, 2] }), argsDigest({ a: [1.5, 2.0], b: 1.0 }))
  assert.notEqual(argsDigest({ d: 2 }), argsDigest({ d: 3 }))
  assert.equal(argsDigest({ n: 10n }), argsDigest({ n: '10' }), 'a BigInt is written as its digits')
})

test('recordTool raises repeats and retries with the digest as evidence', async () => {
  const eng = new Ace()
  const seen = []
  for (let i = 0; i < 3; i++) {
    seen.push(...eng.recordTool('a', 't', 'search', 0.1, true, { args: { q: 'paris' } }).signals)
  }
  assert.deepEqual(
    seen.map((s) => s.kind),
    ['tool_repeat'],
  )
  assert.equal(seen[0].evidence.tool, 'search')
  assert.equal(seen[0].evidence.argsDigest, argsDigest({ q: 'paris' }))
  assert.equal(seen[0].stage, 'tool')
  assert.deepEqual(eng.recordTool('a', 't2', 'book', 0.1, false, { args: { pay: 1 }, stage: 'execution' }).signals, [])
  const again = eng.recordTool('a', 't2', 'book', 0.1, false, { argsDigest: '0123456789abcdef', stage: 'execution' })
  assert.deepEqual(
    again.signals.map((s) => s.kind),
    ['tool_retry_failure'],
  )
  assert.equal(again.intervention.strategy, 'reflect')
  await eng.close()
})

test('bad tool calls are typed errors and record nothing', async () => {
  const eng = new Ace()
  assert.throws(() => eng.recordTool('a', 't', '', 0.1, true), InvalidInputError)
  assert.throws(() => eng.recordTool('a', 't', 'x\u0000y', 0.1, true), InvalidInputError)
  assert.throws(() => eng.recordTool('a', 't', 'x', 0.1, true, { args: {}, argsDigest: 'abc' }), InvalidInputError)
  assert.throws(() => eng.recordTool('a', 't', 'x', 0.1, true, { argsDigest: 'has space' }), InvalidInputError)
  assert.throws(() => eng.recordTool('a', 't', 'x', 0.1, true, { args: () => 1 }), InvalidInputError)
  const cyclic = {}
  cyclic.self = cyclic
  assert.throws(() => eng.recordTool('a', 't', 'x', 0.1, true, { args: cyclic }), InvalidInputError)
  assert.throws(() => eng.recordTool(null, null, 'x', 0.1, true), InvalidInputError, 'no current task')
  assert.throws(() => eng.recordTool('a', 't', 'x', -1, true), InvalidInputError)
  assert.equal(eng.stats().recorded, 0)
  await eng.close()
})

test('ace.task makes a current task for recordTool and stages, across awaits, nested', async () => {
  const eng = new Ace()
  assert.equal(currentTask(), undefined)
  const out = await eng.task('agent-1', 'task-1', async () => {
    await tick()
    let r
    for (let i = 0; i < 3; i++) r = eng.recordTool(null, null, 'lookup', 0.1, true, { args: [1, 2] })
    const inner = await eng.task('agent-1', 'inner', async () => {
      await tick()
      return eng.stage(null, null, 'planning', (s) => s.task)
    })
    return { signal: [r.signals[0].agent, r.signals[0].task], inner, after: currentTask() }
  })
  assert.deepEqual(out, {
    signal: ['agent-1', 'task-1'],
    inner: 'inner',
    after: { agent: 'agent-1', task: 'task-1' },
  })
  assert.equal(currentTask(), undefined)
  assert.equal(eng.endTask('agent-1', 'task-1'), false, 'the task was ended when fn settled')
  await eng.close()
})

test('concurrent tasks each see their own current task', async () => {
  const eng = new Ace()
  const run = (i) =>
    eng.task(`agent-${i}`, `job-${i}`, async () => {
      await tick()
      let r
      for (let k = 0; k < 3; k++) {
        await tick()
        r = eng.recordTool(null, null, 'search', 0.01, true, { args: { i } })
      }
      return r.signals.map((s) => `${s.agent}/${s.task}`)
    })
  const results = await Promise.all([0, 1, 2, 3, 4].map(run))
  assert.deepEqual(
    results,
    [0, 1, 2, 3, 4].map((i) => [`agent-${i}/job-${i}`]),
  )
  await eng.close()
})

test('a stage without a task is a task of its own per call, or the current one', async () => {
  const eng = new Ace()
  const tasks = []
  for (let i = 0; i < 3; i++) {
    assert.throws(() =>
      eng.stage('agent-1', null, 'execution', (s) => {
        tasks.push([s.task, currentTask().task])
        throw new Error('boom')
      }),
    )
  }
  assert.equal(new Set(tasks.map(([t]) => t)).size, 3, 'a fresh task per call')
  assert.ok(tasks.every(([t, current]) => t === current && t.startsWith('execution-')))
  assert.equal(loops(eng), 0, 'three failing calls that are separate tasks are no loop')
  await eng.task('agent-1', 'one', async () => {
    for (let i = 0; i < 3; i++) {
      await assert.rejects(
        eng.stage(null, null, 'execution', async () => {
          await tick()
          throw new Error('boom')
        }),
      )
    }
  })
  assert.equal(loops(eng), 1, 'in one current task the failures are a loop')
  assert.throws(() => eng.stage(null, null, 'x', () => 1), InvalidInputError, 'no agent, none current')
  const fresh = eng.task('agent-2', null, () => currentTask())
  assert.equal(fresh.agent, 'agent-2')
  assert.ok(fresh.task.startsWith('task-'))
  await eng.close()
})
