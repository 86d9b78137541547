//! Bounds for per-task tables: a fleet can start tasks faster than they go idle, so every table
//! keyed by task has a cap, and past it the least recently active entries are forgotten first.

use std::time::Duration;

use crate::clock::Timestamp;

/// Shrinks a full table to 3/4 of `cap`. `prune(horizon)` keeps the entries active at or after
/// `horizon` and returns how many remain; the horizon starts `idle` before `now` and halves
/// until enough are gone (a few passes, once per quarter of the cap of new entries). Entries
/// active within the last millisecond are kept even past the cap.
pub(crate) fn forget_least_recent(
    now: Timestamp,
    idle: Duration,
    cap: usize,
    mut prune: impl FnMut(Timestamp) -> usize,
) {
    let mut keep = idle;
    while prune(now.minus(keep)) > cap * 3 / 4 && keep >= Duration::from_millis(1) {
        keep /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_to_three_quarters_keeping_the_newest() {
        // 1,000 entries active one second apart; cap 400.
        let mut last: Vec<i64> = (0..1000).map(|i| i * 1_000_000).collect();
        let now = Timestamp::from_micros(1000 * 1_000_000);
        forget_least_recent(now, Duration::from_secs(3600), 400, |horizon| {
            last.retain(|&t| t >= horizon.as_micros());
            last.len()
        });
        assert!((150..=300).contains(&last.len()), "{}", last.len());
        assert_eq!(last.last(), Some(&(999 * 1_000_000)), "the newest stays");
    }

    #[test]
    fn entries_of_the_last_millisecond_are_kept() {
        let mut last = vec![5_000_000i64; 10];
        let now = Timestamp::from_micros(5_000_000);
        forget_least_recent(now, Duration::from_secs(1), 4, |horizon| {
            last.retain(|&t| t >= horizon.as_micros());
            last.len()
        });
        assert_eq!(last.len(), 10);
    }
}
