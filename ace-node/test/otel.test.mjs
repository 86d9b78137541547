// agent-ace/otel: the span processor fed by the AI SDK's own OpenTelemetry spans (@ai-sdk/otel,
// the SDK's telemetry integration) from generateText and streamText calls against the SDK's test
// model, read back from the engine's trace file field by field; span events out.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ace from '../ace.js'
import otel from '../otel.js'

const { Ace } = ace
const { AceSpanProcessor, attachEvents, SEMCONV_VERSION } = otel

const usage = (i, o) => ({
  inputTokens: { total: i, noCache: i, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: o, text: o, reasoning: undefined },
})

/** An engine writing its input to a fresh trace file, and a reader of that file. */
function tracedEngine() {
  const path = join(mkdtempSync(join(tmpdir(), 'ace-otel-')), 'trace.jsonl')
  const eng = new Ace({ config: { tracePath: path } })
  const events = async () => {
    await eng.flush()
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const { ts, ...rest } = JSON.parse(l)
        assert.equal(typeof ts, 'number')
        return rest
      })
  }
  return { eng, events }
}

async function tracing(processor, serviceName = 'travel-svc') {
  const { BasicTracerProvider } = await import('@opentelemetry/sdk-trace-base')
  const { resourceFromAttributes } = await import('@opentelemetry/resources')
  const { OpenTelemetry } = await import('@ai-sdk/otel')
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    spanProcessors: [processor],
  })
  return { provider, integration: new OpenTelemetry({ tracer: provider.getTracer('ai') }) }
}

function near(actual, expected, what) {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} vs ${expected}`)
}

test('generateText with a tool call: the AI SDK spans become stages, tokens, a tool call and a task end', async () => {
  const { generateText, tool, stepCountIs, jsonSchema } = await import('ai')
  const { MockLanguageModelV4 } = await import('ai/test')
  const { eng, events } = tracedEngine()
  const processor = new AceSpanProcessor(eng)
  const { provider, integration } = await tracing(processor)
  let calls = 0
  const model = new MockLanguageModelV4({
    doGenerate: async () => {
      calls++
      if (calls === 1) {
        return {
          content: [{ type: 'tool-call', toolCallId: 'c1', toolName: 'weather', input: JSON.stringify({ units: 'c', city: 'Paris' }) }],
          finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
          usage: usage(20, 5),
          warnings: [],
        }
      }
      return { content: [{ type: 'text', text: 'sunny' }], finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(30, 2), warnings: [] }
    },
  })
  const weather = tool({
    description: 'The weather in a city.',
    inputSchema: jsonSchema({ type: 'object', properties: { city: { type: 'string' }, units: { type: 'string' } } }),
    execute: async ({ city }) => `sunny in ${city}`,
  })
  const out = await generateText({
    model,
    prompt: 'weather in Paris?',
    tools: { weather },
    stopWhen: stepCountIs(3),
    experimental_telemetry: { functionId: 'travel-agent', integrations: [integration] },
  })
  assert.equal(out.text, 'sunny')
  await provider.forceFlush()
  const got = await events()
  const task = got[0].task
  assert.match(task, /^[0-9a-f]{32}$/, 'no conversation id: the trace id')
  const who = { agent: 'travel-agent', task }
  const want = [
    { type: 'stage', ...who, stage: 'llm', success: true, metrics: { tokens_in: 20, tokens_out: 5 } },
    { type: 'stage', ...who, stage: 'tool', success: true, tool: 'weather', args_digest: ace.argsDigest({ city: 'Paris', units: 'c' }) },
    { type: 'stage', ...who, stage: 'agent_step', success: true },
    { type: 'stage', ...who, stage: 'llm', success: true, metrics: { tokens_in: 30, tokens_out: 2 } },
    { type: 'stage', ...who, stage: 'agent_step', success: true },
    { type: 'stage', ...who, stage: 'invoke_agent', success: true },
    { type: 'task_end', ...who },
  ]
  assert.equal(got.length, want.length, JSON.stringify(got, null, 1))
  for (const [i, w] of want.entries()) {
    const { duration_s: d, ...rest } = got[i]
    assert.deepEqual(rest, w, `event ${i}`)
    if (w.type === 'stage') assert.ok(d >= 0 && d < 60, `duration ${d}`)
  }
  assert.deepEqual(processor.counts, { recorded: 6, skipped: 0, malformed: 0, ignoredAttributes: 0, oversize: 0, failed: 0 })
  assert.equal(eng.stats().openTasks, 0, 'the agent run ended its task')
  assert.equal(SEMCONV_VERSION, '1.44.0')
  await eng.close()
})

test('streamText: the streamed call is recorded when the stream ends, a mid-stream error as a failed call', async () => {
  const { streamText, simulateReadableStream } = await import('ai')
  const { MockLanguageModelV4 } = await import('ai/test')
  const { eng, events } = tracedEngine()
  const processor = new AceSpanProcessor(eng)
  const { provider, integration } = await tracing(processor)
  let broken = false
  const model = new MockLanguageModelV4({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunks: broken
          ? [{ type: 'text-start', id: 't' }, { type: 'text-delta', id: 't', delta: 'Hel' }, { type: 'error', error: new Error('connection to api-1:443 reset') }]
          : [
              { type: 'text-start', id: 't' },
              { type: 'text-delta', id: 't', delta: 'Hello' },
              { type: 'text-end', id: 't' },
              { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(3, 10) },
            ],
      }),
    }),
  })
  const telemetry = { functionId: 'streamer', integrations: [integration] }
  const ok = streamText({ model, prompt: 'hi', experimental_telemetry: telemetry })
  assert.equal(await ok.text, 'Hello')
  broken = true
  const bad = streamText({ model, prompt: 'hi', experimental_telemetry: telemetry, onError: () => {} })
  for await (const _ of bad.fullStream) {
    // drain
  }
  await provider.forceFlush()
  const got = await events()
  const tasks = [...new Set(got.map((e) => e.task))]
  assert.equal(tasks.length, 2, 'one task (trace) per call')
  const [good, broke] = tasks.map((t) => got.filter((e) => e.task === t))
  const shape = (evs) => evs.map((e) => [e.type, e.stage ?? null, e.success ?? null])
  assert.deepEqual(shape(good), [
    ['stage', 'llm', true],
    ['stage', 'agent_step', true],
    ['stage', 'invoke_agent', true],
    ['task_end', null, null],
  ])
  assert.deepEqual(good[0].metrics, { tokens_in: 3, tokens_out: 10 }, 'the usage of the finish part')
  // The SDK marks the step and the run ERROR (without an exception event) when the stream breaks.
  assert.deepEqual(shape(broke), [
    ['error', 'agent_step', null],
    ['stage', 'agent_step', false],
    ['error', 'invoke_agent', null],
    ['stage', 'invoke_agent', false],
    ['task_end', null, null],
  ])
  assert.ok(broke.filter((e) => e.type === 'error').every((e) => e.kind === 'SpanError'))
  assert.ok(got.every((e) => e.agent === 'streamer'))
  assert.equal(processor.counts.failed, 0)
  await eng.close()
})

test('spans without GenAI attributes are skipped, bad ones counted, and onEnd never throws', async () => {
  const { eng, events } = tracedEngine()
  const processor = new AceSpanProcessor(eng)
  const { provider } = await tracing(processor, 'plain-svc')
  const tracer = provider.getTracer('t')
  tracer.startSpan('GET /').end()
  const noTool = tracer.startSpan('execute_tool', { attributes: { 'gen_ai.operation.name': 'execute_tool' } })
  noTool.end()
  const weird = tracer.startSpan('op', { attributes: { 'gen_ai.operation.name': 'Create Agent!', 'gen_ai.agent.name': ' \u0007 ', 'gen_ai.usage.input_tokens': -3 } })
  weird.end()
  const failed = tracer.startSpan('chat', { attributes: { 'gen_ai.operation.name': 'chat', 'error.type': 'timeout' } })
  failed.setStatus({ code: 2, message: 'gave up after 30 s' })
  failed.end()
  // A span whose reading throws: counted, never thrown to the host.
  processor.onEnd({ spanContext: () => { throw new Error('bad span') } })
  processor.onStart({ spanContext: () => { throw new Error('bad span') } })
  await provider.forceFlush()
  const got = (await events()).filter((e) => e.type !== 'task_end')
  assert.deepEqual(
    got.map((e) => [e.type, e.agent, e.stage, e.success ?? null, e.kind ?? null, e.message ?? null]),
    [
      ['stage', 'plain-svc', 'create_agent', true, null, null],
      ['error', 'plain-svc', 'llm', null, 'timeout', 'gave up after 30 s'],
      ['stage', 'plain-svc', 'llm', false, null, null],
    ],
  )
  assert.deepEqual(processor.counts, { recorded: 2, skipped: 1, malformed: 1, ignoredAttributes: 1, oversize: 0, failed: 2 })
  await eng.close()
})

test('attachEvents puts interventions on the active span (opt-in)', async () => {
  const { context, trace } = await import('@opentelemetry/api')
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks')
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const tracer = provider.getTracer('t')
  const eng = new Ace()
  const quiet = new Ace()
  attachEvents(eng)
  attachEvents(eng) // once per engine
  const span = tracer.startSpan('agent run')
  const seen = []
  context.with(trace.setSpan(context.active(), span), () => {
    for (const [e, id] of [[eng, 'a'], [quiet, 'b']]) {
      for (let p = 0; p < 3; p++) {
        const r = e.recordError(id, 't', 'execution', 'ConnectionError', `connection to db-${p}:5432 refused`)
        if (r.intervention) seen.push(r.intervention)
      }
    }
  })
  span.end()
  const [finished] = exporter.getFinishedSpans()
  const mine = seen.find((i) => i.agent === 'a')
  assert.ok(mine, 'three errors in a row led to an intervention')
  const events = finished.events.filter((e) => e.name === 'ace.intervention')
  assert.equal(events.length, 1, 'only the attached engine adds events')
  assert.deepEqual(events[0].attributes, {
    'ace.intervention.id': mine.id,
    'ace.intervention.strategy': mine.strategy,
    'ace.intervention.reason': mine.reason,
    'ace.intervention.severity': mine.severity,
    'ace.agent': 'a',
    'ace.task': 't',
  })
  const signals = finished.events.filter((e) => e.name === 'ace.signal')
  assert.ok(signals.length >= 1 && signals.every((e) => e.attributes['ace.agent'] === 'a'))
  await eng.close()
  await quiet.close()
})
