//! Sliding windows of call outcomes: the last N calls, or the calls of the last N seconds.

use super::config::Window as Kind;

/// Totals over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
    /// Slow calls that failed too (the rest of `slow` succeeded).
    pub slow_failures: u32,
    /// The calls' durations added up, in microseconds (zero when the breaker times nothing).
    pub micros: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, failed: bool, slow: bool, micros: u64) {
        self.calls += 1;
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
        self.slow_failures += u32::from(failed && slow);
        self.micros = self.micros.saturating_add(micros);
    }

    /// Adds another window's totals.
    fn merge(&mut self, other: Tally) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.slow += other.slow;
        self.slow_failures += other.slow_failures;
        self.micros = self.micros.saturating_add(other.micros);
    }

    fn remove(&mut self, failed: bool, slow: bool, micros: u64) {
        self.calls -= 1;
        self.failures -= u32::from(failed);
        self.slow -= u32::from(slow);
        self.slow_failures -= u32::from(failed && slow);
        self.micros = self.micros.saturating_sub(micros);
    }

    /// Failure and slow-call rates in percent.
    pub fn rates(&self) -> (f64, f64) {
        if self.calls == 0 {
            return (0.0, 0.0);
        }
        let n = f64::from(self.calls);
        (f64::from(self.failures) * 100.0 / n, f64::from(self.slow) * 100.0 / n)
    }
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Bucket {
    second: i64,
    tally: Tally,
}

/// The outcomes of a count or time window (a consecutive-failures breaker keeps none).
pub(crate) enum Outcomes {
    None,
    /// A ring of the last calls, two bits each (failed, slow), and their durations (empty when
    /// the breaker times nothing: eight bytes a call only for breakers that read the clock).
    Count {
        ring: Vec<u8>,
        durations: Vec<u64>,
        next: usize,
        len: usize,
        tally: Tally,
    },
    /// One bucket per second, indexed by the second modulo the size.
    Time {
        buckets: Vec<Bucket>,
    },
}

impl Outcomes {
    /// The window `kind`; `timed` when calls carry durations.
    pub fn new(kind: Kind, timed: bool) -> Self {
        match kind {
            Kind::ConsecutiveFailures(_) => Outcomes::None,
            Kind::Count(n) => Outcomes::Count {
                ring: vec![0; n as usize],
                durations: if timed { vec![0; n as usize] } else { Vec::new() },
                next: 0,
                len: 0,
                tally: Tally::default(),
            },
            Kind::Time(n) => {
                Outcomes::Time { buckets: vec![Bucket { second: i64::MIN, ..Bucket::default() }; n as usize] }
            }
        }
    }

    /// Records one outcome at `second` (seconds since the epoch on the engine clock) of a call
    /// that took `micros`, and returns the window's totals.
    pub fn push(&mut self, second: i64, failed: bool, slow: bool, micros: u64) -> Tally {
        match self {
            Outcomes::None => Tally::default(),
            Outcomes::Count { ring, durations, next, len, tally } => {
                let timed = !durations.is_empty();
                if *len == ring.len() {
                    let old = ring[*next];
                    tally.remove(old & 1 != 0, old & 2 != 0, if timed { durations[*next] } else { 0 });
                } else {
                    *len += 1;
                }
                ring[*next] = u8::from(failed) | (u8::from(slow) << 1);
                if timed {
                    durations[*next] = micros;
                }
                *next = (*next + 1) % ring.len();
                tally.add(failed, slow, if timed { micros } else { 0 });
                *tally
            }
            Outcomes::Time { buckets } => {
                let size = buckets.len() as i64;
                let b = &mut buckets[second.rem_euclid(size) as usize];
                if b.second != second {
                    *b = Bucket { second, tally: Tally::default() };
                }
                b.tally.add(failed, slow, micros);
                self.totals(second)
            }
        }
    }

    /// The window's totals at `second`, without recording anything: a time window drops the
    /// seconds that have passed out of it.
    pub fn totals(&self, second: i64) -> Tally {
        match self {
            Outcomes::None => Tally::default(),
            Outcomes::Count { tally, .. } => *tally,
            Outcomes::Time { buckets } => {
                let size = buckets.len() as i64;
                let mut total = Tally::default();
                for b in buckets.iter().filter(|b| b.second > second - size && b.second <= second) {
                    total.merge(b.tally);
                }
                total
            }
        }
    }

    /// Forgets every outcome.
    pub fn clear(&mut self) {
        match self {
            Outcomes::None => {}
            Outcomes::Count { ring, durations, next, len, tally } => {
                ring.fill(0);
                durations.fill(0);
                (*next, *len, *tally) = (0, 0, Tally::default());
            }
            Outcomes::Time { buckets } => buckets.fill(Bucket { second: i64::MIN, ..Bucket::default() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_window_keeps_the_last_n() {
        let mut w = Outcomes::new(Kind::Count(3), false);
        assert_eq!(w.push(0, true, false, 0), Tally { calls: 1, failures: 1, ..Tally::default() });
        w.push(0, false, true, 0);
        w.push(0, false, false, 0);
        assert_eq!(
            w.push(0, false, false, 0),
            Tally { calls: 3, slow: 1, ..Tally::default() },
            "the first failure slid out"
        );
        assert_eq!(w.push(0, true, false, 0).rates(), (100.0 / 3.0, 0.0));
        w.clear();
        assert_eq!(w.push(0, false, false, 0).calls, 1);
    }

    #[test]
    fn a_time_window_keeps_the_last_n_seconds() {
        let mut w = Outcomes::new(Kind::Time(10), false);
        for s in 0..10 {
            w.push(100 + s, s % 2 == 0, false, 0);
        }
        assert_eq!(w.push(109, false, false, 0), Tally { calls: 11, failures: 5, ..Tally::default() });
        // Second 110 reuses 100's bucket; 100 is out of the window.
        assert_eq!(w.push(110, false, false, 0), Tally { calls: 11, failures: 4, ..Tally::default() });
        assert_eq!(
            w.push(200, true, true, 0),
            Tally { calls: 1, failures: 1, slow: 1, slow_failures: 1, micros: 0 },
            "long idle: all old"
        );
        assert_eq!(w.totals(209).calls, 1, "read within the window");
        assert_eq!(w.totals(210), Tally::default(), "read after the window passed: nothing left");
    }

    #[test]
    fn windows_add_up_durations_and_forget_those_that_slide_out() {
        let mut w = Outcomes::new(Kind::Count(2), true);
        w.push(0, false, false, 100);
        w.push(0, true, false, 200);
        assert_eq!(w.push(0, false, false, 400).micros, 600, "the first call's 100 slid out");
        let mut untimed = Outcomes::new(Kind::Count(2), false);
        assert_eq!(untimed.push(0, false, false, 100).micros, 0, "an untimed window keeps no durations");
        let mut t = Outcomes::new(Kind::Time(2), true);
        t.push(10, false, false, 1_000);
        assert_eq!(t.push(11, false, false, 500).micros, 1_500);
        assert_eq!(t.totals(12).micros, 500, "second 10 passed out of the window");
    }
}
