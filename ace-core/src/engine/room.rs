//! A caller that finds the buffers full, with a store that keeps records in memory, waits for
//! the writer to make room instead of dropping its record.
//!
//! With a store on disk or across the network, such a record goes to the spill directory's
//! overflow (see `persist::overflow`) and the call never waits. A store that keeps records in
//! memory ([`crate::store::Store::takes_records_in_memory`], the default `MemoryStore`) has no
//! spill directory, and the writer's drain into it never waits on I/O: the buffers are full
//! only because callers outran the writer thread for as long as `buffer_capacity` lasts (one
//! key in a tight loop from several threads on a busy machine). The caller wakes the writer and
//! sleeps until the writer has given room back (each drain it settles is *progress*), then
//! tries again. A writer that makes no progress for [`STALL`] is held up elsewhere (a Redis
//! call of the fleet's cache, say): the record is then dropped and counted (`buffer_full`),
//! and so is every record that finds the buffers full for [`BACK_OFF`] after, without waiting,
//! so a stalled writer never slows every call. No call waits longer than [`MAX_WAIT`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a caller waits for the writer's next drain before it calls the writer stalled. On
/// a 2-core machine at load 8-9 the writer thread, runnable, was at times not scheduled for over
/// 50 ms (a hot key from four threads then lost records): a stall is a writer away for longer.
pub(super) const STALL: Duration = Duration::from_millis(200);
/// After a stall, records that find the buffers full are dropped without waiting for this long.
pub(super) const BACK_OFF: Duration = Duration::from_secs(1);
/// The longest one call waits, whatever progress the writer makes.
pub(super) const MAX_WAIT: Duration = Duration::from_millis(250);

/// Where callers wait for room. `std` primitives, not `parking_lot` (see `persist::fork`).
pub(crate) struct RoomWait {
    start: Instant,
    /// Drains the writer settled while someone waited.
    progress: Mutex<u64>,
    made: Condvar,
    waiters: AtomicUsize,
    /// Nanoseconds since `start` before which callers do not wait (0: they do).
    no_wait_until: AtomicU64,
}

impl RoomWait {
    pub(super) fn new() -> Self {
        RoomWait {
            start: Instant::now(),
            progress: Mutex::new(0),
            made: Condvar::new(),
            waiters: AtomicUsize::new(0),
            no_wait_until: AtomicU64::new(0),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Called by the writer after it gave room back: wakes the callers waiting for it (an
    /// atomic load when there are none).
    pub(super) fn made_room(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            *self.progress.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            self.made.notify_all();
        }
    }

    /// Tries `retry` (which hands the record back while there is no room), waking the writer
    /// with `wake` and sleeping until it makes progress between tries; the record comes back if
    /// there was no room in time (see the module's docs).
    pub(super) fn wait<R>(&self, mut record: R, wake: impl Fn(), mut retry: impl FnMut(R) -> Option<R>) -> Option<R> {
        let started = Instant::now();
        if self.nanos(started) < self.no_wait_until.load(Ordering::Relaxed) {
            return Some(record);
        }
        loop {
            // Registered before the progress count is read: a drain settled after this point
            // bumps it; one settled before left room that the next try finds.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let seen = *self.progress.lock().unwrap_or_else(PoisonError::into_inner);
            wake();
            let progressed = match retry(record) {
                None => {
                    self.waiters.fetch_sub(1, Ordering::SeqCst);
                    return None;
                }
                Some(r) => {
                    record = r;
                    let waited = self.progress_since(seen, STALL.min(MAX_WAIT.saturating_sub(started.elapsed())));
                    self.waiters.fetch_sub(1, Ordering::SeqCst);
                    waited
                }
            };
            if !progressed || started.elapsed() >= MAX_WAIT {
                record = retry(record)?;
                if !progressed && started.elapsed() < MAX_WAIT {
                    // No drain for `STALL`: the writer is held up.
                    self.no_wait_until.store(self.nanos(Instant::now() + BACK_OFF), Ordering::Relaxed);
                }
                return Some(record);
            }
        }
    }

    /// Sleeps until the writer's progress count passes `seen`, for at most `timeout`; whether
    /// it did.
    fn progress_since(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        while *progress == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            progress = self.made.wait_timeout(progress, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn room_there_at_once_takes_the_record_without_sleeping() {
        let room = RoomWait::new();
        let (woken, tries) = (Cell::new(0), Cell::new(0));
        let back = room.wait(
            7,
            || woken.set(woken.get() + 1),
            |_| {
                tries.set(tries.get() + 1);
                None
            },
        );
        assert_eq!((back, woken.get(), tries.get()), (None, 1, 1));
    }

    #[test]
    fn a_writer_that_makes_room_lets_the_waiting_caller_in() {
        let room = Arc::new(RoomWait::new());
        let free = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (room, free) = (room.clone(), free.clone());
            std::thread::spawn(move || {
                // The writer drains only once a caller waits, and says so.
                while room.waiters.load(Ordering::SeqCst) == 0 {
                    std::thread::yield_now();
                }
                free.store(true, Ordering::SeqCst);
                room.made_room();
            })
        };
        let back = room.wait(7, || {}, |r| (!free.load(Ordering::SeqCst)).then_some(r));
        writer.join().unwrap();
        assert_eq!(back, None, "the record went in once the writer made room");
        assert_eq!(room.no_wait_until.load(Ordering::Relaxed), 0, "no stall was seen");
    }

    #[test]
    fn a_stalled_writer_gives_the_record_back_and_later_calls_do_not_wait() {
        let room = RoomWait::new();
        assert_eq!(room.wait(7, || {}, Some), Some(7));
        assert!(room.no_wait_until.load(Ordering::Relaxed) > 0, "the stall starts a back-off");
        // Within the back-off: no wake, no try.
        let tried = Cell::new(false);
        let back = room.wait(
            8,
            || tried.set(true),
            |r| {
                tried.set(true);
                Some(r)
            },
        );
        assert_eq!((back, tried.get()), (Some(8), false));
    }
}
