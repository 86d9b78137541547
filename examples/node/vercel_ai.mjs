// ace watching a Vercel AI SDK model through its middleware (a mock model: no API key needed).
import { generateText, wrapLanguageModel } from 'ai'
import { MockLanguageModelV4 } from 'ai/test'
import ace from 'agent-ace'
import { aceMiddleware } from 'agent-ace/integrations/vercel-ai.mjs'

const eng = new ace.Ace()
const model = wrapLanguageModel({
  model: new MockLanguageModelV4({
    doGenerate: async () => ({
      content: [{ type: 'text', text: 'Your order has shipped.' }],
      finishReason: { unified: 'stop', raw: 'stop' },
      usage: {
        inputTokens: { total: 40, noCache: 40, cacheRead: undefined, cacheWrite: undefined },
        outputTokens: { total: 6, text: 6, reasoning: undefined },
      },
      warnings: [],
    }),
  }),
  middleware: aceMiddleware(eng, { agent: 'support-bot', task: 'task-1', onIntervention: (i) => console.log(i.strategy) }),
})
const { text } = await generateText({ model, prompt: 'Where is my order?' })
console.log(text, eng.baseline('support-bot', 'llm', 'tokens_in').mean)
await eng.close()
