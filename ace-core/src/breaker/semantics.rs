//! The points where circuit-breaker libraries disagree, each a named setting whose default is
//! resilience4j's and whose other value is the peer's (docs/breakers.md names them): how a rate
//! meets its threshold, what a call finds when every half-open permit is taken, what the call
//! that opens the breaker returns, and when a half-open trial that can no longer close it ends.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

macro_rules! named {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The snake_case name, the form [`FromStr`] reads.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            /// One of the snake_case names; anything else is an [`Error::InvalidInput`].
            fn from_str(s: &str) -> Result<Self> {
                match s.trim() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::invalid($field, format!("{s:?}: expected one of {}", [$($text),+].join(", ")))),
                }
            }
        }
    };
}

named! {
    /// How a failure or slow-call rate meets its threshold.
    Threshold, "threshold" {
        /// At or above the threshold (`>=`): resilience4j and Polly. The default.
        #[default]
        Reached = "reached",
        /// Strictly above it (`>`): opossum, cockatiel and failsafe.
        Exceeded = "exceeded",
    }
}

impl Threshold {
    /// Whether `rate` trips against `threshold`.
    #[inline]
    #[must_use]
    pub fn trips(self, rate: f64, threshold: f64) -> bool {
        match self {
            Threshold::Reached => rate >= threshold,
            Threshold::Exceeded => rate > threshold,
        }
    }
}

named! {
    /// What a call finds in half-open when every trial permit is taken.
    HalfOpenBusy, "half_open_busy" {
        /// Rejected at once: resilience4j, opossum and pybreaker. The default.
        #[default]
        Reject = "reject",
        /// It waits for the trial's verdict, then goes through if the breaker closed and is
        /// rejected if it opened again: cockatiel. Only the waiting acquires wait
        /// ([`crate::breaker::CircuitBreaker::acquire_waiting`], `acquire_async`, and the
        /// guarded calls built on them); `try_acquire` never blocks.
        Wait = "wait",
    }
}

named! {
    /// What a guarded call that opens the breaker with its failure returns.
    TrippingCall, "tripping_call" {
        /// Its own error: resilience4j, opossum and cockatiel. The default.
        #[default]
        OwnError = "own_error",
        /// The breaker's rejection, carrying the call's error
        /// ([`crate::breaker::CallError::Tripped`]): pybreaker.
        BreakerError = "breaker_error",
    }
}

named! {
    /// When a half-open trial that can no longer close the breaker opens it again.
    TrialVerdict, "trial_verdict" {
        /// After every permitted trial call completed: resilience4j. The default.
        #[default]
        AfterAllPermits = "after_all_permits",
        /// As soon as the failures so far decide it, whatever the calls left would return: the
        /// single-trial breakers (pybreaker, opossum, cockatiel) behave so.
        AtOnce = "at_once",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_and_print_alike_and_bad_names_are_typed_errors() {
        for t in [Threshold::Reached, Threshold::Exceeded] {
            assert_eq!(t.to_string().parse::<Threshold>().unwrap(), t);
        }
        for t in [HalfOpenBusy::Reject, HalfOpenBusy::Wait] {
            assert_eq!(t.as_str().parse::<HalfOpenBusy>().unwrap(), t);
        }
        for t in [TrippingCall::OwnError, TrippingCall::BreakerError] {
            assert_eq!(t.as_str().parse::<TrippingCall>().unwrap(), t);
        }
        for t in [TrialVerdict::AfterAllPermits, TrialVerdict::AtOnce] {
            assert_eq!(t.as_str().parse::<TrialVerdict>().unwrap(), t);
        }
        let err = "greater".parse::<Threshold>().unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: "threshold", .. }), "{err}");
        assert!(err.to_string().contains("reached, exceeded"), "{err}");
        assert!(Threshold::Reached.trips(50.0, 50.0));
        assert!(!Threshold::Exceeded.trips(50.0, 50.0));
        assert!(Threshold::Exceeded.trips(50.1, 50.0));
    }
}
