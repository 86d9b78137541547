'use strict'
// agent-ace: the JS face of the native engine (index.js loads the addon). This file adds the
// idioms: `stage(..., async (s) => ...)`, intervention events, breakers' `call`, limiters' waits,
// `Retry`. The error classes are in errors.js, `Policy` in policy.js; both are exported here.
// Everything else is the core's, unchanged.

const { AsyncLocalStorage } = require('node:async_hooks')
const { randomUUID } = require('node:crypto')
const { EventEmitter } = require('node:events')
const native = require('./index.js')

const {
  AceError,
  CircuitOpenError,
  ClosedError,
  ConfigError,
  CorruptError,
  InternalError,
  InvalidInputError,
  LimitedError,
  StoreError,
  StoreUnavailableError,
  TimedOutError,
  convert,
} = require('./errors.js')
const { Policy } = require('./policy.js')
const { ManualClock, nativeClock } = require('./clock.js')
const { acquireWaiting } = require('./breaker-wait.js')

/** Calls `f`, converting a native error. */
function call(f) {
  try {
    return f()
  } catch (e) {
    throw convert(e)
  }
}

/** Options given as an object (absent or null: none); another value is an InvalidInputError. */
function opts(value, field) {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidInputError(`invalid ${field}: must be an object of options, not ${Array.isArray(value) ? 'an array' : typeof value}`, { field })
  }
  return value
}

/**
 * Refuses a string holding a lone surrogate among `values`, and in the arrays and plain objects
 * among them (keys too): UTF-8 cannot hold one, and V8 would put U+FFFD in its place, so the
 * value would be stored altered.
 */
function strict(...values) {
  for (let i = 0; i < values.length; i++) wellFormed(values[i])
}

function wellFormed(v) {
  if (typeof v === 'string') {
    if (!v.isWellFormed()) {
      throw new InvalidInputError('invalid argument: a string holding a lone surrogate (UTF-8 cannot hold it)', { field: 'argument' })
    }
  } else if (v !== null && typeof v === 'object') {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) wellFormed(v[i])
    } else if (Object.getPrototypeOf(v) === Object.prototype) {
      for (const key in v) {
        wellFormed(key)
        wellFormed(v[key])
      }
    }
  }
}

/** Awaits `p`, converting a native rejection. */
async function wait(p) {
  try {
    return await p
  } catch (e) {
    throw convert(e)
  }
}

// The per-step calls, written against Node-API directly (see src/raw.rs).
const fast = native.fastApi()
const recordStageFast = fast.recordStage
const recordStageNative = native.recordStage
const tryAcquireNative = fast.breakerTryAcquire
const completeNative = fast.breakerComplete
const flushNative = fast.breakerFlush
// Breaker transitions in this process (any engine, any cause, a peer's opening included): the
// fast path asks the core again as soon as it moves. Null where Node refuses external buffers.
const breakerEpoch = fast.breakerEpoch ? new Uint32Array(fast.breakerEpoch) : null
// Calls a breaker lets through on its JS fast path before it asks the core again (see Breaker).
const SYNC_EVERY = 32
const { SUCCESS, FAILURE, IGNORED, RELEASED, judge, resultJudge, settleResult, permitResult } = require('./breaker-judge.js')

const EMPTY_REPORT = Object.freeze({ signals: Object.freeze([]), intervention: null })

// ---- the current task ---------------------------------------------------------------------

/** The `{agent, task}` of the innermost `ace.task(...)` around the running code (across awaits). */
const currentTaskStorage = new AsyncLocalStorage()

/** The `{agent, task}` the running code works on (see `Ace.task`), or `undefined`. */
function currentTask() {
  return currentTaskStorage.getStore()
}

function freshTask(hint) {
  return `${hint}-${randomUUID().replace(/-/g, '').slice(0, 16)}`
}

/** The agent and task to record under: the ones given, else the current task's (task `undefined` when none). */
function resolveTask(agent, task, what) {
  const current = currentTaskStorage.getStore()
  if (agent === undefined || agent === null) {
    if (!current) {
      throw new InvalidInputError(`invalid agent: ${what}: give an agent, or run inside ace.task(agent, task, fn)`, {
        field: 'agent',
      })
    }
    agent = current.agent
  }
  if ((task === undefined || task === null) && current && current.agent === agent) task = current.task
  return [agent, task ?? undefined]
}

/** The arguments as JSON text for the core to canonicalise (a BigInt as its decimal string). */
function argsJson(args) {
  let text
  try {
    text = JSON.stringify(args, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
  } catch (e) {
    throw new InvalidInputError(`invalid args: not JSON-able: ${e && e.message}`, { field: 'args' })
  }
  if (text === undefined) throw new InvalidInputError('invalid args: not JSON-able', { field: 'args' })
  return text
}

/** The digest of a tool call's arguments, as `recordTool(..., { args })` computes it (16 hex digits). */
function argsDigest(args) {
  const text = argsJson(args)
  return call(() => native.argsDigestJson(text))
}

/** The digest of a tool call's arguments given as JSON text in any formatting. */
function argsDigestJson(text) {
  strict(text)
  return call(() => native.argsDigestJson(text))
}

/** Runs `fn` and `after()` once it settles (at once, or when its Promise does). */
function settle(fn, after) {
  let result
  try {
    result = fn()
  } catch (e) {
    after()
    throw e
  }
  if (result && typeof result.then === 'function') {
    return Promise.resolve(result).finally(after)
  }
  after()
  return result
}

// ---- stages -------------------------------------------------------------------------------

/** One timed stage of a task; see `Ace.stage`. */
class Stage {
  constructor(agent, task, stage) {
    this.agent = agent
    this.task = task
    this.stage = stage
    this.metrics = {}
    this.report = null
    this.errorReport = null
  }

  /** Adds a metric (`tokensIn`, `cost_usd`, ...) to the stage's record. */
  metric(name, value) {
    this.metrics[name] = value
  }
}

function errorKind(error) {
  if (error && typeof error === 'object') {
    return (error.constructor && error.constructor.name) || error.name || 'Error'
  }
  return typeof error
}

function errorMessage(error) {
  if (error instanceof Error) return error.message
  try {
    return String(error)
  } catch {
    return ''
  }
}

// ---- the engine ---------------------------------------------------------------------------

/**
 * A host reflector as the addon calls it: always a Promise (a throw becomes a rejection), of
 * insights as objects (`[section, content]` pairs converted).
 */
function asReflector(reflector) {
  if (typeof reflector !== 'function') {
    throw new InvalidInputError('invalid reflector: must be a function', { field: 'reflector' })
  }
  return (summary) =>
    Promise.resolve()
      .then(() => reflector(summary))
      .then((out) =>
        out == null || typeof out !== 'object' || typeof out[Symbol.iterator] !== 'function'
          ? (out ?? null)
          : Array.from(out, (i) => (Array.isArray(i) ? { section: i[0], content: i[1] } : i)),
      )
}

/**
 * The engine. `await Ace.open(url?, options?)` builds one on a store (`sqlite://PATH`,
 * `postgresql://...`, `redis://...` for a shared cache), `Ace.fromEnv()` from the environment,
 * `new Ace(options?)` in memory at once. Recording calls are synchronous and never wait for
 * I/O; `flush`, `close`, `health`, replay and the playbook return Promises.
 *
 * Interventions are returned by the call that caused them and emitted as `'intervention'`. A
 * listener that throws does not reach the caller (the record is stored, the breaker's
 * `CircuitOpenError` stands): its error is counted in `listenerErrors` and emitted as
 * `'warning'` (or, with no `'warning'` listener, passed to `process.emitWarning`).
 */
class Ace extends EventEmitter {
  constructor(options, _engine) {
    super()
    options = opts(options, 'options')
    /** Errors thrown by `'intervention'` listeners (reported, never thrown to the caller). */
    this.listenerErrors = 0
    if (!_engine) strict(options.config)
    this._engine = _engine || call(() => native.Engine.memory(options.config, nativeClock(options.clock)))
    this._h = this._engine.handle
    this.playbooks = new Playbooks(this._engine)
  }

  /** An engine on the store `url` names; resolves once it is connected and migrated. */
  static async open(url, options) {
    options = opts(options, 'options')
    const { embedder, clock, ...rest } = options
    if (embedder !== undefined && embedder !== null && typeof embedder !== 'function') {
      throw new InvalidInputError(`invalid embedder: must be a function (texts) => vectors, not ${typeof embedder}`, { field: 'embedder' })
    }
    strict(url, rest)
    const engine = await wait(call(() => native.Engine.open(url, rest, embedder, nativeClock(clock))))
    return new Ace(options, engine)
  }

  /** An engine configured from `DATABASE_URL`, `REDIS_URL` and `ACE_*` (default `sqlite://ace.db`). */
  static fromEnv(options) {
    return Ace.open(undefined, { ...opts(options, 'options'), fromEnv: true })
  }

  _report(r) {
    if (r === null) return EMPTY_REPORT
    if (r.intervention) this._intervene(r.intervention)
    return r
  }

  /** Emits `'intervention'` to each listener in turn; a listener's throw is reported, not thrown. */
  _intervene(intervention) {
    for (const listener of this.rawListeners('intervention')) {
      try {
        listener.call(this, intervention)
      } catch (e) {
        this.listenerErrors++
        this._warn(e)
      }
    }
  }

  /** Reports `error` as a `'warning'` event, or a process warning when nothing listens. */
  _warn(error) {
    if (this.listenerCount('warning') > 0) {
      try {
        this.emit('warning', error)
        return
      } catch {
        // A throwing 'warning' listener falls back to the process warning.
      }
    }
    const e = error instanceof Error ? error : new Error(String(error))
    process.emitWarning(`an ace listener threw: ${e.message}`, { type: 'AceListenerWarning', detail: e.stack })
  }

  /** Records a finished stage; returns `{signals, intervention}`. */
  recordStage(agent, task, stage, durationS, success = true, metrics) {
    let r
    try {
      // The fast path refuses a lone surrogate itself (src/raw.rs), at no cost for other strings.
      if (metrics !== undefined) strict(agent, task, stage, metrics)
      r =
        metrics === undefined
          ? recordStageFast(this._h, agent, task, stage, durationS, success)
          : recordStageNative(this._h, agent, task, stage, durationS, success, metrics)
    } catch (e) {
      throw convert(e)
    }
    return r === null ? EMPTY_REPORT : this._report(r)
  }

  /**
   * Records a tool call: `tool` called (in `stage`, `tool` by default), how long it took and
   * whether it succeeded, with the digest of its arguments: computed from `args` (canonical JSON,
   * keys sorted, by the core), or given as `argsDigest`. The arguments are never kept.
   * `agentId`/`taskId` `null` take the current task's (`ace.task(...)`).
   */
  recordTool(agentId, taskId, tool, durationS, success = true, options = {}) {
    const { args, argsDigest: digest, stage } = options || {}
    if (agentId === undefined || agentId === null || taskId === undefined || taskId === null) {
      ;[agentId, taskId] = resolveTask(agentId, taskId, 'recordTool')
      if (taskId === undefined) {
        throw new InvalidInputError('invalid taskId: recordTool: give a task, or run inside ace.task(agent, task, fn)', {
          field: 'taskId',
        })
      }
    }
    const json = args === undefined ? undefined : argsJson(args)
    strict(agentId, taskId, tool, digest, stage)
    const r = call(() => this._engine.recordTool(agentId, taskId, tool, durationS, success, json, digest, stage))
    return this._report(r)
  }

  /**
   * Runs `fn()` with `(agentId, taskId)` as the current task: inside it (across awaits),
   * `stage(...)` and `recordTool(...)` given no agent or task record under it. Calls nest (the
   * innermost wins). `taskId` `null` makes a fresh id. The task is ended (`endTask`) when `fn`
   * settles, unless `{ end: false }` is passed before `fn`. Returns (a Promise of) what `fn`
   * returns.
   */
  task(agentId, taskId, fn, maybeFn) {
    let options = {}
    if (typeof fn !== 'function' && typeof maybeFn === 'function') {
      options = fn || {}
      fn = maybeFn
    }
    if (typeof fn !== 'function') throw new InvalidInputError('invalid fn: pass the function to run', { field: 'fn' })
    if (typeof agentId !== 'string') throw new InvalidInputError('invalid agentId: must be a string', { field: 'agentId' })
    const task = taskId === undefined || taskId === null ? freshTask('task') : taskId
    const end = options.end !== false
    return currentTaskStorage.run({ agent: agentId, task }, () =>
      settle(fn, () => {
        if (!end) return
        try {
          this.endTask(agentId, task)
        } catch (e) {
          this._warn(e)
        }
      }),
    )
  }

  /** Records one named metric of a stage without an outcome. */
  recordMetric(agent, task, stage, name, value) {
    strict(agent, task, stage, name)
    return this._report(call(() => this._engine.recordMetric(agent, task, stage, name, value)))
  }

  /** Records an error: an `Error` (its class name is the kind) or a kind and a message. */
  recordError(agent, task, stage, error, message, severity) {
    let kind = error
    if (typeof error !== 'string') {
      kind = errorKind(error)
      if (message === undefined || message === null) message = errorMessage(error)
    }
    strict(agent, task, stage, kind, message, severity)
    const r = call(() => this._engine.recordError(agent, task, stage, kind, message ?? '', severity))
    if (r.intervention) this._intervene(r.intervention)
    return r
  }

  /**
   * Runs `fn(stage)` as a timed stage: its duration and success are recorded when it settles;
   * a throw (or rejection) marks it failed, is recorded as an error, and is rethrown. Returns
   * (a Promise of) what `fn` returns.
   *
   * `agent` or `task` `null`: the current task's (`ace.task(...)`); with no current task, the
   * stage is a task of its own with a fresh id, current while `fn` runs and ended when it settles.
   */
  stage(agent, task, stage, fn) {
    if (agent === undefined || agent === null || task === undefined || task === null) {
      ;[agent, task] = resolveTask(agent, task, 'stage')
      if (task === undefined) {
        const fresh = freshTask(stage)
        return currentTaskStorage.run({ agent, task: fresh }, () =>
          settle(
            () => this.stage(agent, fresh, stage, fn),
            () => {
              try {
                this.endTask(agent, fresh)
              } catch (e) {
                this._warn(e)
              }
            },
          ),
        )
      }
    }
    const s = new Stage(agent, task, stage)
    const started = process.hrtime.bigint()
    const finish = (error) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      const failed = error !== undefined
      try {
        if (failed) s.errorReport = this.recordError(agent, task, stage, error)
        const metrics = Object.keys(s.metrics).length ? s.metrics : undefined
        s.report = this.recordStage(agent, task, stage, seconds, !failed, metrics)
      } catch (e) {
        if (!failed) throw e
        // The stage's own error is the one the caller needs; recording it failed.
        this._warn(e)
      }
    }
    let result
    try {
      result = fn(s)
    } catch (e) {
      finish(e)
      throw e
    }
    if (result && typeof result.then === 'function') {
      return Promise.resolve(result).then(
        (v) => {
          finish(undefined)
          return v
        },
        (e) => {
          finish(e === undefined ? new Error('rejected with undefined') : e)
          throw e
        },
      )
    }
    finish(undefined)
    return result
  }

  endTask(agent, task, success) {
    strict(agent, task)
    return call(() => this._engine.endTask(agent, task, success))
  }

  refreshContext(agent) {
    strict(agent)
    return call(() => this._engine.refreshContext(agent))
  }

  contextStaleness(agent) {
    strict(agent)
    return call(() => this._engine.contextStaleness(agent))
  }

  /** Reports whether an intervention (or its id) worked. */
  reportOutcome(intervention, success) {
    const id = typeof intervention === 'object' && intervention !== null ? intervention.id : intervention
    strict(id)
    return call(() => this._engine.reportOutcome(String(id), success))
  }

  baseline(agent, stage, metric = 'duration_s') {
    strict(agent, stage, metric)
    return call(() => this._engine.baseline(agent, stage, metric))
  }

  /** The error patterns the live miner holds, most frequent first. */
  patterns() {
    return call(() => this._engine.patterns())
  }

  /** The error patterns the store holds (other processes' too, on a shared store). */
  async storedPatterns() {
    return wait(call(() => this._engine.storedPatterns()))
  }

  /** The newest signals this engine raised, newest first (held in memory): `{ agent, limit }`. */
  recentSignals({ agent, limit } = {}) {
    return call(() => this._engine.recentSignals(agent, limit))
  }

  /**
   * Serves the live page (`/`), its JSON (`/api/`), `/metrics` and `/health` of this engine on
   * `addr` (default `127.0.0.1:9464`, loopback; port 0 picks one) on a background thread until
   * `server.stop()` or `close()`. `options.token` requires `Authorization: Bearer <token>`.
   */
  serve(addr = '127.0.0.1:9464', options = {}) {
    strict(addr, options)
    return call(() => this._engine.serve(addr, options))
  }

  /**
   * Reflects on `agent`'s `task`: `reflector(summary)` gets a bounded text summary of what the
   * engine saw of it and returns insights (`{section, content, provenance?}` or
   * `[section, content]`, or a Promise of them), merged into `domain` (the agent's by default) at
   * shadow. Resolves to `{summary, report}`, or `null` when `ACE_REFLECT_PER_MINUTE` was reached.
   * Runs on the libuv pool; the reflector runs on the JS thread.
   */
  async reflect(agent, task, reflector, { domain } = {}) {
    return wait(call(() => this._engine.reflect(agent, task, asReflector(reflector), domain)))
  }

  /**
   * Reflects with `reflector` on every task that ends failed from now on (`endTask(agent, task,
   * false)`), on a thread of the engine's; insights go to `domain` (each agent's own by default).
   * A second call replaces the reflector.
   */
  reflectOnFailure(reflector, { domain } = {}) {
    return call(() => this._engine.reflectOnFailure(asReflector(reflector), domain))
  }

  /** The newest interventions the store holds, newest first: `{ since, agent, limit }`. */
  async interventions(query) {
    const { since, agent, limit } = opts(query, 'query')
    strict(agent)
    return wait(call(() => this._engine.interventions(since, agent, limit)))
  }

  /** The newest errors the store holds, newest first: `{ since, agent, limit }`. */
  async errors(query) {
    const { since, agent, limit } = opts(query, 'query')
    strict(agent)
    return wait(call(() => this._engine.errors(since, agent, limit)))
  }

  metricsText() {
    this._syncBreakers()
    return this._engine.metricsText()
  }

  stats() {
    return this._engine.stats()
  }

  health() {
    this._syncBreakers()
    return wait(this._engine.health())
  }

  async flush() {
    await wait(this._engine.flush())
  }

  async close() {
    this._syncBreakers()
    await wait(this._engine.close())
  }

  get closed() {
    return this._engine.closed
  }

  get backend() {
    return this._engine.backend
  }

  breakerStates() {
    return this._engine.breakerStates()
  }

  /** The retry `name` of this engine (options as `new Retry`'s, applied when it is first made):
   * its counts are the series `ace_retry_calls_total` and `ace_retry_attempts_total`. */
  retry(name, options) {
    return new Retry(name, options, this)
  }

  /** The circuit breaker `name` (options apply when it is first made; one object per name). */
  breaker(name, options) {
    if (!this._breakers) this._breakers = new Map()
    let b = this._breakers.get(name)
    if (!b) {
      b = new Breaker(this, name, options)
      this._breakers.set(name, b)
    }
    return b
  }

  _syncBreakers() {
    if (this._breakers) for (const b of this._breakers.values()) b._sync(0)
  }

  /** The rate limiter `name`: `perSecond` tokens a second, at most `burst` at once. */
  rateLimiter(name, perSecond, burst) {
    return new RateLimiter(this, name, perSecond, burst)
  }

  /** The bulkhead `name`: at most `maxConcurrent` calls at once. */
  bulkhead(name, maxConcurrent) {
    return new Bulkhead(this, name, maxConcurrent)
  }
}

// ---- breakers and limits ------------------------------------------------------------------

/**
 * A circuit breaker. `await breaker.call(fn, ...args)` runs `fn` through it (a throw is a failure
 * unless `isFailure(error)` says no, a value is one when `isFailureResult(value)` says so) and
 * throws `CircuitOpenError` when it is open; `tryAcquire()` returns a `Permit` or `null` (no Error).
 */
class Breaker {
  constructor(ace, name, options = {}) {
    const { isFailure, isIgnored, isFailureResult, ...rest } = options || {}
    strict(name, rest)
    this._judge = judge(isFailure, isIgnored)
    this._judgeResult = resultJudge(isFailureResult) // returned values judged: no JS fast path
    this._ace = ace
    this._native = call(() => new native.NativeBreaker(ace._engine, name, Object.keys(rest).length ? rest : undefined))
    this._id = this._native.id
    // `halfOpenBusy: 'wait'`: `call` waits for a busy trial's verdict (see breaker-wait.js).
    this._waits = this._native.waitsForVerdict
    this._recheckMs = this._waits ? this._native.recheckMs : null
    this._tripping = rest.trippingCall === 'breaker_error'
    this._listeners = null
    // The JS fast path: while the core says a success only counts (a closed breaker judging
    // failures in a row, timing nothing), successes are counted here and handed over with the
    // next failure or every SYNC_EVERY calls. Any breaker transition in the process (a peer's
    // opening through the shared cache, a hand, another handle) moves `breakerEpoch`, and the
    // next call asks again: a breaker opened elsewhere turns the next call away.
    this._pending = 0
    this._calls = 0
    this._epoch = 0
    this._fast = false
    this._sync(0)
  }

  /** Hands pending successes (and `outcome`: 1 failure, 2 ignored) to the core; refreshes `_fast`. */
  _sync(outcome) {
    const pending = this._pending
    this._pending = 0
    this._calls = 0
    // Read before asking: a transition racing with the flush is seen by the next call.
    this._epoch = breakerEpoch === null ? 0 : breakerEpoch[0]
    this._fast = flushNative(this._id, pending, outcome) === 1 && breakerEpoch !== null && this._judgeResult === null
    if (this._listeners) this._emit()
  }

  get name() {
    return this._native.name
  }

  get state() {
    return this._native.state
  }

  /** A `Permit` (complete it with `success()`, `failure()` or `error(e)`), or `null`. */
  tryAcquire(agent, task) {
    if (this._pending) this._sync(0)
    if (agent !== undefined || task !== undefined) strict(agent, task)
    const slot = agent === undefined && task === undefined ? tryAcquireNative(this._id) : call(() => this._native.tryAcquire(agent, task))
    if (slot < 0) {
      const r = this._native.takeRejection()
      if (r && r.intervention) this._ace._intervene(r.intervention)
      return null
    }
    return new Permit(this, slot)
  }

  /** Like `tryAcquire`, but throws `CircuitOpenError` (with the intervention, given a task). */
  acquire(agent, task) {
    if (this._pending) this._sync(0)
    strict(agent, task)
    const slot = call(() => this._native.tryAcquire(agent, task))
    if (slot < 0) throw this._rejected()
    return new Permit(this, slot)
  }

  _rejected() {
    const r = this._native.takeRejection() || { message: `circuit breaker '${this.name}' is open` }
    if (r.intervention) this._ace._intervene(r.intervention)
    const { message, ...details } = r
    if (this._listeners) this._emit()
    return new CircuitOpenError(message, details)
  }

  /** What a call that threw `error` is: FAILURE, SUCCESS (`isFailure` said no) or IGNORED. A
   * predicate that throws is reported as a `'warning'` and the call counts as a failure. */
  _outcome(error) {
    if (this._judge === null) return FAILURE
    try {
      return this._judge(error)
    } catch (e) {
      this._ace.listenerErrors++
      this._ace._warn(e)
      return FAILURE
    }
  }

  _countTimeout() {
    call(() => this._native.countTimeout())
  }

  _settle(slot, error) {
    completeNative(this._id, slot, this._outcome(error))
    if (this._listeners) this._emit()
  }

  /** Calls `listener(event)` for each of this breaker's events (`BreakerEvent` in ace.d.ts), after
   * the breaker call that caused them returns (those caused elsewhere, with this handle's next
   * call); a listener's throw is reported, never thrown. */
  onEvent(listener) {
    if (typeof listener !== 'function') {
      throw new InvalidInputError(`listener must be a function, not ${typeof listener}`, { field: 'listener' })
    }
    if (!this._listeners) {
      this._listeners = []
      this._native.subscribe()
    }
    this._listeners.push(listener)
  }

  _emit() {
    for (const event of this._native.takeEvents()) {
      for (const listener of this._listeners) {
        try {
          listener(event)
        } catch (e) {
          this._ace.listenerErrors++
          this._ace._warn(e)
        }
      }
    }
  }

  /** What to throw for a call that failed with `error`: the breaker's `CircuitOpenError` (its
   * `cause` the error) when that failure opened a breaker made with `trippingCall: 'breaker_error'`. */
  _instead(error) {
    const r = this._tripping ? this._native.takeTripped() : null
    if (!r) return error
    const { message, ...details } = r
    return new CircuitOpenError(message, { ...details, cause: error })
  }

  /** Runs `fn(...args)` (sync or async) through the breaker. */
  async call(fn, ...args) {
    if (this._fast && breakerEpoch[0] === this._epoch && ++this._calls < SYNC_EVERY) {
      let result
      try {
        result = await fn(...args)
      } catch (e) {
        const outcome = this._outcome(e)
        if (outcome === SUCCESS) this._pending++
        else this._sync(outcome)
        throw this._instead(e)
      }
      this._pending++
      return result
    }
    if (this._fast) {
      this._sync(0)
      if (this._fast) return this.call(fn, ...args)
    }
    const id = this._id
    const slot = this._waits ? await acquireWaiting(id, this._recheckMs) : tryAcquireNative(id)
    if (slot < 0) throw this._rejected()
    let result
    try {
      result = await fn(...args)
    } catch (e) {
      this._settle(slot, e)
      throw this._instead(e)
    }
    if (this._judgeResult === null) completeNative(id, slot, SUCCESS)
    else settleResult(this, slot, result, completeNative)
    if (this._listeners) this._emit()
    if (++this._calls >= SYNC_EVERY) this._sync(0)
    return result
  }

  /** `fn` wrapped so that every call goes through the breaker (returns a Promise). */
  wrap(fn) {
    const breaker = this
    return function guarded(...args) {
      return breaker.call(() => fn.apply(this, args))
    }
  }

  snapshot() {
    this._sync(0)
    return this._native.snapshot()
  }

  openFor(seconds) {
    call(() => this._native.openFor(seconds))
    this._sync(0)
  }

  openUntil(epochSeconds) {
    call(() => this._native.openUntil(epochSeconds))
    this._sync(0)
  }

  halfOpen() {
    this._sync(0)
    this._native.halfOpen()
    this._sync(0)
  }

  close() {
    this._native.close()
    this._sync(0)
  }

  reset() {
    this._sync(0)
    this._native.reset()
    this._sync(0)
  }

  disable() {
    this._native.disable()
    this._sync(0)
  }

  forceOpen() {
    this._native.forceOpen()
    this._sync(0)
  }

  metricsOnly() {
    this._native.metricsOnly()
    this._sync(0)
  }
}

/** Leave for one call through a breaker (`result(value)`: see breaker-judge.js). */
class Permit {
  constructor(breaker, slot) {
    this._breaker = breaker
    this._slot = slot
  }

  success() {
    call(() => completeNative(this._breaker._id, this._slot, SUCCESS))
    if (this._breaker._listeners) this._breaker._emit()
  }

  failure() {
    call(() => completeNative(this._breaker._id, this._slot, FAILURE))
    if (this._breaker._listeners) this._breaker._emit()
  }

  /** The call threw `error`: a failure unless the breaker's `isFailure` says otherwise. Returns
   * the `CircuitOpenError` to throw instead when `error` opened a breaker made with
   * `trippingCall: 'breaker_error'`, else `undefined`. */
  error(error) {
    call(() => this._breaker._settle(this._slot, error))
    const instead = this._breaker._instead(error)
    return instead === error ? undefined : instead
  }

  /** Gives the permit back without a result (a cancelled call). */
  release() {
    call(() => completeNative(this._breaker._id, this._slot, RELEASED))
  }
}

Permit.prototype.result = permitResult(completeNative, call)

/** A token bucket. */
class RateLimiter {
  constructor(ace, name, perSecond, burst) {
    strict(name)
    this._native = call(() => new native.NativeRateLimiter(ace._engine, name, perSecond, burst))
  }

  get name() {
    return this._native.name
  }

  get rejected() {
    return this._native.rejected
  }

  /** Takes a token if one is there; never waits. */
  tryAcquire() {
    return this._native.tryAcquire() === 0
  }

  /** Waits for a token; rejects with `LimitedError` if none comes within `timeoutSeconds`. */
  async acquire(timeoutSeconds) {
    if (timeoutSeconds !== undefined && timeoutSeconds !== null) {
      if (typeof timeoutSeconds !== 'number') {
        throw new InvalidInputError(`timeout must be a number of seconds, not ${typeof timeoutSeconds}`, { field: 'timeout' })
      }
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) {
        throw new InvalidInputError(`timeout must be a finite number of seconds >= 0, got ${timeoutSeconds}`, { field: 'timeout' })
      }
    }
    const deadline = timeoutSeconds === undefined || timeoutSeconds === null ? Infinity : Date.now() + timeoutSeconds * 1000
    for (;;) {
      const wait = this._native.tryAcquire()
      if (wait === 0) return
      if (Date.now() + wait * 1000 > deadline) {
        throw new LimitedError(`rate limiter '${this.name}' has no token`, { limiter: this.name, retryAfter: wait })
      }
      // setTimeout holds at most 2^31 - 1 ms (about 24.8 days); a longer wait sleeps again.
      await new Promise((resolve) => setTimeout(resolve, Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(wait * 1000)))))
    }
  }
}

/** The longest delay `setTimeout` takes; a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** At most `maxConcurrent` calls at once. */
class Bulkhead {
  constructor(ace, name, maxConcurrent) {
    strict(name)
    this._native = call(() => new native.NativeBulkhead(ace._engine, name, maxConcurrent))
  }

  get name() {
    return this._native.name
  }

  get inFlight() {
    return this._native.inFlight
  }

  get rejected() {
    return this._native.rejected
  }

  /** Runs `fn` if a place is free (else rejects with `LimitedError`), giving it back after. */
  async run(fn) {
    if (!this._native.tryEnter()) {
      throw new LimitedError(`bulkhead '${this.name}' is full`, { limiter: this.name })
    }
    try {
      return await fn()
    } finally {
      this._native.leave()
    }
  }
}

// ---- playbooks ----------------------------------------------------------------------------

/** The engine's playbooks, one per domain; every call returns a Promise. */
class Playbooks {
  constructor(engine) {
    this._native = new native.NativePlaybooks(engine)
  }

  async add(domain, section, content, provenance) {
    strict(domain, section, content, provenance)
    return wait(call(() => this._native.add(domain, section, content, provenance)))
  }

  async update(domain, id, changes) {
    const { section, content } = opts(changes, 'changes')
    strict(domain, id, section, content)
    return wait(call(() => this._native.update(domain, id, section, content)))
  }

  async remove(domain, id) {
    strict(domain, id)
    return wait(call(() => this._native.remove(domain, id)))
  }

  async feedback(domain, id, feedback) {
    strict(domain, id, feedback)
    return wait(call(() => this._native.feedback(domain, id, feedback)))
  }

  /** Insights as `{section, content, provenance?}` objects or `[section, content]` pairs. */
  async merge(domain, insights) {
    if (insights === null || insights === undefined || typeof insights[Symbol.iterator] !== 'function' || typeof insights === 'string') {
      throw new InvalidInputError('invalid insights: must be an iterable of {section, content} objects or [section, content] pairs', { field: 'insights' })
    }
    const list = Array.from(insights, (i) => (Array.isArray(i) ? { section: i[0], content: i[1] } : i))
    strict(domain, list)
    return wait(call(() => this._native.merge(domain, list)))
  }

  async retrieve(domain, query, options) {
    const { k = 5, minStage = 'staging' } = opts(options, 'options')
    strict(domain, query, minStage)
    return wait(call(() => this._native.retrieve(domain, query, k, minStage)))
  }

  async render(domain, options) {
    const { query, k = 20, minStage = 'staging', tokenBudget = 2000 } = opts(options, 'options')
    strict(domain, query, minStage)
    return wait(call(() => this._native.render(domain, query, k, minStage, tokenBudget)))
  }

  async bullets(domain) {
    strict(domain)
    return wait(call(() => this._native.bullets(domain)))
  }

  async bullet(domain, id) {
    strict(domain, id)
    return wait(call(() => this._native.bullet(domain, id)))
  }

  async stats(domain) {
    strict(domain)
    return wait(call(() => this._native.stats(domain)))
  }

  async rollback(domain, version) {
    strict(domain)
    return wait(call(() => this._native.rollback(domain, version)))
  }

  async exportText(domain) {
    strict(domain)
    return wait(call(() => this._native.exportText(domain)))
  }

  async exportJson(domain) {
    strict(domain)
    return wait(call(() => this._native.exportJson(domain)))
  }

  /** Unless `trusted`, the export's digest must match (CorruptError) and bullets enter at shadow. */
  async importJson(domain, json, options) {
    const { trusted = false } = opts(options, 'options')
    strict(domain, json)
    return wait(call(() => this._native.importJson(domain, json, trusted)))
  }

  /** Unless `trusted`, bullets enter at shadow with their counters ignored. */
  async importText(domain, text, options) {
    const { trusted = false } = opts(options, 'options')
    strict(domain, text)
    return wait(call(() => this._native.importText(domain, text, trusted)))
  }

  /** Every version of the domain's log (chain verified): `{version, at, op, note}`. */
  async history(domain) {
    strict(domain)
    return wait(call(() => this._native.history(domain)))
  }
}

/** Replays a recorded trace file through a fresh in-memory engine; resolves to the scores. */
/**
 * Retries a call that threw or rejected: `maxAttempts` in all (3), waiting `waitSeconds` (0.5)
 * growing by `multiplier` (2) up to `maxWaitSeconds` (30), each wait spread by `jitter` (0.5).
 * Errors are retried when `retryIf(error)` says so (default: all); a `CircuitOpenError` only
 * with `retryRejected: true`. The core decides and counts; the waits run on the event loop
 * (`sleep(seconds)` replaces the timer, a test's fake clock). Wrap a breaker's call inside it so
 * the breaker judges every attempt.
 */
class Retry {
  constructor(name, options = {}, _ace) {
    const { retryIf, sleep, ...rest } = options || {}
    strict(name, rest)
    const engine = _ace ? _ace._engine : undefined
    this._native = call(() => new native.NativeRetry(name, Object.keys(rest).length ? rest : undefined, engine))
    this._retryIf = typeof retryIf === 'function' ? retryIf : null
    this._sleep = typeof sleep === 'function' ? sleep : (s) => new Promise((resolve) => setTimeout(resolve, s * 1000))
  }

  get name() {
    return this._native.name
  }

  /** The wait before retry number `retry` (1 for the first), in seconds, jitter applied. */
  wait(retry) {
    return call(() => this._native.wait(retry))
  }

  counts() {
    return this._native.counts()
  }

  _countTimeout() {
    call(() => this._native.countTimeout())
  }

  /** Runs `fn(...args)` (sync or async), retried as configured; rejects with the last error. */
  async call(fn, ...args) {
    for (let attempt = 1; ; attempt++) {
      let result
      try {
        result = await fn(...args)
      } catch (e) {
        const rejected = e instanceof CircuitOpenError
        const kind = rejected ? null : (e && e.constructor && e.constructor.name) || 'Error'
        const retryable = rejected || !this._retryIf || Boolean(this._retryIf(e))
        const wait = this._native.afterFailure(kind, String((e && e.message) || e), attempt, retryable)
        if (wait === null || wait === undefined) throw e
        await this._sleep(wait)
        continue
      }
      this._native.afterSuccess(attempt)
      return result
    }
  }

  /** `fn` wrapped so that every call is retried (returns a Promise). */
  wrap(fn) {
    const retry = this
    return function retried(...args) {
      return retry.call(() => fn.apply(this, args))
    }
  }
}

async function replay(path, config) {
  strict(path, config)
  return wait(call(() => native.replay(path, config)))
}

module.exports = {
  Ace,
  AceError,
  Breaker,
  Bulkhead,
  CircuitOpenError,
  ClosedError,
  ConfigError,
  CorruptError,
  InternalError,
  InvalidInputError,
  LimitedError,
  ManualClock,
  Permit,
  Playbooks,
  Policy,
  RateLimiter,
  Retry,
  Stage,
  StoreError,
  StoreUnavailableError,
  TimedOutError,
  argsDigest,
  argsDigestJson,
  currentTask,
  replay,
  version: native.version(),
}
