// LangChain.js and LangGraph.js: a callback handler that records tool calls, LLM calls and graph
// nodes (or the top-level chain) as stages, and their errors as errors.
//
//   const handler = new AceCallbackHandler(ace, { agent: 'support-bot' })
//   await graph.invoke(input, { callbacks: [handler], configurable: { thread_id: 't-1' } })
//
// Records: a tool call for each tool run (its name, the digest of its input); the stage `llm` for
// each model call, with `tokens_in` and `tokens_out` from the messages' `usage_metadata`
// (@langchain/core 1.x, every provider) or else the legacy `llmOutput.tokenUsage`; a stage per
// LangGraph node (its `langgraph_node` metadata), or `chain.<name>` for a top-level chain outside
// a graph. The task is `task` when given, else the current task (`ace.task(agent, task, fn)`),
// else the LangGraph `thread_id`, else the id of the top-level run; the agent is `agent`, else the
// current task's, else `'langchain-agent'`. A task of the last two kinds ends with the top-level
// run.
//
// A LangGraph `interrupt()` (`GraphInterrupt`) is a pause, not a failure: the interrupted node is
// not recorded (it runs again when the graph resumes) and the task stays open. Other LangGraph
// control flow (`ParentCommand`, bubbling up) is a success.

import { BaseCallbackHandler } from '@langchain/core/callbacks/base'
import stageNames from '../stage-name.js'
import { argsOf, currentTask } from './common.mjs'

export const stageName = stageNames.stageName

const DEFAULT_AGENT = 'langchain-agent'

/** `'pause'` for a LangGraph interrupt, `'flow'` for its other control flow, null for an error. */
function controlFlow(error) {
  if (!error || typeof error !== 'object') return null
  if (error.name === 'GraphInterrupt' || error.name === 'NodeInterrupt') return 'pause'
  return error.is_bubble_up === true ? 'flow' : null
}

/** `tokens_in`/`tokens_out` of an LLMResult: the sum of its messages' `usage_metadata`, else the
 * legacy `llmOutput.tokenUsage`. */
export function usageOf(output) {
  const totals = { tokens_in: 0, tokens_out: 0 }
  let seen = false
  for (const generations of output?.generations ?? []) {
    for (const generation of generations ?? []) {
      const usage = generation?.message?.usage_metadata
      if (!usage || typeof usage !== 'object') continue
      for (const [ours, theirs] of [['tokens_in', 'input_tokens'], ['tokens_out', 'output_tokens']]) {
        if (typeof usage[theirs] === 'number' && Number.isFinite(usage[theirs])) {
          totals[ours] += usage[theirs]
          seen = true
        }
      }
    }
  }
  if (seen) return totals
  const metrics = {}
  const legacy = output?.llmOutput?.tokenUsage ?? {}
  for (const [ours, theirs] of [['tokens_in', 'promptTokens'], ['tokens_out', 'completionTokens']]) {
    if (typeof legacy[theirs] === 'number' && Number.isFinite(legacy[theirs])) metrics[ours] = legacy[theirs]
  }
  return metrics
}

export class AceCallbackHandler extends BaseCallbackHandler {
  name = 'ace'

  constructor(ace, { agent, task } = {}) {
    super()
    this.ace = ace
    this.agent = agent
    this.task = task
    this.interventions = []
    this.runs = new Map() // run id -> { stage, agent, task, started, tool, args }
    this.roots = new Map() // run id -> its root run id
    this.tops = new Map() // root run id -> { agent, task, owned, paused }
    this.awaitHandlers = true
  }

  _newRoot(root, metadata) {
    const current = currentTask(this.ace)
    const agent = this.agent ?? current?.[0] ?? DEFAULT_AGENT
    if (this.task !== undefined) return { agent, task: this.task, owned: false, paused: false }
    if (current) return { agent, task: current[1], owned: false, paused: false }
    const thread = metadata?.thread_id
    if (typeof thread === 'string' && thread) return { agent, task: thread, owned: true, paused: false }
    return { agent, task: String(root), owned: true, paused: false }
  }

  _start(runId, parentRunId, stage, metadata, tool, args) {
    const root = parentRunId ? this.roots.get(parentRunId) ?? parentRunId : runId
    this.roots.set(runId, root)
    let top = this.tops.get(root)
    if (!top) {
      top = this._newRoot(root, metadata)
      this.tops.set(root, top)
    }
    if (stage) this.runs.set(runId, { stage, agent: top.agent, task: top.task, started: process.hrtime.bigint(), tool, args })
  }

  _end(runId, error, metrics) {
    const flow = error !== undefined ? controlFlow(error) : null
    const run = this.runs.get(runId)
    const root = this.roots.get(runId)
    const top = root !== undefined ? this.tops.get(root) : undefined
    this.runs.delete(runId)
    this.roots.delete(runId)
    if (flow === 'pause' && top) top.paused = true
    if (root === runId) this.tops.delete(root)
    try {
      if (run && flow !== 'pause') {
        const seconds = Number(process.hrtime.bigint() - run.started) / 1e9
        const failed = error !== undefined && flow === null
        if (failed) this._keep(this.ace.recordError(run.agent, run.task, run.stage, error))
        if (run.tool !== undefined) {
          this._keep(this.ace.recordTool(run.agent, run.task, run.tool, seconds, !failed, argsOf(run.args)))
        } else {
          const m = metrics && Object.keys(metrics).length ? metrics : undefined
          this._keep(this.ace.recordStage(run.agent, run.task, run.stage, seconds, !failed, m))
        }
      }
      if (root === runId && top?.owned && !top.paused) this.ace.endTask(top.agent, top.task)
    } catch (e) {
      // Never break the host's chain over monitoring.
      this.ace.emit('warning', e)
    }
  }

  _keep(report) {
    if (report?.intervention) {
      this.interventions.push(report.intervention)
      if (this.interventions.length > 1000) this.interventions.shift()
    }
  }

  handleChainStart(chain, inputs, runId, parentRunId, tags, metadata, runType, name) {
    const node = metadata?.langgraph_node
    const chainName = name ?? chain?.id?.[chain.id.length - 1] ?? 'chain'
    let stage = null
    if (node !== undefined) stage = chainName === node ? stageName(node) : null
    else if (!parentRunId) stage = stageName(chainName, 'chain.')
    this._start(runId, parentRunId, stage, metadata)
  }

  handleChainEnd(outputs, runId) {
    this._end(runId)
  }

  handleChainError(error, runId) {
    this._end(runId, error)
  }

  handleToolStart(tool, input, runId, parentRunId, tags, metadata, name) {
    const toolName = String(name ?? tool?.name ?? tool?.id?.[tool.id.length - 1] ?? 'tool')
    this._start(runId, parentRunId, 'tool', metadata, toolName, input)
  }

  handleToolEnd(output, runId) {
    this._end(runId)
  }

  handleToolError(error, runId) {
    this._end(runId, error)
  }

  handleLLMStart(llm, prompts, runId, parentRunId, extraParams, tags, metadata) {
    this._start(runId, parentRunId, 'llm', metadata)
  }

  handleChatModelStart(llm, messages, runId, parentRunId, extraParams, tags, metadata) {
    this._start(runId, parentRunId, 'llm', metadata)
  }

  handleLLMEnd(output, runId) {
    this._end(runId, undefined, usageOf(output))
  }

  handleLLMError(error, runId) {
    this._end(runId, error)
  }
}
