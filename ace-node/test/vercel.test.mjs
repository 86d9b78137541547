// The Vercel AI SDK middleware on streams, against the real `ai` package and its test model: a
// streamed call is recorded when the stream ends (its usage, its whole duration), a mid-stream
// error makes it a failed call, a cancelled stream gives its breaker permit back.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ace from '../ace.js'

const { Ace } = ace

const finish = {
  type: 'finish',
  finishReason: { unified: 'stop', raw: 'stop' },
  usage: {
    inputTokens: { total: 3, noCache: 3, cacheRead: undefined, cacheWrite: undefined },
    outputTokens: { total: 10, text: 10, reasoning: undefined },
  },
}

function traced() {
  const path = join(mkdtempSync(join(tmpdir(), 'ace-vercel-')), 'trace.jsonl')
  const eng = new Ace({ config: { tracePath: path } })
  const events = async () => {
    await eng.flush()
    return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
  }
  return { eng, events }
}

test('a streamed call is recorded when its stream ends, with its usage and the whole duration', async () => {
  const { streamText, wrapLanguageModel, simulateReadableStream } = await import('ai')
  const { MockLanguageModelV4 } = await import('ai/test')
  const { aceMiddleware } = await import('../integrations/vercel-ai.mjs')
  const { eng, events } = traced()
  const base = new MockLanguageModelV4({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunkDelayInMs: 40,
        chunks: [
          { type: 'text-start', id: 't' },
          { type: 'text-delta', id: 't', delta: 'Hello, ' },
          { type: 'text-delta', id: 't', delta: 'world' },
          { type: 'text-end', id: 't' },
          finish,
        ],
      }),
    }),
  })
  const model = wrapLanguageModel({ model: base, middleware: aceMiddleware(eng, { agent: 'writer', task: 'task-1' }) })
  const result = streamText({ model, prompt: 'hi' })
  const reader = result.textStream[Symbol.asyncIterator]()
  const first = await reader.next()
  assert.equal(first.value, 'Hello, ')
  assert.equal(eng.baseline('writer', 'llm'), null, 'nothing recorded while the stream is open')
  let rest = ''
  for (let n = await reader.next(); !n.done; n = await reader.next()) rest += n.value
  assert.equal(rest, 'world')
  await result.consumeStream?.()
  const stages = (await events()).filter((e) => e.type === 'stage')
  assert.equal(stages.length, 1, JSON.stringify(stages))
  const [s] = stages
  assert.deepEqual([s.agent, s.task, s.stage, s.success, s.metrics], ['writer', 'task-1', 'llm', true, { tokens_in: 3, tokens_out: 10 }])
  // Five parts 40 ms apart: the stage spans the stream, not its first part (a lower bound only).
  assert.ok(s.duration_s >= 0.15, `duration ${s.duration_s}`)
  await eng.close()
})

test('a mid-stream error makes the call failed, recorded with that error, and counts against the breaker', async () => {
  const { streamText, wrapLanguageModel, simulateReadableStream } = await import('ai')
  const { MockLanguageModelV4 } = await import('ai/test')
  const { aceMiddleware } = await import('../integrations/vercel-ai.mjs')
  const { eng, events } = traced()
  const base = new MockLanguageModelV4({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunks: [
          { type: 'text-start', id: 't' },
          { type: 'text-delta', id: 't', delta: 'Hel' },
          { type: 'error', error: new Error('connection to api-1:443 reset') },
        ],
      }),
    }),
  })
  const model = wrapLanguageModel({
    model: base,
    middleware: aceMiddleware(eng, { agent: 'writer', task: 'task-2', breaker: 'stream-model' }),
  })
  for (let i = 0; i < 5; i++) {
    const result = streamText({ model, prompt: 'hi', onError: () => {} })
    for await (const _ of result.fullStream) {
      // drain
    }
  }
  const got = await events()
  const errors = got.filter((e) => e.type === 'error')
  const stages = got.filter((e) => e.type === 'stage')
  assert.equal(stages.length, 5)
  assert.ok(stages.every((s) => s.success === false && s.stage === 'llm' && s.task === 'task-2'))
  assert.equal(errors.length, 5)
  assert.ok(errors.every((e) => e.message === 'connection to api-1:443 reset' && e.kind === 'Error'), JSON.stringify(errors))
  assert.equal(eng.breakerStates()['stream-model'], 'open', 'five failed streams opened the breaker')
  await eng.close()
})

test('a stream the consumer cancels is recorded as it stands and gives its permit back', async () => {
  const { streamText, wrapLanguageModel, simulateReadableStream } = await import('ai')
  const { MockLanguageModelV4 } = await import('ai/test')
  const { aceMiddleware } = await import('../integrations/vercel-ai.mjs')
  const { eng, events } = traced()
  const base = new MockLanguageModelV4({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunkDelayInMs: 20,
        chunks: [{ type: 'text-start', id: 't' }, ...Array.from({ length: 50 }, (_, i) => ({ type: 'text-delta', id: 't', delta: `${i} ` })), finish],
      }),
    }),
  })
  const model = wrapLanguageModel({ model: base, middleware: aceMiddleware(eng, { agent: 'writer', task: 'task-3', breaker: 'cancel-model' }) })
  const controller = new AbortController()
  const result = streamText({ model, prompt: 'hi', abortSignal: controller.signal, onError: () => {} })
  for await (const part of result.textStream) {
    if (part.startsWith('2 ')) controller.abort()
  }
  await new Promise((r) => setTimeout(r, 50))
  const stages = (await events()).filter((e) => e.type === 'stage')
  assert.equal(stages.length, 1, JSON.stringify(stages))
  assert.equal(stages[0].metrics, undefined, 'no finish part, no usage')
  assert.equal(eng.breakerStates()['cancel-model'], 'closed')
  await eng.close()
})
