//! Calls into Python from threads ace owns (the judge, intervention subscribers, a Python
//! embedder, log records), and interpreter exit.
//!
//! When the interpreter finalizes, a thread that waits for the GIL is ended with
//! `pthread_exit`, which unwinds through whatever Rust frames it is in and aborts the process
//! (rc 134, or a segfault). So: `ace` registers [`_before_exit`] with `atexit`; it marks the
//! interpreter as exiting and waits (GIL released, at most [`EXIT_WAIT`]) until no thread is
//! inside [`attach`]; after that `attach` no longer enters Python. A Python judge runs on a
//! Python daemon thread (`ace._judge`) whose stack holds no Rust frame while the judge's code
//! runs, so a judge still busy at exit is ended there harmlessly, and the Rust thread that asked
//! it only waits on a channel.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use ace::{Intervention, Strategy, Verdict};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyAny;

use crate::convert;

static EXITING: AtomicBool = AtomicBool::new(false);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The longest `_before_exit` waits for calls into Python from ace's threads to finish.
const EXIT_WAIT: Duration = Duration::from_secs(5);

struct Active;

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f` attached to the interpreter, unless it is exiting (or not running): `None` then.
pub(crate) fn attach<T>(f: impl FnOnce(Python<'_>) -> T) -> Option<T> {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let _active = Active;
    if EXITING.load(Ordering::SeqCst) {
        return None;
    }
    Python::try_attach(f)
}

/// In a forked child: only the forking thread survived, so no other thread is inside `attach`.
pub(crate) fn after_fork_child() {
    ACTIVE.store(0, Ordering::SeqCst);
}

/// Called by `atexit`: from now on ace's threads no longer enter Python; waits (without the GIL)
/// for those inside to leave, at most 5 seconds.
#[pyfunction]
pub(crate) fn _before_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + EXIT_WAIT;
        while ACTIVE.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Where a Python judge's answer goes: `ace._judge` calls `send` with it (or `fail`).
#[pyclass(module = "ace._ace", name = "_JudgeReply", frozen)]
pub(crate) struct JudgeReply {
    tx: Mutex<Option<SyncSender<Verdict>>>,
}

impl JudgeReply {
    fn reply(&self, v: Verdict) {
        if let Some(tx) = self.tx.lock().take() {
            // The asking thread may have given up (timeout): then nobody needs the verdict.
            let _ = tx.try_send(v);
        }
    }
}

#[pymethods]
impl JudgeReply {
    /// The judge's answer: None or True accepts, False vetoes, a strategy name picks it;
    /// anything else accepts (with a warning).
    fn send(&self, answer: &Bound<'_, PyAny>) {
        let verdict = if answer.is_none() {
            Verdict::Accept
        } else if let Ok(b) = answer.extract::<bool>() {
            if b { Verdict::Accept } else { Verdict::Veto }
        } else {
            match answer.extract::<String>().ok().and_then(|s| s.parse::<Strategy>().ok()) {
                Some(s) => Verdict::Pick(s),
                None => {
                    tracing::warn!("the judge returned neither None, a bool nor a strategy name; accepting");
                    Verdict::Accept
                }
            }
        };
        self.reply(verdict);
    }

    /// The judge raised `error`: reported through `sys.unraisablehook`; the proposal stands.
    fn fail(&self, py: Python<'_>, error: Bound<'_, PyAny>, judge: &Bound<'_, PyAny>) {
        PyErr::from_value(error).write_unraisable(py, Some(judge));
        self.reply(Verdict::Accept);
    }
}

/// Asks a Python judge on a Python daemon thread and waits for its answer (the core's own
/// timeout bounds the wait of the recording call); anything but a clear answer accepts.
pub(crate) fn judge(f: &Py<PyAny>, proposal: &Intervention) -> Verdict {
    let (tx, rx) = sync_channel(1);
    let started = attach(|py| {
        let run = || -> PyResult<()> {
            let reply = Py::new(py, JudgeReply { tx: Mutex::new(Some(tx)) })?;
            let proposal = convert::intervention(py, proposal)?;
            py.import("ace._judge")?.getattr("start")?.call1((f.clone_ref(py), proposal, reply))?;
            Ok(())
        };
        run().map_err(|e| e.write_unraisable(py, Some(f.bind(py)))).is_ok()
    });
    if started == Some(true) { rx.recv().unwrap_or(Verdict::Accept) } else { Verdict::Accept }
}
