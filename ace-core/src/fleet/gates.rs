//! Intervention gates held fleet-wide without a network wait on the caller's thread: a lease
//! on each task, taken and renewed by the writer thread.
//!
//! The replica that proposes an intervention on a task asks for the task's lease (the writer's
//! next [`LeaseSync`] turn, at most [`LEASE_SYNC`] apart). The lease (`lease:{agent}:{task}` in
//! the cache, read and written in one atomic step by the cache's clock) names its holder and
//! carries the task's interventions fleet-wide: their count and the latest one's time. Decisions
//! are made on the caller's thread against what the replica knows of the lease, without I/O:
//!
//! - lease unknown (the task's first proposal here): act, and ask for the lease;
//! - asked and not yet answered: do not act;
//! - held by another replica: do not act;
//! - held here (or the cache failing: local state): act when the task's cooldown has passed
//!   since its latest intervention fleet-wide and its count is under the cap.
//!
//! What two replicas can do at once: before a task's lease is settled (one lease turn of each
//! writer, under a second in steady state), each replica proposing on the task acts on it at
//! most once; from then on only the holder acts, under the cooldown and the cap counted
//! fleet-wide (the interventions of the first turn included). A holder that stops renewing (it
//! died, or the task went quiet for [`LEASE_HOLD`]) loses the lease after [`LEASE_TTL`]; the
//! next replica to propose takes it with its count and last time. While the cache fails, each
//! replica decides on its local state and counts `ace_fleet_claims_total{result="error"}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::Fleet;
use crate::cache::LeaseRequest;
use crate::decision::Intervention;
use crate::persist::Periodic;
use crate::telemetry::ResultLabel;

/// How often the writer asks for and renews leases.
pub(crate) const LEASE_SYNC: Duration = Duration::from_millis(200);
/// How long a lease runs without renewal.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(60);
/// How long after a task's last proposal here its lease is still renewed.
pub(crate) const LEASE_HOLD: Duration = Duration::from_secs(600);
/// How long the cache keeps a task's count and last time after the last request (tasks end
/// long before).
const LEASE_KEEP: Duration = Duration::from_secs(86_400);
/// Leases asked for in one round trip.
const ASKS_PER_TRIP: usize = 256;
/// A turn stops asking once a round trip took longer than this (the writer has records to
/// store); the leases not asked for wait for the next turn.
const TURN_BUDGET: Duration = Duration::from_millis(20);
/// Tasks whose lease a replica follows, at most (the least recently proposed are forgotten).
const MAX_LEASES: usize = 57_344;

/// A task: (agent, task).
pub(super) type TaskKey = (Arc<str>, Arc<str>);
/// The leases a replica follows.
pub(super) type Leases = HashMap<TaskKey, TaskLease>;
/// A lease to ask for: the task, the interventions to add, the latest one.
type Due = (TaskKey, u32, i64);

/// What a replica knows of a task's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holder {
    /// Not asked yet (the one intervention this replica made is to be reported).
    Unasked,
    /// Asked; no answer yet.
    Asked,
    /// Held here until then (renewed before).
    Here(Instant),
    /// Held by another replica; asked again after then.
    Elsewhere(Instant),
    /// The cache failed: local state decides until it answers.
    Local,
}

/// A task's lease, as this replica knows it.
#[derive(Debug)]
pub(super) struct TaskLease {
    pub(super) holder: Holder,
    /// Interventions made here and not yet added to the lease's count.
    added: u32,
    /// The lease's count as last known, plus `added`.
    count: u32,
    /// The latest intervention known fleet-wide (engine micros).
    last: i64,
    /// The task's last proposal here.
    touched: Instant,
}

impl Fleet {
    /// Whether this replica may issue `proposal`, decided on what it knows of the task's lease
    /// (no I/O; see the module's notes). Counted in `ace_fleet_claims_total`.
    pub(crate) fn claimed(&self, proposal: &Intervention) -> bool {
        let at = proposal.at.as_micros();
        let now = Instant::now();
        let mut leases = self.leases.lock();
        let key = (proposal.agent.clone(), proposal.task.clone());
        if leases.len() >= MAX_LEASES && !leases.contains_key(&key) {
            forget_least_recent(&mut leases);
        }
        let (result, act) = match leases.get_mut(&key) {
            None => {
                let lease = TaskLease { holder: Holder::Unasked, added: 1, count: 1, last: at, touched: now };
                leases.insert(key, lease);
                ("won", true)
            }
            Some(l) => {
                l.touched = now;
                let open = l.count < self.cfg.max_per_task
                    && (l.last == 0 || at.saturating_sub(l.last) >= micros(self.cfg.cooldown));
                let decided = match l.holder {
                    Holder::Unasked | Holder::Asked | Holder::Elsewhere(_) => ("lost", false),
                    Holder::Here(_) if open => ("won", true),
                    Holder::Local if open => ("error", true),
                    Holder::Here(_) | Holder::Local => ("lost", false),
                };
                if decided.1 {
                    l.added += 1;
                    l.count += 1;
                    l.last = l.last.max(at);
                }
                decided
            }
        };
        self.series.claims.get_or_create(&ResultLabel { result }).inc();
        act
    }

    /// A task ended: its lease is released by the writer's next turn, and forgotten here.
    pub(crate) fn ended(&self, agent: &str, task: &str) {
        let mut leases = self.leases.lock();
        let key = (Arc::<str>::from(agent), Arc::<str>::from(task));
        if let Some(l) = leases.remove(&key)
            && matches!(l.holder, Holder::Here(_))
        {
            self.released.lock().push(key);
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn forget_least_recent(leases: &mut Leases) {
    let mut touched: Vec<Instant> = leases.values().map(|l| l.touched).collect();
    let cut = touched.len() / 8;
    touched.select_nth_unstable(cut);
    let before = touched[cut];
    leases.retain(|_, l| l.touched > before);
}

/// The writer's turn at the leases: asks for those proposed on, renews those held and still
/// proposed on, releases those of ended tasks, and asks again for those held elsewhere whose
/// holder may have stopped renewing.
pub(crate) struct LeaseSync {
    fleet: Arc<Fleet>,
    last: Instant,
}

impl LeaseSync {
    pub(crate) fn new(fleet: Arc<Fleet>) -> Self {
        LeaseSync { fleet, last: Instant::now() }
    }

    fn turn(&mut self) {
        let fleet = &self.fleet;
        let now = Instant::now();
        let released: Vec<TaskKey> = std::mem::take(&mut *fleet.released.lock());
        let mut due: Vec<Due> = Vec::new();
        {
            let mut leases = fleet.leases.lock();
            leases.retain(|_, l| {
                !(now.duration_since(l.touched) > LEASE_HOLD && matches!(l.holder, Holder::Here(_) | Holder::Local))
            });
            for (key, l) in leases.iter_mut() {
                let ask = match l.holder {
                    // Asked and not answered: the last turn ran out of time before it.
                    Holder::Unasked | Holder::Asked | Holder::Local => true,
                    Holder::Here(until) => l.added > 0 || until.saturating_duration_since(now) < LEASE_TTL / 2,
                    Holder::Elsewhere(until) => now >= until,
                };
                if ask {
                    if l.holder == Holder::Unasked {
                        l.holder = Holder::Asked;
                    }
                    due.push((key.clone(), l.added, l.last));
                }
            }
        }
        if !released.is_empty() {
            let request =
                LeaseRequest { owner: &fleet.owner, ttl: Duration::ZERO, keep: LEASE_KEEP, added: 0, last: 0 };
            let requests: Vec<(String, LeaseRequest<'_>)> =
                released.iter().map(|(agent, task)| (lease_key(agent, task), request)).collect();
            if let Err(e) = fleet.cache.leases(&requests) {
                tracing::warn!(error = %e, "cannot release task leases through the cache");
                return self.failed(&due);
            }
        }
        for chunk in due.chunks(ASKS_PER_TRIP) {
            let asked_at = Instant::now();
            let requests: Vec<(String, LeaseRequest<'_>)> = chunk
                .iter()
                .map(|((agent, task), added, last)| {
                    let request = LeaseRequest {
                        owner: &fleet.owner,
                        ttl: LEASE_TTL,
                        keep: LEASE_KEEP,
                        added: *added,
                        last: *last,
                    };
                    (lease_key(agent, task), request)
                })
                .collect();
            let answers = match fleet.cache.leases(&requests) {
                Ok(answers) => answers,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take or renew task leases through the cache; deciding on local state");
                    return self.failed(chunk);
                }
            };
            let mut leases = fleet.leases.lock();
            for ((key, added, _), lease) in chunk.iter().zip(answers) {
                let Some(l) = leases.get_mut(key) else { continue };
                l.added -= (*added).min(l.added);
                l.count = lease.count.saturating_add(l.added);
                l.last = l.last.max(lease.last);
                l.holder = if lease.holder == fleet.owner {
                    Holder::Here(asked_at + LEASE_TTL)
                } else {
                    Holder::Elsewhere(asked_at + LEASE_TTL)
                };
            }
            drop(leases);
            if asked_at.elapsed() > TURN_BUDGET {
                // A slow cache: the rest is asked for at the next turn (no action meanwhile).
                break;
            }
        }
    }

    /// The cache failed: the tasks asked about are decided on local state until it answers.
    fn failed(&self, due: &[Due]) {
        let mut leases = self.fleet.leases.lock();
        for (key, _, _) in due {
            if let Some(l) = leases.get_mut(key)
                && matches!(l.holder, Holder::Asked | Holder::Unasked)
            {
                l.holder = Holder::Local;
            }
        }
    }
}

fn lease_key(agent: &str, task: &str) -> String {
    format!("lease:{agent}:{task}")
}

impl Periodic for LeaseSync {
    fn tick(&mut self) {
        if self.last.elapsed() < LEASE_SYNC {
            return;
        }
        self.last = Instant::now();
        self.turn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Cache, MemoryCache};
    use crate::clock::Timestamp;
    use crate::decision::Strategy;
    use crate::event::Severity;
    use crate::fleet::{FleetConfig, FleetSeries};
    use crate::ids::InterventionId;

    fn fleet(cache: &Arc<MemoryCache>) -> Arc<Fleet> {
        let cfg = FleetConfig {
            cache_ttl: Duration::from_secs(60),
            baseline_warmup: 30,
            cooldown: Duration::from_secs(10),
            max_per_task: 3,
        };
        Fleet::new(cache.clone() as Arc<dyn Cache>, cfg, FleetSeries::default())
    }

    fn proposal(task: &str, secs: i64) -> Intervention {
        Intervention {
            id: InterventionId(1),
            at: Timestamp::from_micros((1_000 + secs) * 1_000_000),
            agent: "a".into(),
            task: task.into(),
            strategy: Strategy::Replan,
            severity: Severity::Medium,
            reason: String::new(),
            signals: Vec::new(),
            confidence: Default::default(),
            amended: None,
        }
    }

    #[test]
    fn one_replica_holds_a_task_and_the_cap_and_cooldown_count_fleet_wide() {
        let cache = Arc::new(MemoryCache::new());
        let (a, b) = (fleet(&cache), fleet(&cache));
        let (mut sync_a, mut sync_b) = (LeaseSync::new(a.clone()), LeaseSync::new(b.clone()));
        assert!(a.claimed(&proposal("t", 0)), "unknown lease: acts once and asks");
        assert!(!a.claimed(&proposal("t", 20)), "asked, not answered: waits");
        sync_a.turn();
        assert!(b.claimed(&proposal("t", 1)), "b has not asked yet: the bound, once");
        assert!(!b.claimed(&proposal("t", 30)));
        sync_b.turn();
        assert!(!b.claimed(&proposal("t", 40)), "a holds the task");
        assert!(!a.claimed(&proposal("t", 5)), "within the cooldown of a's own");
        assert!(a.claimed(&proposal("t", 12)), "the holder acts");
        sync_a.turn();
        assert_eq!(a.leases.lock().values().next().unwrap().count, 3, "renewed: b's intervention counts");
        assert!(!a.claimed(&proposal("t", 100)), "the cap: 3 fleet-wide, b's included");
        // The task ends on a: its lease is released and b may take it (the count stays a day).
        a.ended("a", "t");
        sync_a.turn();
        b.leases.lock().clear();
        assert!(b.claimed(&proposal("t", 200)));
        sync_b.turn();
        assert!(matches!(b.leases.lock().values().next().unwrap().holder, Holder::Here(_)), "b took it");
    }

    #[test]
    fn a_failing_cache_leaves_the_task_to_local_state() {
        #[derive(Debug)]
        struct Down;
        impl Cache for Down {
            fn backend(&self) -> &'static str {
                "down"
            }
            fn get(&self, _: &str) -> crate::error::Result<Option<String>> {
                Err(crate::error::Error::Internal("down".into()))
            }
            fn set(&self, _: &str, _: &str, _: Duration) -> crate::error::Result<()> {
                Err(crate::error::Error::Internal("down".into()))
            }
            fn claim(&self, _: &str, _: &str, _: Duration) -> crate::error::Result<bool> {
                Err(crate::error::Error::Internal("down".into()))
            }
            fn incr(&self, _: &str, _: Duration) -> crate::error::Result<i64> {
                Err(crate::error::Error::Internal("down".into()))
            }
            fn delete(&self, _: &str) -> crate::error::Result<()> {
                Err(crate::error::Error::Internal("down".into()))
            }
            fn add_counts(&self, _: &str, _: &str, _: &[(String, i64)]) -> crate::error::Result<()> {
                Err(crate::error::Error::Internal("down".into()))
            }
            fn counts(&self, _: &str) -> crate::error::Result<Vec<(String, i64)>> {
                Err(crate::error::Error::Internal("down".into()))
            }
            fn lease(&self, _: &str, _: &LeaseRequest<'_>) -> crate::error::Result<crate::cache::Lease> {
                Err(crate::error::Error::Internal("down".into()))
            }
            fn ping(&self) -> crate::error::Result<Duration> {
                Err(crate::error::Error::Internal("down".into()))
            }
        }
        let cfg = FleetConfig {
            cache_ttl: Duration::from_secs(60),
            baseline_warmup: 30,
            cooldown: Duration::ZERO,
            max_per_task: 2,
        };
        let f = Fleet::new(Arc::new(Down), cfg, FleetSeries::default());
        let mut sync = LeaseSync::new(f.clone());
        assert!(f.claimed(&proposal("t", 0)));
        sync.turn();
        assert!(f.claimed(&proposal("t", 1)), "local state decides");
        assert!(!f.claimed(&proposal("t", 2)), "under the cap as counted here");
    }
}
