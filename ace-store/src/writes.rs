//! Records into rows, once for every SQL store: how a batch splits by kind, which columns each
//! kind fills, and the statements both dialects run alike (interventions and their outcomes, the
//! upserts of patterns and baselines, playbook appends). A backend keeps only what is its own:
//! how metric and error rows travel (SQLite's prepared multi-row `INSERT`, PostgreSQL's `COPY`
//! and `UNNEST`) and how its runtime waits. The read side's counterpart is [`crate::rows`].

use std::collections::BTreeMap;
use std::future::Future;

use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorRecord, InterventionRecord, MetricRecord, OutcomeRecord, PlaybookEntry, Record,
};
use sqlx::query_builder::Separated;
use sqlx::{Database, Pool, QueryBuilder};

use crate::error::Error;

/// Rows per multi-row statement for the tables written a few rows at a time (up to 10
/// parameters a row: 10,000, under SQLite's 32,766 and PostgreSQL's 65,535).
pub(crate) const ROWS_PER_STATEMENT: usize = 1000;

/// Binding one value of a row, whatever the database: the write side's [`crate::rows::Columns`].
pub(crate) trait Values {
    fn int(&mut self, v: i64) -> &mut Self;
    fn float(&mut self, v: f64) -> &mut Self;
    fn boolean(&mut self, v: bool) -> &mut Self;
    fn opt_bool(&mut self, v: Option<bool>) -> &mut Self;
    fn text(&mut self, v: String) -> &mut Self;
    /// A name from a closed set (a severity, a strategy).
    fn name(&mut self, v: &'static str) -> &mut Self;
    /// SQL between two values, with no separator.
    fn sql(&mut self, sql: &'static str) -> &mut Self;
}

/// A database the shared statements run on.
pub(crate) trait Dialect: Database {
    /// The store's name in errors.
    const BACKEND: &'static str;
    /// Baseline rows per `INSERT` (9 parameters each).
    const BASELINE_ROWS: usize;

    /// A row being pushed into a `VALUES` list, as [`Values`].
    fn row(row: Separated<'_, Self, &'static str>) -> impl Values;

    /// Runs a built statement.
    fn execute<'a>(
        conn: &'a mut Self::Connection,
        qb: &'a mut QueryBuilder<Self>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
}

macro_rules! dialect {
    ($db:ty, $backend:expr, $baseline_rows:expr) => {
        impl Values for Separated<'_, $db, &'static str> {
            fn int(&mut self, v: i64) -> &mut Self {
                self.push_bind(v)
            }
            fn float(&mut self, v: f64) -> &mut Self {
                self.push_bind(v)
            }
            fn boolean(&mut self, v: bool) -> &mut Self {
                self.push_bind(v)
            }
            fn opt_bool(&mut self, v: Option<bool>) -> &mut Self {
                self.push_bind(v)
            }
            fn text(&mut self, v: String) -> &mut Self {
                self.push_bind(v)
            }
            fn name(&mut self, v: &'static str) -> &mut Self {
                self.push_bind(v)
            }
            fn sql(&mut self, sql: &'static str) -> &mut Self {
                self.push_unseparated(sql)
            }
        }

        impl Dialect for $db {
            const BACKEND: &'static str = $backend;
            const BASELINE_ROWS: usize = $baseline_rows;

            fn row(row: Separated<'_, Self, &'static str>) -> impl Values {
                row
            }

            fn execute<'a>(
                conn: &'a mut Self::Connection,
                qb: &'a mut QueryBuilder<Self>,
            ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
                async move { qb.build().execute(conn).await.map(|_| ()) }
            }
        }
    };
}

// Baselines are few and wide; SQLite takes twice PostgreSQL's rows per statement (18,000
// parameters) because its round trips cost nothing.
#[cfg(feature = "sqlite")]
dialect!(sqlx::Sqlite, crate::sqlite::BACKEND, crate::sqlite::ROWS_PER_INSERT);
#[cfg(feature = "postgres")]
dialect!(sqlx::Postgres, crate::postgres::BACKEND, ROWS_PER_STATEMENT);

fn query_err<DB: Dialect>(operation: &'static str, e: sqlx::Error) -> ace_core::Error {
    Error::Query { backend: DB::BACKEND, operation, source: Box::new(e) }.into()
}

/// A batch of records split by kind.
#[derive(Default)]
pub(crate) struct Batch<'a> {
    pub metrics: Vec<&'a MetricRecord>,
    pub errors: Vec<&'a ErrorRecord>,
    pub interventions: Vec<&'a InterventionRecord>,
    pub outcomes: Vec<&'a OutcomeRecord>,
}

impl<'a> Batch<'a> {
    /// Splits `records`; a kind the SQL stores do not keep is an internal error.
    pub fn split(records: &'a [Record], backend: &str) -> ace_core::Result<Self> {
        let mut batch = Batch { metrics: Vec::with_capacity(records.len()), ..Batch::default() };
        for r in records {
            match r {
                Record::Metric(m) => batch.metrics.push(m),
                Record::Error(e) => batch.errors.push(e),
                Record::Intervention(i) => batch.interventions.push(i),
                Record::Outcome(o) => batch.outcomes.push(o),
                other => return Err(ace_core::Error::Internal(format!("the {backend} store cannot store {other:?}"))),
            }
        }
        Ok(batch)
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.errors.is_empty() && self.interventions.is_empty() && self.outcomes.is_empty()
    }

    /// Writes the batch's interventions, then its outcomes: an outcome refers to an
    /// intervention of this batch or of an earlier one.
    pub async fn write_interventions<DB: Dialect>(&self, conn: &mut DB::Connection) -> ace_core::Result<()> {
        insert::<DB, _>(conn, &self.interventions, ROWS_PER_STATEMENT).await?;
        for o in &self.outcomes {
            let mut qb = QueryBuilder::<DB>::new("UPDATE ace_interventions SET outcome = ");
            DB::row(qb.separated(""))
                .boolean(o.success)
                .sql(", outcome_at = ")
                .int(o.ts.as_micros())
                .sql(" WHERE intervention_id = ")
                .text(o.id.to_string());
            DB::execute(conn, &mut qb).await.map_err(|e| query_err::<DB>("record an outcome", e))?;
        }
        Ok(())
    }
}

/// A record that goes in as one row of a multi-row `INSERT`.
pub(crate) trait Row {
    /// `INSERT INTO table (columns) `.
    const INSERT: &'static str;
    /// What follows the rows: the conflict rule, if any.
    const ON_CONFLICT: &'static str = "";
    /// What failed, in errors.
    const OPERATION: &'static str;

    fn bind(&self, row: &mut impl Values);
}

impl<T: Row> Row for &T {
    const INSERT: &'static str = T::INSERT;
    const ON_CONFLICT: &'static str = T::ON_CONFLICT;
    const OPERATION: &'static str = T::OPERATION;

    fn bind(&self, row: &mut impl Values) {
        T::bind(self, row);
    }
}

/// Splits `items` into statements of `full` rows and then of powers of two below it.
///
/// Each row count is a distinct statement text, and sqlx keeps every text it prepared in a
/// per-connection cache (100 entries); a multi-row `INSERT` prepared in SQLite takes about 660
/// bytes a row (1.3 MB at 2,000 rows). Cut at whatever length a batch had, the cache filled
/// with a hundred statements of any length (over 100 MB a connection); cut this way, a table is
/// written by at most a dozen texts, each prepared once.
pub(crate) fn statement_chunks<T>(items: &[T], full: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let rows = if rest.len() >= full { full } else { 1 << rest.len().ilog2() };
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        Some(chunk)
    })
}

/// Inserts `items`, up to `per_statement` rows a statement.
pub(crate) async fn insert<DB: Dialect, T: Row>(
    conn: &mut DB::Connection,
    items: &[T],
    per_statement: usize,
) -> ace_core::Result<()> {
    for chunk in statement_chunks(items, per_statement) {
        let mut qb = QueryBuilder::<DB>::new(T::INSERT);
        qb.push_values(chunk, |row, item| item.bind(&mut DB::row(row)));
        qb.push(T::ON_CONFLICT);
        DB::execute(conn, &mut qb).await.map_err(|e| query_err::<DB>(T::OPERATION, e))?;
    }
    Ok(())
}

/// Inserts `items` in a transaction of their own; `what` names it in errors.
async fn insert_all<DB: Dialect, T: Row>(
    pool: &Pool<DB>,
    items: &[T],
    per_statement: usize,
    what: [&'static str; 2],
) -> ace_core::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let [begin, commit] = what;
    let mut tx = pool.begin().await.map_err(|e| query_err::<DB>(begin, e))?;
    insert::<DB, _>(&mut tx, items, per_statement).await?;
    tx.commit().await.map_err(|e| query_err::<DB>(commit, e))
}

/// Upserts patterns by `(kind, template)`, the last of a kind and template winning.
pub(crate) async fn save_patterns<DB: Dialect>(pool: &Pool<DB>, patterns: &[PatternRecord]) -> ace_core::Result<()> {
    let at = ace_core::Clock::now(&ace_core::SystemClock).as_micros();
    // One statement may not touch a row twice (PostgreSQL refuses it).
    let mut latest: BTreeMap<(&str, &str), &PatternRecord> = BTreeMap::new();
    for p in patterns {
        latest.insert((p.kind.as_str(), p.template.as_str()), p);
    }
    let rows: Vec<Pattern<'_>> = latest.into_values().map(|record| Pattern { record, at }).collect();
    insert_all(pool, &rows, ROWS_PER_STATEMENT, ["begin saving patterns", "commit patterns"]).await
}

/// Upserts baselines by `(agent, stage, metric)`.
pub(crate) async fn save_baselines<DB: Dialect>(pool: &Pool<DB>, baselines: &[BaselineRecord]) -> ace_core::Result<()> {
    insert_all(pool, baselines, DB::BASELINE_ROWS, ["begin saving baselines", "commit baselines"]).await
}

/// Appends playbook versions.
pub(crate) async fn append_playbook<DB: Dialect>(pool: &Pool<DB>, entries: &[PlaybookEntry]) -> ace_core::Result<()> {
    insert_all(pool, entries, ROWS_PER_STATEMENT, ["begin a playbook append", "commit playbook entries"]).await
}

impl Row for ErrorRecord {
    const INSERT: &'static str =
        "INSERT INTO ace_errors (created_at, agent_id, task_id, stage, kind, message, severity, pattern_id) ";
    const OPERATION: &'static str = "append errors";

    fn bind(&self, row: &mut impl Values) {
        row.int(self.ts.as_micros())
            .text(self.agent.to_string())
            .text(self.task.to_string())
            .text(self.stage.to_string())
            .text(self.kind.to_string())
            .text(self.message.to_string())
            .name(self.severity.as_str())
            .text(self.pattern.to_string());
    }
}

impl Row for InterventionRecord {
    const INSERT: &'static str = "INSERT INTO ace_interventions (intervention_id, created_at, agent_id, task_id, \
                                  strategy, severity, signal_kind, reason, signals, outcome) ";
    const ON_CONFLICT: &'static str = " ON CONFLICT (intervention_id) DO NOTHING";
    const OPERATION: &'static str = "append interventions";

    fn bind(&self, row: &mut impl Values) {
        row.text(self.id.to_string())
            .int(self.ts.as_micros())
            .text(self.agent.to_string())
            .text(self.task.to_string())
            .name(self.strategy.as_str())
            .name(self.severity.as_str())
            .name(self.signal_kind.as_str())
            .text(self.reason.clone())
            .text(self.signals_json.clone())
            .opt_bool(self.outcome);
    }
}

/// A pattern and when it was saved.
struct Pattern<'a> {
    record: &'a PatternRecord,
    at: i64,
}

impl Row for Pattern<'_> {
    const INSERT: &'static str = "INSERT INTO ace_error_patterns (kind, template, pattern_id, count, updated_at) ";
    const ON_CONFLICT: &'static str = " ON CONFLICT (kind, template) DO UPDATE SET pattern_id = excluded.pattern_id, \
                                       count = excluded.count, updated_at = excluded.updated_at";
    const OPERATION: &'static str = "save patterns";

    fn bind(&self, row: &mut impl Values) {
        let p = self.record;
        row.text(p.kind.clone())
            .text(p.template.clone())
            .text(p.id.to_string())
            .int(i64::try_from(p.count).unwrap_or(i64::MAX))
            .int(self.at);
    }
}

impl Row for BaselineRecord {
    const INSERT: &'static str =
        "INSERT INTO ace_baselines (agent_id, stage, metric, count, mean, variance, recent, degraded, updated_at) ";
    const ON_CONFLICT: &'static str = " ON CONFLICT (agent_id, stage, metric) DO UPDATE SET count = excluded.count, \
                                       mean = excluded.mean, variance = excluded.variance, recent = excluded.recent, \
                                       degraded = excluded.degraded, updated_at = excluded.updated_at";
    const OPERATION: &'static str = "save baselines";

    fn bind(&self, row: &mut impl Values) {
        row.text(self.agent.clone())
            .text(self.stage.clone())
            .text(self.metric.clone())
            .int(i64::try_from(self.state.count).unwrap_or(i64::MAX))
            .float(self.state.mean)
            .float(self.state.var)
            .float(self.state.recent)
            .boolean(self.state.degraded)
            .int(self.updated_at.as_micros());
    }
}

impl Row for PlaybookEntry {
    const INSERT: &'static str =
        "INSERT INTO ace_playbook_versions (domain, version, created_at, hash, snapshot, body) ";
    const OPERATION: &'static str = "append playbook entries";

    fn bind(&self, row: &mut impl Values) {
        row.text(self.domain.clone())
            .int(i64::try_from(self.version).unwrap_or(i64::MAX))
            .int(self.at.as_micros())
            .text(self.hash.clone())
            .boolean(self.snapshot)
            .text(self.body.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::statement_chunks;

    #[test]
    fn statements_come_in_a_dozen_lengths_whatever_the_batch() {
        let items: Vec<usize> = (0..5000).collect();
        let mut lengths = std::collections::BTreeSet::new();
        for len in 0..=items.len() {
            let chunks: Vec<&[usize]> = statement_chunks(&items[..len], 2000).collect();
            assert_eq!(chunks.concat(), items[..len], "every row once, in order");
            lengths.extend(chunks.iter().map(|c| c.len()));
        }
        let expected: Vec<usize> = (0..11).map(|p| 1 << p).chain([2000]).collect();
        assert_eq!(lengths.into_iter().collect::<Vec<_>>(), expected);
        assert_eq!(
            statement_chunks(&items[..1234], 2000).map(<[usize]>::len).collect::<Vec<_>>(),
            [1024, 128, 64, 16, 2]
        );
    }
}
