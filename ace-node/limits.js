'use strict'
// Rate limiters, bulkheads and retries: the core decides and counts; the waits run on the event
// loop.

const native = require('./index.js')
const { CircuitOpenError, InvalidInputError, LimitedError } = require('./errors.js')
const { call, strict } = require('./support.js')

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

module.exports = { Bulkhead, RateLimiter, Retry }
