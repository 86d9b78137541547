'use strict'
// `ManualClock`: the core's manual clock (ace-core/src/clock.rs), so a test can drive a breaker's
// open wait, time window and half-open limit without sleeping. `Ace.open(url, { clock })` or
// `new Ace({ clock })` builds an engine that reads it for every time-based rule. The breaker's JS
// fast path keeps no time of its own (it counts successes only while the core says a success
// only counts, and asks the core, which reads this clock, about everything else).

const native = require('./index.js')
const { InvalidInputError } = require('./errors.js')
const { call } = require('./support.js')

/** A clock that moves only when told to, in seconds since the Unix epoch. */
class ManualClock {
  /** A clock showing `start` seconds since the epoch (a finite number >= 0; default 0). */
  constructor(start = 0) {
    this._native = call(() => new native.NativeManualClock(start))
  }

  /** Moves the time forward by `seconds` (>= 0). */
  advance(seconds) {
    call(() => this._native.advance(seconds))
  }

  /** Sets the time to `seconds` since the epoch (earlier than now is allowed). */
  set(seconds) {
    call(() => this._native.set(seconds))
  }

  /** The time shown, in seconds since the epoch. */
  now() {
    return this._native.now()
  }
}

/** The native clock the engine option `clock` names, or `undefined` when it is absent. */
function nativeClock(clock) {
  if (clock === undefined || clock === null) return undefined
  if (!(clock instanceof ManualClock)) {
    const what = typeof clock === 'object' ? 'an object that is not a ManualClock' : typeof clock
    throw new InvalidInputError(`invalid clock: must be a ManualClock, not ${what}`, { field: 'clock' })
  }
  return clock._native
}

module.exports = { ManualClock, nativeClock }
