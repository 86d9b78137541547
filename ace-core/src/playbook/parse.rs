//! The playbook's closed sets as text: [`Feedback`] and [`Stage`] read from and print as their
//! snake_case names (`Stage`'s `FromStr` sits with its type), so no binding parses them itself.

use std::fmt;
use std::str::FromStr;

use super::{Feedback, Stage};
use crate::error::{Error, Result};

impl Feedback {
    /// Every kind of feedback.
    pub const ALL: [Feedback; 3] = [Feedback::Helpful, Feedback::Harmful, Feedback::Neutral];

    /// The snake_case name (`"helpful"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Feedback::Helpful => "helpful",
            Feedback::Harmful => "harmful",
            Feedback::Neutral => "neutral",
        }
    }
}

impl fmt::Display for Feedback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Feedback {
    type Err = Error;

    /// `helpful`, `harmful` or `neutral`; anything else is an [`Error::InvalidInput`] for
    /// `feedback`.
    fn from_str(s: &str) -> Result<Self> {
        Feedback::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| Error::invalid("feedback", format!("{s:?}: one of helpful, harmful, neutral")))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_reads_and_prints_its_names() {
        for f in Feedback::ALL {
            assert_eq!(f.to_string().parse::<Feedback>().unwrap(), f);
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
        }
        assert_eq!("harmful".parse::<Feedback>().unwrap(), Feedback::Harmful);
        for bad in ["great", "Helpful", "", " neutral"] {
            let err = bad.parse::<Feedback>().unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: "feedback", .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn stages_print_what_they_read() {
        for s in [Stage::Shadow, Stage::Staging, Stage::Prod, Stage::Quarantined] {
            assert_eq!(s.to_string().parse::<Stage>().unwrap(), s);
        }
        assert_eq!("live".parse::<Stage>().unwrap_err().code(), "invalid_input");
    }
}
