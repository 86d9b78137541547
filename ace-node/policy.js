'use strict'
// `Policy`: a retry, a breaker, a timeout and a fallback around a call, composed in the core's
// fixed order (ace-core/src/breaker/policy.rs): fallback ( retry ( breaker ( timeout ( call ) ) ) ).
// The retry sees each attempt after the breaker judged it, so an opening stops the retries; a
// timed-out attempt is a failure for the breaker; the fallback sees only what is left after every
// attempt. The parts are the core's (`Retry`, `Breaker`); the order, the timer and the fallback
// live here, as the waits of `Retry` do.

const { Breaker } = require('./breaker.js')
const { Retry } = require('./limits.js')
const { InvalidInputError, TimedOutError } = require('./errors.js')

const OPTIONS = new Set(['retry', 'breaker', 'timeoutSeconds', 'fallback', 'fallbackIf'])
// setTimeout's longest delay (2^31 - 1 ms); a longer one would fire at once.
const MAX_TIMEOUT_SECONDS = 2_147_483

const invalid = (field, reason) => new InvalidInputError(`invalid ${field}: ${reason}`, { field })

/**
 * Retry, breaker, timeout and fallback around a call, each optional, always applied in the same
 * order whatever order they are given in. `execute(fn)` calls `fn({ signal, attempt })` (the
 * signal aborts, with the `TimedOutError` as its reason, when the attempt's time is up: a call
 * that listens stops, one that does not finishes on its own and its result is dropped).
 */
class Policy {
  constructor(options) {
    if (options === undefined || options === null) options = {}
    if (typeof options !== 'object' || Array.isArray(options)) {
      throw invalid('options', `must be an object of options, not ${Array.isArray(options) ? 'an array' : typeof options}`)
    }
    for (const key of Object.keys(options)) {
      if (!OPTIONS.has(key)) throw invalid('options', `unknown option ${JSON.stringify(key)} (${[...OPTIONS].join(', ')})`)
    }
    const { retry, breaker, timeoutSeconds, fallback, fallbackIf } = options
    if (retry !== undefined && retry !== null && !(retry instanceof Retry)) throw invalid('retry', 'must be a Retry')
    if (breaker !== undefined && breaker !== null && !(breaker instanceof Breaker)) {
      throw invalid('breaker', 'must be a Breaker (ace.breaker(name, ...))')
    }
    if (timeoutSeconds !== undefined && timeoutSeconds !== null) {
      if (typeof timeoutSeconds !== 'number' || !Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
        throw invalid('timeoutSeconds', `must be a finite number of seconds > 0, not ${String(timeoutSeconds)}`)
      }
      if (timeoutSeconds > MAX_TIMEOUT_SECONDS) throw invalid('timeoutSeconds', `must be at most ${MAX_TIMEOUT_SECONDS} s`)
    }
    if (fallbackIf !== undefined && fallbackIf !== null && typeof fallbackIf !== 'function') {
      throw invalid('fallbackIf', 'must be a function of the error')
    }
    this._retry = retry ?? null
    this._breaker = breaker ?? null
    this._timeout = timeoutSeconds ?? null
    this._hasFallback = fallback !== undefined
    this._fallback = fallback
    this._fallbackIf = fallbackIf ?? null
    this._timeouts = 0
    this._fallbacks = 0
  }

  get retry() {
    return this._retry
  }

  get breaker() {
    return this._breaker
  }

  /** Seconds an attempt may take, or null. */
  get timeoutSeconds() {
    return this._timeout
  }

  /** `timeouts`: attempts that ran out of time; `fallbacks`: calls the fallback answered. */
  counts() {
    return { timeouts: this._timeouts, fallbacks: this._fallbacks }
  }

  /** Runs `fn({ signal, attempt })` through the policy: its value, the fallback's, or the last error. */
  async execute(fn) {
    if (typeof fn !== 'function') throw invalid('fn', 'must be a function')
    let attempts = 0
    const attempt = () => {
      const n = ++attempts
      return this._breaker ? this._breaker.call(() => this._limited(fn, n)) : this._limited(fn, n)
    }
    try {
      return await (this._retry ? this._retry.call(attempt) : attempt())
    } catch (e) {
      if (!this._hasFallback || (this._fallbackIf && !this._fallbackIf(e))) throw e
      this._fallbacks++
      return typeof this._fallback === 'function' ? await this._fallback(e) : this._fallback
    }
  }

  /** `fn` wrapped so that every call runs through the policy (returns a Promise; `fn` gets its own arguments, not the signal). */
  wrap(fn) {
    if (typeof fn !== 'function') throw invalid('fn', 'must be a function')
    const policy = this
    return function guarded(...args) {
      return policy.execute(() => fn.apply(this, args))
    }
  }

  async _limited(fn, attempt) {
    const controller = new AbortController()
    const context = { signal: controller.signal, attempt }
    if (this._timeout === null) return fn(context)
    const seconds = this._timeout
    let timer
    const expired = new Promise((_resolve, reject) => {
      timer = setTimeout(() => {
        this._timeouts++
        // ace_timeouts_total{name}: in the breaker's engine, under its name (else the retry's).
        const counted = this._breaker || this._retry
        if (counted && typeof counted._countTimeout === 'function') counted._countTimeout()
        const e = new TimedOutError(`timed out after ${seconds.toFixed(3)} s`, { timeout: seconds })
        controller.abort(e)
        reject(e)
      }, seconds * 1000)
    })
    try {
      // Promise.race subscribes to both, so a call that rejects after losing is not unhandled.
      return await Promise.race([(async () => fn(context))(), expired])
    } finally {
      clearTimeout(timer)
    }
  }
}

module.exports = { Policy }
