//! The hot calls as plain functions over small integer handles.
//!
//! napi-rs checks a class instance's identity and registers a borrow of it on every method
//! call: about 300 ns on this machine, more than the engine's own work. A plain function taking
//! a handle costs about 60 ns. So the calls an agent makes per step (recording a stage, a
//! breaker's permit and verdict) are plain functions here; the classes keep everything else.

use std::sync::Arc;

use ace::Ace;
use ace::breaker::{CircuitBreaker, Outcome, OwnedPermit, Rejected};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::{IntoJs, coded, guard, invalid};

/// A slab of values reachable by index; a freed index is used again.
struct Registry<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Registry<T> {
    const fn new() -> Self {
        Registry { items: Vec::new(), free: Vec::new() }
    }

    fn insert(&mut self, v: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = Some(v);
                i
            }
            None => {
                self.items.push(Some(v));
                (self.items.len() - 1) as u32
            }
        }
    }

    fn remove(&mut self, i: u32) {
        if let Some(slot) = self.items.get_mut(i as usize)
            && slot.take().is_some()
        {
            self.free.push(i);
        }
    }

    fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize).and_then(Option::as_ref)
    }
}

static ENGINES: RwLock<Registry<Ace>> = RwLock::new(Registry::new());

/// Breaker transitions in this process (every engine's breakers, whatever caused them: a call,
/// a hand, another process through the shared cache). The JS fast path reads it on every call
/// (through `fastApi().breakerEpoch`) and asks the core again when it moved, so a breaker opened
/// elsewhere turns the next call away.
pub(crate) static BREAKER_EPOCH: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static BREAKERS: RwLock<Registry<Arc<BreakerCore>>> = RwLock::new(Registry::new());

pub(crate) fn register_engine(ace: Ace) -> u32 {
    ace.breakers().subscribe(|e| {
        if matches!(e.kind, ace::breaker::EventKind::Transition { .. }) {
            BREAKER_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Release);
        }
    });
    ENGINES.write().insert(ace)
}

pub(crate) fn release_engine(handle: u32) {
    ENGINES.write().remove(handle);
}

fn gone() -> Error {
    coded("closed", "the ace engine is gone (closed and collected)", Value::Null)
}

/// Runs `f` on the engine behind `handle`.
#[inline]
fn with_engine<T>(handle: u32, f: impl FnOnce(&Ace) -> Result<T>) -> Result<T> {
    let engines = ENGINES.read();
    let ace = engines.get(handle).ok_or_else(gone)?;
    guard(|| f(ace))
}

/// `Engine.recordStage` as a plain function (see the module docs).
#[napi(ts_return_type = "Record<string, unknown> | null")]
pub fn record_stage(
    handle: u32,
    agent: String,
    task: String,
    stage: String,
    duration_s: f64,
    success: bool,
    metrics: Option<std::collections::HashMap<String, f64>>,
) -> Result<Option<Value>> {
    with_engine(handle, |ace| {
        let r = match metrics {
            None => ace.record_stage(&agent, &task, &stage, duration_s, success),
            Some(m) => {
                let pairs: Vec<(&str, f64)> = m.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                ace.record_stage_with(&agent, &task, &stage, duration_s, success, &pairs)
            }
        }
        .js()?;
        crate::engine::report(&r)
    })
}

/// `recordStage` without metrics, for the raw fast path.
#[inline]
pub(crate) fn record_stage_report(
    handle: u32,
    agent: &str,
    task: &str,
    stage: &str,
    duration_s: f64,
    success: bool,
) -> Result<Option<Value>> {
    with_engine(handle, |ace| crate::engine::report(&ace.record_stage(agent, task, stage, duration_s, success).js()?))
}

/// `Engine.recordError` for the raw fast path: the report, whole only when it raised signals.
pub(crate) fn record_error_report(
    handle: u32,
    agent: &str,
    task: &str,
    stage: &str,
    error: (&str, &str),
    severity: Option<&str>,
) -> Result<ErrorOut> {
    with_engine(handle, |ace| {
        let sev = crate::engine::severity_named(severity)?;
        let r = ace.record_error(agent, task, stage, error.0, error.1, sev).js()?;
        if r.signals.is_empty() && r.intervention.is_none() {
            Ok(ErrorOut::Plain(r))
        } else {
            crate::engine::error_report(&r).map(ErrorOut::Whole)
        }
    })
}

/// What `record_error_report` hands to JS.
pub(crate) enum ErrorOut {
    /// The common case (no signal, no intervention): JS builds the object from five values.
    Plain(ace::ErrorReport),
    /// Everything, as the class method returns it.
    Whole(Value),
}

/// A breaker with the permits JS holds (as slots).
pub(crate) struct BreakerCore {
    pub(crate) breaker: Arc<CircuitBreaker>,
    pub(crate) ace: Ace,
    slab: Mutex<Slab>,
}

/// Bits of a permit's number that hold its index in the slab; the rest hold the index's
/// generation, bumped each time the permit there is completed. A permit completed twice then
/// names a generation that is gone, not whichever permit took its place since.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Permit numbers stay below 2^53, so JS holds them exactly.
const GENERATIONS: u64 = 1 << (53 - INDEX_BITS);

#[derive(Default)]
struct Slab {
    permits: Vec<(u64, Option<OwnedPermit>)>,
    free: Vec<u32>,
    rejected: Option<Rejected>,
    /// The rejection to throw instead of the error of the call that just opened the breaker
    /// (`trippingCall: 'breaker_error'`).
    tripped: Option<Rejected>,
}

impl BreakerCore {
    pub(crate) fn new(breaker: Arc<CircuitBreaker>, ace: Ace) -> Self {
        BreakerCore { breaker, ace, slab: Mutex::default() }
    }

    /// Holds a permit (its number) or the rejection (-1).
    #[inline]
    pub(crate) fn hold(&self, r: std::result::Result<OwnedPermit, Rejected>) -> Result<f64> {
        let mut s = self.slab.lock();
        match r {
            Ok(p) => {
                let i = match s.free.pop() {
                    Some(i) => i as usize,
                    None if (s.permits.len() as u64) <= INDEX_MASK => {
                        s.permits.push((0, None));
                        s.permits.len() - 1
                    }
                    None => return Err(invalid("permit", "too many permits outstanding (complete some)")),
                };
                let entry = &mut s.permits[i];
                entry.1 = Some(p);
                Ok(((entry.0 << INDEX_BITS) | i as u64) as f64)
            }
            Err(r) => {
                s.rejected = Some(r);
                Ok(-1.0)
            }
        }
    }

    /// The permit numbered `permit`, once: a second completion is an error and touches nothing.
    #[inline]
    pub(crate) fn take(&self, permit: f64) -> Result<OwnedPermit> {
        let no_such = || invalid("permit", "no such permit (completed already?)");
        if !(permit >= 0.0 && permit < (GENERATIONS << INDEX_BITS) as f64 && permit.fract() == 0.0) {
            return Err(no_such());
        }
        let n = permit as u64;
        let (i, generation) = ((n & INDEX_MASK) as usize, n >> INDEX_BITS);
        let mut s = self.slab.lock();
        let entry = s.permits.get_mut(i).filter(|e| e.0 == generation).ok_or_else(no_such)?;
        let p = entry.1.take().ok_or_else(no_such)?;
        entry.0 = (entry.0 + 1) % GENERATIONS;
        s.free.push(i as u32);
        Ok(p)
    }

    pub(crate) fn take_rejection(&self) -> Option<Rejected> {
        self.slab.lock().rejected.take()
    }

    pub(crate) fn take_tripped(&self) -> Option<Rejected> {
        self.slab.lock().tripped.take()
    }

    /// Completes `p`. Each completion replaces what the last one left: the rejection left by a
    /// permit completed by hand (`permit.failure()`, never taken) is not thrown for a later failure
    /// that opened nothing.
    fn settle(&self, p: OwnedPermit, outcome: Outcome) {
        let tripped = p.settle(outcome);
        self.slab.lock().tripped = tripped;
    }

    pub(crate) fn outstanding(&self) -> u32 {
        let s = self.slab.lock();
        (s.permits.len() - s.free.len()) as u32
    }
}

pub(crate) fn register_breaker(core: Arc<BreakerCore>) -> u32 {
    BREAKERS.write().insert(core)
}

pub(crate) fn release_breaker(id: u32) {
    BREAKERS.write().remove(id);
}

#[inline]
fn with_breaker<T>(id: u32, f: impl FnOnce(&BreakerCore) -> Result<T>) -> Result<T> {
    let breakers = BREAKERS.read();
    let b = breakers.get(id).ok_or_else(|| invalid("breaker", "no such breaker"))?;
    f(b)
}

/// A permit of breaker `id`, or -1 when it turns the call away.
#[inline]
pub(crate) fn try_acquire(id: u32) -> Result<f64> {
    with_breaker(id, |b| b.hold(b.breaker.try_acquire_owned()))
}

/// Hands over `pending` successes counted in JS, then records one call's `outcome` without a
/// permit taken beforehand (0 none, 1 failure, 2 ignored); whether JS may go on counting
/// successes itself (see `CircuitBreaker::takes_batched_successes`).
#[inline]
pub(crate) fn flush(id: u32, pending: u32, outcome: u32) -> Result<bool> {
    with_breaker(id, |b| {
        b.breaker.record_successes(u64::from(pending));
        let verdict = match outcome {
            0 => None,
            1 => Some(Outcome::Failure),
            2 => Some(Outcome::Ignored),
            _ => return Err(invalid("outcome", "0 none, 1 failure, 2 ignored")),
        };
        if let Some(o) = verdict
            && let Ok(p) = b.breaker.try_acquire_owned()
        {
            b.settle(p, o);
        }
        Ok(b.breaker.takes_batched_successes())
    })
}

/// Wakes a JS call waiting for a half-open verdict: calls its function once, on the JS thread.
struct JsWake(Mutex<Option<ThreadsafeFunction<(), (), (), Status, false>>>);

impl std::task::Wake for JsWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(f) = self.0.lock().take() {
            f.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// A permit of breaker `id` for a call that may wait for a half-open verdict
/// (`halfOpenBusy: 'wait'`): its number, -1 when the breaker turns the call away
/// (`takeRejection()` says why), or -2 when every trial permit is taken. Given `wake`, a -2
/// means `wake()` will be called once, on the JS thread, when the trial ends or gives a permit
/// back (then ask again); without it, nothing is registered (ask again with one).
#[napi]
pub fn breaker_acquire_waiting(id: u32, wake: Option<Function<(), ()>>) -> Result<f64> {
    with_breaker(id, |b| {
        guard(|| {
            let waker = match wake {
                None => std::task::Waker::noop().clone(),
                Some(f) => {
                    let tsfn = f.build_threadsafe_function().callee_handled::<false>().build()?;
                    std::task::Waker::from(Arc::new(JsWake(Mutex::new(Some(tsfn)))))
                }
            };
            match b.breaker.poll_acquire_owned(&mut std::task::Context::from_waker(&waker)) {
                std::task::Poll::Ready(r) => b.hold(r),
                std::task::Poll::Pending => Ok(-2.0),
            }
        })
    })
}

/// `breakerTryAcquire` for `agent`'s call in `task`: a rejection is a signal for the task.
#[napi]
pub fn breaker_try_acquire_for(id: u32, agent: String, task: String) -> Result<f64> {
    with_breaker(id, |b| guard(|| b.hold(b.ace.acquire_owned(&agent, &task, &b.breaker))))
}

/// Completes `permit`: 0 success, 1 failure, 2 ignored, 3 given back (no result).
#[inline]
pub(crate) fn complete(id: u32, permit: f64, outcome: u32) -> Result<()> {
    with_breaker(id, |b| {
        if outcome > 3 {
            return Err(invalid("outcome", "0 success, 1 failure, 2 ignored, 3 released"));
        }
        let p = b.take(permit)?;
        match outcome {
            0 => p.record(Outcome::Success),
            1 => b.settle(p, Outcome::Failure),
            2 => p.record(Outcome::Ignored),
            3 => drop(p),
            _ => return Err(invalid("outcome", "0 success, 1 failure, 2 ignored, 3 released")),
        }
        Ok(())
    })
}
