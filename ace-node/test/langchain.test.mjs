// The LangChain.js handler against the real @langchain/core and @langchain/langgraph: tokens from
// the messages' usage_metadata (the legacy llmOutput.tokenUsage as a fallback), tool calls with
// their arguments' digest, and a LangGraph interrupt() recorded as a pause, not a failure.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ace from '../ace.js'

const { Ace } = ace

function traced() {
  const path = join(mkdtempSync(join(tmpdir(), 'ace-langchain-')), 'trace.jsonl')
  const eng = new Ace({ config: { tracePath: path } })
  const events = async () => {
    await eng.flush()
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const { ts, duration_s, ...rest } = JSON.parse(l)
        return rest
      })
  }
  return { eng, events }
}

/** A chat model as a provider package writes one: its messages carry usage_metadata. */
async function usageModel() {
  const { BaseChatModel } = await import('@langchain/core/language_models/chat_models')
  const { AIMessage } = await import('@langchain/core/messages')
  class UsageModel extends BaseChatModel {
    _llmType() {
      return 'usage-model'
    }
    async _generate(messages) {
      const text = `seen ${messages.length}`
      const message = new AIMessage({ content: text, usage_metadata: { input_tokens: 42, output_tokens: 7, total_tokens: 49 } })
      return { generations: [{ text, message }] }
    }
  }
  return new UsageModel({})
}

test('tokens come from usage_metadata, tool calls carry their tool and arguments digest', async () => {
  const { RunnableLambda } = await import('@langchain/core/runnables')
  const { tool } = await import('@langchain/core/tools')
  const { z } = await import('zod')
  const { AceCallbackHandler } = await import('../integrations/langchain.mjs')
  const { eng, events } = traced()
  const lookup = tool(async ({ order }) => (order === 'bad' ? Promise.reject(new Error('connection to orders-db-1:5432 refused')) : 'shipped'), {
    name: 'lookup',
    description: 'Looks an order up.',
    schema: z.object({ order: z.string() }),
  })
  const llm = await usageModel()
  const handler = new AceCallbackHandler(eng, { agent: 'support-bot', task: 'ticket-9' })
  const chain = RunnableLambda.from((order, config) => lookup.invoke({ order }, config)).pipe(
    RunnableLambda.from(async (s, config) => (await llm.invoke(s, config)).content),
  )
  assert.equal(await chain.invoke('a1', { callbacks: [handler] }), 'seen 1')
  await assert.rejects(chain.invoke('bad', { callbacks: [handler] }))
  const got = (await events()).filter((e) => e.type !== 'task_end')
  const who = { agent: 'support-bot', task: 'ticket-9' }
  assert.deepEqual(got, [
    { type: 'stage', ...who, stage: 'tool', success: true, tool: 'lookup', args_digest: ace.argsDigest({ order: 'a1' }) },
    { type: 'stage', ...who, stage: 'llm', success: true, metrics: { tokens_in: 42, tokens_out: 7 } },
    { type: 'stage', ...who, stage: 'chain.runnablesequence', success: true },
    { type: 'error', ...who, stage: 'tool', kind: 'Error', message: 'connection to orders-db-1:5432 refused' },
    { type: 'stage', ...who, stage: 'tool', success: false, tool: 'lookup', args_digest: ace.argsDigest({ order: 'bad' }) },
    { type: 'error', ...who, stage: 'chain.runnablesequence', kind: 'Error', message: 'connection to orders-db-1:5432 refused' },
    { type: 'stage', ...who, stage: 'chain.runnablesequence', success: false },
  ])
  await eng.close()
})

test('the legacy llmOutput.tokenUsage is read when no message has usage_metadata', async () => {
  const { usageOf } = await import('../integrations/langchain.mjs')
  const { AIMessage } = await import('@langchain/core/messages')
  const legacy = { generations: [[{ text: 'x', message: new AIMessage('x') }]], llmOutput: { tokenUsage: { promptTokens: 11, completionTokens: 4 } } }
  assert.deepEqual(usageOf(legacy), { tokens_in: 11, tokens_out: 4 })
  const both = {
    generations: [[{ text: 'x', message: new AIMessage({ content: 'x', usage_metadata: { input_tokens: 5, output_tokens: 1, total_tokens: 6 } }) }]],
    llmOutput: { tokenUsage: { promptTokens: 11, completionTokens: 4 } },
  }
  assert.deepEqual(usageOf(both), { tokens_in: 5, tokens_out: 1 }, 'usage_metadata wins')
  assert.deepEqual(usageOf({ generations: [] }), {})
})

test('a LangGraph interrupt() is a pause: not a failure, the task stays open until the graph resumes', async () => {
  const { StateGraph, Annotation, START, END, MemorySaver, interrupt, Command } = await import('@langchain/langgraph')
  const { AceCallbackHandler } = await import('../integrations/langchain.mjs')
  const { eng, events } = traced()
  const llm = await usageModel()
  const State = Annotation.Root({ question: Annotation(), answer: Annotation(), approved: Annotation() })
  const graph = new StateGraph(State)
    .addNode('plan', async (s, config) => ({ answer: (await llm.invoke(s.question, config)).content }))
    .addNode('approve', async (s) => ({ approved: interrupt({ answer: s.answer }) }))
    .addEdge(START, 'plan')
    .addEdge('plan', 'approve')
    .addEdge('approve', END)
    .compile({ checkpointer: new MemorySaver() })
  const handler = new AceCallbackHandler(eng, { agent: 'graph-bot' })
  const config = { callbacks: [handler], configurable: { thread_id: 'thread-7' } }
  const first = await graph.invoke({ question: 'ship it?' }, config)
  assert.ok(first.__interrupt__?.length, 'the graph paused for a human')
  let got = await events()
  assert.deepEqual(got.map((e) => [e.type, e.stage ?? null, e.success ?? null]), [
    ['stage', 'start', true],
    ['stage', 'llm', true],
    ['stage', 'plan', true],
    // The graph's run returned (paused): a success; the interrupted node is not recorded.
    ['stage', 'chain.langgraph', true],
  ])
  assert.ok(got.every((e) => e.task === 'thread-7' && e.agent === 'graph-bot'), 'the task is the LangGraph thread')
  assert.equal(eng.stats().openTasks, 1, 'a paused graph keeps its task open')
  const done = await graph.invoke(new Command({ resume: true }), config)
  assert.equal(done.approved, true)
  got = await events()
  assert.deepEqual(got.slice(4).map((e) => [e.type, e.stage ?? null, e.success ?? null]), [
    ['stage', 'approve', true],
    ['stage', 'chain.langgraph', true],
    ['task_end', null, null],
  ])
  assert.ok(!got.some((e) => e.type === 'error'), 'no error was recorded for the interrupt')
  assert.equal(eng.stats().openTasks, 0)
  await eng.close()
})
