//! Forking a process whose engines are writing: the writer threads stand still at `fork()`.
//!
//! A thread that is in the middle of a lock operation when the process forks leaves the child
//! a copy of that lock (and of `parking_lot`'s table of waiting threads) in a state no thread of
//! the child will ever finish: the child's own engine then loses wake-ups, hangs, or aborts.
//! [`before_fork`] asks every live writer thread to stop at the top of its loop, where it holds
//! nothing and no store call is in flight, and waits for each (at most [`FORK_WAIT`] in all);
//! [`after_fork_parent`] lets them go on; [`after_fork_child`] forgets them (their threads did
//! not survive the fork). The Python package registers the three with `os.register_at_fork`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::WriterSync;

/// The longest [`before_fork`] waits for the writers in all; past it the fork goes ahead.
pub const FORK_WAIT: Duration = Duration::from_secs(2);

/// Every live engine's writer coordination. A `std` mutex, whose state is one word that a
/// forked child can reset: `parking_lot` is what this module keeps out of the fork.
static LIVE: Mutex<Vec<Weak<WriterSync>>> = Mutex::new(Vec::new());

/// Adds a writer (called once the writer thread is spawned).
pub(crate) fn register(sync: &Arc<WriterSync>) {
    let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(sync));
}

fn live() -> Vec<Arc<WriterSync>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner).iter().filter_map(Weak::upgrade).collect()
}

/// Call just before `fork()`: stops every writer thread at a point where it holds nothing,
/// waiting at most [`FORK_WAIT`]. Returns how many writers stood still in time.
pub fn before_fork() -> usize {
    let writers = live();
    for sync in &writers {
        sync.pause.store(true, Ordering::SeqCst);
        sync.unpark();
    }
    let deadline = Instant::now() + FORK_WAIT;
    let mut still = 0;
    for sync in &writers {
        while !sync.paused.load(Ordering::SeqCst) && !sync.stopped() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        still += usize::from(sync.paused.load(Ordering::SeqCst));
    }
    still
}

/// Call after `fork()` in the parent: the writers go on.
pub fn after_fork_parent() {
    for sync in live() {
        sync.pause.store(false, Ordering::SeqCst);
        sync.unpark();
    }
}

/// Call after `fork()` in the child: the parent's writers did not survive; forget them, and
/// close the child's copies of the parent's spill-directory locks (see `super::owner`).
pub fn after_fork_child() {
    LIVE.clear_poison();
    LIVE.lock().unwrap_or_else(PoisonError::into_inner).clear();
    super::owner::after_fork_child();
}
