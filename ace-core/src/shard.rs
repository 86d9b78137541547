//! Sharded state: every organ keeps its per-agent or per-task tables in [`SHARDS`] parts, each
//! behind its own lock on its own cache lines, so agents recording from different threads rarely
//! meet; and every table keyed by task has a cap, since a fleet can start tasks faster than they
//! go idle (past it the least recently active entries are forgotten first).

use std::hash::{BuildHasher, Hasher};
use std::ops::Deref;
use std::time::Duration;

use hashbrown::HashTable;
use parking_lot::Mutex;

use crate::clock::Timestamp;

/// Shards of every sharded table.
pub(crate) const SHARDS: usize = 16;

/// The shard of a 64-bit hash. Bits 40.. pick it: hashbrown uses the low bits for buckets and
/// the top 7 for tags, so the tables inside a shard stay well spread.
#[inline]
pub(crate) fn index(hash: u64) -> usize {
    (hash >> 40) as usize % SHARDS
}

/// The hash of a pair of names (an agent and a stage, an agent and a task): both names' bytes,
/// then where the first ends, so that `("ab", "c")` and `("a", "bc")` differ. Three writes to the
/// hasher where hashing the tuple takes four (each `str` ends with a marker byte).
#[inline]
pub(crate) fn hash_pair(hasher: &impl BuildHasher, a: &str, b: &str) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(a.as_bytes());
    h.write(b.as_bytes());
    h.write_usize(a.len());
    h.finish()
}

/// A value alone on its cache lines (two, for the adjacent-line prefetcher), so that locks of
/// neighbouring shards never share one.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub(crate) T);

/// [`SHARDS`] locked parts of a table.
pub(crate) struct Sharded<T>(Box<[Padded<Mutex<T>>]>);

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Sharded((0..SHARDS).map(|_| Padded::default()).collect())
    }
}

impl<T> Sharded<T> {
    /// The shard that holds `hash`.
    #[inline]
    pub(crate) fn of(&self, hash: u64) -> &Mutex<T> {
        &self.0[index(hash)].0
    }
}

impl<T> Deref for Sharded<T> {
    type Target = [Padded<Mutex<T>>];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Shrinks a full table to 3/4 of `cap`, forgetting the entries least recently active (`last`),
/// and every entry idle longer than `idle`. Entries active within the last millisecond are kept
/// even past the cap. Two passes over the table, one to read the entries' times and one to
/// remove (the cut is a selection over the times read); called once per quarter of the cap of
/// new entries.
pub(crate) fn forget_least_recent<T>(
    table: &mut HashTable<T>,
    now: Timestamp,
    idle: Duration,
    cap: usize,
    last: impl Fn(&T) -> Timestamp,
) {
    let keep = cap * 3 / 4;
    let recent = now.minus(Duration::from_millis(1));
    let expired = now.minus(idle).min(recent);
    if table.len() <= keep {
        table.retain(|t| last(t) >= expired);
        return;
    }
    let mut times: Vec<Timestamp> = table.iter().map(&last).collect();
    let cut = times.len() - keep;
    let (_, &mut oldest_kept, newer) = times.select_nth_unstable(cut);
    if oldest_kept >= recent || oldest_kept < expired {
        table.retain(|t| last(t) >= expired.max(oldest_kept).min(recent));
        return;
    }
    // Exactly `keep` stay: those newer than the cut, and as many as fit of those at it.
    let mut ties = keep - newer.iter().filter(|&&t| t > oldest_kept).count();
    table.retain(|t| match last(t).cmp(&oldest_kept) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal if ties > 0 => {
            ties -= 1;
            true
        }
        _ => false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_hashes_by_both_names_and_where_the_first_ends() {
        let hasher = hashbrown::DefaultHashBuilder::default();
        let h = |a: &str, b: &str| hash_pair(&hasher, a, b);
        assert_eq!(h("agent-1", "planning"), h("agent-1", "planning"));
        // The same bytes split at another place, the names swapped, one changed byte.
        let others = [h("agent-", "1planning"), h("planning", "agent-1"), h("agent-2", "planning"), h("", "")];
        for other in others {
            assert_ne!(h("agent-1", "planning"), other);
        }
        assert_ne!(h("ab", "c"), h("a", "bc"));
        assert_ne!(h("", "abc"), h("abc", ""));
    }

    /// A table of entry times (seconds), hashed by themselves.
    fn table(times: impl IntoIterator<Item = i64>) -> HashTable<i64> {
        let mut t = HashTable::new();
        for x in times {
            t.insert_unique(x as u64, x * 1_000_000, |&y| y as u64 / 1_000_000);
        }
        t
    }

    fn sorted(t: &HashTable<i64>) -> Vec<i64> {
        let mut v: Vec<i64> = t.iter().map(|&x| x / 1_000_000).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn shrinks_to_three_quarters_keeping_the_newest() {
        // 1,000 entries active one second apart; cap 400 keeps the newest 300.
        let mut t = table(0..1000);
        let now = Timestamp::from_micros(1000 * 1_000_000);
        forget_least_recent(&mut t, now, Duration::from_secs(3600), 400, |&x| Timestamp::from_micros(x));
        assert_eq!(sorted(&t), (700..1000).collect::<Vec<_>>());
    }

    #[test]
    fn entries_idle_too_long_go_even_below_three_quarters() {
        // 10 entries; 6 idle longer than 100 s.
        let mut t = table([0, 1, 2, 3, 4, 5, 950, 960, 970, 980]);
        let now = Timestamp::from_micros(1000 * 1_000_000);
        forget_least_recent(&mut t, now, Duration::from_secs(100), 10, |&x| Timestamp::from_micros(x));
        assert_eq!(sorted(&t), vec![950, 960, 970, 980]);
    }

    #[test]
    fn entries_of_the_last_millisecond_are_kept() {
        let mut t = HashTable::new();
        for i in 0..10u64 {
            t.insert_unique(i, (i, 5_000_000i64), |&(h, _)| h);
        }
        let now = Timestamp::from_micros(5_000_000);
        forget_least_recent(&mut t, now, Duration::from_secs(1), 4, |&(_, x)| Timestamp::from_micros(x));
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn ties_at_the_cut_still_shrink_the_table() {
        // 16 entries all last active at 10 s; cap 8 keeps 6 of them.
        let mut t = table(0..16);
        let now = Timestamp::from_micros(1000 * 1_000_000);
        forget_least_recent(&mut t, now, Duration::from_secs(3600), 8, |_| Timestamp::from_micros(10_000_000));
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn a_table_under_three_quarters_loses_only_its_idle_entries() {
        let mut t = table([0, 1, 990, 995]);
        let now = Timestamp::from_micros(1000 * 1_000_000);
        forget_least_recent(&mut t, now, Duration::from_secs(100), 8, |&x| Timestamp::from_micros(x));
        assert_eq!(sorted(&t), vec![990, 995]);
    }
}
