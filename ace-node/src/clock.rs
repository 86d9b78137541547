//! `NativeManualClock`: the core's manual clock, for testing breaker settings without sleeping
//! (`ManualClock` in `clock.js`). An engine opened with `{ clock }` reads it for every
//! time-based rule; the seconds are checked by the core.

use ace::{Clock, ManualClock};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::{IntoJs, guard};

/// A clock that moves only when told to, in seconds since the Unix epoch.
#[napi]
pub struct NativeManualClock {
    pub(crate) inner: ManualClock,
}

#[napi]
impl NativeManualClock {
    /// A clock showing `start` seconds since the epoch (a finite number >= 0).
    #[napi(constructor)]
    pub fn new(start: f64) -> Result<Self> {
        guard(|| Ok(NativeManualClock { inner: ManualClock::from_secs(start).js()? }))
    }

    /// Moves the time forward by `seconds` (>= 0).
    #[napi]
    pub fn advance(&self, seconds: f64) -> Result<()> {
        guard(|| self.inner.advance_secs(seconds).js())
    }

    /// Sets the time to `seconds` since the epoch (earlier than now is allowed).
    #[napi]
    pub fn set(&self, seconds: f64) -> Result<()> {
        guard(|| self.inner.set_secs(seconds).js())
    }

    /// The time shown, in seconds since the epoch.
    #[napi]
    pub fn now(&self) -> f64 {
        self.inner.now().as_secs_f64()
    }
}
