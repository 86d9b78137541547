// Types for `agent-ace/integrations/vercel-ai.mjs`: a language-model middleware for the AI SDK.
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
