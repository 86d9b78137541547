//! Batches into PostgreSQL: metric rows stream in with `COPY ... FROM STDIN` (or, for servers
//! without the copy sub-protocol, one `INSERT ... SELECT FROM UNNEST` per few hundred rows) and
//! error rows with one `UNNEST` of column arrays; interventions and outcomes go through
//! [`crate::writes`] like SQLite's. One transaction per batch, which also claims the batch's
//! digest (see [`super::once`]) so that a batch sent again is not stored twice.

use ace_core::store::{ErrorRecord, MetricRecord, Record};

use sqlx::Postgres;

use super::{BACKEND, LOG_TARGET, PgStore, once, query_err};
use crate::common::metrics_json;
use crate::writes::Batch;

impl PgStore {
    /// Appends a batch of records in one transaction.
    pub(super) fn append_batch(&self, records: &[Record]) -> ace_core::Result<()> {
        let batch = Batch::split(records, BACKEND)?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut e = ErrorColumns::default();
        for r in &batch.errors {
            e.push(r);
        }
        let copy = self.options.copy;
        let mut m = MetricColumns::default();
        let mut unnest: Vec<MetricArrays> = Vec::new();
        for &r in &batch.metrics {
            if copy {
                m.push(r);
            } else {
                match unnest.last_mut() {
                    Some(u) if u.ts.len() < UNNEST_CHUNK => u.push(r),
                    _ => {
                        let mut u = MetricArrays::default();
                        u.push(r);
                        unnest.push(u);
                    }
                }
            }
        }
        let digest = once::digest(records);
        let now = ace_core::Clock::now(&ace_core::SystemClock).as_micros();
        let prune = self.pruned.due();
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin a batch", e))?;
            if !e.ts.is_empty() {
                sqlx::query(
                    "INSERT INTO ace_errors (created_at, agent_id, task_id, stage, kind, message, severity, pattern_id) \
                     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])",
                )
                .bind(&e.ts)
                .bind(&e.agent)
                .bind(&e.task)
                .bind(&e.stage)
                .bind(&e.kind)
                .bind(&e.message)
                .bind(&e.severity)
                .bind(&e.pattern)
                .execute(&mut *tx)
                .await
                .map_err(|e| query_err("append errors", e))?;
            }
            batch.write_interventions::<Postgres>(&mut tx).await?;
            for u in &unnest {
                sqlx::query(
                    "INSERT INTO ace_performance_metrics (created_at, agent_id, task_id, stage, duration_s, success, metrics) \
                     SELECT t, a, k, s, d, ok, m::json FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], \
                     $5::float8[], $6::bool[], $7::text[]) AS r(t, a, k, s, d, ok, m)",
                )
                .bind(&u.ts)
                .bind(&u.agent)
                .bind(&u.task)
                .bind(&u.stage)
                .bind(&u.duration)
                .bind(&u.success)
                .bind(&u.metrics)
                .execute(&mut *tx)
                .await
                .map_err(|e| query_err("append records", e))?;
            }
            if !m.ts.is_empty() {
                // COPY in text format: the fastest way in, one stream per batch.
                let mut copy = tx
                    .copy_in_raw("COPY ace_performance_metrics (created_at, agent_id, task_id, stage, duration_s, success, metrics) FROM STDIN")
                    .await
                    .map_err(|e| query_err("start copying records", e))?;
                let sent = async {
                    for chunk in m.rows.chunks(COPY_CHUNK) {
                        copy.send(chunk.concat().into_bytes()).await?;
                    }
                    Ok::<(), sqlx::Error>(())
                }
                .await;
                match sent {
                    Ok(()) => {
                        copy.finish().await.map_err(|e| query_err("append records", e))?;
                    }
                    Err(e) => {
                        let _ = copy.abort("ace: sending failed").await;
                        return Err(query_err("append records", e));
                    }
                }
            }
            // Last, so that a missing table is named by the statement that needs it; a batch
            // stored before is rolled back whole.
            if !once::claim(&mut tx, &digest, now, prune).await? {
                tracing::info!(target: LOG_TARGET, records = records.len(), "a batch sent again was stored before; not storing it twice");
                return tx.rollback().await.map_err(|e| query_err("roll back a batch stored before", e));
            }
            tx.commit().await.map_err(|e| query_err("commit a batch", e))
        })
    }
}

/// Rows sent per `COPY` message.
const COPY_CHUNK: usize = 2000;

/// Metric records as lines of `COPY` text format.
#[derive(Default)]
struct MetricColumns {
    ts: Vec<i64>,
    rows: Vec<String>,
}

impl MetricColumns {
    fn push(&mut self, m: &MetricRecord) {
        use std::fmt::Write;
        self.ts.push(m.ts.as_micros());
        let mut line = String::with_capacity(96);
        let _ = write!(line, "{}\t", m.ts.as_micros());
        for text in [&*m.agent, &*m.task, &*m.stage] {
            copy_escape(&mut line, text);
            line.push('\t');
        }
        match m.duration_s {
            Some(d) => {
                let _ = write!(line, "{d:?}\t");
            }
            None => line.push_str("\\N\t"),
        }
        line.push_str(match m.success {
            Some(true) => "t\t",
            Some(false) => "f\t",
            None => "\\N\t",
        });
        match metrics_json(&m.metrics) {
            Some(json) => copy_escape(&mut line, &json),
            None => line.push_str("\\N"),
        }
        line.push('\n');
        self.rows.push(line);
    }
}

/// Rows per `INSERT ... UNNEST` statement when `COPY` is off: each message stays near 64 KiB,
/// which servers that read a message in one go (PGlite's socket server) need; still one
/// transaction per batch.
const UNNEST_CHUNK: usize = 500;

/// Metric records as column arrays for `UNNEST` (servers without `COPY`).
#[derive(Default)]
struct MetricArrays {
    ts: Vec<i64>,
    agent: Vec<String>,
    task: Vec<String>,
    stage: Vec<String>,
    duration: Vec<Option<f64>>,
    success: Vec<Option<bool>>,
    metrics: Vec<Option<String>>,
}

impl MetricArrays {
    fn push(&mut self, m: &MetricRecord) {
        self.ts.push(m.ts.as_micros());
        self.agent.push(m.agent.to_string());
        self.task.push(m.task.to_string());
        self.stage.push(m.stage.to_string());
        self.duration.push(m.duration_s);
        self.success.push(m.success);
        self.metrics.push(metrics_json(&m.metrics));
    }
}

/// Appends `text` escaped for `COPY` text format (backslash, tab, newline, carriage return).
fn copy_escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Error records as column arrays for `UNNEST`.
#[derive(Default)]
struct ErrorColumns {
    ts: Vec<i64>,
    agent: Vec<String>,
    task: Vec<String>,
    stage: Vec<String>,
    kind: Vec<String>,
    message: Vec<String>,
    severity: Vec<&'static str>,
    pattern: Vec<String>,
}

impl ErrorColumns {
    fn push(&mut self, e: &ErrorRecord) {
        self.ts.push(e.ts.as_micros());
        self.agent.push(e.agent.to_string());
        self.task.push(e.task.to_string());
        self.stage.push(e.stage.to_string());
        self.kind.push(e.kind.to_string());
        self.message.push(e.message.to_string());
        self.severity.push(e.severity.as_str());
        self.pattern.push(e.pattern.to_string());
    }
}
