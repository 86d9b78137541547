// Reflection end to end from Node: a failed task's summary goes to a JS reflector (the example's
// OpenAI-compatible one, with its deterministic local client), its insights land in the agent's
// playbook at shadow; failures and the rate limit are counted; reflectOnFailure never calls the
// reflector from the recording call.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import ace from '../ace.js'

const { Ace, InvalidInputError } = ace
const here = dirname(fileURLToPath(import.meta.url))

// The example imports 'agent-ace' as a user would: load it from a folder whose node_modules holds
// this package (as the test command runs the examples).
async function loadExample() {
  const dir = mkdtempSync(join(tmpdir(), 'ace-reflect-'))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(join(here, '..'), join(dir, 'node_modules', 'agent-ace'), 'dir')
  copyFileSync(join(here, '..', '..', 'examples', 'node', 'reflect_openai.mjs'), join(dir, 'reflect_openai.mjs'))
  return import(pathToFileURL(join(dir, 'reflect_openai.mjs')).href)
}
const example = await loadExample()

function failedTask(eng, task = 't1', success = false) {
  for (let i = 0; i < 3; i++) eng.recordStage('bot', task, 'execution', 1.0, false)
  eng.recordError('bot', task, 'execution', 'ConnectionError', 'connection to orders-db:5432 refused')
  eng.recordError('bot', task, 'execution', 'QuotaExceeded', 'monthly search quota used up')
  eng.endTask('bot', task, success)
}

function counter(eng, name) {
  const line = eng.metricsText().split('\n').find((l) => l.startsWith(`${name} `))
  assert.ok(line, `${name} is exported`)
  return Number(line.split(' ')[1])
}

test('a failed task becomes shadow insights through an OpenAI-compatible reflector', async () => {
  const eng = new Ace({ config: { reflectPerMinute: 4 } })
  failedTask(eng)
  const seen = []
  const client = new example.OfflineClient()
  const create = client.chat.completions.create
  client.chat.completions.create = (request) => {
    seen.push(request.messages.at(-1).content)
    return create(request)
  }
  const done = await eng.reflect('bot', 't1', example.llmReflector(client))
  assert.ok(done)
  assert.deepEqual(seen, [done.summary.text])
  assert.ok(done.summary.text.startsWith('task t1 of agent bot: 3 stages (3 failed), 2 errors'), done.summary.text)
  assert.equal(done.report.added.length, 2)
  const bullets = await eng.playbooks.bullets('bot')
  assert.deepEqual(new Set(bullets.map((b) => b.stage)), new Set(['shadow']))
  assert.deepEqual(new Set(bullets.map((b) => b.provenance)), new Set(['reflection:bot/t1']))
  assert.ok(bullets.some((b) => b.content.includes('orders-db')))

  // A reflector that throws, one that rejects: the call rejects, and both count as failures.
  await assert.rejects(
    eng.reflect('bot', 't1', () => {
      throw new Error('the model is down')
    }),
    (e) => e instanceof InvalidInputError && /reflector failed/.test(e.message) && /the model is down/.test(e.message),
  )
  await assert.rejects(
    eng.reflect('bot', 't1', async () => Promise.reject(new Error('timed out'))),
    (e) => e instanceof InvalidInputError && /timed out/.test(e.message),
  )
  // Sync pairs and the domain option; the fourth reflection of the minute.
  const pairs = await eng.reflect('bot', 't1', () => [['strategies', 'Ask for a bigger search quota early']], { domain: 'shared' })
  assert.equal(pairs.report.added.length, 1)
  assert.equal((await eng.playbooks.bullets('shared'))[0].content, 'Ask for a bigger search quota early')
  assert.equal(await eng.reflect('bot', 't1', example.llmReflector(client)), null, 'the fifth in a minute')
  assert.equal(seen.length, 1, 'a limited reflection never calls the reflector')
  assert.equal(counter(eng, 'ace_reflections_total'), 4)
  assert.equal(counter(eng, 'ace_reflection_failures_total'), 2)
  assert.equal(counter(eng, 'ace_reflections_limited_total'), 1)
  await eng.close()
})

test('a reflector answering something other than insights is a counted failure', async () => {
  const eng = new Ace()
  failedTask(eng)
  await assert.rejects(eng.reflect('bot', 't1', () => 'advice'), (e) => e instanceof InvalidInputError && /array of insights/.test(e.message))
  await assert.rejects(eng.reflect('bot', 't1', () => [{ section: 'pitfalls' }]), (e) => e instanceof InvalidInputError && /section, content/.test(e.message))
  await assert.rejects(eng.reflect('bot', 't1', 'not a function'), (e) => e instanceof InvalidInputError && e.field === 'reflector')
  await assert.rejects(eng.reflect('bot', 'bad task id\n', () => []), InvalidInputError)
  assert.equal(counter(eng, 'ace_reflection_failures_total'), 2)
  assert.deepEqual(await eng.playbooks.bullets('bot'), [])
  await eng.close()
})

test('failed task ends are reflected on in the background, never in the recording call', async () => {
  const eng = new Ace()
  const seen = []
  eng.reflectOnFailure(
    async (summary) => {
      seen.push(summary)
      return example.llmReflector(new example.OfflineClient())(summary)
    },
    { domain: 'learnt' },
  )
  failedTask(eng, 'ok-task', true)
  failedTask(eng, 'bad-task')
  assert.deepEqual(seen, [], 'endTask returned before the reflector ran')
  for (let i = 0; (await eng.playbooks.bullets('learnt')).length === 0; i++) {
    assert.ok(i < 3000, 'the insights never landed')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  assert.equal(seen.length, 1)
  assert.ok(seen[0].startsWith('task bad-task of agent bot'), seen[0])
  assert.equal(counter(eng, 'ace_reflections_total'), 1)
  assert.throws(() => eng.reflectOnFailure(null), InvalidInputError)
  await eng.close()
})
