//! The Prometheus registry of the engine.
//!
//! One `prometheus-client` registry per engine, exported as OpenMetrics text by
//! [`Ace::metrics_text`](crate::Ace::metrics_text) or registered into a host's own registry with
//! [`Metrics::register`]. Metric names follow the seed documents.
//!
//! Per-agent labels are capped ([`AceConfig::metrics_max_agents`](crate::AceConfig)): once that
//! many agents have series, further agents share `agent_id="__overflow__"`, and each folded series
//! is counted in `ace_metrics_label_overflow_total`, so a fleet of 10,000 agents cannot blow up a
//! Prometheus server.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use hashbrown::HashSet;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::context::ContextSeries;
use crate::monitor::MonitorSeries;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `agent_id` value shared by agents beyond the label cap.
pub const OVERFLOW_AGENT: &str = "__overflow__";

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

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

fn computation_histogram() -> Histogram {
    // 100 ns .. ~0.4 s
    Histogram::new(exponential_buckets(1e-7, 4.0, 12))
}

fn query_histogram() -> Histogram {
    // 50 µs .. ~13 s
    Histogram::new(exponential_buckets(5e-5, 2.5, 14))
}

/// Every metric the engine exports. Cheap to clone: all parts are shared.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `ace_performance_updates_total`, `ace_stage_duration_seconds`, `ace_error_rate` and
    /// `ace_baseline_deviation`, kept by the monitor and read at scrape time.
    pub(crate) monitor_series: MonitorSeries,
    /// `ace_context_staleness`, computed at scrape time.
    pub(crate) context_series: ContextSeries,
    /// The breakers' and limiters' series, read at scrape time.
    pub(crate) breaker_series: crate::breaker::BreakerSeries,
    pub(crate) playbook: crate::playbook::PlaybookMetrics,
    pub(crate) computation_duration: HistogramFamily<Operation>,
    pub(crate) query_duration: HistogramFamily<QueryType>,
    pub(crate) errors: Family<AgentStageSeverity, Counter>,
    pub(crate) interventions: Family<AgentType, Counter>,
    pub(crate) intervention_latency: HistogramFamily<Type>,
    pub(crate) subscriber_failures: Counter,
    pub(crate) effectiveness: Family<AgentId, Gauge<f64, AtomicU64>>,
    pub(crate) judge_calls: Family<VerdictLabel, Counter>,
    pub(crate) cache_requests: Family<ResultLabel, Counter>,
    pub(crate) truncated_messages: Counter,
    pub(crate) records_dropped: Family<Reason, Counter>,
    pub(crate) events_rejected: Family<Reason, Counter>,
    pub(crate) signals: Family<Kind, Counter>,
    /// The `signals` counter of each kind, by [`SignalKind::index`](crate::SignalKind::index).
    signal_counters: Arc<[Counter]>,
    pub(crate) records_persisted: Counter,
    pub(crate) records_spilled: Counter,
    pub(crate) records_replayed: Counter,
    pub(crate) spill_failures: Counter,
    pub(crate) store_failures: Counter,
    pub(crate) store_retries: Counter,
    pub(crate) buffered: Gauge,
    pub(crate) label_overflow: Counter,
    pub(crate) build_info: Family<BuildInfo, Gauge>,
    labelled_agents: Arc<Mutex<HashSet<Arc<str>>>>,
    max_agents: usize,
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

impl Metrics {
    /// Fresh metrics with a cap of `max_agents` distinct `agent_id` values.
    #[must_use]
    pub fn new(max_agents: usize) -> Self {
        let signals: Family<Kind, Counter> = Family::default();
        Metrics {
            monitor_series: MonitorSeries::default(),
            context_series: ContextSeries::default(),
            breaker_series: crate::breaker::BreakerSeries::default(),
            playbook: crate::playbook::PlaybookMetrics::default(),
            computation_duration: Family::new_with_constructor(computation_histogram),
            query_duration: Family::new_with_constructor(query_histogram),
            errors: Family::default(),
            interventions: Family::default(),
            intervention_latency: Family::new_with_constructor(computation_histogram),
            subscriber_failures: Counter::default(),
            effectiveness: Family::default(),
            judge_calls: Family::default(),
            cache_requests: Family::default(),
            truncated_messages: Counter::default(),
            records_dropped: Family::default(),
            events_rejected: Family::default(),
            signals: signals.clone(),
            signal_counters: crate::SignalKind::ALL
                .iter()
                .map(|k| signals.get_or_create_owned(&Kind { kind: k.as_str() }))
                .collect(),
            records_persisted: Counter::default(),
            records_spilled: Counter::default(),
            records_replayed: Counter::default(),
            spill_failures: Counter::default(),
            store_failures: Counter::default(),
            store_retries: Counter::default(),
            buffered: Gauge::default(),
            label_overflow: Counter::default(),
            build_info: {
                let info: Family<BuildInfo, Gauge> = Family::default();
                info.get_or_create(&BuildInfo {
                    version: env!("CARGO_PKG_VERSION"),
                    os: std::env::consts::OS,
                    arch: std::env::consts::ARCH,
                })
                .set(1);
                info
            },
            labelled_agents: Arc::default(),
            max_agents,
        }
    }

    /// Registers every metric into `registry` (the engine's own, or a host's).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.monitor_series.clone()));
        registry.register_collector(Box::new(self.context_series.clone()));
        registry.register_collector(Box::new(self.breaker_series.clone()));
        self.playbook.register(registry);
        registry.register(
            "ace_metric_computation_duration_seconds",
            "Time spent computing baselines and signals (sampled 1 in 64 records), and flushing",
            self.computation_duration.clone(),
        );
        registry.register(
            "ace_mem_query_duration_seconds",
            "Duration of store and cache queries, by query type",
            self.query_duration.clone(),
        );
        registry.register("ace_errors", "Errors recorded, by agent, stage and severity", self.errors.clone());
        registry.register(
            "ace_interventions",
            "Interventions issued, by agent and strategy",
            self.interventions.clone(),
        );
        registry.register(
            "ace_intervention_latency_seconds",
            "Time to decide an intervention from the signals of a call, by strategy",
            self.intervention_latency.clone(),
        );
        registry.register(
            "ace_intervention_subscriber_failures",
            "Intervention subscribers that panicked (the recording call carried on)",
            self.subscriber_failures.clone(),
        );
        registry.register(
            "ace_intervention_effectiveness",
            "Share of the agent's interventions whose reported outcome was a success",
            self.effectiveness.clone(),
        );
        registry.register(
            "ace_judge_calls",
            "Judge hook calls by verdict: accept, veto, pick, or timeout and panic (the engine kept its choice)",
            self.judge_calls.clone(),
        );
        registry.register(
            "ace_cache_requests",
            "Requests to the shared cache by result: hit (a claim or count granted), miss (refused: another replica acted), error (the engine decided locally)",
            self.cache_requests.clone(),
        );
        registry.register(
            "ace_error_messages_truncated",
            "Error messages cut to the miner's maximum length (stored with a marker)",
            self.truncated_messages.clone(),
        );
        registry.register(
            "ace_records_dropped",
            "Records accepted for persistence but not stored, by reason (should stay 0)",
            self.records_dropped.clone(),
        );
        registry.register(
            "ace_events_rejected",
            "Events rejected as invalid input, by reason",
            self.events_rejected.clone(),
        );
        registry.register("ace_signals", "Signals raised, by kind", self.signals.clone());
        registry.register("ace_records_persisted", "Records written to the store", self.records_persisted.clone());
        registry.register(
            "ace_records_spilled",
            "Records written to the spill directory while the store was failing",
            self.records_spilled.clone(),
        );
        registry.register(
            "ace_records_replayed",
            "Spilled records stored once the store answered again",
            self.records_replayed.clone(),
        );
        registry.register(
            "ace_spill_failures",
            "Spill files that could not be written (a full or read-only disk); the records stay in memory",
            self.spill_failures.clone(),
        );
        registry.register("ace_store_write_failures", "Failed batch writes to the store", self.store_failures.clone());
        registry.register(
            "ace_store_retries",
            "Batch writes attempted again after a failure (the store's breaker lets one through per wait)",
            self.store_retries.clone(),
        );
        registry.register("ace_buffered_records", "Records waiting to be written to the store", self.buffered.clone());
        registry.register(
            "ace_build_info",
            "Always 1: the ace version, and the OS and CPU architecture it was built for",
            self.build_info.clone(),
        );
        registry.register(
            "ace_metrics_label_overflow",
            "Series folded into agent_id=\"__overflow__\" because of the agent label cap",
            self.label_overflow.clone(),
        );
    }

    /// The `agent_id` label for `agent`: itself while under the cap, else [`OVERFLOW_AGENT`].
    pub(crate) fn agent_label(&self, agent: &Arc<str>) -> Arc<str> {
        let mut known = self.labelled_agents.lock();
        if known.contains(agent) {
            return agent.clone();
        }
        if known.len() < self.max_agents {
            known.insert(agent.clone());
            return agent.clone();
        }
        self.label_overflow.inc();
        Arc::from(OVERFLOW_AGENT)
    }

    /// The `ace_errors_total` counter of (agent, stage, severity), label cap applied.
    pub(crate) fn error_counter(&self, agent: &Arc<str>, stage: &str, severity: crate::Severity) -> Counter {
        let labels = AgentStageSeverity {
            agent_id: self.agent_label(agent),
            stage: stage.to_owned(),
            severity: severity.as_str(),
        };
        self.errors.get_or_create_owned(&labels)
    }

    /// Counts a signal in `ace_signals_total{kind}`.
    pub(crate) fn count_signal(&self, kind: crate::SignalKind) {
        self.signal_counters[kind.index()].inc();
    }

    pub(crate) fn reject(&self, reason: &'static str) {
        self.events_rejected.get_or_create(&Reason { reason }).inc();
    }

    pub(crate) fn drop_records(&self, reason: &'static str, n: u64) {
        self.records_dropped.get_or_create(&Reason { reason }).inc_by(n);
    }

    pub(crate) fn time_query(&self, query_type: &'static str, seconds: f64) {
        self.query_duration.get_or_create(&QueryType { query_type }).observe(seconds);
    }

    pub(crate) fn time_operation(&self, operation: &'static str, seconds: f64) {
        self.computation_duration.get_or_create(&Operation { operation }).observe(seconds);
    }
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
            // Exemplars (` # {...} v`) are OpenMetrics only.
            let sample = line.find(" # {").map_or(line, |at| &line[..at]);
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}
