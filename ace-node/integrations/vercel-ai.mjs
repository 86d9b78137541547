// The Vercel AI SDK: a language-model middleware that records each model call as a stage
// (`llm`, with tokens_in and tokens_out from its usage), guards it with a breaker, and surfaces
// interventions; and a wrapper for a `tools` object that records each tool execution as a tool
// call, which a model middleware cannot see (the SDK runs tools outside the model).
//
// A streamed model call is recorded when its stream ends: the duration is the whole stream, the usage is
// the one its `finish` part carries, and an `error` part (or a stream that breaks) makes it a
// failed call with that error.
//
//   import { wrapLanguageModel, generateText } from 'ai'
//   import { aceMiddleware, aceTools } from 'agent-ace/integrations/vercel-ai.mjs'
//   const model = wrapLanguageModel({ model: openai('gpt-4o'), middleware: aceMiddleware(ace, { agent: 'support-bot' }) })
//   await generateText({ model, tools: aceTools(ace, { weather, search }, { agent: 'support-bot' }), prompt })

import { argsOf, currentTask, safely } from './common.mjs'

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
  const open = async (params, run) => {
    const who = { agent: agentOf(), task: String(taskOf(params)) }
    const permit = breaker ? breaker.acquire(who.agent, who.task) : null
    const started = process.hrtime.bigint()
    try {
      return { result: await run(), started, permit, who }
    } catch (e) {
      permit?.error(e)
      safely(ace, () => record(who, started, e, undefined))
      throw e
    }
  }
  return {
    specificationVersion: 'v4',
    wrapGenerate: async ({ doGenerate, params }) => {
      const { result, started, permit, who } = await open(params, doGenerate)
      permit?.success()
      safely(ace, () => record(who, started, undefined, result.usage))
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
        safely(ace, () => record(who, started, error, usage))
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

/** Options: `agent`; `task` (a string, or a function of the SDK's tool execution options giving
 * one; else the current task of `ace.task(agent, task, fn)`, else `'default'`); `stage` (default
 * `tool`); `onIntervention(intervention)`. Returns a new `tools` object: each tool with an
 * `execute` records its calls through `recordTool` (its name, the digest of its input, the
 * duration, success); tools without one (the client runs them) are the same objects. */
export function aceTools(ace, tools, options = {}) {
  const { stage = 'tool', onIntervention } = options
  const agentOf = () => options.agent ?? currentTask(ace)?.[0]
  if (!agentOf()) throw new TypeError('aceTools needs an agent (or a current task: ace.task(agent, task, fn))')
  const taskOf =
    typeof options.task === 'function' ? options.task : () => options.task || currentTask(ace)?.[1] || 'default'
  const surface = (r) => {
    if (r?.intervention && onIntervention) onIntervention(r.intervention)
  }
  // A call starts here and is recorded by the `done(failed, error)` this returns.
  const begin = (name, input, executionOptions) => {
    let who
    safely(ace, () => {
      who = { agent: agentOf(), task: String(taskOf(executionOptions)) }
    })
    const started = process.hrtime.bigint()
    return (failed, error) => {
      if (!who) return
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      if (failed) safely(ace, () => surface(ace.recordError(who.agent, who.task, stage, error)))
      safely(ace, () => surface(ace.recordTool(who.agent, who.task, name, seconds, !failed, { ...argsOf(input), stage })))
    }
  }
  const wrapped = {}
  for (const [name, tool] of Object.entries(tools)) {
    wrapped[name] = typeof tool?.execute === 'function' ? timedTool(tool, (input, o) => begin(name, input, o)) : tool
  }
  return wrapped
}

/** A copy of `tool` whose `execute` records each call when it settles; what `execute` returns or
 * throws reaches the SDK as it was. */
function timedTool(tool, begin) {
  const execute = tool.execute
  function timedExecute(input, executionOptions) {
    const done = begin(input, executionOptions)
    let result
    try {
      result = execute.call(this, input, executionOptions)
    } catch (e) {
      done(true, e)
      throw e
    }
    if (result != null && typeof result[Symbol.asyncIterator] === 'function') return timedIterable(result, done)
    if (result != null && typeof result.then === 'function') {
      return result.then(
        (value) => {
          done(false)
          return value
        },
        (e) => {
          done(true, e)
          throw e
        },
      )
    }
    done(false)
    return result
  }
  // The copy keeps the tool's prototype and every property but `execute`.
  const copy = Object.create(Object.getPrototypeOf(tool), Object.getOwnPropertyDescriptors(tool))
  Object.defineProperty(copy, 'execute', { value: timedExecute, writable: true, enumerable: true, configurable: true })
  return copy
}

/** A streaming tool's outputs, passed through as they come: the call spans the whole iteration
 * and is recorded when it ends, breaks, or the consumer stops reading (a success). */
async function* timedIterable(iterable, done) {
  let failed = false
  let error
  try {
    return yield* iterable
  } catch (e) {
    failed = true
    error = e
    throw e
  } finally {
    done(failed, error)
  }
}
