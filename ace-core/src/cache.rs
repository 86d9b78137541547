//! Shared hot state across processes: the [`Cache`] trait (Redis in `ace-store`, memory here).
//!
//! The engine calls a cache only from its writer thread, never on a caller's: the fleet's
//! exchange (breakers, context refreshes, baselines, what was learnt) and the leases on tasks
//! ([`Cache::lease`]) that keep an intervention's cooldown and cap fleet-wide. When the cache
//! fails, the engine decides on its local state alone and counts the failure
//! (`ace_cache_requests_total{result="error"}`); it uses the cache again as soon as it answers.

use std::fmt;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use parking_lot::Mutex;

use crate::error::Result;

/// A key-value cache with expiry, shared by the processes of a fleet. Keys are namespaced by the
/// implementation; values are short strings.
pub trait Cache: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and metrics (`memory`, `redis`).
    fn backend(&self) -> &'static str;

    /// The value of `key`, if set and not expired.
    fn get(&self, key: &str) -> Result<Option<String>>;

    /// Sets `key` to `value` for `ttl`.
    fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()>;

    /// Sets `key` for `ttl` only if it is not set: true when this call set it. Atomic across
    /// every process using the cache.
    fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<bool>;

    /// Adds one to the counter at `key` (created at 1, expiring after `ttl`); returns the new
    /// value. Atomic across every process using the cache.
    fn incr(&self, key: &str, ttl: Duration) -> Result<i64>;

    /// Removes `key`.
    fn delete(&self, key: &str) -> Result<()>;

    /// Adds each `(field, delta)` to the counters of the hash at `key` (created at 0; no
    /// expiry), all or none, atomically across every process using the cache. `batch` names
    /// the deltas: a batch applied already (within a day) is not applied again, so a retry
    /// after a lost reply counts once.
    fn add_counts(&self, key: &str, batch: &str, deltas: &[(String, i64)]) -> Result<()>;

    /// Every counter of the hash at `key` (empty when there is none).
    fn counts(&self, key: &str) -> Result<Vec<(String, i64)>>;

    /// Takes or renews the lease at `key` for `request.owner`, atomically across every process
    /// using the cache: the lease is the owner's when nobody holds it, the owner holds it, or the
    /// holder's lease has run out (by the cache's clock); it then runs for `request.ttl` (zero
    /// releases it). Whoever holds it, `request.added` is added to the lease's count and its
    /// last time becomes the later of the two. The lease's count and last time live
    /// `request.keep` after the last request.
    fn lease(&self, key: &str, request: &LeaseRequest<'_>) -> Result<Lease>;

    /// [`Cache::lease`] for several leases; a cache that can sends them in one round trip (the
    /// default asks one after the other and stops at the first failure). One result per
    /// request, in order, or the error that stopped them all.
    fn leases(&self, requests: &[(String, LeaseRequest<'_>)]) -> Result<Vec<Lease>> {
        requests.iter().map(|(key, request)| self.lease(key, request)).collect()
    }

    /// Posts `value` as `field` of the board at `key` and returns the board: every field posted
    /// within `fresh` (by the cache's clock; older ones are removed), this post included, in one
    /// exchange atomic across every process using the cache. The board is gone `fresh` after its
    /// last post. Replicas post under their own id to see each other's latest word (the
    /// breakers' shared state). The default answers that this cache has no boards.
    fn post(&self, key: &str, field: &str, value: &str, fresh: Duration) -> Result<Vec<(String, String)>> {
        let _ = (key, field, value, fresh);
        Err(crate::Error::Store {
            backend: self.backend(),
            operation: "post to a board",
            source: "this cache does not implement Cache::post".into(),
        })
    }

    /// Checks the cache answers; returns the round trip.
    fn ping(&self) -> Result<Duration>;
}

/// A request to take or renew a lease (see [`Cache::lease`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRequest<'a> {
    /// Who asks (a replica's id; no `|`).
    pub owner: &'a str,
    /// How long the lease runs from now when granted (zero: released).
    pub ttl: Duration,
    /// How long the lease's count and last time are kept after this request.
    pub keep: Duration,
    /// Added to the lease's count (interventions made since the last request).
    pub added: u32,
    /// The latest intervention the owner made (micros since the epoch; 0: none).
    pub last: i64,
}

/// A lease after a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it now.
    pub holder: String,
    /// Interventions counted on it, fleet-wide.
    pub count: u32,
    /// The latest intervention on it (micros since the epoch; 0: none).
    pub last: i64,
}

impl Lease {
    /// Parses the stored form `holder|until_ms|count|last`; `None` when malformed.
    #[must_use]
    pub fn parse(value: &str) -> Option<(Lease, i64)> {
        let mut parts = value.rsplitn(4, '|');
        let last = parts.next()?.parse().ok()?;
        let count = parts.next()?.parse().ok()?;
        let until = parts.next()?.parse().ok()?;
        let holder = parts.next()?.to_owned();
        Some((Lease { holder, count, last }, until))
    }
}

/// Milliseconds since the epoch, by this process's clock.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A cache in this process's memory (for tests, and for one process that wants the same code
/// path as a fleet).
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemoryCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        MemoryCache::default()
    }

    fn live(entries: &mut HashMap<String, (String, Instant)>, key: &str) -> bool {
        match entries.get(key) {
            Some((_, until)) if *until > Instant::now() => true,
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }
}

impl Cache for MemoryCache {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn get(&self, key: &str) -> Result<Option<String>> {
        let mut e = self.entries.lock();
        Ok(Self::live(&mut e, key).then(|| e[key].0.clone()))
    }

    fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        self.entries.lock().insert(key.to_owned(), (value.to_owned(), Instant::now() + ttl));
        Ok(())
    }

    fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        let mut e = self.entries.lock();
        if Self::live(&mut e, key) {
            return Ok(false);
        }
        e.insert(key.to_owned(), (value.to_owned(), Instant::now() + ttl));
        Ok(true)
    }

    fn incr(&self, key: &str, ttl: Duration) -> Result<i64> {
        let mut e = self.entries.lock();
        let n = if Self::live(&mut e, key) { e[key].0.parse::<i64>().unwrap_or(0) + 1 } else { 1 };
        let until = if n == 1 { Instant::now() + ttl } else { e[key].1 };
        e.insert(key.to_owned(), (n.to_string(), until));
        Ok(n)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.entries.lock().remove(key);
        Ok(())
    }

    fn add_counts(&self, key: &str, batch: &str, deltas: &[(String, i64)]) -> Result<()> {
        let mut e = self.entries.lock();
        let done = format!("{key}\u{1}{batch}");
        if Self::live(&mut e, &done) {
            return Ok(());
        }
        e.insert(done, (String::new(), Instant::now() + Duration::from_secs(86_400)));
        for (field, delta) in deltas {
            let k = format!("{key}\u{0}{field}");
            let n = if Self::live(&mut e, &k) { e[&k].0.parse::<i64>().unwrap_or(0) } else { 0 } + delta;
            e.insert(k, (n.to_string(), Instant::now() + Duration::from_secs(1 << 40)));
        }
        Ok(())
    }

    fn counts(&self, key: &str) -> Result<Vec<(String, i64)>> {
        let prefix = format!("{key}\u{0}");
        let e = self.entries.lock();
        let mut out: Vec<(String, i64)> =
            e.iter().filter_map(|(k, (v, _))| Some((k.strip_prefix(&prefix)?.to_owned(), v.parse().ok()?))).collect();
        out.sort();
        Ok(out)
    }

    fn lease(&self, key: &str, request: &LeaseRequest<'_>) -> Result<Lease> {
        let mut e = self.entries.lock();
        let now = now_ms();
        let held = if Self::live(&mut e, key) { Lease::parse(&e[key].0) } else { None };
        let (mut lease, until) = held.unwrap_or((Lease { holder: String::new(), count: 0, last: 0 }, 0));
        lease.count = lease.count.saturating_add(request.added);
        lease.last = lease.last.max(request.last);
        let mut until = until;
        if lease.holder.is_empty() || lease.holder == request.owner || until <= now {
            lease.holder = request.owner.to_owned();
            until = now + i64::try_from(request.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        }
        let value = format!("{}|{until}|{}|{}", lease.holder, lease.count, lease.last);
        e.insert(key.to_owned(), (value, Instant::now() + request.keep));
        Ok(lease)
    }

    fn post(&self, key: &str, field: &str, value: &str, fresh: Duration) -> Result<Vec<(String, String)>> {
        let mut e = self.entries.lock();
        let prefix = format!("{key}\u{2}");
        e.insert(format!("{prefix}{field}"), (value.to_owned(), Instant::now() + fresh));
        let now = Instant::now();
        e.retain(|k, (_, until)| !k.starts_with(&prefix) || *until > now);
        let mut out: Vec<(String, String)> =
            e.iter().filter_map(|(k, (v, _))| Some((k.strip_prefix(&prefix)?.to_owned(), v.clone()))).collect();
        out.sort();
        Ok(out)
    }

    fn ping(&self) -> Result<Duration> {
        Ok(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_counters_and_expiry() {
        let c = MemoryCache::new();
        assert!(c.claim("k", "1", Duration::from_secs(60)).unwrap());
        assert!(!c.claim("k", "2", Duration::from_secs(60)).unwrap());
        assert_eq!(c.get("k").unwrap().as_deref(), Some("1"));
        assert_eq!(
            (c.incr("n", Duration::from_secs(60)).unwrap(), c.incr("n", Duration::from_secs(60)).unwrap()),
            (1, 2)
        );
        c.set("short", "x", Duration::ZERO).unwrap();
        assert_eq!(c.get("short").unwrap(), None, "expired");
        assert!(c.claim("short", "y", Duration::from_secs(1)).unwrap());
        c.delete("k").unwrap();
        assert_eq!(c.get("k").unwrap(), None);
        c.add_counts("h", "1", &[("a".into(), 2), ("b".into(), 1)]).unwrap();
        c.add_counts("h", "2", &[("a".into(), 3)]).unwrap();
        c.add_counts("h", "2", &[("a".into(), 3)]).unwrap();
        assert_eq!(c.counts("h").unwrap(), vec![("a".into(), 5), ("b".into(), 1)]);
        assert!(c.counts("other").unwrap().is_empty());
    }

    #[test]
    fn a_lease_is_held_by_one_owner_until_it_runs_out_and_counts_for_all() {
        let c = MemoryCache::new();
        let ask = |owner, ttl_ms, added, last| LeaseRequest {
            owner,
            ttl: Duration::from_millis(ttl_ms),
            keep: Duration::from_secs(60),
            added,
            last,
        };
        let a = c.lease("t", &ask("a", 60_000, 1, 10)).unwrap();
        assert_eq!(a, Lease { holder: "a".into(), count: 1, last: 10 });
        let b = c.lease("t", &ask("b", 60_000, 1, 20)).unwrap();
        assert_eq!(b, Lease { holder: "a".into(), count: 2, last: 20 }, "a holds it; b's intervention counts");
        assert_eq!(c.lease("t", &ask("a", 0, 0, 0)).unwrap().holder, "a", "renewed with zero: released");
        let b = c.lease("t", &ask("b", 60_000, 0, 0)).unwrap();
        assert_eq!(b, Lease { holder: "b".into(), count: 2, last: 20 }, "free again: b takes it, count kept");
        assert_eq!(Lease::parse("x|y|1|2"), None);
        assert_eq!(Lease::parse("a|b|5|3|7").unwrap().0.holder, "a|b", "the holder is what precedes the numbers");
    }

    #[test]
    fn a_board_shows_every_fresh_post_and_forgets_stale_ones() {
        let c = MemoryCache::new();
        let fresh = Duration::from_secs(60);
        assert_eq!(c.post("b", "one", "1", fresh).unwrap(), vec![("one".into(), "1".into())]);
        assert_eq!(
            c.post("b", "two", "2", fresh).unwrap(),
            vec![("one".into(), "1".into()), ("two".into(), "2".into())]
        );
        assert_eq!(
            c.post("b", "one", "3", fresh).unwrap(),
            vec![("one".into(), "3".into()), ("two".into(), "2".into())],
            "a post replaces the poster's last"
        );
        assert_eq!(c.post("other", "x", "9", fresh).unwrap().len(), 1, "boards are apart");
        c.post("b", "two", "4", Duration::ZERO).unwrap();
        assert_eq!(c.post("b", "one", "5", fresh).unwrap(), vec![("one".into(), "5".into())], "two went stale");
    }
}
