//! The appender thread: the one place the store's `append` is called, so that a slow store
//! blocks it and never the writer.
//!
//! The writer hands it one batch at a time and waits for the outcome in short slices. While a
//! write takes long (a locked SQLite file, a slow disk, a slow network), the writer does not sit
//! on the store's lock with the buffers filling behind it: between slices it keeps draining the
//! buffers to spill files, which are stored, oldest first, once the batch in flight is done (see
//! `writer.rs`). An append is never abandoned: the store finishes it or fails it, and the batch
//! comes back with the outcome either way.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::PersistSeries;
use crate::breaker::CircuitBreaker;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::store::Store;

/// What the appender holds.
enum Slot {
    Idle,
    /// A batch to write; `retry` counts it in `ace_store_retries_total`.
    Job {
        records: Vec<Record>,
        retry: bool,
    },
    /// The batch is being written. (Without this state the slot read `Idle` during a write, and
    /// the writer's [`Appender::collect`] returned at once instead of waiting its slice: the
    /// writer spun, locking every shard to count the buffers, against the recorders.)
    Running,
    /// A batch written (or not), waiting for the writer to collect it.
    Done {
        records: Vec<Record>,
        outcome: std::result::Result<(), Arc<Error>>,
    },
    Stop,
}

/// `std` primitives, not `parking_lot`: this thread waits here whenever it is idle, and a
/// thread parked in `parking_lot`'s global table when the process forks corrupts that table in
/// the child (whose new threads reuse the parked thread's stack). See `fork.rs`.
struct Shared {
    slot: Mutex<Slot>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer's handle on the appender thread.
pub(super) struct Appender {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A finished write: the batch, and whether the store took it.
pub(super) type Outcome = (Vec<Record>, std::result::Result<(), Arc<Error>>);

impl Appender {
    pub(super) fn spawn(store: Arc<dyn Store>, breaker: Arc<CircuitBreaker>, series: PersistSeries) -> Result<Self> {
        let shared = Arc::new(Shared { slot: Mutex::new(Slot::Idle), changed: Condvar::new() });
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ace-append".into())
            .spawn(move || run(&inner, &*store, &breaker, &series))
            .map_err(|e| Error::Internal(format!("cannot start the ace append thread: {e}")))?;
        Ok(Appender { shared, thread: Some(thread) })
    }

    /// Hands a batch over (the appender is idle: the writer collects every outcome first).
    pub(super) fn submit(&self, records: Vec<Record>, retry: bool) {
        let mut slot = self.shared.lock();
        debug_assert!(matches!(*slot, Slot::Idle));
        *slot = Slot::Job { records, retry };
        self.shared.changed.notify_all();
    }

    /// The outcome of the batch in flight, if it is done within `wait`.
    pub(super) fn collect(&self, wait: Duration) -> Option<Outcome> {
        let mut slot = self.shared.lock();
        if matches!(*slot, Slot::Job { .. } | Slot::Running) {
            slot = self.shared.changed.wait_timeout(slot, wait).unwrap_or_else(PoisonError::into_inner).0;
        }
        match std::mem::replace(&mut *slot, Slot::Idle) {
            Slot::Done { records, outcome } => Some((records, outcome)),
            other => {
                *slot = other;
                None
            }
        }
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        *self.shared.lock() = Slot::Stop;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, store: &dyn Store, breaker: &CircuitBreaker, series: &PersistSeries) {
    loop {
        let (records, retry) = {
            let mut slot = shared.lock();
            loop {
                match std::mem::replace(&mut *slot, Slot::Running) {
                    Slot::Job { records, retry } => break (records, retry),
                    Slot::Stop => return,
                    other => {
                        *slot = other;
                        slot = shared.changed.wait(slot).unwrap_or_else(PoisonError::into_inner);
                    }
                }
            }
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            guarded_append(store, breaker, series, &records, retry)
        }))
        .unwrap_or_else(|_| {
            Err(Arc::new(Error::Internal(format!("the {} store panicked in append", store.backend()))))
        });
        let mut slot = shared.lock();
        if matches!(*slot, Slot::Stop) {
            return;
        }
        *slot = Slot::Done { records, outcome };
        shared.changed.notify_all();
    }
}

/// A write through the store's breaker; `retry` counts the attempt in `ace_store_retries_total`.
fn guarded_append(
    store: &dyn Store,
    breaker: &CircuitBreaker,
    series: &PersistSeries,
    records: &[Record],
    retry: bool,
) -> std::result::Result<(), Arc<Error>> {
    let permit = breaker.try_acquire().map_err(|r| Arc::new(Error::from(r)))?;
    if retry {
        series.store_retries.inc();
    }
    match store.append(records) {
        Ok(()) => {
            permit.success();
            Ok(())
        }
        Err(e) => {
            permit.failure();
            Err(Arc::new(e))
        }
    }
}
