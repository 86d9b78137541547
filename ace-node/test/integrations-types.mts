// Typed usage of agent-ace/prometheus and the framework integrations: `tsc --noEmit` checks
// prometheus.d.ts, integrations/vercel-ai.d.mts and integrations/langchain.d.mts against the
// real packages' types (prom-client, the AI SDK, @langchain/core), as an ES module would use them.
import { Registry } from 'prom-client'
import { wrapLanguageModel, type LanguageModelMiddleware } from 'ai'
import { MockLanguageModelV4 } from 'ai/test'
import { BaseCallbackHandler } from '@langchain/core/callbacks/base'
import ace from '../ace.js'
import prometheus from '../prometheus.js'
import { aceMiddleware } from '../integrations/vercel-ai.mjs'
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

export function langchain(eng: InstanceType<typeof ace.Ace>): BaseCallbackHandler {
  const handler = new AceCallbackHandler(eng, { agent: 'support-bot', task: 't-1' })
  const seen: number = handler.interventions.length
  console.log(stageName('ChatOpenAI', 'llm.'), seen)
  return handler
}
