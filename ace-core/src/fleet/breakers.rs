//! Breakers shared in full across a fleet, through one board per breaker in the cache
//! (`breaker:{name}`, a field per replica), exchanged by the writer thread about once a second.
//!
//! Each exchange, for each breaker, a replica posts what its breaker shares (its last move into
//! open or closed, and its window's counts while closed: [`Shared`]) and reads every replica's
//! latest post in the same round trip. Then:
//! - the latest move of the fleet wins: a replica whose own last move is older takes it (an
//!   opening until the same time, or a closing);
//! - a closed breaker opens when the fleet's windows, added up, trip it;
//! - the trial calls: when an open breaker's wait is nearly over, the replicas ask for the
//!   breaker's trial lease (`breaker:{name}:trial`). The holder lets its `half_open_permits`
//!   trial calls through; the others stay open until its verdict, which reaches them as its
//!   move. A holder that gets no call within [`GIVE_UP`] of the end of its wait lets the lease
//!   run out, and another replica takes it.
//!
//! A post older than [`FRESH`] (a replica that stopped) is dropped from the board. With the
//! cache down, every breaker judges alone, as without a fleet, until it answers again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Fleet;
use crate::breaker::{Breakers, CircuitBreaker, Shared};
use crate::cache::LeaseRequest;
use crate::clock::Clock;

/// How often breakers are exchanged through the shared cache.
pub(super) const EXCHANGE: Duration = Duration::from_secs(1);
/// How long a replica's post stays on a board without a new one.
const FRESH: Duration = Duration::from_secs(3);
/// How far ahead of the end of its wait an open breaker asks for the trial lease.
const TRIAL_AHEAD: Duration = Duration::from_millis(2_500);
/// How long after the end of its wait the trial's holder keeps the lease without a call.
const GIVE_UP: Duration = Duration::from_secs(1);
/// How long a trial lease runs without renewal.
const TRIAL_LEASE: Duration = Duration::from_secs(4);

/// How often a failing exchange is logged as a warning (a cache that stays down, or one without
/// [`crate::cache::Cache::post`], would otherwise warn every second).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The writer's breaker exchange.
pub(super) struct BreakerExchange {
    last: Instant,
    warned: Option<Instant>,
}

impl BreakerExchange {
    pub(super) fn new() -> Self {
        BreakerExchange { last: Instant::now(), warned: None }
    }

    /// Exchanges every breaker's state, at most every [`EXCHANGE`]. A cache failure is logged
    /// and the next exchange tries again.
    pub(super) fn run(&mut self, fleet: &Fleet, breakers: &Breakers, clock: &Arc<dyn Clock>) {
        if self.last.elapsed() < EXCHANGE {
            return;
        }
        self.last = Instant::now();
        for b in breakers.all() {
            // The store's own breaker guards this process's connection, not a shared dependency.
            if b.name() == "ace-store" {
                continue;
            }
            if let Err(e) = exchange(fleet, &b, clock) {
                if self.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    self.warned = Some(Instant::now());
                    tracing::warn!(breaker = b.name(), error = %e, "cannot exchange breaker state through the cache; breakers judge alone meanwhile");
                } else {
                    tracing::debug!(breaker = b.name(), error = %e, "cannot exchange breaker state through the cache");
                }
                return;
            }
        }
    }
}

/// One breaker's exchange: post, take the fleet's latest move or judge its counts, and settle
/// who runs the trial.
fn exchange(fleet: &Fleet, b: &CircuitBreaker, clock: &Arc<dyn Clock>) -> crate::Result<()> {
    let mine = b.shared();
    let board = fleet.cache.post(&format!("breaker:{}", b.name()), &fleet.owner, &mine.encode(), FRESH);
    fleet.count_read(board.as_ref().map(|posts| posts.iter().any(|(who, _)| *who != fleet.owner)));
    let mut latest = mine.moved;
    let mut total = Shared { moved: mine.moved, calls: 0, failures: 0, slow: 0 };
    for (_, post) in board? {
        let Some(s) = Shared::parse(&post) else { continue };
        if s.moved.at > latest.at {
            latest = s.moved;
        }
        total.calls = total.calls.saturating_add(s.calls);
        total.failures = total.failures.saturating_add(s.failures);
        total.slow = total.slow.saturating_add(s.slow);
    }
    if latest.at > mine.moved.at {
        if b.adopt(latest) {
            tracing::info!(breaker = b.name(), open = latest.open, "took another process's move");
        }
    } else if b.judge_fleet(total) {
        tracing::info!(
            breaker = b.name(),
            calls = total.calls,
            failures = total.failures,
            "opened on the fleet's calls"
        );
    }
    trial(fleet, b, clock)
}

/// When the breaker's open wait is nearly over (or its trial runs here), asks for the trial
/// lease; a replica that does not hold it stays open until the holder's verdict.
fn trial(fleet: &Fleet, b: &CircuitBreaker, clock: &Arc<dyn Clock>) -> crate::Result<()> {
    let ahead = micros(TRIAL_AHEAD);
    let asks = match b.open_left() {
        Some(left) => left < ahead && left > -micros(GIVE_UP),
        None => b.in_trial(),
    };
    if !asks {
        return Ok(());
    }
    let request = LeaseRequest { owner: &fleet.owner, ttl: TRIAL_LEASE, keep: TRIAL_LEASE, added: 0, last: 0 };
    let lease = fleet.cache.lease(&format!("breaker:{}:trial", b.name()), &request)?;
    if lease.holder != fleet.owner {
        // Past the next exchange or two, which ask again (and take the lease if it ran out).
        if b.hold_open(clock.now().plus(EXCHANGE * 2)) {
            tracing::debug!(breaker = b.name(), holder = &*lease.holder, "held open: another process runs the trial");
        }
    }
    Ok(())
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
