//! Shared hot state across processes: the [`Cache`] trait (Redis in `ace-store`, memory here).
//!
//! Today the engine uses a cache for one thing that must hold across replicas: per-task
//! intervention gates. Before issuing an intervention, an engine with a cache claims the task's
//! cooldown (`SET key NX PX cooldown`) and counts it against the task's cap (`INCR`); a replica
//! that loses the claim issues nothing, so ten replicas of an agent service never intervene twice
//! on one task within the cooldown. When the cache fails, the engine decides on its local state
//! alone and counts the failure (`ace_cache_requests_total{result="error"}`); it uses the cache
//! again as soon as it answers.

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

    /// Checks the cache answers; returns the round trip.
    fn ping(&self) -> Result<Duration>;
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
    }
}
