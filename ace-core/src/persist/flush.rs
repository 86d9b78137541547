//! Coordination between recorders, flushers and the writer thread: wake-ups, and the tickets
//! `flush` waits on, with the store's real error when a flushed write failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration;

use std::sync::{Condvar, MutexGuard, PoisonError};

use parking_lot::Mutex;

use super::Wake;
use crate::error::{Error, Result};

/// How often a waiting `flush` checks the writer's progress without being woken.
const RECHECK: Duration = Duration::from_millis(20);

/// Shared by the engine's handle and its writer thread.
#[derive(Default)]
pub(crate) struct WriterSync {
    /// `std` primitives, not `parking_lot`: the writer and flushers wait here, and a thread
    /// parked in `parking_lot`'s global table when the process forks corrupts it in the child
    /// (see `fork.rs`).
    state: std::sync::Mutex<State>,
    pub(super) done: Condvar,
    pub(super) wake: AtomicBool,
    /// The writer is polling (see `writer::POLL_INTERVAL`): recorders need not wake it.
    pub(super) polling: AtomicBool,
    pub(super) thread: Mutex<Option<Thread>>,
    /// A fork is about to happen: the writer stops at the top of its loop (see `fork.rs`).
    pub(super) pause: AtomicBool,
    /// The writer stands still for a fork.
    pub(super) paused: AtomicBool,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) requested: u64,
    pub(super) completed: u64,
    /// Why the last flushed cycle failed: the store's (or the store breaker's) own error.
    pub(super) result: Option<Arc<Error>>,
    pub(super) shutdown: bool,
    pub(super) dead: bool,
    pub(super) persisted: u64,
    pub(super) carried: u64,
}

impl WriterSync {
    /// The coordination state (a panic elsewhere never makes it unusable).
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the writer to run: `Soon` wakes it if it sleeps and otherwise leaves it to its next
    /// poll; `Now` wakes it in any case.
    #[inline]
    pub(crate) fn wake(&self, wake: Wake) {
        // The flag is set before `polling` is read, and the writer clears `polling` before it
        // reads the flag (both SeqCst): one of the two sees the other, so no wake-up is lost.
        match wake {
            Wake::No => {}
            Wake::Soon => {
                if !self.wake.swap(true, Ordering::SeqCst) && !self.polling.load(Ordering::SeqCst) {
                    self.unpark();
                }
            }
            Wake::Now | Wake::Full => {
                self.wake.store(true, Ordering::SeqCst);
                self.unpark();
            }
            Wake::Dropped(dropped) => {
                tracing::warn!(
                    dropped,
                    "ace record buffer is full: records are not being persisted (store too slow or down)"
                );
                self.wake.store(true, Ordering::SeqCst);
                self.unpark();
            }
        }
    }

    pub(super) fn unpark(&self) {
        if let Some(t) = &*self.thread.lock() {
            t.unpark();
        }
    }

    /// Blocks until the writer has written everything buffered before this call.
    pub(crate) fn flush(&self, backend: &'static str) -> Result<()> {
        let mut st = self.state();
        if st.dead || st.shutdown {
            return Err(Error::Closed);
        }
        st.requested += 1;
        let ticket = st.requested;
        self.unpark();
        while st.completed < ticket && !st.dead {
            // A timed wait that checks again: in a process forked from a multi-threaded parent
            // the wake-up can be lost (the parking table is the parent's copy), and a lost
            // wake-up must cost a few milliseconds, never a hang.
            st = self.done.wait_timeout(st, RECHECK).unwrap_or_else(PoisonError::into_inner).0;
        }
        if st.dead {
            return Err(Error::Internal("the ace writer thread stopped unexpectedly".into()));
        }
        match &st.result {
            None => Ok(()),
            Some(e) => Err(Error::Store { backend, operation: "flush", source: Box::new(e.clone()) }),
        }
    }

    pub(crate) fn shutdown(&self) {
        self.state().shutdown = true;
        self.unpark();
    }

    /// (records persisted, records held by the writer for a retry)
    pub(crate) fn progress(&self) -> (u64, u64) {
        let st = self.state();
        (st.persisted, st.carried)
    }

    /// The writer is gone or going (closed, or its thread died): nothing to wait for.
    pub(super) fn stopped(&self) -> bool {
        let st = self.state();
        st.shutdown || st.dead
    }

    /// Called by the writer at the top of its loop: while a fork is pending, stands still
    /// holding nothing.
    pub(super) fn hold_for_fork(&self) {
        if !self.pause.load(Ordering::SeqCst) {
            return;
        }
        self.paused.store(true, Ordering::SeqCst);
        while self.pause.load(Ordering::SeqCst) {
            std::thread::park_timeout(Duration::from_millis(5));
        }
        self.paused.store(false, Ordering::SeqCst);
    }

    /// The writer thread died: wake every flusher with an error.
    pub(super) fn died(&self) {
        let mut st = self.state();
        st.dead = true;
        self.done.notify_all();
    }
}
