//! Retention for the SQLite file: deleting old metric, error and intervention records in short
//! transactions, so that a file an engine writes day after day stops growing. `retain(days)`
//! (`ace retain`) deletes all of them; `Store::delete_before` (the engine's `ACE_RETAIN_DAYS`
//! passes) at most a given number a call.
//!
//! A chunk is found first, on a reading connection: `SELECT id ... WHERE created_at < ? LIMIT ?`,
//! which holds no lock (the file is in WAL mode), through each table's `(created_at, agent_id)`
//! index: a range of the index from the oldest record, read without the table. Then the writing
//! connection deletes those rows by id, at most [`ROWS_PER_DELETE`] a statement, each its own
//! transaction: the write lock is held for a chunk's deletion by primary key, never for a scan, and
//! the engine's writer (the same connection in this process, the file's lock in another, waiting up
//! to the 5-second busy timeout) gets in between chunks.
//!
//! The pages freed go on SQLite's free list and take new records before the file grows again;
//! the file does not shrink (the store runs no `VACUUM`: it rewrites the whole file, needs as
//! much free disk again, and blocks every writer while it runs). To give the space back to the
//! file system, run `VACUUM` on the file with the engine stopped.

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteStore, query_err};

/// The tables retention deletes from, as `PgStore::retain` does: the time series. Baselines,
/// error patterns, the playbooks' version logs and what was learnt are kept whatever their age.
const TABLES: [&str; 3] = ["ace_performance_metrics", "ace_errors", "ace_interventions"];

/// Rows one `DELETE` takes at most: each commits on its own and holds the write lock that long.
pub(crate) const ROWS_PER_DELETE: u64 = 10_000;

/// The query that finds one chunk of `table` (binds: the cutoff, the chunk size).
fn find_sql(table: &str) -> String {
    format!("SELECT id FROM {table} WHERE created_at < ? LIMIT ?")
}

/// The statement that deletes the rows of `table` with the ids given, one parameter each (at
/// most [`ROWS_PER_DELETE`], under SQLite's 32,766). Its text varies with the count, so it is
/// not kept prepared (`persistent(false)`): the connection's statement cache stays as it was.
fn delete_by_id(table: &str, ids: &[i64]) -> QueryBuilder<Sqlite> {
    let mut qb = QueryBuilder::new(format!("DELETE FROM {table} WHERE id IN ("));
    let mut list = qb.separated(",");
    for id in ids {
        list.push_bind(*id);
    }
    qb.push(")");
    qb
}

impl SqliteStore {
    /// Deletes metric, error and intervention records older than `days` days (engine-clock
    /// microseconds before now); returns how many rows went. The same tables and cutoff as
    /// `PgStore::retain`: baselines, error patterns, playbook versions and what was learnt are
    /// kept.
    ///
    /// The rows go in chunks of 10,000, each its own transaction, so an engine
    /// writing to the file waits for one chunk at most. A call that fails part way has deleted
    /// the chunks before the failure; calling again finishes the job. The freed pages are reused
    /// by new records (the file stops growing); the file does not shrink, since no `VACUUM` is
    /// run (run one by hand with the engine stopped to give the space back).
    ///
    /// Errors: [`ace_core::Error::InvalidInput`] for 0 days (which would delete everything) or
    /// more than [`ace_core::event::MAX_RETAIN_DAYS`]; [`ace_core::Error::Store`] when a delete fails.
    ///
    /// ```no_run
    /// let store = ace_store::SqliteStore::open("ace.db")?;
    /// let deleted = store.retain(30)?;
    /// println!("{deleted} records older than 30 days deleted");
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    pub fn retain(&self, days: u32) -> ace_core::Result<u64> {
        let cutoff = ace_core::event::retain_cutoff(days, ace_core::Clock::now(&ace_core::SystemClock))?;
        self.run(delete_before(&self.pool, &self.readers, cutoff.as_micros(), u64::MAX))
    }
}

/// Deletes at most `max_rows` rows created before `cutoff` from [`TABLES`], found through
/// `readers` and deleted through `writer`, at most [`ROWS_PER_DELETE`] a statement; returns how
/// many went (`Store::delete_before`).
pub(super) async fn delete_before(
    writer: &SqlitePool,
    readers: &SqlitePool,
    cutoff: i64,
    max_rows: u64,
) -> ace_core::Result<u64> {
    let mut removed = 0;
    for table in TABLES {
        let find = find_sql(table);
        loop {
            let chunk = (max_rows - removed).min(ROWS_PER_DELETE);
            if chunk == 0 {
                return Ok(removed);
            }
            let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(find.clone()))
                .bind(cutoff)
                .bind(i64::try_from(chunk).unwrap_or(i64::MAX))
                .fetch_all(readers)
                .await
                .map_err(|e| query_err("find old records", e))?;
            if ids.is_empty() {
                break;
            }
            removed += delete_by_id(table, &ids)
                .build()
                .persistent(false)
                .execute(writer)
                .await
                .map_err(|e| query_err("delete old records", e))?
                .rows_affected();
            if (ids.len() as u64) < chunk {
                break;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    /// Each table's chunks are found through its time index, not by reading the table, and
    /// every chunk is deleted by primary key: the write lock never waits on a scan.
    #[test]
    fn old_rows_are_found_through_the_time_index_and_deleted_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("plan.db")).unwrap();
        let plan = |sql: String, binds: &[i64]| -> Vec<String> {
            store.run(async {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
                for b in binds {
                    q = q.bind(*b);
                }
                let rows = q.fetch_all(&store.readers).await.unwrap();
                rows.iter().map(|r| r.get::<String, _>("detail")).collect()
            })
        };
        let indexes =
            ["idx_ace_metrics_created_agent", "idx_ace_errors_created_agent", "idx_ace_interventions_created_agent"];
        for (table, index) in TABLES.into_iter().zip(indexes) {
            let find = plan(find_sql(table), &[0, 10_000]);
            assert_eq!(find, [format!("SEARCH {table} USING COVERING INDEX {index} (created_at<?)")]);
        }
        for table in TABLES {
            let delete = plan(delete_by_id(table, &[1, 2]).sql().as_str().to_owned(), &[1, 2]);
            assert!(
                delete.iter().any(|d| d.contains(&format!("SEARCH {table} USING INTEGER PRIMARY KEY"))),
                "{delete:?}"
            );
            assert!(!delete.iter().any(|d| d.starts_with(&format!("SCAN {table}"))), "{delete:?}");
        }
    }
}
