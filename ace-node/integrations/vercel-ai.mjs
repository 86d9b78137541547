// The Vercel AI SDK: a language-model middleware that records each model call as a stage
// (`llm`, with tokens_in and tokens_out from its usage), guards it with a breaker, and surfaces
// interventions. A streamed call is recorded when its stream ends: the duration is the whole
// stream, the usage is the one its `finish` part carries, and an `error` part (or a stream that
// breaks) makes it a failed call with that error.
//
//   import { wrapLanguageModel } from 'ai'
//   import { aceMiddleware } from 'agent-ace/integrations/vercel-ai.mjs'
//   const model = wrapLanguageModel({ model: openai('gpt-4o'), middleware: aceMiddleware(ace, { agent: 'support-bot' }) })

import { currentTask } from './common.mjs'

/** Options: `agent`; `task` (a string, or a function of the call's params giving one; else the
 * current task of `ace.task(agent, task, fn)`, else `'default'`); `stage` (default `llm`);
 * `breaker` (a breaker name, default `llm`; `null` for none); `onIntervention(intervention)`. */
export function aceMiddleware(ace, options = {}) {
  const { stage = 'llm', onIntervention } = options
  const agentOf = () => options.agent ?? currentTask(ace)?.[0]
  if (!agentOf()) throw new TypeError('aceMiddleware needs an agent (or a current task: ace.task(agent, task, fn))')
  const taskOf =
    typeof options.task === 'function' ? options.task : () => options.task || currentTask(ace)?.[1] || 'default'
  const breaker = options.breaker === null ? null : ace.breaker(options.breaker || 'llm')
  const surface = (r) => {
    if (r?.intervention && onIntervention) onIntervention(r.intervention)
  }
  const record = (who, started, error, usage) => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const metrics = {}
    const tin = usage?.inputTokens?.total ?? usage?.inputTokens
    const tout = usage?.outputTokens?.total ?? usage?.outputTokens
    if (typeof tin === 'number') metrics.tokens_in = tin
    if (typeof tout === 'number') metrics.tokens_out = tout
    if (error !== undefined) surface(ace.recordError(who.agent, who.task, stage, error))
    surface(ace.recordStage(who.agent, who.task, stage, seconds, error === undefined, Object.keys(metrics).length ? metrics : undefined))
  }
  // Monitoring never breaks the host's call: a record that fails is a warning.
  const safely = (f) => {
    try {
      f()
    } catch (e) {
      ace.emit('warning', e)
    }
  }
  const open = async (params, run) => {
    const who = { agent: agentOf(), task: String(taskOf(params)) }
    const permit = breaker ? breaker.acquire(who.agent, who.task) : null
    const started = process.hrtime.bigint()
    try {
      return { result: await run(), started, permit, who }
    } catch (e) {
      permit?.error(e)
      safely(() => record(who, started, e, undefined))
      throw e
    }
  }
  return {
    specificationVersion: 'v4',
    wrapGenerate: async ({ doGenerate, params }) => {
      const { result, started, permit, who } = await open(params, doGenerate)
      permit?.success()
      safely(() => record(who, started, undefined, result.usage))
      return result
    },
    wrapStream: async ({ doStream, params }) => {
      const { result, started, permit, who } = await open(params, doStream)
      const reader = result.stream.getReader()
      let usage
      let failure
      let settled = false
      const settle = (error, cancelled = false) => {
        if (settled) return
        settled = true
        if (cancelled) permit?.release()
        else if (error !== undefined) permit?.error(error)
        else permit?.success()
        safely(() => record(who, started, error, usage))
      }
      const stream = new ReadableStream({
        async pull(controller) {
          let next
          try {
            next = await reader.read()
          } catch (e) {
            settle(e)
            controller.error(e)
            return
          }
          if (next.done) {
            settle(failure)
            controller.close()
            return
          }
          const part = next.value
          if (part?.type === 'finish') usage = part.usage
          else if (part?.type === 'error' && failure === undefined) {
            failure = part.error instanceof Error ? part.error : new Error(String(part.error?.message ?? part.error))
          }
          controller.enqueue(part)
        },
        cancel(reason) {
          // The consumer stopped reading: recorded as it stands, the breaker's permit given back.
          settle(failure, failure === undefined)
          return reader.cancel(reason)
        },
      })
      return { ...result, stream }
    },
  }
}
