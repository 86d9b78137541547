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
  /** OpenMetrics' type (`counter`, `gauge`, `histogram`, ...), `unknown` when undeclared. */
  type: string
  help: string
  /** From a `# UNIT` line, else empty. */
  unit: string
  samples: Sample[]
}

/**
 * Registers the families of `ace`'s metrics (read at each scrape) into `registry`. Counters
 * appear under their `_total` names. Returns the names registered.
 */
export declare function registerAce(registry: MetricRegistry, ace: Ace): string[]

/** Parses OpenMetrics text into families keyed by name; throws `ExpositionError` (`code`
 * `invalid_input`, `line`) for a malformed line. */
export declare function parse(text: string): Map<string, Family>
