//! Reading back what the store holds: the newest interventions and errors, the patterns and the
//! baselines (what `ace interventions`, `ace errors`, the bindings' read-back calls and the
//! listener's `/api/` serve).

use super::Ace;
use crate::error::{Error, Result};
use crate::store::{BaselineRecord, ErrorQuery, ErrorRecord, InterventionQuery, InterventionRecord};

/// The most records one read-back call returns (a larger `limit` is refused).
pub const MAX_READ_BACK: usize = 100_000;

impl Ace {
    /// The newest audited interventions the store holds that match `query`, newest first, with
    /// their reasons and outcomes where reported. Records still buffered are not included
    /// (call [`Ace::flush`] first to include them). A `limit` of 0 means [`MAX_READ_BACK`].
    pub fn interventions(&self, query: &InterventionQuery) -> Result<Vec<InterventionRecord>> {
        self.readable()?;
        let mut query = query.clone();
        query.limit = read_limit(query.limit)?;
        self.store().recent_interventions(&query)
    }

    /// The newest error records the store holds that match `query`, newest first (see
    /// [`Ace::interventions`] for buffering and limits).
    pub fn errors(&self, query: &ErrorQuery) -> Result<Vec<ErrorRecord>> {
        self.readable()?;
        let mut query = query.clone();
        query.limit = read_limit(query.limit)?;
        self.store().recent_errors(&query)
    }

    /// The error patterns the store holds (their history included: a pattern whose template was
    /// generalised keeps its old row), most frequent first. [`Ace::patterns`] is the live miner's.
    pub fn stored_patterns(&self) -> Result<Vec<crate::errors::PatternRecord>> {
        self.readable()?;
        self.store().load_patterns()
    }

    /// The baselines the store holds (saved at each flush), by agent, stage and metric.
    pub fn stored_baselines(&self) -> Result<Vec<BaselineRecord>> {
        self.readable()?;
        self.store().load_baselines()
    }

    fn readable(&self) -> Result<()> {
        if self.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }
}

fn read_limit(limit: usize) -> Result<usize> {
    match limit {
        0 => Ok(MAX_READ_BACK),
        n if n > MAX_READ_BACK => {
            Err(Error::invalid("limit", format!("at most {MAX_READ_BACK} records are read back at once, not {n}")))
        }
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{ManualClock, Timestamp};

    #[test]
    fn errors_come_back_newest_first_and_filtered() {
        let clock = ManualClock::new(Timestamp::from_secs_f64(1000.0).unwrap());
        let ace = Ace::builder().clock(clock.clone()).build().unwrap();
        for (i, agent) in ["a", "b", "a", "a"].into_iter().enumerate() {
            clock.advance(Duration::from_secs(1));
            ace.record_error(agent, "t", "execution", "Timeout", &format!("timed out after {i}s"), None).unwrap();
        }
        ace.flush().unwrap();
        let all = ace.errors(&ErrorQuery::all()).unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].ts >= w[1].ts), "newest first");
        let a = ace.errors(&ErrorQuery::all().agent("a").limit(2)).unwrap();
        assert_eq!(a.iter().map(|r| r.ts.as_secs_f64()).collect::<Vec<_>>(), [1004.0, 1003.0]);
        let since = ace.errors(&ErrorQuery::all().since(Timestamp::from_secs_f64(1002.0).unwrap())).unwrap();
        assert_eq!(since.len(), 3);
        assert_eq!(ace.errors(&ErrorQuery::all().limit(MAX_READ_BACK + 1)).unwrap_err().code(), "invalid_input");
        assert!(!ace.stored_patterns().unwrap().is_empty());
        ace.close().unwrap();
        assert_eq!(ace.errors(&ErrorQuery::all()).unwrap_err().code(), "closed");
        assert_eq!(ace.interventions(&InterventionQuery::all()).unwrap_err().code(), "closed");
    }
}
