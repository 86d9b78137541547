// Types for `agent-ace/prometheus`: ace's metrics in a prom-client registry.
import type { Ace } from './ace.js'

/** A registry that accepts collected metrics (prom-client's `Registry`, or `client.register`). */
export interface MetricRegistry {
  registerMetric(metric: unknown): void
}

/** One sample of a parsed family. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** A metric family parsed from OpenMetrics text. */
export interface Family {
  name: string
  type: string
  help: string
  samples: Sample[]
}

/**
 * Registers the families of `ace`'s metrics (read at each scrape) into `registry`. Counters
 * appear under their `_total` names. Returns the names registered.
 */
export declare function registerAce(registry: MetricRegistry, ace: Ace): string[]

/** Parses OpenMetrics text into families keyed by name. */
export declare function parse(text: string): Map<string, Family>
