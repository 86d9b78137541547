//! The writer's series: records persisted, spilled and replayed, failed and retried writes, old
//! records deleted by retention, and the records waiting.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::telemetry::Instrumented;

/// Cheap to clone: clones share every series.
#[derive(Clone, Debug, Default)]
pub(crate) struct PersistSeries {
    pub(crate) persisted: Counter,
    pub(crate) spilled: Counter,
    pub(crate) replayed: Counter,
    pub(crate) spill_failures: Counter,
    pub(crate) store_failures: Counter,
    pub(crate) store_retries: Counter,
    pub(crate) retention_deleted: Counter,
    pub(crate) buffered: Gauge,
}

impl Instrumented for PersistSeries {
    fn register(&self, registry: &mut Registry) {
        registry.register("ace_records_persisted", "Records written to the store", self.persisted.clone());
        registry.register(
            "ace_records_spilled",
            "Records written to the spill directory while the store was failing",
            self.spilled.clone(),
        );
        registry.register(
            "ace_records_replayed",
            "Spilled records stored once the store answered again",
            self.replayed.clone(),
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
        registry.register(
            "ace_records_retention_deleted",
            "Records older than ACE_RETAIN_DAYS deleted from the store by the engine's retention passes",
            self.retention_deleted.clone(),
        );
        registry.register("ace_buffered_records", "Records waiting to be written to the store", self.buffered.clone());
    }
}
