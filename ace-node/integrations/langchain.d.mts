// Types for `agent-ace/integrations/langchain.mjs`: a LangChain.js callback handler.
import { BaseCallbackHandler } from '@langchain/core/callbacks/base'
import type { Ace, Intervention } from '../ace.js'

/** A framework name as an ace stage name (lower-case letters, digits, `_`, `-`, `.`). */
export declare function stageName(name: string, prefix?: string): string

export interface AceCallbackHandlerOptions {
  /** The agent the runs belong to (required). */
  agent: string
  /** The task id; default: the top-level run id. */
  task?: string
}

/** Records LLM calls, tool calls and chains as stages, and their errors as errors. */
export declare class AceCallbackHandler extends BaseCallbackHandler {
  name: string
  constructor(ace: Ace, options: AceCallbackHandlerOptions)
  /** Interventions ace proposed during the runs this handler saw. */
  interventions: Intervention[]
}
