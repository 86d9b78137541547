//! Intervention gates held fleet-wide: a task's cooldown and its cap, claimed in the cache.

use std::time::Duration;

use super::Fleet;
use crate::decision::Intervention;
use crate::telemetry::ResultLabel;

impl Fleet {
    /// Claims the task's cooldown and a place under its cap in the shared cache; false when
    /// another replica acted on the task within the cooldown or the cap is reached fleet-wide.
    /// A cache error leaves the local decision standing.
    pub(crate) fn claimed(&self, proposal: &Intervention) -> bool {
        let count = |result| {
            self.series.claims.get_or_create(&ResultLabel { result }).inc();
        };
        let key = format!("gate:{}:{}", proposal.agent, proposal.task);
        let cooldown = self.cfg.cooldown;
        if !cooldown.is_zero() {
            match self.cache.claim(&format!("{key}:cooldown"), &proposal.id.to_string(), cooldown) {
                Ok(true) => count("won"),
                Ok(false) => {
                    count("lost");
                    return false;
                }
                Err(e) => {
                    count("error");
                    tracing::warn!(error = %e, "the shared cache failed; deciding on local state");
                    return true;
                }
            }
        }
        // A task's count lives a day: tasks end long before.
        match self.cache.incr(&format!("{key}:count"), Duration::from_secs(86_400)) {
            Ok(n) if n <= i64::from(self.cfg.max_per_task) => {
                count("won");
                true
            }
            Ok(_) => {
                count("lost");
                false
            }
            Err(e) => {
                count("error");
                tracing::warn!(error = %e, "the shared cache failed; deciding on local state");
                true
            }
        }
    }
}
