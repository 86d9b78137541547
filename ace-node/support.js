'use strict'
// What every module of agent-ace shares: native errors converted, options and strings checked,
// and the per-step calls written against Node-API directly (see src/raw.rs).

const native = require('./index.js')
const { InvalidInputError, convert } = require('./errors.js')

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

/** The raw per-step calls (src/raw.rs), made once for the process. */
const fast = native.fastApi()

module.exports = { call, fast, opts, strict, wait }
