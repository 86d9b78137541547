//! What the engine learnt (outcome counts per signal kind and strategy), kept and shared: saved
//! through the store (added up, so replicas sharing a database each add their own outcomes) and,
//! with a cache, added up in one hash (`{learnt}`) that every replica reads back.
//!
//! Runs on the writer thread (a [`Periodic`]) every [`LEARNT_SYNC`], from outside the decision
//! code: it takes the outcomes reported here since the last turn
//! ([`Decider::take_learnt`]) and sets the totals ([`Decider::restore_learnt`]). Each outcome
//! is added once to the store and once to the cache (a batch carries an id, so a retry after a
//! lost reply does not count it twice). A replica's totals are, per (kind, strategy), the larger
//! of what it knows itself (the store's totals at start plus the outcomes reported to it since)
//! and the cache's totals plus its outcomes not yet sent: a flushed cache never makes a replica
//! forget. An outcome reported to one replica reaches another's choices within two turns of
//! the writers (about 2 s: one to send it, one to read it back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::Fleet;
use crate::decision::Strategy;
use crate::intervene::Decider;
use crate::persist::Periodic;
use crate::record::LearntRecord;
use crate::signal::SignalKind;
use crate::store::Store;

/// How often outcomes are saved and exchanged.
pub(crate) const LEARNT_SYNC: Duration = Duration::from_secs(1);
/// The longest wait before trying a failed save again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The cache's hash of fleet-wide totals (the braces keep its batch markers in its slot on a
/// Redis Cluster).
const KEY: &str = "{learnt}";

type Key = (SignalKind, Strategy);
type Counts = HashMap<Key, (u64, u64)>;

fn add(into: &mut Counts, records: &[LearntRecord]) {
    for r in records {
        let c = into.entry((r.kind, r.strategy)).or_default();
        c.0 += r.successes;
        c.1 += r.failures;
    }
}

fn records(counts: &Counts) -> Vec<LearntRecord> {
    counts
        .iter()
        .map(|(&(kind, strategy), &(successes, failures))| LearntRecord { kind, strategy, successes, failures })
        .collect()
}

fn field(kind: SignalKind, strategy: Strategy, success: bool) -> String {
    format!("{}:{}:{}", kind.as_str(), strategy.as_str(), if success { "s" } else { "f" })
}

fn parse_field(field: &str) -> Option<(Key, bool)> {
    let mut parts = field.split(':');
    let (kind, strategy, which) = (parts.next()?, parts.next()?, parts.next()?);
    let kind = *SignalKind::ALL.iter().find(|k| k.as_str() == kind)?;
    let strategy = strategy.parse().ok()?;
    Some(((kind, strategy), which == "s"))
}

/// The writer's turn at saving and sharing what was learnt.
pub(crate) struct LearntSync {
    decider: Arc<Decider>,
    store: Arc<dyn Store>,
    fleet: Option<Arc<Fleet>>,
    /// What this replica knows by itself: the store's totals at start and every outcome
    /// reported here since.
    floor: Counts,
    /// Outcomes not yet added to the store.
    unstored: Counts,
    /// Outcomes not yet added to the cache.
    unsent: Counts,
    /// A batch sent to the cache without a reply: sent again, unchanged, under its id.
    sending: Option<(String, Counts)>,
    /// The store's totals at start, added to the cache by the one replica that seeds it.
    seed: Option<Counts>,
    batches: u64,
    last: Instant,
    store_retry: Option<(Instant, Duration)>,
}

impl LearntSync {
    /// `loaded`: the store's totals, already given to the decider.
    pub(crate) fn new(
        decider: Arc<Decider>,
        store: Arc<dyn Store>,
        fleet: Option<Arc<Fleet>>,
        loaded: &[LearntRecord],
    ) -> Self {
        let mut floor = Counts::new();
        add(&mut floor, loaded);
        LearntSync {
            decider,
            store,
            seed: fleet.as_ref().map(|_| floor.clone()),
            fleet,
            floor,
            unstored: Counts::new(),
            unsent: Counts::new(),
            sending: None,
            batches: 0,
            last: Instant::now(),
            store_retry: None,
        }
    }

    fn take(&mut self) {
        let fresh = self.decider.take_learnt();
        if fresh.is_empty() {
            return;
        }
        add(&mut self.floor, &fresh);
        add(&mut self.unstored, &fresh);
        if self.fleet.is_some() {
            add(&mut self.unsent, &fresh);
        }
    }

    /// Adds the outcomes not yet stored to the store's totals; after a failure, waits longer
    /// each time (up to [`MAX_BACKOFF`]) before trying again.
    fn save(&mut self) {
        if self.unstored.is_empty() || self.store_retry.is_some_and(|(at, _)| Instant::now() < at) {
            return;
        }
        match self.store.add_learnt(&records(&self.unstored)) {
            Ok(()) => {
                self.unstored.clear();
                self.store_retry = None;
            }
            Err(e) => {
                let wait = self.store_retry.map_or(LEARNT_SYNC, |(_, w)| (w * 2).min(MAX_BACKOFF));
                self.store_retry = Some((Instant::now() + wait, wait));
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "cannot save what the engine learnt; kept to retry");
            }
        }
    }

    /// Sends the outcomes not yet in the cache, reads the fleet's totals back and gives the
    /// decider the larger of those and what this replica knows. A failure is logged; the next
    /// turn retries.
    fn exchange(&mut self, fleet: &Fleet) {
        let cache = &fleet.cache;
        if let Some(seed) = &self.seed {
            match cache.claim(&format!("{KEY}:seeded"), &fleet.owner, Duration::from_secs(10 * 365 * 86_400)) {
                Ok(won) => {
                    if won {
                        // The first replica of a fleet brings what its store kept.
                        let seed = records(seed);
                        add(&mut self.unsent, &seed);
                    }
                    self.seed = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot share what the engine learnt through the cache");
                    return;
                }
            }
        }
        if self.sending.is_none() && !self.unsent.is_empty() {
            self.batches += 1;
            self.sending = Some((format!("{}:{}", fleet.owner, self.batches), std::mem::take(&mut self.unsent)));
        }
        if let Some((batch, counts)) = &self.sending {
            let deltas: Vec<(String, i64)> = counts
                .iter()
                .flat_map(|(&(kind, strategy), &(s, f))| {
                    [(field(kind, strategy, true), s), (field(kind, strategy, false), f)]
                })
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k, i64::try_from(n).unwrap_or(i64::MAX)))
                .collect();
            if let Err(e) = cache.add_counts(KEY, batch, &deltas) {
                tracing::warn!(error = %e, "cannot share what the engine learnt through the cache; kept to retry");
                return;
            }
            self.sending = None;
        }
        let fleet_counts = match fleet.read(|| cache.counts(KEY)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read what the fleet learnt from the cache");
                return;
            }
        };
        let mut totals = self.unsent.clone();
        for (name, n) in fleet_counts {
            let Some((key, success)) = parse_field(&name) else { continue };
            let c = totals.entry(key).or_default();
            let n = u64::try_from(n).unwrap_or(0);
            if success {
                c.0 += n;
            } else {
                c.1 += n;
            }
        }
        for (key, own) in &self.floor {
            let c = totals.entry(*key).or_default();
            *c = (c.0.max(own.0), c.1.max(own.1));
        }
        self.decider.restore_learnt(&records(&totals));
    }
}

impl Periodic for LearntSync {
    fn tick(&mut self) {
        if self.last.elapsed() < LEARNT_SYNC {
            return;
        }
        self.last = Instant::now();
        self.take();
        self.save();
        if let Some(fleet) = self.fleet.clone() {
            self.exchange(&fleet);
        }
    }

    fn finish(&mut self) {
        self.take();
        self.store_retry = None;
        self.save();
        if let Some(fleet) = self.fleet.clone() {
            self.exchange(&fleet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_kind_strategy_and_outcome() {
        let f = field(SignalKind::ErrorAccumulation, Strategy::Replan, false);
        assert_eq!(f, "error_accumulation:replan:f");
        assert_eq!(parse_field(&f), Some(((SignalKind::ErrorAccumulation, Strategy::Replan), false)));
        assert_eq!(parse_field("nonsense:replan:s"), None);
        assert_eq!(parse_field("loop"), None);
    }
}
