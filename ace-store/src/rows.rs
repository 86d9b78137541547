//! Rows back into records, once for every SQL store: each backend's row type says how to read a
//! column ([`Columns`]); the decoders here say which columns make which record.

use std::sync::Arc;

use ace_core::errors::PatternRecord;
use ace_core::store::{BaselineRecord, ErrorRecord, InterventionRecord, MetricRecord, PlaybookEntry};
use ace_core::{BaselineState, Timestamp};

use crate::common::parse_pattern_id;
use crate::error::Error;

/// Reading one column of a row, whatever the database.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn float(&self, col: &str) -> Result<f64, sqlx::Error>;
    fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error>;
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error>;
    fn opt_bool(&self, col: &str) -> Result<Option<bool>, sqlx::Error>;
}

macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn float(&self, col: &str) -> Result<f64, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn boolean(&self, col: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_bool(&self, col: &str) -> Result<Option<bool>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
columns!(sqlx::sqlite::SqliteRow);
#[cfg(feature = "postgres")]
columns!(sqlx::postgres::PgRow);

/// Where decoding happens: the backend (for errors) and the store's location (for corrupt data).
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub backend: &'static str,
    pub location: &'a str,
}

impl Source<'_> {
    fn decode(&self, what: &'static str) -> impl Fn(sqlx::Error) -> ace_core::Error + '_ {
        move |e| Error::Query { backend: self.backend, operation: what, source: Box::new(e) }.into()
    }

    fn corrupt(&self, table: &str, reason: String) -> ace_core::Error {
        ace_core::Error::Corrupt { what: format!("{}: {table}", self.location), reason }
    }

    /// A row of `ace_performance_metrics`; `metrics_col` holds the metrics JSON as text.
    pub fn metric(&self, r: &impl Columns, metrics_col: &str) -> ace_core::Result<MetricRecord> {
        let d = self.decode("decode a metric record");
        let metrics = match r.opt_text(metrics_col).map_err(&d)? {
            None => Vec::new(),
            Some(t) => {
                crate::json::ordered_pairs(&t).map_err(|reason| self.corrupt("ace_performance_metrics", reason))?
            }
        };
        Ok(MetricRecord {
            ts: Timestamp::from_micros(r.int("created_at").map_err(&d)?),
            agent: Arc::from(r.text("agent_id").map_err(&d)?),
            task: Arc::from(r.text("task_id").map_err(&d)?),
            stage: Arc::from(r.text("stage").map_err(&d)?),
            duration_s: r.opt_float("duration_s").map_err(&d)?,
            success: r.opt_bool("success").map_err(&d)?,
            metrics,
        })
    }

    /// A row of `ace_errors`.
    pub fn error(&self, r: &impl Columns) -> ace_core::Result<ErrorRecord> {
        let d = self.decode("decode an error record");
        let severity = r.text("severity").map_err(&d)?;
        let pattern = r.text("pattern_id").map_err(&d)?;
        Ok(ErrorRecord {
            ts: Timestamp::from_micros(r.int("created_at").map_err(&d)?),
            agent: Arc::from(r.text("agent_id").map_err(&d)?),
            task: Arc::from(r.text("task_id").map_err(&d)?),
            stage: Arc::from(r.text("stage").map_err(&d)?),
            kind: Arc::from(r.text("kind").map_err(&d)?),
            message: Arc::from(r.text("message").map_err(&d)?),
            severity: severity
                .parse()
                .map_err(|_| self.corrupt("ace_errors", format!("unknown severity {severity:?}")))?,
            pattern: parse_pattern_id(&pattern)
                .ok_or_else(|| self.corrupt("ace_errors", format!("bad pattern id {pattern:?}")))?,
        })
    }

    /// A row of `ace_interventions`.
    pub fn intervention(&self, r: &impl Columns) -> ace_core::Result<InterventionRecord> {
        let d = self.decode("decode an intervention");
        let corrupt = |reason: String| self.corrupt("ace_interventions", reason);
        let (id, strategy, severity, kind) = (
            r.text("intervention_id").map_err(&d)?,
            r.text("strategy").map_err(&d)?,
            r.text("severity").map_err(&d)?,
            r.text("signal_kind").map_err(&d)?,
        );
        Ok(InterventionRecord {
            ts: Timestamp::from_micros(r.int("created_at").map_err(&d)?),
            id: id.parse().map_err(|_| corrupt(format!("bad intervention id {id:?}")))?,
            agent: Arc::from(r.text("agent_id").map_err(&d)?),
            task: Arc::from(r.text("task_id").map_err(&d)?),
            strategy: strategy.parse().map_err(|_| corrupt(format!("unknown strategy {strategy:?}")))?,
            severity: severity.parse().map_err(|_| corrupt(format!("unknown severity {severity:?}")))?,
            signal_kind: serde_json::from_value(serde_json::Value::String(kind.clone()))
                .map_err(|_| corrupt(format!("unknown signal kind {kind:?}")))?,
            reason: r.text("reason").map_err(&d)?,
            signals_json: r.text("signals").map_err(&d)?,
            outcome: r.opt_bool("outcome").map_err(&d)?,
        })
    }

    /// A row of `ace_baselines`.
    pub fn baseline(&self, r: &impl Columns) -> ace_core::Result<BaselineRecord> {
        let d = self.decode("decode a baseline");
        Ok(BaselineRecord {
            agent: r.text("agent_id").map_err(&d)?,
            stage: r.text("stage").map_err(&d)?,
            metric: r.text("metric").map_err(&d)?,
            state: BaselineState {
                count: u64::try_from(r.int("count").map_err(&d)?).unwrap_or(0),
                mean: r.float("mean").map_err(&d)?,
                var: r.float("variance").map_err(&d)?,
                recent: r.float("recent").map_err(&d)?,
                degraded: r.boolean("degraded").map_err(&d)?,
            },
            updated_at: Timestamp::from_micros(r.int("updated_at").map_err(&d)?),
        })
    }

    /// A row of `ace_error_patterns`.
    pub fn pattern(&self, r: &impl Columns) -> ace_core::Result<PatternRecord> {
        let d = self.decode("decode a pattern");
        let id = r.text("pattern_id").map_err(&d)?;
        Ok(PatternRecord {
            id: parse_pattern_id(&id)
                .ok_or_else(|| self.corrupt("ace_error_patterns", format!("bad pattern id {id:?}")))?,
            kind: r.text("kind").map_err(&d)?,
            template: r.text("template").map_err(&d)?,
            count: u64::try_from(r.int("count").map_err(&d)?).unwrap_or(0),
        })
    }

    /// A row of `ace_playbook_versions` of `domain`.
    pub fn playbook_entry(&self, r: &impl Columns, domain: &str) -> ace_core::Result<PlaybookEntry> {
        let d = self.decode("decode a playbook entry");
        Ok(PlaybookEntry {
            domain: domain.to_owned(),
            version: u64::try_from(r.int("version").map_err(&d)?).unwrap_or(0),
            at: Timestamp::from_micros(r.int("created_at").map_err(&d)?),
            hash: r.text("hash").map_err(&d)?,
            snapshot: r.boolean("snapshot").map_err(&d)?,
            body: r.text("body").map_err(&d)?,
        })
    }
}
