//! Batches into PostgreSQL: metric rows stream in with binary `COPY ... FROM STDIN` (or, for servers
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
            if m.rows > 0 {
                // COPY in binary format: the fastest way in (no number parsing on the server),
                // one stream per batch.
                let mut copy = tx
                    .copy_in_raw("COPY ace_performance_metrics (created_at, agent_id, task_id, stage, duration_s, success, metrics) FROM STDIN (FORMAT binary)")
                    .await
                    .map_err(|e| query_err("start copying records", e))?;
                let sent = async {
                    for chunk in m.finish().chunks(COPY_CHUNK) {
                        copy.send(chunk).await?;
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

/// Bytes sent per `COPY` message (rows may span messages).
const COPY_CHUNK: usize = 256 * 1024;

/// Metric records in `COPY` binary format: the signature, then per row the field count and each
/// field as its length and PostgreSQL's binary form (big-endian `int8`, `float8`, one byte for
/// `bool`, UTF-8 for `text` and `json`; length -1 for NULL).
struct MetricColumns {
    out: Vec<u8>,
    rows: usize,
}

impl Default for MetricColumns {
    fn default() -> Self {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        out.extend_from_slice(&0i32.to_be_bytes()); // flags
        out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        MetricColumns { out, rows: 0 }
    }
}

impl MetricColumns {
    fn push(&mut self, m: &MetricRecord) {
        let out = &mut self.out;
        out.extend_from_slice(&7i16.to_be_bytes());
        field(out, &m.ts.as_micros().to_be_bytes());
        for text in [&*m.agent, &*m.task, &*m.stage] {
            field(out, text.as_bytes());
        }
        match m.duration_s {
            Some(d) => field(out, &d.to_be_bytes()),
            None => null(out),
        }
        match m.success {
            Some(ok) => field(out, &[u8::from(ok)]),
            None => null(out),
        }
        match metrics_json(&m.metrics) {
            Some(json) => field(out, json.as_bytes()),
            None => null(out),
        }
        self.rows += 1;
    }

    /// The stream, with its trailer.
    fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&(-1i16).to_be_bytes());
        self.out
    }
}

/// One non-NULL field of a binary `COPY` row.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // Texts are bounded far below 2 GiB by the engine's validation.
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A NULL field of a binary `COPY` row.
fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
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
