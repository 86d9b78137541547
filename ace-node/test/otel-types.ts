// Typed usage of agent-ace/otel: `tsc --noEmit` checks otel.d.ts against the real SDK's types.
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics'
import { Ace } from '../ace.js'
import {
  AceMetricProducer,
  AceSpanProcessor,
  SEMCONV_VERSION,
  attachEvents,
  reportEvents,
  type MetricProducerCounts,
  type SpanCounts,
} from '../otel.js'

export function setup(): SpanCounts {
  const ace = new Ace()
  const processor = new AceSpanProcessor(ace, { maxArgumentChars: 4096 })
  const provider = new BasicTracerProvider({ spanProcessors: [processor] })
  attachEvents(ace)
  const events: Array<[string, Record<string, string>]> = reportEvents({ signals: [], intervention: null })
  console.log(SEMCONV_VERSION, events.length, provider)
  return processor.counts
}

// The metric producer is accepted where @opentelemetry/sdk-metrics takes a MetricProducer.
export function metricsSetup(): MetricProducerCounts {
  const ace = new Ace()
  const producer = new AceMetricProducer(ace, { startTime: new Date() })
  const sdkProducer: MetricProducer = producer
  const reader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    metricProducers: [sdkProducer],
  })
  console.log(producer.scope.version, reader)
  return producer.counts
}
