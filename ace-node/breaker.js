'use strict'
// Circuit breakers: `call`, `wrap`, permits, and the JS fast path that counts successes here
// while the core says a success only counts (see `Breaker`).

const native = require('./index.js')
const { CircuitOpenError, InvalidInputError } = require('./errors.js')
const { acquireWaiting } = require('./breaker-wait.js')
const { call, fast, strict } = require('./support.js')

const tryAcquireNative = fast.breakerTryAcquire
const completeNative = fast.breakerComplete
const flushNative = fast.breakerFlush
// Breaker transitions in this process (any engine, any cause, a peer's opening included): the
// fast path asks the core again as soon as it moves. Null where Node refuses external buffers.
const breakerEpoch = fast.breakerEpoch ? new Uint32Array(fast.breakerEpoch) : null
// Calls a breaker lets through on its JS fast path before it asks the core again (see Breaker).
const SYNC_EVERY = 32
const { SUCCESS, FAILURE, IGNORED, RELEASED, judge, resultJudge, settleResult, permitResult } = require('./breaker-judge.js')

/**
 * A circuit breaker. `await breaker.call(fn, ...args)` runs `fn` through it (a throw or
 * rejection is a failure unless `isFailure(error)` says no; a returned value is one when
 * `isFailureResult(value)` says so) and throws `CircuitOpenError` when it is open.
 * `tryAcquire()` never throws: it returns a `Permit`, or `null` when the breaker turns the call
 * away (building an `Error` costs microseconds in V8).
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
    // next call asks again: a breaker opened elsewhere turns the next call away. The first
    // success after a failure is handed over at once, so the run of failures the core shares
    // with other processes (docs/architecture.md, "Shared state") is never stale.
    this._pending = 0
    this._afterFailure = false
    this._calls = 0
    this._epoch = 0
    this._fast = false
    this._fastOk = (result) => this._fastSucceeded(result)
    this._fastFail = (error) => {
      throw this._fastFailed(error)
    }
    this._sync(0)
  }

  /** Hands pending successes (and `outcome`: 1 failure, 2 ignored) to the core; refreshes `_fast`. */
  _sync(outcome) {
    const pending = this._pending
    this._pending = 0
    this._calls = 0
    this._afterFailure = outcome === FAILURE
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

  /** Runs `fn(...args)` (sync or async) through the breaker; returns a Promise of its result. */
  call(fn, ...args) {
    if (this._fast && breakerEpoch[0] === this._epoch && ++this._calls < SYNC_EVERY) {
      // The fast path is no async function: `fn`'s promise is chained once (`Promise.resolve`
      // returns a native promise as it is), where awaiting it in an `async call` made a second
      // promise and a second turn of the microtask queue for every call.
      let result
      try {
        // Without arguments, no spread (about a tenth of the call's cost).
        result = args.length === 0 ? fn() : fn(...args)
      } catch (e) {
        // Settled as a rejection, as an async function's throw is, whatever counting it throws.
        let thrown
        try {
          thrown = this._fastFailed(e)
        } catch (inner) {
          thrown = inner
        }
        return Promise.reject(thrown)
      }
      return Promise.resolve(result).then(this._fastOk, this._fastFail)
    }
    return this._call(fn, args)
  }

  /** A fast-path call that returned: a success counted here (handed over at once after a failure). */
  _fastSucceeded(result) {
    this._pending++
    if (this._afterFailure) this._sync(0)
    return result
  }

  /** A fast-path call that threw `error`: its outcome counted; returns what to throw. */
  _fastFailed(error) {
    const outcome = this._outcome(error)
    if (outcome !== SUCCESS) {
      this._sync(outcome)
    } else {
      this._pending++
      if (this._afterFailure) this._sync(0)
    }
    return this._instead(error)
  }

  /** `call` past the fast path: asks the core for a permit (waiting for a verdict if so made). */
  async _call(fn, args) {
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

module.exports = { Breaker, Permit }
