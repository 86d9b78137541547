// Types of `Policy` (policy.js), re-exported by ace.d.ts: retry, breaker, timeout and fallback
// around a call, in the core's order fallback ( retry ( breaker ( timeout ( call ) ) ) ).
import type { Breaker, Retry } from './ace.js'

/** What `execute` hands the call: a signal aborted when the attempt's time is up, and the attempt's number (1 for the first). */
export interface PolicyContext {
  signal: AbortSignal
  attempt: number
}

export interface PolicyOptions<F = never> {
  /** Retries each failed attempt (outside the breaker, so an opening stops the retries). */
  retry?: Retry | null
  /** Judges every attempt; a timed-out attempt is a failure. */
  breaker?: Breaker | null
  /** The longest one attempt may take, in seconds (finite, > 0). */
  timeoutSeconds?: number | null
  /** What a call that failed after every attempt returns: a value, or a function of the last error. */
  fallback?: F | ((error: unknown) => F | Promise<F>)
  /** Whether the fallback answers for an error (default: every error). */
  fallbackIf?: ((error: unknown) => boolean) | null
}

/**
 * Retry, breaker, timeout and fallback around a call, each optional, applied in one fixed order
 * whatever order they are given in: fallback ( retry ( breaker ( timeout ( call ) ) ) ).
 */
export declare class Policy<F = never> {
  constructor(options?: PolicyOptions<F>)
  readonly retry: Retry | null
  readonly breaker: Breaker | null
  readonly timeoutSeconds: number | null
  /** `timeouts`: attempts that ran out of time; `fallbacks`: calls the fallback answered. */
  counts(): { timeouts: number; fallbacks: number }
  /** Runs `fn({ signal, attempt })` through the policy: its value, the fallback's, or the last error. */
  execute<T>(fn: (context: PolicyContext) => T | Promise<T>): Promise<T | F>
  /** `fn` wrapped so that every call runs through the policy (`fn` gets its own arguments, not the signal). */
  wrap<T, A extends unknown[]>(fn: (...args: A) => T | Promise<T>): (...args: A) => Promise<T | F>
}
