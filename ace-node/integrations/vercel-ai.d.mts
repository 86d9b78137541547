// Types for `agent-ace/integrations/vercel-ai.mjs`: a language-model middleware for the AI SDK,
// and a wrapper that records a `tools` object's executions as tool calls.
import type { Ace, Intervention } from '../ace.js'

export interface AceMiddlewareOptions {
  /** The agent the calls belong to (required). */
  agent: string
  /** The task id, or a function of the call's params giving one. */
  task?: string | ((params: unknown) => string)
  /** The stage name (default `llm`). */
  stage?: string
  /** A breaker name (default `llm`), or `null` for none. */
  breaker?: string | null
  /** Called with each intervention ace proposes. */
  onIntervention?: (intervention: Intervention) => void
}

/** A middleware for `wrapLanguageModel` that records each model call as a stage. */
// The AI SDK's middleware type changes between majors; this is its shape, checked by the tests.
export declare function aceMiddleware(ace: Ace, options: AceMiddlewareOptions): {
  wrapGenerate?: (...args: any[]) => Promise<any>
  wrapStream?: (...args: any[]) => Promise<any>
  [key: string]: unknown
}

/** What the AI SDK hands a tool's `execute` besides its input (`ToolExecutionOptions`). */
export interface AceToolExecution {
  toolCallId: string
  messages: unknown[]
  abortSignal?: AbortSignal
  context?: unknown
  [key: string]: unknown
}

export interface AceToolsOptions {
  /** The agent the calls belong to; without it, the current task's (`ace.task(agent, task, fn)`)
   * when `aceTools` is called. */
  agent?: string
  /** The task id, or a function of the execution options giving one; else the current task's,
   * else `default`. */
  task?: string | ((execution: AceToolExecution) => string)
  /** The stage the calls belong to (default `tool`). */
  stage?: string
  /** Called with each intervention ace proposes. */
  onIntervention?: (intervention: Intervention) => void
}

/**
 * The same tools, each with an `execute` recording its calls through `recordTool` (the tool's
 * name, the digest of its input, the duration, success); what `execute` returns or throws is
 * passed on. Tools without `execute` are returned as they are.
 */
export declare function aceTools<TOOLS extends Record<string, unknown>>(ace: Ace, tools: TOOLS, options?: AceToolsOptions): TOOLS
