// agent-ace/otel: OpenTelemetry in (a span processor) and out (span events).
import type { Ace, Intervention, Report, Signal } from './ace.js'

/** The version of the OpenTelemetry semantic conventions whose GenAI attributes are read. */
export declare const SEMCONV_VERSION: string

/** What the processor reads of a span (structurally, `@opentelemetry/sdk-trace-base`'s `Span`
 * and `ReadableSpan`). */
export interface SpanLike {
  readonly name?: string
  readonly attributes?: Record<string, unknown>
  spanContext(): { traceId: string; spanId: string }
  readonly parentSpanContext?: { spanId: string; isRemote?: boolean }
  readonly startTime?: readonly [number, number]
  readonly endTime?: readonly [number, number]
  readonly status?: { code: number; message?: string }
  readonly events?: ReadonlyArray<{ name: string; attributes?: Record<string, unknown> }>
  readonly resource?: { attributes?: Record<string, unknown> }
}

export interface AceSpanProcessorOptions {
  /** Tool arguments longer than this are recorded without a digest (default 65,536). */
  maxArgumentChars?: number
}

/** How many spans the processor saw, by what became of them. */
export interface SpanCounts {
  recorded: number
  /** No `gen_ai.operation.name`. */
  skipped: number
  /** An operation or tool name that is not a usable string, a missing end time: not recorded. */
  malformed: number
  /** A known attribute of the wrong type or size, read as absent. */
  ignoredAttributes: number
  /** Tool arguments over `maxArgumentChars`, recorded without a digest. */
  oversize: number
  /** The engine refused the record, or the span could not be read. */
  failed: number
}

/** A span processor for `@opentelemetry/sdk-trace-base` that records GenAI spans into `ace`
 * when they end (docs/integrations/node-otel.md). Its methods never throw. */
export declare class AceSpanProcessor {
  constructor(ace: Ace, options?: AceSpanProcessorOptions)
  readonly ace: Ace
  readonly maxArgumentChars: number
  /** The newest 1,000 interventions its records raised. */
  readonly interventions: Intervention[]
  readonly counts: SpanCounts
  onStart(span: SpanLike, parentContext?: unknown): void
  onEnd(span: SpanLike): void
  forceFlush(): Promise<void>
  shutdown(): Promise<void>
}

/** Opt-in: each intervention of `ace` becomes an `ace.intervention` event (and its signals
 * `ace.signal` events) on the active span. Needs `@opentelemetry/api`. */
export declare function attachEvents(ace: Ace): void

/** The span events for an intervention or a report, as `[name, attributes]` pairs. */
export declare function reportEvents(
  found: Intervention | Report | { signals: readonly Signal[]; intervention: Intervention | null },
): Array<[string, Record<string, string>]>

/** Options of `AceMetricProducer`. */
export interface AceMetricProducerOptions {
  /** When cumulative points start unless the exposition has a `_created` sample: a `Date` or
   * milliseconds since the epoch (default: when the producer was made). */
  startTime?: Date | number
  /** The resource `collect()` returns; a reader keeps its provider's and ignores this one
   * (default: `@opentelemetry/resources`' empty resource). */
  resource?: unknown
}

/** How a producer's collections went. */
export interface MetricProducerCounts {
  collections: number
  /** The engine refused or its text did not parse: reported in `errors`, nothing of ace sent. */
  failed: number
  /** Families of a type OpenTelemetry has no point for (summary, info, stateset), left out. */
  unmapped: number
}

/** A `MetricProducer` for `@opentelemetry/sdk-metrics` (give it in a reader's
 * `metricProducers`) that turns `ace.metricsText()` into OpenTelemetry metric data at each
 * collection (docs/integrations/node-otel.md). `collect()` never throws. */
export declare class AceMetricProducer {
  constructor(ace: Ace, options?: AceMetricProducerOptions)
  readonly ace: Ace
  readonly scope: { name: 'ace'; version: string }
  readonly counts: MetricProducerCounts
  /** The metric data of an exposition text (what `collect()` reads from `ace.metricsText()`);
   * throws an `ExpositionError` (`code` `invalid_input`, `line`) for a malformed line. */
  metrics(text: string): any[]
  /** Structurally `@opentelemetry/sdk-metrics`' `CollectionResult`. */
  collect(options?: { timeoutMillis?: number }): Promise<{
    resourceMetrics: { resource: any; scopeMetrics: Array<{ scope: { name: string; version?: string }; metrics: any[] }> }
    errors: unknown[]
  }>
}
