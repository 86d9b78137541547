//! The per-(agent, stage) series of the entry table, read at scrape time.
//!
//! Updating a Prometheus counter, histogram and gauges on every record costs several atomic
//! read-modify-writes (a histogram takes a lock), more than everything else a record does. The
//! entry table already holds its shard lock while it updates an entry, so it keeps these numbers as
//! plain fields of the entry, and this collector walks the shards when the registry is encoded.
//! Entries that share an `agent_id` label (the overflow series) are summed; their gauges take the
//! value of the most recently updated entry.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Shards;
use crate::clock::Timestamp;
use crate::telemetry::Instrumented;

/// Upper bounds of `ace_stage_duration_seconds`: 5 ms doubling to about 164 s, then +Inf.
pub(crate) const DURATION_BOUNDS: [f64; 16] = {
    let mut b = [0.0; 16];
    let mut i = 0;
    let mut v = 0.005;
    while i < 16 {
        b[i] = v;
        v *= 2.0;
        i += 1;
    }
    b
};

/// A classic histogram kept under the shard lock.
#[derive(Clone, Debug, Default)]
pub(crate) struct DurationHistogram {
    /// Per bucket (not cumulative); the last one is +Inf.
    buckets: [u64; DURATION_BOUNDS.len() + 1],
    sum: f64,
}

impl DurationHistogram {
    pub(crate) fn observe(&mut self, seconds: f64) {
        let i = DURATION_BOUNDS.iter().position(|&b| seconds <= b).unwrap_or(DURATION_BOUNDS.len());
        self.buckets[i] += 1;
        self.sum += seconds;
    }

    fn merge(&mut self, other: &DurationHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum += other.sum;
    }
}

/// The plain numbers an entry exports.
#[derive(Debug, Default)]
pub(crate) struct EntrySeries {
    /// The `agent_id` label (the agent, or the overflow value), chosen at the first record.
    pub(crate) agent_label: Option<Arc<str>>,
    pub(crate) updates: u64,
    pub(crate) durations: DurationHistogram,
    pub(crate) outcomes: u64,
}

/// Registered in the engine's registry; reads the entry table at scrape time.
#[derive(Clone)]
pub(crate) struct EntrySeriesCollector {
    shards: Weak<Shards>,
}

impl fmt::Debug for EntrySeriesCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntrySeriesCollector").finish_non_exhaustive()
    }
}

impl EntrySeriesCollector {
    pub(crate) fn new(shards: &Arc<Shards>) -> Self {
        EntrySeriesCollector { shards: Arc::downgrade(shards) }
    }
}

impl Instrumented for EntrySeriesCollector {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

#[derive(Default)]
struct StageAgg {
    updates: u64,
    durations: DurationHistogram,
    outcomes: u64,
    error_rate: Option<(Timestamp, f64)>,
}

/// (agent label, stage, metric) → (when last updated, deviation).
type Deviations = BTreeMap<(Arc<str>, Arc<str>, Arc<str>), (Timestamp, f64)>;
type NoExemplars = HashMap<usize, Exemplar<Vec<(String, String)>, f64>>;

impl Collector for EntrySeriesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(shards) = self.shards.upgrade() else { return Ok(()) };
        let mut stages: BTreeMap<(Arc<str>, Arc<str>), StageAgg> = BTreeMap::new();
        let mut deviations = Deviations::new();
        for shard in shards.iter() {
            let shard = shard.0.lock();
            for e in shard.entries.iter() {
                let Some(label) = &e.series.agent_label else { continue };
                let agg = stages.entry((label.clone(), e.stage.clone())).or_default();
                agg.updates += e.series.updates;
                agg.durations.merge(&e.series.durations);
                agg.outcomes += e.series.outcomes;
                if e.series.outcomes > 0 && agg.error_rate.is_none_or(|(at, _)| at <= e.updated_at) {
                    agg.error_rate = Some((e.updated_at, 1.0 - e.streams.success.detector.state.recent));
                }
                for s in e.streams.named.iter().filter(|s| s.detector.state.count > 0) {
                    let slot = deviations
                        .entry((label.clone(), e.stage.clone(), s.name.clone()))
                        .or_insert((Timestamp::EPOCH, 0.0));
                    if slot.0 <= e.updated_at {
                        *slot = (e.updated_at, s.detector.state.deviation_pct() / 100.0);
                    }
                }
            }
        }
        drop(shards);

        let mut updates = encoder.encode_descriptor(
            "ace_performance_updates",
            "Stage outcomes and metrics recorded, by agent and stage",
            None,
            MetricType::Counter,
        )?;
        for ((agent, stage), agg) in &stages {
            let labels = [("agent_id", &**agent), ("stage", &**stage)];
            updates.encode_family(&labels)?.encode_counter::<Vec<(String, String)>, _, f64>(&agg.updates, None)?;
        }

        let mut durations = encoder.encode_descriptor(
            "ace_stage_duration_seconds",
            "Duration of finished stages, by agent and stage",
            None,
            MetricType::Histogram,
        )?;
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(DURATION_BOUNDS.len() + 1);
        for ((agent, stage), agg) in stages.iter().filter(|(_, a)| a.outcomes > 0) {
            buckets.clear();
            buckets.extend(DURATION_BOUNDS.iter().copied().chain([f64::INFINITY]).zip(agg.durations.buckets));
            let labels = [("agent_id", &**agent), ("stage", &**stage)];
            durations.encode_family(&labels)?.encode_histogram::<Vec<(String, String)>>(
                agg.durations.sum,
                agg.outcomes,
                &buckets,
                None::<&NoExemplars>,
            )?;
        }

        let mut error_rate = encoder.encode_descriptor(
            "ace_error_rate",
            "Recent share of failed stages (fast moving average), by agent and stage",
            None,
            MetricType::Gauge,
        )?;
        for ((agent, stage), agg) in &stages {
            if let Some((_, rate)) = agg.error_rate {
                let labels = [("agent_id", &**agent), ("stage", &**stage)];
                ConstGauge::new(rate).encode(error_rate.encode_family(&labels)?)?;
            }
        }

        let mut deviation = encoder.encode_descriptor(
            "ace_baseline_deviation",
            "Relative deviation of a metric's recent level from its baseline (0.25 = 25% above)",
            None,
            MetricType::Gauge,
        )?;
        for ((agent, stage, metric), (_, value)) in &deviations {
            let labels = [("agent_id", &**agent), ("stage", &**stage), ("metric", &**metric)];
            ConstGauge::new(*value).encode(deviation.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_prometheus_le_semantics() {
        let mut h = DurationHistogram::default();
        for v in [0.0, 0.005, 0.0051, 1.0, 1e9] {
            h.observe(v);
        }
        assert_eq!(h.buckets[0], 2, "0 and exactly 5 ms are <= the first bound");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[DURATION_BOUNDS.len()], 1, "beyond the last bound goes to +Inf");
        assert_eq!(h.buckets.iter().sum::<u64>(), 5);
        assert!((DURATION_BOUNDS[15] - 163.84).abs() < 1e-9);
    }
}
