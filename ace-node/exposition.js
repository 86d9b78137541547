'use strict'
// A parser of the OpenMetrics text `ace.metricsText()` returns, into families with numeric
// samples, shared by `agent-ace/prometheus` and `agent-ace/otel`'s metric producer. It reads what
// the exposition format allows, not only what ace writes today: escaped label values (`\\`, `\"`,
// `\n`, undone in one pass from the left), `+Inf`, `-Inf` and `NaN`, a timestamp and an exemplar
// after a value, `# UNIT` lines, and samples of a family without `# TYPE`.

// A sample named <family><suffix> belongs to <family> when that family was declared.
const SUFFIXES = ['_total', '_created', '_bucket', '_count', '_sum', '_info', '_gcount', '_gsum']
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const NUMBER = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)$/
const ESCAPES = { '\\': '\\', '"': '"', n: '\n' }

/** A malformed line of metrics text: `line` is its 1-based number. */
class ExpositionError extends Error {
  constructor(message, line) {
    super(message)
    this.name = 'ExpositionError'
    this.code = 'invalid_input'
    this.field = 'text'
    this.line = line
  }
}

const unescape = (v) => v.replace(/\\(.)/g, (_, c) => ESCAPES[c] ?? `\\${c}`)

/** The number a sample's value or an `le` label spells, or undefined. */
function number(token) {
  const lowered = token.toLowerCase()
  if (lowered === '+inf' || lowered === 'inf') return Infinity
  if (lowered === '-inf') return -Infinity
  if (lowered === 'nan') return NaN
  return NUMBER.test(token) ? Number(token) : undefined
}

/** Reads `name="value",...}` from `i` (after `{`); returns [labels, index after `}`]. */
function labels(line, i) {
  const out = {}
  for (;;) {
    if (line[i] === '}') return [out, i + 1]
    const key = NAME.exec(line.slice(i))
    if (!key || line.slice(i + key[0].length, i + key[0].length + 2) !== '="') {
      throw new Error('labels are name="value" pairs')
    }
    i += key[0].length + 2
    let value = ''
    for (;;) {
      if (i >= line.length) throw new Error('a label value is not closed')
      const c = line[i]
      if (c === '"') break
      if (c === '\\') {
        if (i + 1 >= line.length) throw new Error('a label value ends in a lone backslash')
        value += ESCAPES[line[i + 1]] ?? `\\${line[i + 1]}`
        i += 2
      } else {
        value += c
        i += 1
      }
    }
    out[key[0]] = value
    i += 1
    if (line[i] === ',') i += 1
    else if (line[i] !== '}') throw new Error('labels are separated by commas and closed by }')
  }
}

function sample(line) {
  const name = NAME.exec(line)
  if (!name) throw new Error('a sample line starts with a metric name')
  let i = name[0].length
  let found = {}
  if (line[i] === '{') [found, i] = labels(line, i + 1)
  if (line[i] !== ' ') throw new Error('a space follows the name and labels')
  // The value, then optionally a timestamp and an exemplar (`# {...} v`), which are dropped.
  const token = line.slice(i + 1).split(' ', 1)[0]
  const value = number(token)
  if (value === undefined) throw new Error(`${JSON.stringify(token)} is not a number`)
  return { name: name[0], labels: found, value }
}

/**
 * The families of OpenMetrics (or Prometheus 0.0.4) text in the order they appear, keyed by
 * name: `{name, type, help, unit, samples: [{name, labels, value}]}`; `type` is `unknown` when
 * undeclared. Throws `ExpositionError` for a line that is neither a comment nor a sample.
 */
function parse(text) {
  if (typeof text !== 'string') throw new TypeError('metrics text must be a string')
  const families = new Map()
  const family = (name) => {
    if (!families.has(name)) families.set(name, { name, type: 'unknown', help: '', unit: '', samples: [] })
    return families.get(name)
  }
  const owner = (name) => {
    if (families.has(name)) return families.get(name)
    for (const suffix of SUFFIXES) {
      if (name.endsWith(suffix) && families.has(name.slice(0, -suffix.length))) {
        return families.get(name.slice(0, -suffix.length))
      }
    }
    return family(name)
  }
  const lines = text.split('\n')
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]
    if (line === '' || line === '# EOF') continue
    try {
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE|UNIT) (\S+)(?: (.*))?$/.exec(line)
        if (!m) continue // a free comment
        if (!NAME.test(m[2]) || NAME.exec(m[2])[0] !== m[2]) throw new Error(`${m[1]} names no metric`)
        const fam = family(m[2])
        const rest = m[3] ?? ''
        if (m[1] === 'HELP') fam.help = unescape(rest)
        else if (m[1] === 'TYPE') fam.type = rest.trim() || 'unknown'
        else fam.unit = rest.trim()
      } else {
        const s = sample(line)
        owner(s.name).samples.push(s)
      }
    } catch (e) {
      const shown = JSON.stringify(line.slice(0, 120))
      throw new ExpositionError(`metrics text line ${n + 1}: ${e.message} (${shown})`, n + 1)
    }
  }
  return families
}

module.exports = { parse, number, ExpositionError }
