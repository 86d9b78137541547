'use strict'
// ace's metrics in a prom-client registry, so an app that already serves /metrics exposes them
// with no extra listener:
//
//   const client = require('prom-client')
//   const { registerAce } = require('agent-ace/prometheus')
//   registerAce(client.register, ace)

const { parse } = require('./exposition.js')

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
