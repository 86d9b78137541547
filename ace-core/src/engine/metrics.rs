//! The engine's metrics handle, and the series the engine itself counts.
//!
//! Every component owns its series and registers them ([`Instrumented`]): the entry table's
//! per-(agent, stage) series, the context, the breakers, the playbooks, the errors organ, the
//! fleet's cache requests, the writer, and the series several layers share
//! ([`CoreSeries`]). [`Metrics`] is the list of them the builder gathers, so a host registers
//! the whole engine into its own registry with one call. Signals and rejected events are
//! counted here, once, from what the organs return.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::breaker::BreakerSeries;
use crate::error::Error;
use crate::persist::PersistSeries;
use crate::playbook::PlaybookMetrics;
use crate::signal::SignalKind;
use crate::store::Store;
use crate::telemetry::{
    AgentId, AgentType, BuildInfo, CoreSeries, HistogramFamily, Instrumented, Kind, Reason, Type, VerdictLabel,
    computation_histogram,
};

/// Every metric the engine exports. Cheap to clone: all parts are shared.
#[derive(Clone)]
pub struct Metrics {
    pub(crate) core: CoreSeries,
    pub(crate) persist: PersistSeries,
    pub(crate) interventions: Family<AgentType, Counter>,
    pub(crate) intervention_latency: HistogramFamily<Type>,
    pub(crate) subscriber_failures: Counter,
    pub(crate) effectiveness: Family<AgentId, Gauge<f64, AtomicU64>>,
    pub(crate) judge_calls: Family<VerdictLabel, Counter>,
    pub(crate) judge_decisions: Counter,
    pub(crate) judge_confident: Counter,
    pub(crate) reflections: Counter,
    pub(crate) reflection_failures: Counter,
    pub(crate) reflections_limited: Counter,
    events_rejected: Family<Reason, Counter>,
    signals: Family<Kind, Counter>,
    /// The `signals` counter of each kind, by [`SignalKind::index`].
    signal_counters: Arc<[Counter]>,
    build_info: Family<BuildInfo, Gauge>,
    /// The components' own series, gathered as the engine is built.
    parts: Arc<Mutex<Vec<Arc<dyn Instrumented>>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("parts", &self.parts.lock().len()).finish_non_exhaustive()
    }
}

impl Metrics {
    /// Fresh metrics with a cap of `max_agents` distinct `agent_id` values.
    #[must_use]
    pub fn new(max_agents: usize) -> Self {
        let signals: Family<Kind, Counter> = Family::default();
        let build_info: Family<BuildInfo, Gauge> = Family::default();
        build_info
            .get_or_create(&BuildInfo {
                version: env!("CARGO_PKG_VERSION"),
                os: std::env::consts::OS,
                arch: std::env::consts::ARCH,
            })
            .set(1);
        Metrics {
            core: CoreSeries::new(max_agents),
            persist: PersistSeries::default(),
            interventions: Family::default(),
            intervention_latency: Family::new_with_constructor(computation_histogram),
            subscriber_failures: Counter::default(),
            effectiveness: Family::default(),
            judge_calls: Family::default(),
            judge_decisions: Counter::default(),
            judge_confident: Counter::default(),
            reflections: Counter::default(),
            reflection_failures: Counter::default(),
            reflections_limited: Counter::default(),
            events_rejected: Family::default(),
            signal_counters: SignalKind::ALL
                .iter()
                .map(|k| signals.get_or_create_owned(&Kind { kind: k.as_str() }))
                .collect(),
            signals,
            build_info,
            parts: Arc::default(),
        }
    }

    /// Adds a component's series (at build).
    pub(crate) fn add(&self, part: Arc<dyn Instrumented>) {
        self.parts.lock().push(part);
    }

    /// Registers every metric into `registry` (the engine's own, or a host's).
    pub fn register(&self, registry: &mut Registry) {
        for part in self.parts.lock().iter() {
            part.register(registry);
        }
        self.core.register(registry);
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
            "Judge hook calls by verdict: accept, veto, pick, or timeout, panic and dropped (the background queue was full; the engine kept its choice)",
            self.judge_calls.clone(),
        );
        registry.register(
            "ace_judge_decisions",
            "Interventions decided with a judge installed; ace_judge_calls_total over this is the share judged",
            self.judge_decisions.clone(),
        );
        registry.register("ace_reflections", "Reflections run (Ace::reflect)", self.reflections.clone());
        registry.register(
            "ace_reflection_failures",
            "Reflections that failed (the store, the reflector or the merge)",
            self.reflection_failures.clone(),
        );
        registry.register(
            "ace_reflections_limited",
            "Reflections skipped by ACE_REFLECT_PER_MINUTE",
            self.reflections_limited.clone(),
        );
        registry.register(
            "ace_judge_confident",
            "Interventions not sent to the judge: confident enough for ACE_JUDGE_BELOW",
            self.judge_confident.clone(),
        );
        registry.register(
            "ace_events_rejected",
            "Events rejected as invalid input, by reason",
            self.events_rejected.clone(),
        );
        registry.register("ace_signals", "Signals raised, by kind", self.signals.clone());
        self.persist.register(registry);
        registry.register(
            "ace_build_info",
            "Always 1: the ace version, and the OS and CPU architecture it was built for",
            self.build_info.clone(),
        );
    }

    /// Counts signals in `ace_signals_total{kind}`.
    #[inline]
    pub(crate) fn count_signals(&self, signals: &[crate::signal::Signal]) {
        for s in signals {
            self.signal_counters[s.kind.index()].inc();
        }
    }

    /// Counts a rejected event in `ace_events_rejected_total{reason}`, its reason read from the
    /// error: the invalid field.
    #[cold]
    pub(crate) fn reject(&self, e: &Error) {
        let reason = match e {
            Error::InvalidInput { field, .. } => match *field {
                "agent" => "invalid_agent",
                "task" => "invalid_task",
                "stage" => "invalid_stage",
                "kind" => "invalid_kind",
                "duration" => "invalid_duration",
                "metric value" => "non_finite_value",
                _ => "invalid_metric",
            },
            Error::Closed => return,
            _ => "invalid",
        };
        self.events_rejected.get_or_create(&Reason { reason }).inc();
    }
}

impl Instrumented for BreakerSeries {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Instrumented for PlaybookMetrics {
    fn register(&self, registry: &mut Registry) {
        PlaybookMetrics::register(self, registry);
    }
}

/// `ace_records_evicted_total`: what the store let go by design ([`Store::evicted`]), read at
/// scrape.
#[derive(Clone)]
pub(crate) struct EvictedSeries(pub(crate) Weak<dyn Store>);

impl fmt::Debug for EvictedSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvictedSeries").finish_non_exhaustive()
    }
}

impl Instrumented for EvictedSeries {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for EvictedSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(store) = self.0.upgrade() else { return Ok(()) };
        let counter = encoder.encode_descriptor(
            "ace_records_evicted",
            "Records the store let go by design (the in-memory store's oldest, past ACE_MEMORY_MAX_RECORDS); not a loss",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(store.evicted()).encode(counter)
    }
}
