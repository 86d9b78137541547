// Typed usage of agent-ace/prometheus and the framework integrations: `tsc --noEmit` checks
// prometheus.d.ts, integrations/vercel-ai.d.mts and integrations/langchain.d.mts against the
// real packages' types (prom-client, the AI SDK, @langchain/core), as an ES module would use them.
import { Registry } from 'prom-client'
import { generateText, tool, wrapLanguageModel, type LanguageModelMiddleware, type ToolSet } from 'ai'
import { MockLanguageModelV4 } from 'ai/test'
import { BaseCallbackHandler } from '@langchain/core/callbacks/base'
import ace from '../ace.js'
import prometheus from '../prometheus.js'
import { z } from 'zod'
import { aceMiddleware, aceTools } from '../integrations/vercel-ai.mjs'
import { AceCallbackHandler, stageName } from '../integrations/langchain.mjs'

export function metrics(eng: InstanceType<typeof ace.Ace>): number {
  const registry = new Registry()
  const names: string[] = prometheus.registerAce(registry, eng)
  const family = prometheus.parse(eng.metricsText()).get('ace_records_dropped')
  const samples: number = family?.samples.length ?? 0
  return names.length + samples
}

export function vercel(eng: InstanceType<typeof ace.Ace>) {
  const middleware: LanguageModelMiddleware = aceMiddleware(eng, {
    agent: 'support-bot',
    task: (params) => String(params),
    breaker: null,
    onIntervention: (i) => console.log(i.strategy),
  })
  return wrapLanguageModel({ model: new MockLanguageModelV4(), middleware })
}

export async function vercelTools(eng: InstanceType<typeof ace.Ace>): Promise<string> {
  const raw = {
    weather: tool({ inputSchema: z.object({ city: z.string() }), execute: async ({ city }) => ({ city, celsius: 21 }) }),
    ask: tool({ inputSchema: z.object({ question: z.string() }), outputSchema: z.string() }),
  }
  const tools = aceTools(eng, raw, {
    agent: 'support-bot',
    task: (execution) => execution.toolCallId,
    stage: 'tool',
    onIntervention: (i) => console.log(i.strategy),
  })
  // The tools keep their types: `generateText` takes them, and their outputs stay typed.
  const same: typeof raw = tools
  const set: ToolSet = aceTools(eng, raw)
  const out = await generateText({ model: new MockLanguageModelV4(), tools, prompt: 'weather in Paris?' })
  const celsius: number | undefined = out.toolResults.find((r) => r.toolName === 'weather' && !r.dynamic)?.output.celsius
  void same
  void set
  return String(celsius)
}

export function langchain(eng: InstanceType<typeof ace.Ace>): BaseCallbackHandler {
  const handler = new AceCallbackHandler(eng, { agent: 'support-bot', task: 't-1' })
  const seen: number = handler.interventions.length
  console.log(stageName('ChatOpenAI', 'llm.'), seen)
  return handler
}
