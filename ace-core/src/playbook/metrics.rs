//! The playbooks' own series (retrieval latency, bullets added and promoted, insights
//! processed), registered by the engine into its registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// The playbook metrics, registered in the engine's registry.
#[derive(Clone, Debug)]
pub struct PlaybookMetrics {
    pub(crate) retrieval: Histogram,
    pub(crate) added: Counter,
    pub(crate) promoted: Counter,
    pub(crate) insights: Counter,
}

impl Default for PlaybookMetrics {
    fn default() -> Self {
        PlaybookMetrics {
            // 10 µs .. ~2.6 s
            retrieval: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(1e-5, 2.0, 18)),
            added: Counter::default(),
            promoted: Counter::default(),
            insights: Counter::default(),
        }
    }
}

impl PlaybookMetrics {
    pub(crate) fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "ace_playbook_retrieval_latency_seconds",
            "Time to retrieve the best bullets for a query",
            self.retrieval.clone(),
        );
        registry.register("ace_bullets_added", "Bullets added to playbooks", self.added.clone());
        registry.register(
            "ace_bullets_promoted",
            "Bullets promoted a stage (shadow to staging, staging to prod)",
            self.promoted.clone(),
        );
        registry.register(
            "ace_insights_processed",
            "Insights merged into playbooks (added, merged or skipped)",
            self.insights.clone(),
        );
    }
}
