'use strict'
// The error classes of agent-ace, each with a stable `code` (the core's, or the binding's own for
// `limited` and `timed_out`), and `convert`, which turns a native error into its class. Their
// own module so that `ace.js` and `policy.js` share them without requiring each other.

class AceError extends Error {
  constructor(message, details = {}) {
    super(message)
    this.name = new.target.name
    Object.assign(this, details)
  }
}
AceError.prototype.code = 'internal'

const defineError = (name, code, base = AceError) => {
  const cls = { [name]: class extends base {} }[name]
  cls.prototype.code = code
  return cls
}
const ConfigError = defineError('ConfigError', 'config')
const InvalidInputError = defineError('InvalidInputError', 'invalid_input')
const ClosedError = defineError('ClosedError', 'closed')
const StoreError = defineError('StoreError', 'store')
const StoreUnavailableError = defineError('StoreUnavailableError', 'store_unavailable', StoreError)
const CorruptError = defineError('CorruptError', 'corrupt')
const CircuitOpenError = defineError('CircuitOpenError', 'circuit_open')
const LimitedError = defineError('LimitedError', 'limited')
const InternalError = defineError('InternalError', 'internal')
// Binding-side, as `limited`: the time of an attempt through a `Policy` ran out (`timeout`, seconds).
const TimedOutError = defineError('TimedOutError', 'timed_out')

const BY_CODE = {
  config: ConfigError,
  invalid_input: InvalidInputError,
  closed: ClosedError,
  store: StoreError,
  store_unavailable: StoreUnavailableError,
  corrupt: CorruptError,
  circuit_open: CircuitOpenError,
  limited: LimitedError,
  timed_out: TimedOutError,
  internal: InternalError,
}

// The statuses napi-rs gives an argument of the wrong type (`'x'` where a number goes).
const NAPI_TYPE_ERRORS = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
  'DateExpected',
  'ArrayBufferExpected',
])

/**
 * The error class for a native error (`ace:{json}` messages, and napi-rs's own errors for an
 * argument of the wrong type, which are `InvalidInputError`); other errors pass unchanged.
 */
function convert(e) {
  if (!(e instanceof Error) || typeof e.message !== 'string') return e
  if (!(e instanceof AceError) && NAPI_TYPE_ERRORS.has(e.code)) {
    return new InvalidInputError(e.message, { field: 'argument', cause: e })
  }
  if (!e.message.startsWith('ace:{')) return e
  let body
  try {
    body = JSON.parse(e.message.slice(4))
  } catch {
    return e
  }
  const { code, message, ...details } = body
  const cls = BY_CODE[code] || AceError
  return new cls(message, details)
}

module.exports = {
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
}
