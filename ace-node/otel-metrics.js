'use strict'
// ace's metrics to an OTLP backend through the application's own OpenTelemetry SDK: a
// `MetricProducer` for `@opentelemetry/sdk-metrics` that turns the engine's families
// (`ace.metricsText()`) into OpenTelemetry metric data at each collection.
//
//   const { PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics')
//   const { AceMetricProducer } = require('agent-ace/otel')
//   const reader = new PeriodicExportingMetricReader({
//     exporter: new OTLPMetricExporter(),
//     metricProducers: [new AceMetricProducer(ace)],
//   })
//
// The mapping is the one of `ace.integrations.otel` (Python): a counter becomes a monotonic
// cumulative sum named after the family (without `_total`), a gauge (or an undeclared family) a
// gauge, a histogram a cumulative histogram with the same bucket bounds (no min and max: the
// exposition has none); labels become attributes, the family's help its description, `# UNIT`
// (or a `_seconds` / `_bytes` name) its unit; the scope is `ace` at the package's version, the
// resource the reader's provider's. Other types (summary, info, stateset) are left out and counted.

const { parse, number } = require('./exposition.js')

// The numeric enums of @opentelemetry/sdk-metrics and @opentelemetry/api, written here so that
// requiring agent-ace/otel needs neither package.
const DataPointType = { HISTOGRAM: 0, GAUGE: 2, SUM: 3 }
const CUMULATIVE = 1 // AggregationTemporality.CUMULATIVE
const DOUBLE = 1 // ValueType.DOUBLE
const UNITS = [
  ['_seconds', 's'],
  ['_bytes', 'By'],
  ['_ratio', '1'],
]

let version = '0.0.0'
try {
  version = require('./package.json').version
} catch {
  // A bundler that dropped package.json: the scope still names ace.
}

const hrTime = (ms) => {
  const seconds = Math.floor(ms / 1000)
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)]
}
const key = (labels) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

/** A `MetricProducer` for `@opentelemetry/sdk-metrics` that reads `ace.metricsText()` at each
 * collection. `collect()` never throws: a failure comes back in `errors` (the reader reports it)
 * with no metrics of ace, and is counted in `counts.failed`. */
class AceMetricProducer {
  constructor(ace, options = {}) {
    if (!ace || typeof ace.metricsText !== 'function') {
      throw new TypeError('AceMetricProducer takes an agent-ace Ace engine')
    }
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
    const { startTime, resource } = options
    if (startTime !== undefined && !(startTime instanceof Date || (Number.isFinite(startTime) && startTime >= 0))) {
      throw new TypeError('startTime must be a Date or a non-negative number of milliseconds since the epoch')
    }
    this.ace = ace
    this.resource = resource ?? defaultResource()
    this.scope = { name: 'ace', version }
    /** When cumulative points start (unless the exposition has a `_created` sample). */
    this.startTime = hrTime(startTime === undefined ? Date.now() : Number(startTime))
    this.counts = { collections: 0, failed: 0, unmapped: 0 }
  }

  /** The engine's metrics now: `{ resourceMetrics: { resource, scopeMetrics }, errors }`. */
  async collect(_options) {
    const scopeMetrics = []
    const errors = []
    try {
      if (!this.ace.closed) {
        const metrics = this.metrics(this.ace.metricsText())
        scopeMetrics.push({ scope: this.scope, metrics })
        this.counts.collections += 1
      }
    } catch (e) {
      this.counts.failed += 1
      errors.push(e)
    }
    return { resourceMetrics: { resource: this.resource, scopeMetrics }, errors }
  }

  /** The metric data of an exposition text (throws on malformed text). */
  metrics(text) {
    const now = hrTime(Date.now())
    const out = []
    for (const family of parse(text).values()) {
      const metric = this.metric(family, now)
      if (metric === null) this.counts.unmapped += 1
      else if (metric.dataPoints.length > 0) out.push(metric)
    }
    return out
  }

  metric(family, now) {
    const descriptor = { name: family.name, description: family.help, unit: unit(family), valueType: DOUBLE }
    switch (family.type) {
      case 'counter':
        return {
          descriptor,
          aggregationTemporality: CUMULATIVE,
          dataPointType: DataPointType.SUM,
          isMonotonic: true,
          dataPoints: this.numbers(family, now, '_total'),
        }
      case 'gauge':
      case 'unknown':
      case 'untyped':
        return {
          descriptor,
          aggregationTemporality: CUMULATIVE,
          dataPointType: DataPointType.GAUGE,
          dataPoints: this.numbers(family, now, ''),
        }
      case 'histogram':
        return {
          descriptor,
          aggregationTemporality: CUMULATIVE,
          dataPointType: DataPointType.HISTOGRAM,
          dataPoints: this.histograms(family, now),
        }
      default:
        return null
    }
  }

  starts(family) {
    const starts = new Map()
    for (const s of family.samples) {
      if (s.name === `${family.name}_created` && Number.isFinite(s.value) && s.value >= 0) {
        starts.set(key(s.labels), hrTime(s.value * 1000))
      }
    }
    return starts
  }

  numbers(family, now, suffix) {
    const starts = this.starts(family)
    return family.samples
      .filter((s) => s.name === family.name + suffix)
      .map((s) => ({
        startTime: starts.get(key(s.labels)) ?? this.startTime,
        endTime: now,
        attributes: { ...s.labels },
        value: s.value,
      }))
  }

  histograms(family, now) {
    const starts = this.starts(family)
    const series = new Map()
    for (const s of family.samples) {
      const suffix = s.name.slice(family.name.length)
      const { le, ...labels } = s.labels
      const k = key(labels)
      if (!series.has(k)) series.set(k, { labels, buckets: [], sum: 0, count: undefined })
      const one = series.get(k)
      if (suffix === '_bucket') {
        const bound = le === undefined ? undefined : number(le)
        if (bound !== undefined && !Number.isNaN(bound)) one.buckets.push([bound, s.value])
      } else if (suffix === '_sum') one.sum = s.value
      else if (suffix === '_count') one.count = s.value
    }
    const points = []
    for (const [k, one] of series) {
      if (one.buckets.length === 0 && one.count === undefined) continue // only a _created sample
      const { boundaries, counts } = perBucket(one.buckets, one.count)
      points.push({
        startTime: starts.get(k) ?? this.startTime,
        endTime: now,
        attributes: one.labels,
        value: {
          buckets: { boundaries, counts },
          sum: one.sum,
          count: one.count ?? counts.reduce((a, b) => a + b, 0),
        },
      })
    }
    return points
  }
}

/** OpenMetrics' cumulative `le` buckets as OpenTelemetry's finite boundaries and per-bucket
 * counts (one more count than boundaries: the last is above the highest boundary). */
function perBucket(cumulative, count) {
  const sorted = [...cumulative].sort((a, b) => a[0] - b[0])
  const finite = sorted.filter(([b]) => Number.isFinite(b))
  const counts = []
  let below = 0
  for (const [, seen] of finite) {
    counts.push(Math.max(seen - below, 0))
    below = Math.max(below, seen)
  }
  const top = sorted.find(([b]) => b === Infinity)
  const everything = top ? top[1] : (count ?? below)
  counts.push(Math.max(everything - below, 0))
  return { boundaries: finite.map(([b]) => b), counts }
}

function unit(family) {
  if (family.unit) return family.unit
  for (const [suffix, u] of UNITS) if (family.name.endsWith(suffix)) return u
  return ''
}

/** An empty resource: the reader keeps its provider's and ignores a producer's. */
function defaultResource() {
  try {
    return require('@opentelemetry/resources').emptyResource()
  } catch {
    return { attributes: {}, asyncAttributesPending: false, merge: (other) => other }
  }
}

module.exports = { AceMetricProducer }
