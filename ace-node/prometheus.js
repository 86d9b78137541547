'use strict'
// ace's metrics in a prom-client registry, so an app that already serves /metrics exposes them
// with no extra listener:
//
//   const client = require('prom-client')
//   const { registerAce } = require('agent-ace/prometheus')
//   registerAce(client.register, ace)

/** A label value as exposed: `\\`, `\"` and `\n` undone in one pass from the left (`\\n` is `\` then `n`). */
const unescape = (v) => v.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c))

/** Parses OpenMetrics text into families: {name, type, help, samples: [{name, labels, value}]}. */
function parse(text) {
  const families = new Map()
  const family = (name) => {
    if (!families.has(name)) families.set(name, { name, type: 'untyped', help: '', samples: [] })
    return families.get(name)
  }
  const owner = (sample) => {
    for (const suffix of ['_total', '_created', '_bucket', '_sum', '_count', '_info', '']) {
      if (sample.endsWith(suffix)) {
        const base = sample.slice(0, sample.length - suffix.length)
        if (families.has(base)) return families.get(base)
      }
    }
    return family(sample)
  }
  for (const line of text.split('\n')) {
    if (line === '' || line === '# EOF') continue
    let m
    if ((m = /^# TYPE (\S+) (\S+)/.exec(line))) {
      family(m[1]).type = m[2]
    } else if ((m = /^# HELP (\S+) ?(.*)$/.exec(line))) {
      family(m[1]).help = m[2]
    } else if (!line.startsWith('#') && (m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)/.exec(line))) {
      const labels = {}
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
      let l
      while ((l = re.exec(m[3] || ''))) labels[l[1]] = unescape(l[2])
      owner(m[1]).samples.push({ name: m[1], labels, value: Number(m[4]) })
    }
  }
  return families
}

/**
 * Registers the families of `ace`'s metrics (read from `ace.metricsText()` at each scrape) into a
 * prom-client `registry`. Counters appear under their `_total` names; `_created` samples are left
 * out. Returns the names registered.
 */
function registerAce(registry, ace) {
  let cached = null
  const current = () => {
    // One parse per scrape, however many families ask.
    if (cached === null) {
      cached = ace.closed ? new Map() : parse(ace.metricsText())
      setImmediate(() => {
        cached = null
      })
    }
    return cached
  }
  const names = []
  for (const fam of parse(ace.metricsText()).values()) {
    const type = ['counter', 'gauge', 'histogram', 'summary'].includes(fam.type) ? fam.type : 'gauge'
    const name = type === 'counter' ? `${fam.name}_total` : fam.name
    registry.registerMetric({
      name,
      help: fam.help || fam.name,
      type,
      aggregator: 'sum',
      get: async () => {
        const now = current().get(fam.name)
        const values = (now ? now.samples : [])
          .filter((s) => !s.name.endsWith('_created'))
          .map((s) => ({ value: s.value, labels: s.labels, metricName: s.name === name ? undefined : s.name }))
        return { name, help: fam.help || fam.name, type, values, aggregator: 'sum' }
      },
      reset: () => {},
    })
    names.push(name)
  }
  return names
}

module.exports = { registerAce, parse }
