// aceTools from the Vercel AI SDK integration, against the real `ai` package and its test model:
// the SDK executes the tools, ace records each call (name, digest of the input, duration,
// success) without OpenTelemetry; what a tool returns or throws reaches the SDK unchanged.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import ace from '../ace.js'

const { Ace, argsDigest } = ace

const usage = {
  inputTokens: { total: 5, noCache: 5, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 2, text: 2, reasoning: undefined },
}

function traced(config = {}) {
  const path = join(mkdtempSync(join(tmpdir(), 'ace-vercel-tools-')), 'trace.jsonl')
  const eng = new Ace({ config: { tracePath: path, ...config } })
  const text = async () => {
    await eng.flush()
    return readFileSync(path, 'utf8')
  }
  const events = async () =>
    (await text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  return { eng, events, text }
}

/** A test model that asks for `calls` (`[toolName, input]`) in its first step and answers with
 * text once it has the results. */
async function modelCalling(calls) {
  const { MockLanguageModelV4 } = await import('ai/test')
  let step = 0
  return new MockLanguageModelV4({
    doGenerate: async () => {
      step += 1
      if (step > 1) {
        return { content: [{ type: 'text', text: 'done' }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] }
      }
      return {
        content: calls.map(([toolName, input], i) => ({ type: 'tool-call', toolCallId: `call-${i}`, toolName, input: JSON.stringify(input) })),
        finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
        usage,
        warnings: [],
      }
    },
  })
}

test('generateText: a tool that succeeds and one that throws, each recorded field by field', async () => {
  const { generateText, tool, stepCountIs } = await import('ai')
  const { z } = await import('zod')
  const { aceTools } = await import('../integrations/vercel-ai.mjs')
  const { eng, events, text } = traced()
  const shipped = { status: 'shipped', carrier: 'UPS' }
  const declined = new Error('card ending 4242 declined by gateway pay-3')
  const raw = {
    lookup: tool({
      description: 'Looks an order up.',
      inputSchema: z.object({ order: z.string() }),
      execute: async ({ order }) => {
        await sleep(30)
        assert.equal(order, 'A-1001')
        return shipped
      },
    }),
    refund: tool({
      description: 'Refunds an order.',
      inputSchema: z.object({ order: z.string(), amount: z.number() }),
      execute: async () => {
        throw declined
      },
    }),
  }
  const tools = aceTools(eng, raw, { agent: 'support-bot' })
  const model = await modelCalling([
    ['lookup', { order: 'A-1001' }],
    ['refund', { order: 'A-1001', amount: 12.5 }],
  ])
  const out = await eng.task('support-bot', 'ticket-7', () =>
    generateText({ model, tools, prompt: 'Where is A-1001? Refund it.', stopWhen: stepCountIs(2) }),
  )
  assert.equal(out.text, 'done')

  // What the tools gave the SDK: the result object itself, the error itself.
  const [first] = out.steps
  const result = first.content.find((p) => p.type === 'tool-result')
  const error = first.content.find((p) => p.type === 'tool-error')
  assert.equal(result.toolName, 'lookup')
  assert.equal(result.output, shipped, 'the return value is passed through untouched')
  assert.equal(error.toolName, 'refund')
  assert.equal(error.error, declined, 'the thrown error is rethrown unchanged')

  // What the engine recorded: one tool call each, in the current task, with the input's digest.
  const got = await events()
  const calls = got.filter((e) => e.type === 'stage' && e.tool !== undefined)
  assert.equal(calls.length, 2, JSON.stringify(got))
  const lookup = calls.find((c) => c.tool === 'lookup')
  const refund = calls.find((c) => c.tool === 'refund')
  assert.deepEqual(
    [lookup.agent, lookup.task, lookup.stage, lookup.success, lookup.args_digest],
    ['support-bot', 'ticket-7', 'tool', true, argsDigest({ order: 'A-1001' })],
  )
  assert.ok(lookup.duration_s >= 0.025, `the call's duration: ${lookup.duration_s}`)
  assert.deepEqual(
    [refund.agent, refund.task, refund.stage, refund.success, refund.args_digest],
    ['support-bot', 'ticket-7', 'tool', false, argsDigest({ order: 'A-1001', amount: 12.5 })],
  )
  const errors = got.filter((e) => e.type === 'error')
  assert.equal(errors.length, 1, JSON.stringify(errors))
  assert.deepEqual(
    [errors[0].agent, errors[0].task, errors[0].stage, errors[0].message],
    ['support-bot', 'ticket-7', 'tool', 'card ending 4242 declined by gateway pay-3'],
  )
  // The digest is kept, never the arguments.
  assert.doesNotMatch(await text(), /A-1001|12\.5/)
  await eng.close()
})

test('the same call repeated raises tool_repeat with the digest as evidence, and reaches onIntervention', async () => {
  const { generateText, tool } = await import('ai')
  const { z } = await import('zod')
  const { aceTools } = await import('../integrations/vercel-ai.mjs')
  const eng = new Ace({ config: { toolRepeat: 3 } })
  const seen = []
  const tools = aceTools(
    eng,
    { search: tool({ inputSchema: z.object({ q: z.string() }), execute: async ({ q }) => `no results for ${q}` }) },
    { agent: 'researcher', task: (execution) => `task-of-${execution.messages.length > 0 ? 'chat' : 'none'}`, onIntervention: (i) => seen.push(i) },
  )
  const model = await modelCalling([
    ['search', { q: 'paris' }],
    ['search', { q: 'paris' }],
    ['search', { q: 'paris' }],
  ])
  await generateText({ model, tools, prompt: 'find paris' })
  const repeats = eng.recentSignals({ agent: 'researcher' }).filter((s) => s.kind === 'tool_repeat')
  assert.equal(repeats.length, 1, JSON.stringify(eng.recentSignals()))
  assert.deepEqual(
    [repeats[0].task, repeats[0].stage, repeats[0].evidence.tool, repeats[0].evidence.argsDigest],
    ['task-of-chat', 'tool', 'search', argsDigest({ q: 'paris' })],
  )
  assert.ok(seen.length >= 1 && seen.every((i) => typeof i.strategy === 'string'), JSON.stringify(seen))
  await eng.close()
})

test('streamText: a streaming tool is recorded once, over its whole iteration; a client-side tool is left as it is', async () => {
  const { streamText, tool, simulateReadableStream } = await import('ai')
  const { MockLanguageModelV4 } = await import('ai/test')
  const { z } = await import('zod')
  const { aceTools } = await import('../integrations/vercel-ai.mjs')
  const { eng, events } = traced()
  const ask = tool({ description: 'Asks the user.', inputSchema: z.object({ question: z.string() }) })
  const raw = {
    crawl: tool({
      inputSchema: z.object({ site: z.string() }),
      async *execute({ site }) {
        yield { site, pages: 1 }
        await sleep(40)
        yield { site, pages: 2 }
        await sleep(40)
        yield { site, pages: 3 }
      },
    }),
    ask,
  }
  const model = new MockLanguageModelV4({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunks: [
          { type: 'tool-call', toolCallId: 'c-1', toolName: 'crawl', input: '{"site":"example.org"}' },
          { type: 'tool-call', toolCallId: 'c-2', toolName: 'ask', input: '{"question":"which page?"}' },
          { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage },
        ],
      }),
    }),
  })
  const { tools, parts } = await eng.task('crawler', 'job-1', async () => {
    const tools = aceTools(eng, raw)
    const result = streamText({ model, tools, prompt: 'crawl example.org' })
    const parts = []
    for await (const part of result.fullStream) parts.push(part)
    return { tools, parts }
  })
  assert.equal(tools.ask, ask, 'a tool without execute is the same object')
  assert.notEqual(tools.crawl, raw.crawl, 'the input object is not changed')
  assert.equal(raw.crawl.execute.constructor.name, 'AsyncGeneratorFunction')
  const outputs = parts.filter((p) => p.type === 'tool-result' && p.toolName === 'crawl').map((p) => [p.preliminary ?? false, p.output.pages])
  assert.deepEqual(outputs, [[true, 1], [true, 2], [true, 3], [false, 3]], 'every yielded value passes through')
  const calls = (await events()).filter((e) => e.type === 'stage' && e.tool !== undefined)
  assert.equal(calls.length, 1, `only crawl is executed by the SDK: ${JSON.stringify(calls)}`)
  assert.deepEqual(
    [calls[0].agent, calls[0].task, calls[0].tool, calls[0].success, calls[0].args_digest],
    ['crawler', 'job-1', 'crawl', true, argsDigest({ site: 'example.org' })],
  )
  assert.ok(calls[0].duration_s >= 0.07, `the call spans the iteration: ${calls[0].duration_s}`)
  await eng.close()
})

test('a streaming tool that breaks mid-way is a failed call; a synchronous tool stays synchronous', async () => {
  const { aceTools } = await import('../integrations/vercel-ai.mjs')
  const { eng, events } = traced()
  const broken = new Error('upstream 503')
  const tools = aceTools(
    eng,
    {
      pages: {
        async *execute() {
          yield 1
          throw broken
        },
      },
      add: {
        execute(input) {
          return input.a + input.b + this.offset
        },
        offset: 100,
      },
    },
    { agent: 'a', task: 't', stage: 'execution' },
  )
  const seen = []
  await assert.rejects(
    (async () => {
      for await (const v of tools.pages.execute({}, { toolCallId: 'x', messages: [] })) seen.push(v)
    })(),
    (e) => e === broken,
  )
  assert.deepEqual(seen, [1])
  assert.equal(tools.add.execute({ a: 1, b: 2 }, { toolCallId: 'y', messages: [] }), 103, 'a value, not a Promise; `this` is the tool')
  // A record that fails is a warning; the call goes on.
  const warnings = []
  eng.on('warning', (w) => warnings.push(w))
  const cyclic = { a: 1, b: 2 }
  cyclic.self = cyclic
  assert.equal(tools.add.execute(cyclic, { toolCallId: 'z', messages: [] }), 103)
  assert.deepEqual(
    warnings.map((w) => [w.name, w.code]),
    [['InvalidInputError', 'invalid_input']],
  )
  const got = await events()
  const calls = got.filter((e) => e.type === 'stage' && e.tool !== undefined)
  assert.deepEqual(
    calls.map((c) => [c.tool, c.stage, c.success]),
    [
      ['pages', 'execution', false],
      ['add', 'execution', true],
    ],
  )
  assert.deepEqual(
    got.filter((e) => e.type === 'error').map((e) => [e.stage, e.message]),
    [['execution', 'upstream 503']],
  )
  await eng.close()
})

test('aceTools needs an agent: given, or the current task', async () => {
  const { aceTools } = await import('../integrations/vercel-ai.mjs')
  const eng = new Ace()
  assert.throws(() => aceTools(eng, {}), TypeError)
  assert.doesNotThrow(() => eng.task('a', 't', () => aceTools(eng, {})))
  await eng.close()
})
