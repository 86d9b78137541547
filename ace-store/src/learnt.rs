//! What the engine learnt (outcome counts per signal kind and strategy) in `ace_learnt`: each
//! save adds to the totals (`ON CONFLICT ... DO UPDATE SET successes = successes + ...`), so
//! replicas sharing a database each add the outcomes reported to them and every outcome counts
//! once. The table stands apart from the versioned record schema (see [`crate::migrate`]): it
//! is created by its own statement, `CREATE TABLE IF NOT EXISTS`, the first time a store reads
//! or adds to it, so it moves no schema version and a database shared with older builds of ace
//! stays usable by them.

use ace_core::store::LearntRecord;
use ace_core::{SignalKind, Strategy};
use sqlx::Pool;

use crate::error::Error;
use crate::writes::{Dialect, Row, Values, insert};

struct Learnt<'a> {
    record: &'a LearntRecord,
    at: i64,
}

impl Row for Learnt<'_> {
    const INSERT: &'static str = "INSERT INTO ace_learnt (signal_kind, strategy, successes, failures, updated_at) ";
    const ON_CONFLICT: &'static str = " ON CONFLICT (signal_kind, strategy) DO UPDATE SET \
                                       successes = ace_learnt.successes + excluded.successes, \
                                       failures = ace_learnt.failures + excluded.failures, \
                                       updated_at = excluded.updated_at";
    const OPERATION: &'static str = "save what was learnt";

    fn bind(&self, row: &mut impl Values) {
        let r = self.record;
        row.name(r.kind.as_str())
            .name(r.strategy.as_str())
            .int(i64::try_from(r.successes).unwrap_or(i64::MAX))
            .int(i64::try_from(r.failures).unwrap_or(i64::MAX))
            .int(self.at);
    }
}

/// The table, created where missing (the same statement on both SQL stores).
pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS ace_learnt (
    signal_kind TEXT   NOT NULL,
    strategy    TEXT   NOT NULL,
    successes   BIGINT NOT NULL,
    failures    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (signal_kind, strategy)
)";

/// Adds `learnt` to the stored totals, in one transaction.
pub(crate) async fn add<DB: Dialect>(pool: &Pool<DB>, learnt: &[LearntRecord]) -> ace_core::Result<()> {
    if learnt.is_empty() {
        return Ok(());
    }
    let err = |operation, e| -> ace_core::Error {
        Error::Query { backend: DB::BACKEND, operation, source: Box::new(e) }.into()
    };
    let at = ace_core::Clock::now(&ace_core::SystemClock).as_micros();
    // One statement may not touch a row twice (PostgreSQL refuses it): one row per key.
    let mut merged: Vec<LearntRecord> = Vec::with_capacity(learnt.len());
    for r in learnt {
        match merged.iter_mut().find(|m| m.kind == r.kind && m.strategy == r.strategy) {
            Some(m) => {
                m.successes += r.successes;
                m.failures += r.failures;
            }
            None => merged.push(*r),
        }
    }
    let rows: Vec<Learnt<'_>> = merged.iter().map(|record| Learnt { record, at }).collect();
    let mut tx = pool.begin().await.map_err(|e| err("begin saving what was learnt", e))?;
    DB::execute(&mut tx, &mut sqlx::QueryBuilder::new(CREATE))
        .await
        .map_err(|e| err("create the table of what was learnt", e))?;
    insert::<DB, _>(&mut tx, &rows, rows.len()).await?;
    tx.commit().await.map_err(|e| err("commit what was learnt", e))
}

/// The stored totals; a row naming a kind or strategy this build does not know is an error.
pub(crate) fn records(
    backend: &'static str,
    rows: Vec<(String, String, i64, i64)>,
) -> ace_core::Result<Vec<LearntRecord>> {
    rows.into_iter()
        .map(|(kind, strategy, successes, failures)| {
            let bad = |what: &str, value: &str| ace_core::Error::Corrupt {
                what: format!("{backend} table ace_learnt"),
                reason: format!("unknown {what} {value:?} (written by a newer ace?)"),
            };
            Ok(LearntRecord {
                kind: *SignalKind::ALL.iter().find(|k| k.as_str() == kind).ok_or_else(|| bad("signal kind", &kind))?,
                strategy: strategy.parse::<Strategy>().map_err(|_| bad("strategy", &strategy))?,
                successes: u64::try_from(successes).unwrap_or(0),
                failures: u64::try_from(failures).unwrap_or(0),
            })
        })
        .collect()
}

/// The statement that reads the totals (the same on both SQL stores).
pub(crate) const SELECT: &str =
    "SELECT signal_kind, strategy, successes, failures FROM ace_learnt ORDER BY signal_kind, strategy";
