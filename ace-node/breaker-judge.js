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

module.exports = { SUCCESS, FAILURE, IGNORED, RELEASED, judge }
