'use strict'
// agent-ace: the JS face of the native engine (index.js loads the addon). This file holds the
// engine (`Ace`), its stages and the current task; breakers are in breaker.js, rate limiters,
// bulkheads and retries in limits.js, playbooks in playbooks.js, the error classes in errors.js,
// `Policy` in policy.js, `ManualClock` in clock.js. Everything is exported from here.

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
const { call, opts, strict, wait } = require('./support.js')
const { Breaker, Permit } = require('./breaker.js')
const { Bulkhead, RateLimiter, Retry } = require('./limits.js')
const { Playbooks } = require('./playbooks.js')

const { recordError: recordErrorFast, recordStage: recordStageFast } = require('./record.js')
const recordStageNative = native.recordStage

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
      // The fast path refuses a lone surrogate itself (src/raw_str.rs), at no cost for other strings.
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
    let r
    try {
      // The fast path refuses a lone surrogate itself (src/raw_str.rs).
      r = recordErrorFast(this._h, agent, task, stage, kind, message ?? '', severity)
    } catch (e) {
      throw convert(e)
    }
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

  /** Deletes the metric, error and intervention records older than `days` days from the store, now; how many went. */
  async retain(days) {
    return wait(call(() => this._engine.retain(days)))
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

/** Replays a recorded trace file through a fresh in-memory engine; resolves to the scores. */
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
