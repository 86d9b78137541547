// The Vercel AI SDK: a language-model middleware that records each model call as a stage
// (`llm`, with tokensIn and tokensOut from its usage), guards it with a breaker, and surfaces
// interventions.
//
//   import { wrapLanguageModel } from 'ai'
//   import { aceMiddleware } from 'agent-ace/integrations/vercel-ai.mjs'
//   const model = wrapLanguageModel({ model: openai('gpt-4o'), middleware: aceMiddleware(ace, { agent: 'support-bot', task: () => currentTaskId }) })

/** Options: `agent`; `task` (a string, or a function of the call's params giving one);
 * `stage` (default `llm`); `breaker` (a breaker name, default `llm`; `null` for none);
 * `onIntervention(intervention)`. */
export function aceMiddleware(ace, options = {}) {
  const { agent, stage = 'llm', onIntervention } = options
  if (!agent) throw new TypeError('aceMiddleware needs an agent')
  const taskOf = typeof options.task === 'function' ? options.task : () => options.task || 'default'
  const breaker = options.breaker === null ? null : ace.breaker(options.breaker || 'llm')
  const record = (params, started, error, usage) => {
    const task = String(taskOf(params))
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const metrics = {}
    const tin = usage?.inputTokens?.total ?? usage?.inputTokens
    const tout = usage?.outputTokens?.total ?? usage?.outputTokens
    if (typeof tin === 'number') metrics.tokens_in = tin
    if (typeof tout === 'number') metrics.tokens_out = tout
    if (error !== undefined) {
      const er = ace.recordError(agent, task, stage, error)
      if (er.intervention && onIntervention) onIntervention(er.intervention)
    }
    const r = ace.recordStage(agent, task, stage, seconds, error === undefined, Object.keys(metrics).length ? metrics : undefined)
    if (r.intervention && onIntervention) onIntervention(r.intervention)
  }
  const guarded = async (params, run) => {
    const permit = breaker ? breaker.acquire(agent, String(taskOf(params))) : null
    const started = process.hrtime.bigint()
    let result
    try {
      result = await run()
    } catch (e) {
      permit?.error(e)
      record(params, started, e, undefined)
      throw e
    }
    permit?.success()
    return { result, started }
  }
  return {
    specificationVersion: 'v4',
    wrapGenerate: async ({ doGenerate, params }) => {
      const { result, started } = await guarded(params, doGenerate)
      record(params, started, undefined, result.usage)
      return result
    },
    wrapStream: async ({ doStream, params }) => {
      // The stage covers opening the stream; tokens arrive with the stream's finish part.
      const { result, started } = await guarded(params, doStream)
      record(params, started, undefined, undefined)
      return result
    },
  }
}
