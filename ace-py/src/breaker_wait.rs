//! `half_open_busy="wait"` from asyncio: a coroutine that finds every half-open trial permit
//! taken waits for the trial's verdict without blocking its event loop. The core wakes a waker
//! when the trial ends (`CircuitBreaker::poll_acquire_owned`); this one hands the wake-up to the
//! loop through `call_soon_threadsafe`, on a thread of its own: the core may wake it on a thread
//! that holds a breaker lock and not the interpreter, and taking the interpreter there could
//! deadlock with a Python thread waiting for that lock.

use std::sync::Arc;
use std::task::Wake;

use parking_lot::Mutex;
use pyo3::prelude::*;

/// Calls a Python `wake()` once (errors, such as a closed loop, are dropped: nobody waits).
pub(crate) struct LoopWake(pub(crate) Mutex<Option<Py<PyAny>>>);

impl Wake for LoopWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(wake) = self.0.lock().take() {
            let spawned = std::thread::Builder::new().name("ace-breaker-wake".into()).spawn(move || {
                Python::attach(|py| {
                    if let Err(e) = wake.call0(py) {
                        drop(e);
                    }
                });
            });
            // No thread to be had: the waiter asks again at its next recheck, or at its caller's.
            drop(spawned);
        }
    }
}
