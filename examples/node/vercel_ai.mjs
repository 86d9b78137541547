// ace watching a Vercel AI SDK model through its middleware, and its tool calls through aceTools
// (a mock model: no API key needed).
import { generateText, stepCountIs, tool, wrapLanguageModel } from 'ai'
import { MockLanguageModelV4 } from 'ai/test'
import { z } from 'zod'
import ace from 'agent-ace'
import { aceMiddleware, aceTools } from 'agent-ace/integrations/vercel-ai.mjs'

const eng = new ace.Ace()
const usage = {
  inputTokens: { total: 40, noCache: 40, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 6, text: 6, reasoning: undefined },
}
let step = 0
const model = wrapLanguageModel({
  model: new MockLanguageModelV4({
    // First a tool call, then the answer.
    doGenerate: async () =>
      step++ === 0
        ? {
            content: [{ type: 'tool-call', toolCallId: 'c-1', toolName: 'lookupOrder', input: '{"order":"A-1001"}' }],
            finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
            usage,
            warnings: [],
          }
        : { content: [{ type: 'text', text: 'Your order has shipped.' }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] },
  }),
  middleware: aceMiddleware(eng, { agent: 'support-bot', onIntervention: (i) => console.log(i.strategy) }),
})
const lookupOrder = tool({
  description: 'Looks an order up.',
  inputSchema: z.object({ order: z.string() }),
  execute: async ({ order }) => ({ order, status: 'shipped' }),
})
const tools = aceTools(eng, { lookupOrder }, { agent: 'support-bot' })
const { text } = await eng.task('support-bot', 'task-1', () =>
  generateText({ model, tools, prompt: 'Where is my order?', stopWhen: stepCountIs(2) }),
)
console.log(text, eng.baseline('support-bot', 'llm', 'tokens_in').mean, eng.baseline('support-bot', 'tool').count)
await eng.close()
