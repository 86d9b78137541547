//! Each batch is stored once. A commit whose reply is lost (the connection cut after the server
//! committed) looks to the writer like a failure, and the writer sends the same batch again, or
//! spills it and replays it later. So every batch's transaction first claims the batch's digest
//! in `ace_batches`; a digest already there means the batch was stored, and the transaction is
//! rolled back with nothing written twice.
//!
//! The digest is SHA-256 (cut to 128 bits) over every field of every record, in order, each
//! field prefixed by its length: two batches share a digest only when they hold the same records
//! with the same microsecond timestamps. Digests are kept [`KEPT_FOR`] (older ones are deleted
//! by a later batch, at most every [`PRUNE_EVERY`]) and go with the records in
//! [`PgStore::retain`](super::PgStore::retain).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ace_core::store::{ErrorRecord, InterventionRecord, MetricRecord, OutcomeRecord, Record};
use sha2::{Digest, Sha256};

use super::query_err;

/// How long a batch's digest is kept: a batch sent again later than this (a spill file replayed
/// after a week-long outage) is stored again if its first commit's reply was lost.
pub(super) const KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often appends delete expired digests.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The digest of a batch of records.
pub(super) fn digest(records: &[Record]) -> [u8; 16] {
    let mut h = Fields(Sha256::new());
    h.int(records.len() as i64);
    for r in records {
        match r {
            Record::Metric(m) => h.metric(m),
            Record::Error(e) => h.error(e),
            Record::Intervention(i) => h.intervention(i),
            Record::Outcome(o) => h.outcome(o),
            // Kinds the SQL stores refuse (Batch::split fails first); hashed for completeness.
            other => h.text(&format!("{other:?}")),
        }
    }
    let full = h.0.finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Feeds fields to the hash, each with its length, so no two records share an encoding.
struct Fields(Sha256);

impl Fields {
    fn int(&mut self, v: i64) {
        self.0.update(v.to_le_bytes());
    }

    fn text(&mut self, s: &str) {
        self.int(s.len() as i64);
        self.0.update(s.as_bytes());
    }

    fn float(&mut self, v: Option<f64>) {
        match v {
            Some(v) => {
                self.0.update([1]);
                self.0.update(v.to_bits().to_le_bytes());
            }
            None => self.0.update([0]),
        }
    }

    fn flag(&mut self, v: Option<bool>) {
        self.0.update([match v {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        }]);
    }

    fn metric(&mut self, m: &MetricRecord) {
        self.0.update(b"m");
        self.int(m.ts.as_micros());
        for s in [&m.agent, &m.task, &m.stage] {
            self.text(s);
        }
        self.float(m.duration_s);
        self.flag(m.success);
        self.int(m.metrics.len() as i64);
        for (name, value) in &m.metrics {
            self.text(name);
            self.float(Some(*value));
        }
    }

    fn error(&mut self, e: &ErrorRecord) {
        self.0.update(b"e");
        self.int(e.ts.as_micros());
        for s in [&e.agent, &e.task, &e.stage, &e.kind, &e.message] {
            self.text(s);
        }
        self.text(e.severity.as_str());
        self.text(&e.pattern.to_string());
    }

    fn intervention(&mut self, i: &InterventionRecord) {
        self.0.update(b"i");
        self.int(i.ts.as_micros());
        self.text(&i.id.to_string());
        self.text(&format!("{:?}", (&i.agent, &i.task, i.strategy, i.severity, i.signal_kind, i.outcome)));
        self.text(&i.reason);
        self.text(&i.signals_json);
    }

    fn outcome(&mut self, o: &OutcomeRecord) {
        self.0.update(b"o");
        self.int(o.ts.as_micros());
        self.text(&o.id.to_string());
        self.flag(Some(o.success));
    }
}

/// When appends last deleted expired digests (per store).
#[derive(Default)]
pub(super) struct Pruned(Mutex<Option<Instant>>);

impl Pruned {
    /// Whether this append should delete expired digests (it then counts as done).
    pub(super) fn due(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// Claims `digest` in the batch's transaction: `false` when the batch was stored before.
pub(super) async fn claim(
    conn: &mut sqlx::PgConnection,
    digest: &[u8; 16],
    now: i64,
    prune: bool,
) -> ace_core::Result<bool> {
    if prune {
        let cutoff = now - i64::try_from(KEPT_FOR.as_micros()).unwrap_or(i64::MAX);
        sqlx::query("DELETE FROM ace_batches WHERE created_at < $1")
            .bind(cutoff)
            .execute(&mut *conn)
            .await
            .map_err(|e| query_err("delete expired batch digests", e))?;
    }
    let claimed = sqlx::query("INSERT INTO ace_batches (digest, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(&digest[..])
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(|e| query_err("claim a batch", e))?
        .rows_affected();
    Ok(claimed == 1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ace_core::Timestamp;

    use super::*;

    fn metric(ts: i64, agent: &str, metrics: Vec<(Arc<str>, f64)>) -> Record {
        Record::Metric(MetricRecord {
            ts: Timestamp::from_micros(ts),
            agent: agent.into(),
            task: "t".into(),
            stage: "s".into(),
            duration_s: Some(1.0),
            success: Some(true),
            metrics,
        })
    }

    #[test]
    fn the_same_records_share_a_digest_and_any_change_makes_another() {
        let batch = vec![metric(1, "a", vec![]), metric(2, "b", vec![("n".into(), 1.0)])];
        assert_eq!(digest(&batch), digest(&batch.clone()));
        let variants = [
            vec![metric(1, "a", vec![])],
            vec![metric(2, "b", vec![("n".into(), 1.0)]), metric(1, "a", vec![])],
            vec![metric(1, "a", vec![]), metric(2, "b", vec![("n".into(), 2.0)])],
            vec![metric(1, "a", vec![]), metric(3, "b", vec![("n".into(), 1.0)])],
            // Field boundaries count: "ab" + "" is not "a" + "b".
            vec![metric(1, "ab", vec![]), metric(2, "", vec![("n".into(), 1.0)])],
        ];
        for v in &variants {
            assert_ne!(digest(&batch), digest(v), "{v:?}");
        }
    }

    #[test]
    fn pruning_is_due_once_a_period() {
        let pruned = Pruned::default();
        assert!(pruned.due());
        assert!(!pruned.due());
    }
}
