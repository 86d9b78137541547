//! What every component's metrics share: the per-agent label cap, the label sets, the histogram
//! buckets, the classic text format, and [`Instrumented`], the trait by which each component
//! registers its own series.
//!
//! Per-agent labels are capped (`ACE_METRICS_MAX_AGENTS`): once that many agents have series,
//! further agents share `agent_id="__overflow__"`, and each folded series is counted in
//! `ace_metrics_label_overflow_total`, so a fleet of 10,000 agents cannot blow up a Prometheus
//! server.

use std::sync::Arc;

use hashbrown::HashSet;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A component that exports series: it registers them into the registry it is handed (the
/// engine's own, or a host's).
pub trait Instrumented: Send + Sync {
    /// Registers this component's series into `registry`.
    fn register(&self, registry: &mut Registry);
}

/// The per-agent label cap, shared by every component that labels series by agent. Cheap to
/// clone: clones share the set of labelled agents.
#[derive(Clone, Debug)]
pub struct AgentLabels {
    known: Arc<Mutex<HashSet<Arc<str>>>>,
    max_agents: usize,
    overflow: Counter,
}

impl AgentLabels {
    /// A cap of `max_agents` distinct `agent_id` values.
    #[must_use]
    pub fn new(max_agents: usize) -> Self {
        AgentLabels { known: Arc::default(), max_agents, overflow: Counter::default() }
    }

    /// The `agent_id` label for `agent`: itself while under the cap, else [`OVERFLOW_AGENT`].
    pub fn label(&self, agent: &Arc<str>) -> Arc<str> {
        let mut known = self.known.lock();
        if known.contains(agent) {
            return agent.clone();
        }
        if known.len() < self.max_agents {
            known.insert(agent.clone());
            return agent.clone();
        }
        self.overflow.inc();
        Arc::from(OVERFLOW_AGENT)
    }
}

impl Instrumented for AgentLabels {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "ace_metrics_label_overflow",
            "Series folded into agent_id=\"__overflow__\" because of the agent label cap",
            self.overflow.clone(),
        );
    }
}

/// The series several layers feed: the label cap, computation and query timings, and dropped
/// records. Cheap to clone: clones share every series.
#[derive(Clone, Debug)]
pub(crate) struct CoreSeries {
    /// The per-agent label cap.
    pub(crate) labels: AgentLabels,
    computation: HistogramFamily<Operation>,
    query: HistogramFamily<QueryType>,
    dropped: Family<Reason, Counter>,
    /// The sum of `dropped` over its reasons (`stats().dropped`).
    dropped_total: Counter,
}

impl CoreSeries {
    pub(crate) fn new(max_agents: usize) -> Self {
        CoreSeries {
            labels: AgentLabels::new(max_agents),
            computation: Family::new_with_constructor(computation_histogram),
            query: Family::new_with_constructor(query_histogram),
            dropped: Family::default(),
            dropped_total: Counter::default(),
        }
    }

    /// Times a computation (`record`, sampled; `flush`).
    pub(crate) fn time_operation(&self, operation: &'static str, seconds: f64) {
        self.computation.get_or_create(&Operation { operation }).observe(seconds);
    }

    /// Times a store or cache query.
    pub(crate) fn time_query(&self, query_type: &'static str, seconds: f64) {
        self.query.get_or_create(&QueryType { query_type }).observe(seconds);
    }

    /// Counts records accepted but not stored.
    pub(crate) fn drop_records(&self, reason: &'static str, n: u64) {
        self.dropped.get_or_create(&Reason { reason }).inc_by(n);
        self.dropped_total.inc_by(n);
    }

    /// Records accepted but not stored, whatever the reason.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped_total.get()
    }
}

impl Instrumented for CoreSeries {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "ace_metric_computation_duration_seconds",
            "Time spent computing baselines and signals (sampled 1 in 64 records), and flushing",
            self.computation.clone(),
        );
        registry.register(
            "ace_mem_query_duration_seconds",
            "Duration of store and cache queries, by query type",
            self.query.clone(),
        );
        registry.register(
            "ace_records_dropped",
            "Records accepted for persistence but not stored, by reason (should stay 0)",
            self.dropped.clone(),
        );
        self.labels.register(registry);
    }
}

/// The `agent_id` value shared by agents beyond the label cap.
pub const OVERFLOW_AGENT: &str = "__overflow__";

pub(crate) type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A single label with a fixed set of values (`operation`, `query_type`, `reason`, `kind`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operation {
    /// The operation.
    pub operation: &'static str,
}

/// Labels `{agent_id, stage, severity}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentStageSeverity {
    /// The agent (or [`OVERFLOW_AGENT`]).
    pub agent_id: Arc<str>,
    /// The stage.
    pub stage: String,
    /// The severity.
    pub severity: &'static str,
}

/// Labels `{agent_id, type}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentType {
    /// The agent (or [`OVERFLOW_AGENT`]).
    pub agent_id: Arc<str>,
    /// The strategy.
    pub r#type: &'static str,
}

/// Labels `{type}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Type {
    /// The strategy.
    pub r#type: &'static str,
}

/// Labels `{query_type}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryType {
    /// The store query.
    pub query_type: &'static str,
}

/// Labels `{reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why.
    pub reason: &'static str,
}

/// Labels `{agent_id}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentId {
    /// The agent (or `__overflow__` beyond the label cap).
    pub agent_id: Arc<str>,
}

/// Labels `{result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `hit`, `miss` or `error`.
    pub result: &'static str,
}

/// Labels `{verdict}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    /// `accept`, `veto`, `pick`, `timeout` or `panic`.
    pub verdict: &'static str,
}

/// Labels `{kind}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The signal kind.
    pub kind: &'static str,
}

pub(crate) fn computation_histogram() -> Histogram {
    // 100 ns .. ~0.4 s
    Histogram::new(exponential_buckets(1e-7, 4.0, 12))
}

pub(crate) fn query_histogram() -> Histogram {
    // 50 µs .. ~13 s
    Histogram::new(exponential_buckets(5e-5, 2.5, 14))
}

/// Labels of `ace_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildInfo {
    /// The ace version (`CARGO_PKG_VERSION` of ace-core).
    pub version: &'static str,
    /// `std::env::consts::OS`.
    pub os: &'static str,
    /// `std::env::consts::ARCH`.
    pub arch: &'static str,
}

/// The byte offset just past a sample line's name and label set: after the closing `}` of the
/// labels (skipping `}` and `"` inside quoted, backslash-escaped values), or after the name.
fn label_set_end(line: &str) -> usize {
    let bytes = line.as_bytes();
    let Some(open) = line.find(['{', ' ']) else { return line.len() };
    if bytes[open] != b'{' {
        return open;
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, &b) in bytes.iter().enumerate().skip(open + 1) {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => quoted = false,
            (false, _, b'"') => quoted = true,
            (false, _, b'}') => return i + 1,
            _ => {}
        }
    }
    line.len()
}

/// Rewrites OpenMetrics text (what `prometheus-client` writes) as the classic Prometheus text
/// format 0.0.4: counters are announced under their `_total` sample name, `# UNIT` and `# EOF`
/// lines go, `info` families become gauges named `_info`, and `_created` samples are dropped.
/// Sample lines are otherwise the same in both formats.
#[must_use]
pub fn prometheus_text(openmetrics: &str) -> String {
    use std::fmt::Write as _;
    // First pass: the families whose samples carry a suffix (`_total`, `_info`).
    let mut suffixed: hashbrown::HashMap<&str, &str> = hashbrown::HashMap::new();
    for line in openmetrics.lines() {
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            match kind {
                "counter" => suffixed.insert(name, "_total"),
                "info" => suffixed.insert(name, "_info"),
                _ => None,
            };
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            let suffix = suffixed.get(name).copied().unwrap_or("");
            let kind = match kind {
                "info" | "stateset" => "gauge",
                "gaugehistogram" => "histogram",
                other => other,
            };
            let _ = writeln!(out, "# TYPE {name}{suffix} {kind}");
        } else if let Some((name, help)) = line.strip_prefix("# HELP ").and_then(|r| r.split_once(' ')) {
            let suffix = suffixed.get(name).copied().unwrap_or("");
            let _ = writeln!(out, "# HELP {name}{suffix} {help}");
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            if name.strip_suffix("_created").is_some_and(|base| suffixed.contains_key(base)) {
                continue;
            }
            // Exemplars (` # {...} v`) are OpenMetrics only. They follow the label set, whose
            // quoted values may hold anything, ` # {` included.
            let rest = label_set_end(line);
            let sample = rest + line[rest..].find(" # {").unwrap_or(line.len() - rest);
            out.push_str(&line[..sample]);
            out.push('\n');
        }
    }
    out
}
