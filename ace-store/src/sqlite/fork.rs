//! Forking a process that uses SQLite: no thread may be inside SQLite when `fork()` happens.
//!
//! SQLite keeps process-wide state (its mutexes, and one lock record per open database file,
//! shared by every connection to that file). A thread of the parent that is inside SQLite at
//! the moment of `fork()` holds some of those mutexes, and in the child they stay held forever:
//! the child's own engine on the same file then hangs in its first write. Every call the store
//! makes runs under the read side of one gate; [`before_fork`] takes the write side (waiting for
//! the calls in flight to finish, at most [`FORK_WAIT`]) and [`after_fork`] releases it, in the
//! parent and in the child. The Python package registers both with `os.register_at_fork`.

use std::cell::RefCell;
use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The longest [`before_fork`] waits for the SQLite calls in flight; past it the fork goes
/// ahead as it would without the gate.
pub const FORK_WAIT: Duration = Duration::from_secs(2);

static GATE: RwLock<()> = RwLock::new(());

thread_local! {
    /// The gate, held by the thread that forks from [`before_fork`] to [`after_fork`] (both run
    /// on that thread, and in the child that thread is the one that survived).
    static HELD: RefCell<Option<RwLockWriteGuard<'static, ()>>> = const { RefCell::new(None) };
}

/// Held for the length of one store call.
pub(super) fn enter() -> RwLockReadGuard<'static, ()> {
    // Recursive, so that a call made on a thread already inside one never waits behind a fork
    // that waits for it.
    GATE.read_recursive()
}

/// Call just before `fork()`: waits until no thread is inside a store call (at most
/// [`FORK_WAIT`]) and keeps new calls out until [`after_fork`], called on the same thread.
pub fn before_fork() {
    let guard = GATE.try_write_for(FORK_WAIT);
    HELD.with(|held| *held.borrow_mut() = guard);
}

/// Call after `fork()`, in the parent and in the child, on the thread that forked: lets store
/// calls in again.
pub fn after_fork() {
    HELD.with(|held| drop(held.borrow_mut().take()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_waits_for_a_call_in_flight_and_opens_after_the_fork() {
        let call = enter();
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            let forker = s.spawn(|| {
                before_fork();
                let held = HELD.with(|h| h.borrow().is_some());
                // New calls wait while the gate is held.
                let others_kept_out = std::thread::scope(|s| s.spawn(|| GATE.try_read().is_none()).join().unwrap());
                after_fork();
                (held, others_kept_out, HELD.with(|h| h.borrow().is_none()))
            });
            std::thread::sleep(Duration::from_millis(50));
            drop(call);
            assert_eq!(forker.join().unwrap(), (true, true, true), "the gate was taken once the call finished");
        });
        assert!(started.elapsed() < FORK_WAIT);
        drop(enter());
        // A second `after_fork` without a `before_fork` is harmless.
        after_fork();
        drop(enter());
    }
}
