//! The embedded durable default: one SQLite file in WAL mode.
//!
//! Batches are written in one transaction as multi-row `INSERT`s of up to [`ROWS_PER_INSERT`]
//! rows, so a batch costs a handful of statements however large it is. SQLite takes one writer
//! at a time, so the store writes through one connection, with the large page cache, and reads
//! through up to [`READERS`] others with small ones: what SQLite holds in memory is bounded by
//! [`WRITER_CACHE_KIB`], [`READERS`] x [`READER_CACHE_KIB`] and the prepared statements each
//! connection keeps ([`STATEMENT_CACHE`]; see `writes::statement_chunks`). sqlx is async; the store
//! owns a one-thread tokio runtime and blocks on it, which is what the engine's writer thread
//! expects. Called from inside another tokio runtime, it moves the wait to a scoped thread rather
//! than panicking. What it writes and reads like PostgreSQL does is in `crate::writes` and
//! `crate::rows`; its queries, in its dialect, are in `read`; deleting old records, in `retain`.

pub mod fork;
mod read;
mod retain;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionQuery, InterventionRecord, MetricQuery, MetricRecord,
    PlaybookEntry, Record, Store,
};
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::common::{METRIC_COLUMNS, block_on, metrics_json};
use crate::error::Error;
use crate::migrate::{Migration, SQLITE};
use crate::rows;
use crate::writes::{self, Batch};

pub(crate) const BACKEND: &str = "sqlite";
/// Rows per `INSERT` statement (7 parameters each: 14,000, under SQLite's limit of 32,766).
pub const ROWS_PER_INSERT: usize = 2000;
/// The writing connection's page cache, in KiB. Appends go to the end of each table and its time
/// index, to four places in the errors' severity index and to one place an engine in the
/// interventions' index by id (an engine's ids count up); what needs the cache is the
/// baselines, upserted every ten seconds.
pub const WRITER_CACHE_KIB: u32 = 32 * 1024;
/// Connections that read: one kept open, the others opened as concurrent reads need them.
pub const READERS: u32 = 3;
/// Each reading connection's page cache, in KiB (SQLite's default).
pub const READER_CACHE_KIB: u32 = 2000;
/// Prepared statements each connection keeps (sqlx's default, made explicit): more than the
/// distinct statements the store runs, so none is prepared twice. Each holds its compiled
/// program; the largest, a 2,000-row `INSERT`, takes 1.3 MB.
pub const STATEMENT_CACHE: usize = 100;

/// A store in one SQLite file.
///
/// ```no_run
/// use ace_core::Ace;
/// use ace_store::SqliteStore;
///
/// let ace = Ace::builder().store(SqliteStore::open("ace.db")?).build()?;
/// # Ok::<(), ace_core::Error>(())
/// ```
pub struct SqliteStore {
    rt: Option<tokio::runtime::Runtime>,
    /// The one connection that writes (migrations too).
    pool: SqlitePool,
    /// The connections that read.
    readers: SqlitePool,
    path: PathBuf,
    insert_sql: Arc<str>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies pending migrations.
    ///
    /// Errors: [`ace_core::Error::StoreUnavailable`] when the file cannot be opened or created,
    /// [`ace_core::Error::Corrupt`] when it is not a SQLite database or holds a schema this build
    /// of ace does not know.
    pub fn open(path: impl AsRef<Path>) -> ace_core::Result<Self> {
        Self::open_with(path.as_ref(), true)
    }

    /// Opens the database file at `path` without applying migrations: for `ace migrate`, which
    /// applies them itself and reports what ran. A store left unmigrated cannot take records.
    pub fn open_unmigrated(path: impl AsRef<Path>) -> ace_core::Result<Self> {
        Self::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, migrate: bool) -> ace_core::Result<Self> {
        let path = path.to_path_buf();
        let location = path.display().to_string();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ace-sqlite")
            .enable_all()
            .build()
            .map_err(|e| Error::Open { backend: BACKEND, location: location.clone(), source: e.into() })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .statement_cache_capacity(STATEMENT_CACHE)
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "8192")
            .pragma("journal_size_limit", "67108864");
        // Each pool opens its first connection here, the writer's first: it creates the file
        // and sets WAL mode before any reader comes.
        let connect = |options: SqliteConnectOptions, connections: u32, cache_kib: u32| {
            let _gate = fork::enter();
            block_on(&rt, async {
                SqlitePoolOptions::new()
                    .max_connections(connections)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options.pragma("cache_size", format!("-{cache_kib}")))
                    .await
            })
            .map_err(|e| classify_open_error(&location, e))
        };
        let pool = connect(options.clone(), 1, WRITER_CACHE_KIB)?;
        let readers = connect(options, READERS, READER_CACHE_KIB)?;
        let store = SqliteStore { rt: Some(rt), pool, readers, path, insert_sql: insert_sql(ROWS_PER_INSERT).into() };
        if !migrate {
            return Ok(store);
        }
        store.migrate_up().map_err(|e| match e {
            ace_core::Error::Store { source, .. } if is_corruption(&source.to_string()) => {
                ace_core::Error::Corrupt { what: location.clone(), reason: source.to_string() }
            }
            other => other,
        })?;
        Ok(store)
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file, for errors about what it holds.
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn run<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let _gate = fork::enter();
        // `rt` is only taken in Drop.
        block_on(self.rt.as_ref().expect("runtime present until drop"), fut)
    }

    /// The schema version the database is at (0 for an empty file).
    pub fn schema_version(&self) -> ace_core::Result<i64> {
        self.run(async {
            ensure_migrations_table(&self.pool).await?;
            let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM ace_schema_migrations")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| query_err("read the schema version", e))?;
            Ok(v.unwrap_or(0))
        })
    }

    /// Applies every pending migration; returns how many ran.
    pub fn migrate_up(&self) -> ace_core::Result<usize> {
        self.run(async {
            ensure_migrations_table(&self.pool).await?;
            let applied: Vec<(i64, String)> =
                sqlx::query_as("SELECT version, checksum FROM ace_schema_migrations ORDER BY version")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| query_err("read applied migrations", e))?;
            let known_max = SQLITE.last().map_or(0, |m| m.version);
            if let Some((v, _)) = applied.iter().find(|(v, _)| *v > known_max) {
                return Err(Error::Corrupt {
                    location: self.path.display().to_string(),
                    reason: format!(
                        "schema version {v} is newer than this build of ace knows ({known_max}); upgrade ace"
                    ),
                }
                .into());
            }
            for (v, checksum) in &applied {
                let m = SQLITE.iter().find(|m| m.version == *v);
                if m.is_none_or(|m| &m.checksum() != checksum) {
                    return Err(Error::Corrupt {
                        location: self.path.display().to_string(),
                        reason: format!("migration {v} was applied by a different build of ace (checksum mismatch)"),
                    }
                    .into());
                }
            }
            let mut ran = 0;
            for m in SQLITE.iter().filter(|m| !applied.iter().any(|(v, _)| *v == m.version)) {
                apply(&self.pool, m, true).await?;
                tracing::info!(version = m.version, name = m.name, "applied sqlite migration");
                ran += 1;
            }
            Ok(ran)
        })
    }

    /// Reverts migrations down to `target` (0 reverts everything); returns how many ran.
    pub fn migrate_down(&self, target: i64) -> ace_core::Result<usize> {
        let current = self.schema_version()?;
        self.run(async {
            let mut ran = 0;
            for m in SQLITE.iter().rev().filter(|m| m.version > target && m.version <= current) {
                apply(&self.pool, m, false).await?;
                tracing::info!(version = m.version, name = m.name, "reverted sqlite migration");
                ran += 1;
            }
            Ok(ran)
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Allowed in any context, unlike dropping a runtime.
            rt.shutdown_background();
        }
    }
}

async fn ensure_migrations_table(pool: &SqlitePool) -> ace_core::Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS ace_schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(|e| query_err("create the migrations table", e))?;
    Ok(())
}

async fn apply(pool: &SqlitePool, m: &Migration, up: bool) -> ace_core::Result<()> {
    let mut tx = pool.begin().await.map_err(|e| query_err("begin a migration", e))?;
    sqlx::raw_sql(if up { m.up } else { m.down })
        .execute(&mut *tx)
        .await
        .map_err(|e| query_err("run a migration", e))?;
    if up {
        sqlx::query("INSERT INTO ace_schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)")
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .bind(ace_core::Clock::now(&ace_core::SystemClock).as_micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| query_err("record a migration", e))?;
    } else {
        sqlx::query("DELETE FROM ace_schema_migrations WHERE version = ?")
            .bind(m.version)
            .execute(&mut *tx)
            .await
            .map_err(|e| query_err("record a migration", e))?;
    }
    tx.commit().await.map_err(|e| query_err("commit a migration", e))
}

fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO ace_performance_metrics ({METRIC_COLUMNS}) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 { "(?,?,?,?,?,?,?)" } else { ",(?,?,?,?,?,?,?)" });
    }
    sql
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn append(&self, records: &[Record]) -> ace_core::Result<()> {
        let batch = Batch::split(records, BACKEND)?;
        if batch.is_empty() {
            return Ok(());
        }
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin a batch", e))?;
            writes::insert::<Sqlite, _>(&mut tx, &batch.errors, writes::ROWS_PER_STATEMENT).await?;
            batch.write_interventions::<Sqlite>(&mut tx).await?;
            for chunk in writes::statement_chunks(&batch.metrics, ROWS_PER_INSERT) {
                let sql: Arc<str> = if chunk.len() == ROWS_PER_INSERT {
                    self.insert_sql.clone()
                } else {
                    insert_sql(chunk.len()).into()
                };
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
                for m in chunk {
                    q = q
                        .bind(m.ts.as_micros())
                        .bind(m.agent.clone())
                        .bind(m.task.clone())
                        .bind(m.stage.clone())
                        .bind(m.duration_s)
                        .bind(m.success)
                        .bind(metrics_json(&m.metrics));
                }
                q.execute(&mut *tx).await.map_err(|e| query_err("append records", e))?;
            }
            tx.commit().await.map_err(|e| query_err("commit a batch", e))
        })
    }

    fn append_playbook(&self, entries: &[PlaybookEntry]) -> ace_core::Result<()> {
        self.run(writes::append_playbook(&self.pool, entries))
    }

    fn save_patterns(&self, patterns: &[PatternRecord]) -> ace_core::Result<()> {
        self.run(writes::save_patterns(&self.pool, patterns))
    }

    fn save_baselines(&self, baselines: &[BaselineRecord]) -> ace_core::Result<()> {
        self.run(writes::save_baselines(&self.pool, baselines))
    }

    fn load_baselines(&self) -> ace_core::Result<Vec<BaselineRecord>> {
        let location = self.location();
        self.run(read::baselines(&self.readers, source(&location)))
    }

    fn query_metrics(&self, query: &MetricQuery) -> ace_core::Result<Vec<MetricRecord>> {
        let location = self.location();
        self.run(read::metrics(&self.readers, source(&location), query))
    }

    fn count_metrics(&self) -> ace_core::Result<u64> {
        self.run(read::count_metrics(&self.readers))
    }

    fn query_errors(&self, query: &ErrorQuery) -> ace_core::Result<Vec<ErrorRecord>> {
        let location = self.location();
        self.run(read::errors(&self.readers, source(&location), query, false))
    }

    fn recent_errors(&self, query: &ErrorQuery) -> ace_core::Result<Vec<ErrorRecord>> {
        let location = self.location();
        self.run(read::errors(&self.readers, source(&location), query, true))
    }

    fn recent_interventions(&self, query: &InterventionQuery) -> ace_core::Result<Vec<InterventionRecord>> {
        let location = self.location();
        self.run(read::interventions(&self.readers, source(&location), query, true))
    }

    fn add_learnt(&self, learnt: &[ace_core::store::LearntRecord]) -> ace_core::Result<()> {
        self.run(crate::learnt::add(&self.pool, learnt))
    }

    fn load_learnt(&self) -> ace_core::Result<Vec<ace_core::store::LearntRecord>> {
        let rows = self.run(async {
            sqlx::query(crate::learnt::CREATE)
                .execute(&self.pool)
                .await
                .map_err(|e| query_err("create the table of what was learnt", e))?;
            sqlx::query_as(crate::learnt::SELECT)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| query_err("load what was learnt", e))
        })?;
        crate::learnt::records("sqlite", rows)
    }

    fn load_patterns(&self) -> ace_core::Result<Vec<PatternRecord>> {
        let location = self.location();
        self.run(read::patterns(&self.readers, source(&location)))
    }

    fn query_interventions(&self, agent: Option<&str>, limit: usize) -> ace_core::Result<Vec<InterventionRecord>> {
        let location = self.location();
        let mut query = InterventionQuery::all().limit(limit);
        query.agent = agent.map(str::to_owned);
        self.run(read::interventions(&self.readers, source(&location), &query, false))
    }

    fn load_playbook(&self, domain: &str) -> ace_core::Result<Vec<PlaybookEntry>> {
        let location = self.location();
        self.run(read::playbook(&self.readers, source(&location), domain))
    }

    fn delete_before(&self, cutoff: ace_core::Timestamp, max_rows: u64) -> ace_core::Result<u64> {
        self.run(retain::delete_before(&self.pool, &self.readers, cutoff.as_micros(), max_rows))
    }

    fn spill_key(&self) -> Option<String> {
        let path = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        Some(format!("sqlite:{}", path.display()))
    }

    fn ping(&self) -> ace_core::Result<Duration> {
        let started = Instant::now();
        self.run(async { sqlx::query("SELECT 1").execute(&self.readers).await.map_err(|e| query_err("ping", e)) })?;
        Ok(started.elapsed())
    }

    fn close(&self) -> ace_core::Result<()> {
        self.run(async {
            self.readers.close().await;
            self.pool.close().await;
        });
        Ok(())
    }
}

fn source(location: &str) -> rows::Source<'_> {
    rows::Source { backend: BACKEND, location }
}

fn query_err(operation: &'static str, e: sqlx::Error) -> ace_core::Error {
    Error::Query { backend: BACKEND, operation, source: Box::new(e) }.into()
}

fn is_corruption(message: &str) -> bool {
    message.contains("not a database") || message.contains("malformed") || message.contains("corrupt")
}

fn classify_open_error(location: &str, e: sqlx::Error) -> ace_core::Error {
    let message = e.to_string();
    if is_corruption(&message) {
        Error::Corrupt { location: location.to_owned(), reason: message }.into()
    } else {
        Error::Open { backend: BACKEND, location: location.to_owned(), source: Box::new(e) }.into()
    }
}

/// Parses a store location: `sqlite://PATH`, `sqlite:PATH` or a bare path.
pub(crate) fn path_from_url(url: &str) -> PathBuf {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or(rest);
    PathBuf::from_str(rest).unwrap_or_else(|_| PathBuf::from(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_from_a_newer_ace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SQLITE.len() as i64);
        store
            .run(sqlx::query("INSERT INTO ace_schema_migrations VALUES (99, 'future', 'x', 0)").execute(&store.pool))
            .unwrap();
        store.close().unwrap();
        drop(store);
        let err = SqliteStore::open(&path).unwrap_err();
        assert_eq!(err.code(), "corrupt");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn an_edited_migration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edited.db");
        let store = SqliteStore::open(&path).unwrap();
        store.run(sqlx::query("UPDATE ace_schema_migrations SET checksum = 'other'").execute(&store.pool)).unwrap();
        store.close().unwrap();
        drop(store);
        let err = SqliteStore::open(&path).unwrap_err();
        assert_eq!(err.code(), "corrupt");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    /// What SQLite holds in memory stays within the documented bounds: one writing connection
    /// with the large page cache, readers with small ones, and a handful of prepared `INSERT`s
    /// however the batches vary in length (it was one statement per length, 100 a connection).
    #[test]
    fn memory_is_bounded_by_the_documented_caches() {
        use ace_core::store::{ErrorQuery, MetricQuery, MetricRecord};
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("bounded.db")).unwrap();
        let record = |i: usize| {
            Record::Metric(MetricRecord {
                ts: ace_core::Timestamp::from_micros(1_700_000_000_000_000 + i as i64),
                agent: Arc::from(format!("agent-{}", i % 7)),
                task: Arc::from("t"),
                stage: Arc::from("planning"),
                duration_s: Some(1.0),
                success: Some(true),
                metrics: vec![],
            })
        };
        let mut n = 0;
        for len in 1..=300 {
            let batch: Vec<Record> = (n..n + len).map(record).collect();
            n += len;
            store.append(&batch).unwrap();
        }
        assert_eq!(store.count_metrics().unwrap(), n as u64);
        store.query_metrics(&MetricQuery::all().agent("agent-1").limit(3)).unwrap();
        store.query_errors(&ErrorQuery::all()).unwrap();
        let pragma = |pool: &SqlitePool| {
            store.run(async {
                let mut conn = pool.acquire().await.unwrap();
                let cache: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *conn).await.unwrap();
                (cache, conn.cached_statements_size())
            })
        };
        let (cache, statements) = pragma(&store.pool);
        assert_eq!(cache, -i64::from(WRITER_CACHE_KIB));
        // Lengths 1 to 300 go as nine (powers of two up to 256), beside the migrations' few
        // statements; cut at each batch's length they filled the cache (100).
        assert!(statements <= 20, "{statements} statements prepared by the writer");
        assert_eq!(pragma(&store.readers).0, -i64::from(READER_CACHE_KIB));
        assert_eq!(store.pool.options().get_max_connections(), 1);
        assert_eq!(store.readers.options().get_max_connections(), READERS);
    }

    #[test]
    fn metrics_json_round_trips_in_order() {
        let pairs: Vec<(Arc<str>, f64)> =
            vec![(Arc::from("z"), 1.5), (Arc::from("a"), -2.0), (Arc::from("m:x"), 1e-300)];
        let text = metrics_json(&pairs).unwrap();
        assert_eq!(crate::json::ordered_pairs(&text).unwrap(), pairs);
        assert!(metrics_json(&[]).is_none());
        assert!(crate::json::ordered_pairs("{not json").is_err());
    }

    #[test]
    fn urls_become_paths() {
        assert_eq!(path_from_url("sqlite://ace.db"), PathBuf::from("ace.db"));
        assert_eq!(path_from_url("sqlite:///tmp/a.db?mode=rwc"), PathBuf::from("/tmp/a.db"));
        assert_eq!(path_from_url("sqlite:x.db"), PathBuf::from("x.db"));
        assert_eq!(path_from_url("plain/file.db"), PathBuf::from("plain/file.db"));
    }
}
