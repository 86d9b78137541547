// The adapters against the real npm packages, and the prom-client helper.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ace from '../ace.js'
import prometheus from '../prometheus.js'

const { Ace } = ace

test('the Vercel AI SDK middleware records calls, guards them and surfaces interventions', async () => {
  const { generateText, wrapLanguageModel } = await import('ai')
  const { MockLanguageModelV4 } = await import('ai/test')
  const { aceMiddleware } = await import('../integrations/vercel-ai.mjs')
  const eng = new Ace()
  const interventions = []
  let fail = false
  const base = new MockLanguageModelV4({
    doGenerate: async () => {
      if (fail) throw new Error('connection to api-1:443 refused')
      return {
        content: [{ type: 'text', text: 'hello' }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage: {
          inputTokens: { total: 12, noCache: 12, cacheRead: undefined, cacheWrite: undefined },
          outputTokens: { total: 3, text: 3, reasoning: undefined },
        },
        warnings: [],
      }
    },
  })
  const model = wrapLanguageModel({
    model: base,
    middleware: aceMiddleware(eng, { agent: 'writer', task: 'task-1', breaker: 'model', onIntervention: (i) => interventions.push(i) }),
  })
  const out = await generateText({ model, prompt: 'hi' })
  assert.equal(out.text, 'hello')
  assert.equal(eng.baseline('writer', 'llm').count, 1)
  assert.equal(eng.baseline('writer', 'llm', 'tokens_in').mean, 12)
  fail = true
  for (let i = 0; i < 5; i++) await assert.rejects(generateText({ model, prompt: 'hi', maxRetries: 0 }))
  assert.equal(eng.breakerStates().model, 'open')
  await assert.rejects(generateText({ model, prompt: 'hi', maxRetries: 0 }), (e) => {
    const cause = e instanceof ace.CircuitOpenError ? e : e.lastError ?? e.cause ?? e
    return cause instanceof ace.CircuitOpenError || /circuit breaker 'model' is open/.test(String(e.message))
  })
  assert.ok(interventions.length >= 1, 'errors led to an intervention')
  assert.ok(eng.patterns().some((p) => p.template === 'connection to <*> refused'))
  await eng.close()
})

test('the LangChain.js handler records tools, LLM calls, chains and errors', async () => {
  const { RunnableLambda } = await import('@langchain/core/runnables')
  const { FakeListChatModel } = await import('@langchain/core/utils/testing')
  const { tool } = await import('@langchain/core/tools')
  const { AceCallbackHandler } = await import('../integrations/langchain.mjs')
  const eng = new Ace()
  const lookup = tool(
    async (order) => {
      if (order === 'bad') throw new Error('connection to orders-db-1:5432 refused')
      return 'shipped'
    },
    { name: 'lookup', description: 'Looks an order up.' },
  )
  const llm = new FakeListChatModel({ responses: Array(10).fill('ok') })
  const handler = new AceCallbackHandler(eng, { agent: 'support-bot' })
  // LangChain.js hands callbacks to nested runs through the config argument.
  const chain = RunnableLambda.from((x, config) => lookup.invoke(x, config)).pipe(
    RunnableLambda.from(async (s, config) => (await llm.invoke(s, config)).content),
  )
  assert.equal(await chain.invoke('a1', { callbacks: [handler] }), 'ok')
  for (let i = 0; i < 3; i++) await assert.rejects(chain.invoke('bad', { callbacks: [handler] }))
  assert.equal(eng.baseline('support-bot', 'tool').count, 4, 'tool runs are tool calls (stage tool)')
  assert.equal(eng.baseline('support-bot', 'llm').count, 1)
  assert.ok(eng.patterns().some((p) => p.template === 'connection to <*> refused'))
  assert.equal(eng.stats().openTasks, 0, 'each top-level run ended its task')
  assert.equal(eng.baseline('support-bot', 'chain.runnablesequence').count, 4)
  await eng.close()
})

test('LangGraph node names come from run metadata', async () => {
  const { AceCallbackHandler } = await import('../integrations/langchain.mjs')
  const eng = new Ace()
  const h = new AceCallbackHandler(eng, { agent: 'graph-bot', task: 't-1' })
  h.handleChainStart({ id: ['LangGraph'] }, {}, 'root', undefined, [], {}, undefined, 'LangGraph')
  h.handleChainStart({ id: ['x'] }, {}, 'node', 'root', [], { langgraph_node: 'Plan Step' }, undefined, 'Plan Step')
  h.handleChainStart({ id: ['x'] }, {}, 'inner', 'node', [], { langgraph_node: 'Plan Step' }, undefined, 'inner')
  h.handleChainEnd({}, 'inner')
  h.handleChainError(new Error('bad plan'), 'node')
  h.handleChainEnd({}, 'root')
  assert.equal(eng.baseline('graph-bot', 'plan_step').count, 1)
  assert.equal(eng.baseline('graph-bot', 'plan_step', 'success').mean, 0)
  assert.equal(eng.baseline('graph-bot', 'inner'), null)
  await eng.close()
})

test('prom-client serves ace metrics from its own registry', async () => {
  const client = await import('prom-client')
  const registry = new client.Registry()
  const eng = new Ace()
  const names = prometheus.registerAce(registry, eng)
  assert.ok(names.includes('ace_signals_total'), names.join(','))
  eng.recordStage('a', 't', 'planning', 0.1)
  for (const p of [0, 1, 2]) eng.recordError('a', 't', 'x', 'E', `connection to db-${p}:5432 refused`)
  const text = await registry.metrics()
  assert.match(text, /# TYPE ace_signals_total counter/)
  assert.match(text, /ace_signals_total\{[^}]*kind="error_accumulation"[^}]*\} [1-9]/)
  assert.match(text, /_bucket\{/)
  const parsed = prometheus.parse(eng.metricsText())
  assert.ok(parsed.get('ace_signals').samples.length > 0)
  await eng.close()
})
