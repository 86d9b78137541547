'use strict'
// How a breaker judges a call that threw, from its `isFailure` and `isIgnored` options, as
// resilience4j does (docs/breakers.md): an ignored error counts neither way, and an error not
// recorded as a failure counts as a success, the same meaning as Python's `is_failure`.

const { InvalidInputError } = require('./errors.js')

// A permit's outcomes, as `breakerComplete` takes them (ace-node/src/hot.rs).
const SUCCESS = 0
const FAILURE = 1
const IGNORED = 2
const RELEASED = 3

/** How a breaker judges a thrown error, from its `isFailure` and `isIgnored` options (resilience4j's
 * `recordException` and `ignoreException` predicates): ignored first, then a failure unless
 * `isFailure` says no, when it is a success. `null` when every error is a failure. */
function judge(isFailure, isIgnored) {
  for (const [field, f] of [['isFailure', isFailure], ['isIgnored', isIgnored]]) {
    if (f !== undefined && f !== null && typeof f !== 'function') {
      throw new InvalidInputError(`invalid ${field}: must be a function (error) => boolean, not ${typeof f}`, { field })
    }
  }
  if (!isFailure && !isIgnored) return null
  return (error) => (isIgnored && isIgnored(error) ? IGNORED : isFailure && !isFailure(error) ? SUCCESS : FAILURE)
}

/** The `isFailureResult` option checked: a function (value) => boolean, or `null` when none. */
function resultJudge(isFailureResult) {
  if (isFailureResult === undefined || isFailureResult === null) return null
  if (typeof isFailureResult !== 'function') {
    throw new InvalidInputError(`invalid isFailureResult: must be a function (value) => boolean, not ${typeof isFailureResult}`, { field: 'isFailureResult' })
  }
  return isFailureResult
}

/** Completes `slot` of `breaker` for a call that returned `value` (resilience4j's `recordResult`,
 * Python's `failure_result`): a failure when its `isFailureResult` says so, else a success. The
 * value is returned to the caller either way: a bad value that opens a `trippingCall:
 * 'breaker_error'` breaker throws nothing, and the rejection it left is dropped so that no later
 * error takes it. A predicate that throws is reported as a `'warning'` and the call counts as a
 * success, as in Python. */
function settleResult(breaker, slot, value, complete) {
  let bad = false
  try {
    bad = Boolean(breaker._judgeResult(value))
  } catch (e) {
    breaker._ace.listenerErrors++
    breaker._ace._warn(e)
  }
  complete(breaker._id, slot, bad ? FAILURE : SUCCESS)
  if (bad && breaker._tripping) breaker._native.takeTripped()
}

/** `Permit.prototype.result(value)`: the call returned `value`, a failure when the breaker's
 * `isFailureResult` says so, else a success (Python's `permit.result`). `complete` is the native
 * completion, `call` the wrapper that converts native errors (a permit completed twice). */
function permitResult(complete, call) {
  return function result(value) {
    const b = this._breaker
    call(() => (b._judgeResult === null ? complete(b._id, this._slot, SUCCESS) : settleResult(b, this._slot, value, complete)))
    if (b._listeners) b._emit()
  }
}

module.exports = { SUCCESS, FAILURE, IGNORED, RELEASED, judge, resultJudge, settleResult, permitResult }
