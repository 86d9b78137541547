// Typed usage of agent-ace/otel: `tsc --noEmit` checks otel.d.ts against the real SDK's types.
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import { Ace } from '../ace.js'
import { AceSpanProcessor, SEMCONV_VERSION, attachEvents, reportEvents, type SpanCounts } from '../otel.js'

export function setup(): SpanCounts {
  const ace = new Ace()
  const processor = new AceSpanProcessor(ace, { maxArgumentChars: 4096 })
  const provider = new BasicTracerProvider({ spanProcessors: [processor] })
  attachEvents(ace)
  const events: Array<[string, Record<string, string>]> = reportEvents({ signals: [], intervention: null })
  console.log(SEMCONV_VERSION, events.length, provider)
  return processor.counts
}
