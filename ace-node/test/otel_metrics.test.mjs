// agent-ace/otel's AceMetricProducer in the real @opentelemetry/sdk-metrics: a reader with the
// producer in its `metricProducers` collects ace's families, checked value by value against the
// lines of `metricsText()`; the stock OTLP/HTTP exporter posts them to a local server; the
// exposition parser on escapes, +Inf, NaN, exemplars and malformed lines.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import ace from '../ace.js'
import otel from '../otel.js'
import exposition from '../exposition.js'

const { Ace } = ace
const { AceMetricProducer } = otel
const pkg = JSON.parse((await import('node:fs')).readFileSync(new URL('../package.json', import.meta.url), 'utf8'))

/** Known events: four stages of one agent, a slow failed stage of an oddly named one, a tool
 * call, an error. */
function busy(eng) {
  for (let i = 0; i < 4; i++) eng.recordStage('agent-a', `t${i}`, 'planning', 0.1 * (i + 1), true)
  eng.recordStage('agent-"b"\\x', 't9', 'planning', 7.5, false)
  eng.recordTool('agent-a', 't0', 'search', 0.02, true)
  eng.recordError('agent-a', 't1', 'planning', 'TimeoutError', 'the model took too long')
}

/** The engine, keeping each text metricsText() returned: what a collection read. */
function seen(eng) {
  const texts = []
  return {
    texts,
    get closed() {
      return eng.closed
    },
    metricsText() {
      texts.push(eng.metricsText())
      return texts.at(-1)
    },
  }
}

const escape = (v) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
const labelText = (attrs, extra = []) => {
  const parts = [...extra, ...Object.entries(attrs).map(([k, v]) => `${k}="${escape(String(v))}"`)]
  return parts.length ? `{${parts.join(',')}}` : ''
}
/** The value of the exposition line that starts with `prefix` and a space (numbers compared, so
 * `1.0` equals 1). */
function lineValue(text, prefix) {
  const line = text.split('\n').find((l) => l.startsWith(`${prefix} `))
  assert.ok(line, `no line ${prefix}`)
  return Number(line.slice(prefix.length + 1).replace('+Inf', 'Infinity'))
}

function aceScope(result) {
  const found = result.resourceMetrics.scopeMetrics.find((s) => s.scope.name === 'ace')
  assert.ok(found, 'no ace scope')
  return found
}

test('a real reader collects every family, value by value against the exposition lines', async () => {
  const eng = new Ace()
  busy(eng)
  const engine = seen(eng)
  const producer = new AceMetricProducer(engine)
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3_600_000,
    metricProducers: [producer],
  })
  const resource = resourceFromAttributes({ 'service.name': 'billing' })
  const provider = new MeterProvider({ readers: [reader], resource })
  provider.getMeter('app').createCounter('app_requests').add(3)
  const result = await reader.collect()
  assert.deepEqual(result.errors, [])
  assert.equal(result.resourceMetrics.resource.attributes['service.name'], 'billing')
  assert.ok(result.resourceMetrics.scopeMetrics.some((s) => s.metrics.some((m) => m.descriptor.name === 'app_requests')))
  const scope = aceScope(result)
  assert.deepEqual(scope.scope, { name: 'ace', version: pkg.version })
  assert.equal(engine.texts.length, 1)
  const text = engine.texts[0]
  const families = exposition.parse(text)
  const kinds = { counter: 0, gauge: 0, histogram: 0 }
  for (const m of scope.metrics) {
    const name = m.descriptor.name
    const family = families.get(name)
    assert.ok(family, name)
    assert.equal(m.descriptor.description, family.help)
    assert.ok(m.dataPoints.length > 0)
    kinds[family.type] += 1
    for (const p of m.dataPoints) {
      if (family.type === 'counter') {
        assert.equal(m.dataPointType, DataPointType.SUM)
        assert.equal(m.isMonotonic, true)
        assert.equal(m.aggregationTemporality, AggregationTemporality.CUMULATIVE)
        assert.equal(p.value, lineValue(text, `${name}_total${labelText(p.attributes)}`), name)
      } else if (family.type === 'gauge') {
        assert.equal(m.dataPointType, DataPointType.GAUGE)
        assert.equal(p.value, lineValue(text, `${name}${labelText(p.attributes)}`), name)
      } else {
        assert.equal(m.dataPointType, DataPointType.HISTOGRAM)
        assert.equal(m.aggregationTemporality, AggregationTemporality.CUMULATIVE)
        assert.equal(p.value.count, lineValue(text, `${name}_count${labelText(p.attributes)}`))
        assert.equal(p.value.sum, lineValue(text, `${name}_sum${labelText(p.attributes)}`))
        const { boundaries, counts } = p.value.buckets
        assert.equal(counts.length, boundaries.length + 1)
        // The bucket lines of this series, by bound (ace writes `le` first, as 0.00005 where
        // String() would give 0.00005 or 5e-5: compared as numbers).
        const series = labelText(p.attributes).slice(1, -1)
        const start = `${name}_bucket{le="`
        const tail = series ? `,${series}} ` : '} '
        const lines = new Map(
          text
            .split('\n')
            .filter((l) => l.startsWith(start) && l.slice(l.indexOf('"', start.length) + 1).startsWith(tail))
            .map((l) => [Number(l.split('"')[1].replace('+Inf', 'Infinity')), Number(l.split(' ').at(-1))]),
        )
        assert.equal(lines.size, boundaries.length + 1, name)
        let cumulative = 0
        ;[...boundaries, Infinity].forEach((b, i) => {
          cumulative += counts[i]
          assert.equal(cumulative, lines.get(b), `${name} le=${b}`)
        })
      }
    }
  }
  // Every family with series arrived.
  const withSeries = [...families.values()].filter((f) => f.samples.some((s) => !s.name.endsWith('_created')))
  assert.equal(scope.metrics.length, withSeries.length)
  assert.ok(kinds.counter && kinds.gauge && kinds.histogram, JSON.stringify(kinds))
  assert.deepEqual(producer.counts, { collections: 1, failed: 0, unmapped: 0 })
  await provider.shutdown()
  await eng.close()
})

test('known events arrive as their values', async () => {
  const eng = new Ace()
  busy(eng)
  const reader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    metricProducers: [new AceMetricProducer(eng)],
  })
  const provider = new MeterProvider({ readers: [reader] })
  const byName = new Map(aceScope(await reader.collect()).metrics.map((m) => [m.descriptor.name, m]))
  const stages = byName.get('ace_stage_duration_seconds')
  assert.equal(stages.descriptor.unit, 's')
  const point = (agent) => stages.dataPoints.find((p) => p.attributes.agent_id === agent && p.attributes.stage === 'planning')
  assert.equal(point('agent-a').value.count, 4)
  assert.ok(Math.abs(point('agent-a').value.sum - 1.0) < 1e-9)
  assert.equal(point('agent-"b"\\x').value.count, 1)
  assert.equal(point('agent-"b"\\x').value.sum, 7.5)
  const [error] = byName.get('ace_errors').dataPoints
  assert.equal(error.value, 1)
  assert.equal(error.attributes.agent_id, 'agent-a')
  await provider.shutdown()
  await eng.close()
})

test('a failing or closed engine never breaks collection; bad arguments are TypeErrors', async () => {
  const broken = new AceMetricProducer({ closed: false, metricsText: () => { throw new Error('boom') } })
  const garbage = new AceMetricProducer({ closed: false, metricsText: () => 'ace_x{agent="unterminated} 1\n' })
  const reader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    metricProducers: [broken, garbage],
  })
  const provider = new MeterProvider({ readers: [reader] })
  provider.getMeter('app').createCounter('app_requests').add(1)
  const result = await reader.collect()
  assert.deepEqual(result.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name)), ['app_requests'])
  assert.equal(result.errors.length, 2)
  assert.equal(result.errors[1].name, 'ExpositionError')
  assert.equal(result.errors[1].line, 1)
  assert.equal(broken.counts.failed, 1)
  assert.equal(garbage.counts.failed, 1)
  await provider.shutdown()

  const eng = new Ace()
  await eng.close()
  const closed = await new AceMetricProducer(eng).collect()
  assert.deepEqual([closed.resourceMetrics.scopeMetrics, closed.errors], [[], []])

  assert.throws(() => new AceMetricProducer({}), TypeError)
  assert.throws(() => new AceMetricProducer(new Ace(), { startTime: -1 }), TypeError)
  assert.throws(() => new AceMetricProducer(new Ace(), 'x'), TypeError)
})

test('the stock OTLP/HTTP exporter posts ace families to a collector', async () => {
  const bodies = []
  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      bodies.push({ path: req.url, type: req.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${server.address().port}/v1/metrics`
  const eng = new Ace()
  busy(eng)
  const engine = seen(eng)
  const reader = new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url }),
    exportIntervalMillis: 3_600_000,
    metricProducers: [new AceMetricProducer(engine)],
  })
  const provider = new MeterProvider({ readers: [reader], resource: resourceFromAttributes({ 'service.name': 'billing' }) })
  await provider.forceFlush()
  await provider.shutdown()
  server.close()
  assert.ok(bodies.length >= 1)
  assert.equal(bodies[0].path, '/v1/metrics')
  const request = JSON.parse(bodies[0].body)
  const [rm] = request.resourceMetrics
  assert.ok(rm.resource.attributes.some((a) => a.key === 'service.name' && a.value.stringValue === 'billing'))
  const scope = rm.scopeMetrics.find((s) => s.scope.name === 'ace')
  assert.equal(scope.scope.version, pkg.version)
  const text = engine.texts[0]
  const byName = new Map(scope.metrics.map((m) => [m.name, m]))
  const errors = byName.get('ace_errors')
  assert.equal(errors.sum.isMonotonic, true)
  assert.equal(errors.sum.aggregationTemporality, 2) // AGGREGATION_TEMPORALITY_CUMULATIVE
  const errorLine = 'ace_errors_total{agent_id="agent-a",stage="planning",severity="high"}'
  assert.equal(errors.sum.dataPoints[0].asDouble, lineValue(text, errorLine))
  const stages = byName.get('ace_stage_duration_seconds')
  const attrs = (p) => Object.fromEntries(p.attributes.map((a) => [a.key, a.value.stringValue]))
  const point = stages.histogram.dataPoints.find((p) => attrs(p).agent_id === 'agent-a' && attrs(p).stage === 'planning')
  assert.equal(Number(point.count), 4)
  assert.equal(point.bucketCounts.map(Number).reduce((a, b) => a + b, 0), 4)
  assert.equal(point.explicitBounds.length + 1, point.bucketCounts.length)
  const families = [...exposition.parse(text).values()].filter((f) => f.samples.length > 0)
  assert.deepEqual([...byName.keys()].sort(), families.map((f) => f.name).sort())
  await eng.close()
})

test('the exposition parser reads escapes, infinities, NaN and exemplars, and names a bad line', () => {
  const text = [
    '# HELP ace_q A help with a \\\\ backslash and a\\nnewline.',
    '# TYPE ace_q counter',
    '# UNIT ace_q requests',
    'ace_q_total{a="x\\"y",b="back\\\\slash",c="new\\nline",d="} # {",e=""} 7 1700000000.5 # {trace_id="ab"} 1.0',
    'ace_q_total 3',
    'ace_q_created 1700000000.25',
    '# TYPE ace_h histogram',
    'ace_h_bucket{le="0.5"} 2',
    'ace_h_bucket{le="1.0"} 2',
    'ace_h_bucket{le="+Inf"} 5',
    'ace_h_count 5',
    'ace_h_sum 12.5',
    '# TYPE ace_g gauge',
    'ace_g NaN',
    'ace_g{k="v",} -Inf',
    'undeclared_thing 2.5e3',
    '# EOF',
  ].join('\n')
  const fams = exposition.parse(text)
  const q = fams.get('ace_q')
  assert.deepEqual([q.type, q.unit, q.help], ['counter', 'requests', 'A help with a \\ backslash and a\nnewline.'])
  assert.deepEqual(q.samples[0].labels, { a: 'x"y', b: 'back\\slash', c: 'new\nline', d: '} # {', e: '' })
  assert.equal(q.samples[0].value, 7)
  assert.ok(Number.isNaN(fams.get('ace_g').samples[0].value))
  assert.equal(fams.get('ace_g').samples[1].value, -Infinity)
  assert.equal(fams.get('undeclared_thing').samples[0].value, 2500)

  const producer = new AceMetricProducer({ closed: false, metricsText: () => text })
  const byName = new Map(producer.metrics(text).map((m) => [m.descriptor.name, m]))
  const [h] = byName.get('ace_h').dataPoints
  assert.deepEqual(h.value, { buckets: { boundaries: [0.5, 1], counts: [2, 0, 3] }, sum: 12.5, count: 5 })
  const [labelled, bare] = byName.get('ace_q').dataPoints
  assert.deepEqual([bare.value, bare.startTime], [3, [1700000000, 250000000]])
  assert.notDeepEqual(labelled.startTime, bare.startTime)
  assert.equal(byName.get('ace_q').descriptor.unit, 'requests')

  const bad = ['ace_x{a="1"', 'ace_x{a="1} 2', 'ace_x{a=1} 2', 'ace_x{a="1"}2', 'ace_x', 'ace_x one', 'ace_x 1_000']
  for (const line of [...bad, '9ace 1', 'ace_x{a="\\']) {
    assert.throws(
      () => exposition.parse(`# TYPE ace_x gauge\n${line}\n`),
      (e) => e.name === 'ExpositionError' && e.code === 'invalid_input' && e.line === 2,
      line,
    )
  }
})
