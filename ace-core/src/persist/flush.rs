//! Coordination between recorders, flushers and the writer thread: wake-ups, and the tickets
//! `flush` waits on, with the store's real error when a flushed write failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;

use parking_lot::{Condvar, Mutex};

use super::Wake;
use crate::error::{Error, Result};

/// Shared by the engine's handle and its writer thread.
#[derive(Default)]
pub(crate) struct WriterSync {
    pub(super) state: Mutex<State>,
    pub(super) done: Condvar,
    pub(super) wake: AtomicBool,
    /// The writer is polling (see `writer::POLL_INTERVAL`): recorders need not wake it.
    pub(super) polling: AtomicBool,
    pub(super) thread: Mutex<Option<Thread>>,
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
        }
    }

    pub(super) fn unpark(&self) {
        if let Some(t) = &*self.thread.lock() {
            t.unpark();
        }
    }

    /// Blocks until the writer has written everything buffered before this call.
    pub(crate) fn flush(&self, backend: &'static str) -> Result<()> {
        let mut st = self.state.lock();
        if st.dead || st.shutdown {
            return Err(Error::Closed);
        }
        st.requested += 1;
        let ticket = st.requested;
        self.unpark();
        while st.completed < ticket && !st.dead {
            self.done.wait(&mut st);
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
        self.state.lock().shutdown = true;
        self.unpark();
    }

    /// (records persisted, records held by the writer for a retry)
    pub(crate) fn progress(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.persisted, st.carried)
    }

    /// The writer thread died: wake every flusher with an error.
    pub(super) fn died(&self) {
        let mut st = self.state.lock();
        st.dead = true;
        self.done.notify_all();
    }
}
