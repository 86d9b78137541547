// LangChain.js: a callback handler that records tool calls (`tool.<name>`), LLM calls (`llm`)
// and the top-level chain (`chain.<name>`, or a LangGraph node's name from its metadata) as
// stages, and their errors as errors. The task is `task` when given, else the top-level run id;
// it ends with that run.
//
//   const handler = new AceCallbackHandler(ace, { agent: 'support-bot' })
//   await chain.invoke(input, { callbacks: [handler] })

import { BaseCallbackHandler } from '@langchain/core/callbacks/base'

/** A framework name as an ace stage name (lower-case letters, digits, `_`, `-`, `.`). */
export function stageName(name, prefix = '') {
  let s = String(name).trim().toLowerCase().replace(/[^a-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '') || 'unnamed'
  if (!/^[a-z]/.test(s)) s = `s${s}`
  return (prefix + s).slice(0, 64)
}

export class AceCallbackHandler extends BaseCallbackHandler {
  name = 'ace'

  constructor(ace, { agent, task } = {}) {
    super()
    if (!agent) throw new TypeError('AceCallbackHandler needs an agent')
    this.ace = ace
    this.agent = agent
    this.task = task
    this.interventions = []
    this.runs = new Map()
    this.roots = new Map()
    this.awaitHandlers = true
  }

  _start(runId, parentRunId, stage) {
    const root = parentRunId ? this.roots.get(parentRunId) ?? parentRunId : runId
    this.roots.set(runId, root)
    if (stage) this.runs.set(runId, { stage, task: this.task ?? root, started: process.hrtime.bigint() })
  }

  _end(runId, error, metrics) {
    const run = this.runs.get(runId)
    const root = this.roots.get(runId)
    this.runs.delete(runId)
    this.roots.delete(runId)
    if (!run) return
    const seconds = Number(process.hrtime.bigint() - run.started) / 1e9
    try {
      if (error !== undefined) this._keep(this.ace.recordError(this.agent, run.task, run.stage, error).intervention)
      this._keep(this.ace.recordStage(this.agent, run.task, run.stage, seconds, error === undefined, metrics).intervention)
      if (root === runId && this.task === undefined) this.ace.endTask(this.agent, run.task)
    } catch (e) {
      // Never break the host's chain over monitoring.
      this.ace.emit('warning', e)
    }
  }

  _keep(intervention) {
    if (intervention) this.interventions.push(intervention)
  }

  handleChainStart(chain, inputs, runId, parentRunId, tags, metadata, runType, name) {
    const node = metadata?.langgraph_node
    const chainName = name ?? chain?.id?.[chain.id.length - 1] ?? 'chain'
    let stage = null
    if (node !== undefined) stage = chainName === node ? stageName(node) : null
    else if (!parentRunId) stage = stageName(chainName, 'chain.')
    this._start(runId, parentRunId, stage)
  }

  handleChainEnd(outputs, runId) {
    this._end(runId)
  }

  handleChainError(error, runId) {
    this._end(runId, error)
  }

  handleToolStart(tool, input, runId, parentRunId, tags, metadata, name) {
    this._start(runId, parentRunId, stageName(name ?? tool?.id?.[tool.id.length - 1] ?? 'tool', 'tool.'))
  }

  handleToolEnd(output, runId) {
    this._end(runId)
  }

  handleToolError(error, runId) {
    this._end(runId, error)
  }

  handleLLMStart(llm, prompts, runId, parentRunId) {
    this._start(runId, parentRunId, 'llm')
  }

  handleChatModelStart(llm, messages, runId, parentRunId) {
    this._start(runId, parentRunId, 'llm')
  }

  handleLLMEnd(output, runId) {
    const usage = output?.llmOutput?.tokenUsage ?? {}
    const metrics = {}
    if (typeof usage.promptTokens === 'number') metrics.tokens_in = usage.promptTokens
    if (typeof usage.completionTokens === 'number') metrics.tokens_out = usage.completionTokens
    this._end(runId, undefined, Object.keys(metrics).length ? metrics : undefined)
  }

  handleLLMError(error, runId) {
    this._end(runId, error)
  }
}
