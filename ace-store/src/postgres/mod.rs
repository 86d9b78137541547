//! PostgreSQL: the system of record when a fleet outgrows one process.
//!
//! Every batch is one transaction; metric records stream in with `COPY ... FROM STDIN` (binary
//! format) and errors with one `INSERT ... SELECT FROM UNNEST(...)` (one array parameter per
//! column), so a batch of any size costs a few round trips. The pool holds at most `POSTGRES_MAX_CONNECTIONS`
//! connections. sqlx is async; the store owns a small tokio runtime and blocks on it, which is
//! what the engine's writer thread expects (and moves the wait to a scoped thread when called
//! from inside another runtime). TLS follows the URL's `sslmode` (`disable`, `prefer`,
//! `require`, `verify-ca`, `verify-full`); the password comes from the URL or `PGPASSWORD` and is
//! never printed.
//!
//! With TimescaleDB on the server, `ace_performance_metrics` and `ace_errors` become hypertables
//! (one-day chunks of the engine's microsecond clock) with compression enabled; see
//! [`PgOptions::timescale`], [`PgStore::compress`] and [`PgStore::retain`].
//!
//! Where things live: `options` (how to connect), `migrate` (the schema), `timescale`
//! (hypertables, compression, retention), `write` (batches in), `once` (no batch stored twice),
//! `read` (queries out); the
//! statements both SQL stores run alike are in [`crate::writes`] and [`crate::rows`].

mod migrate;
mod once;
mod options;
mod read;
mod timescale;
mod write;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionQuery, InterventionRecord, MetricQuery, MetricRecord,
    PlaybookEntry, Record, Store,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use options::PgOptions;

use crate::common::block_on;
use crate::error::Error;
use crate::{rows, writes};

pub(crate) const BACKEND: &str = "postgres";
/// Log events keep one target (the Python logger `ace.store.postgres`) whichever file they
/// come from.
const LOG_TARGET: &str = "ace_store::postgres";

/// A store in a PostgreSQL database.
///
/// ```no_run
/// use ace_core::Ace;
/// use ace_store::PgStore;
///
/// let store = PgStore::connect("postgresql://postgres@127.0.0.1:5432/test", Default::default())?;
/// let ace = Ace::builder().store(store).build()?;
/// # Ok::<(), ace_core::Error>(())
/// ```
pub struct PgStore {
    rt: Option<tokio::runtime::Runtime>,
    pool: PgPool,
    location: String,
    schema: Option<String>,
    options: PgOptions,
    /// The schema TimescaleDB's functions live in, once the time-series tables are hypertables.
    timescale: std::sync::Mutex<Option<String>>,
    /// When appends last deleted expired batch digests.
    pruned: once::Pruned,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore").field("location", &self.location).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database `url` names (`postgresql://user:password@host:port/db?sslmode=...`)
    /// and applies pending migrations.
    ///
    /// Errors: [`ace_core::Error::Config`] for a malformed URL; [`ace_core::Error::StoreUnavailable`]
    /// when the server cannot be reached, refuses the credentials or has no such database (the
    /// message says which, with the password replaced by `***`); [`ace_core::Error::Corrupt`] for
    /// a schema this build of ace does not know.
    pub fn connect(url: &str, options: PgOptions) -> ace_core::Result<Self> {
        let location = ace_core::error::redact_url(url);
        let mut connect = PgConnectOptions::from_str(url).map_err(|e| ace_core::Error::Config {
            key: "DATABASE_URL".into(),
            value: location.clone(),
            reason: e.to_string(),
        })?;
        if let Some(schema) = &options.schema {
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ace-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Open { backend: BACKEND, location: location.clone(), source: e.into() })?;
        let pool = block_on(&rt, async {
            if let Some(schema) = &options.schema {
                // Create the schema with a one-off connection (the pool's sessions use it).
                let mut admin = PgConnectOptions::from_str(url)?;
                admin = admin.application_name("ace");
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(options.connect_timeout)
                    .connect_with(admin)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                    schema.replace('"', "\"\"")
                )))
                .execute(&pool)
                .await?;
                pool.close().await;
            }
            PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .min_connections(1)
                .acquire_timeout(options.connect_timeout)
                .connect_with(connect.application_name("ace"))
                .await
        })
        .map_err(|e| classify_open_error(&location, e))?;
        let store = PgStore {
            rt: Some(rt),
            pool,
            location,
            schema: options.schema.clone(),
            options,
            timescale: std::sync::Mutex::default(),
            pruned: once::Pruned::default(),
        };
        if store.options.migrate {
            store.migrate_up()?;
        } else if store.options.timescale {
            store.detect_timescale()?;
        }
        Ok(store)
    }

    /// The database, with the password replaced by `***`.
    #[must_use]
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs a store operation to completion, or fails it after [`PgOptions::query_timeout`]: a
    /// server that stops answering (a network partition drops packets, it does not refuse them)
    /// must not hold the writer thread for the minutes TCP takes to give up. The abandoned
    /// connection is discarded by the pool.
    fn run<T, F>(&self, fut: F) -> ace_core::Result<T>
    where
        F: Future<Output = ace_core::Result<T>> + Send,
        T: Send,
    {
        self.run_within(self.options.query_timeout, fut)
    }

    fn run_within<T, F>(&self, limit: Duration, fut: F) -> ace_core::Result<T>
    where
        F: Future<Output = ace_core::Result<T>> + Send,
        T: Send,
    {
        let rt = self.rt.as_ref().expect("runtime present until drop");
        block_on(rt, async { tokio::time::timeout(limit, fut).await }).unwrap_or_else(|_| {
            Err(ace_core::Error::StoreUnavailable {
                backend: BACKEND,
                message: format!("{} did not answer within {limit:?}", self.location),
                source: None,
            })
        })
    }

    /// Where rows decode, for errors about them.
    fn source(&self) -> rows::Source<'_> {
        rows::Source { backend: BACKEND, location: &self.location }
    }

    /// Drops the schema given in [`PgOptions::schema`] with everything in it (tests clean up
    /// with it). Refuses to drop `public`.
    pub fn drop_schema(&self, schema: &str) -> ace_core::Result<()> {
        if schema == "public" {
            return Err(ace_core::Error::InvalidInput { field: "schema", reason: "refusing to drop public".into() });
        }
        self.run(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                schema.replace('"', "\"\"")
            )))
            .execute(&self.pool)
            .await
            .map_err(|e| query_err("drop a schema", e))?;
            Ok(())
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// A write that failed on a missing table or column: the schema changed under the running
    /// engine (migrated down, restored from an older backup, changed by another build). Says
    /// which version the database is at and what to run; the writer keeps the records (spilled)
    /// and stores them once the schema is back.
    fn explain_schema(&self, e: ace_core::Error) -> ace_core::Error {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut schema_changed = false;
        while let Some(err) = cause {
            if let Some(sqlx::Error::Database(db)) = err.downcast_ref::<sqlx::Error>() {
                // undefined_table, undefined_column, datatype_mismatch
                schema_changed = matches!(db.code().as_deref(), Some("42P01" | "42703" | "42804"));
                break;
            }
            cause = err.source();
        }
        if !schema_changed {
            return e;
        }
        let known = crate::migrate::POSTGRES.last().map_or(0, |m| m.version);
        let found = match self.schema_version() {
            Ok(v) => format!("is at version {v}"),
            Err(_) => "has an unknown version".to_owned(),
        };
        ace_core::Error::StoreUnavailable {
            backend: BACKEND,
            message: format!(
                "the ace schema in {} (PostgreSQL schema {}) {found} and this ace writes version {known}: \
                 run `ace migrate up --store URL` (records are kept and stored once it matches): {e}",
                self.location,
                self.schema.as_deref().unwrap_or("public")
            ),
            source: Some(Box::new(e)),
        }
    }
}

fn query_err(operation: &'static str, e: sqlx::Error) -> ace_core::Error {
    Error::Query { backend: BACKEND, operation, source: Box::new(e) }.into()
}

fn classify_open_error(location: &str, e: sqlx::Error) -> ace_core::Error {
    let detail = match &e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => format!("the server refused the credentials: {}", db.message()),
            Some("3D000") => format!("no such database: {}", db.message()),
            _ => db.message().to_owned(),
        },
        sqlx::Error::PoolTimedOut => "timed out connecting (is the server up and reachable?)".to_owned(),
        other => other.to_string(),
    };
    ace_core::Error::StoreUnavailable {
        backend: BACKEND,
        message: format!("cannot open {location}: {detail}"),
        source: Some(Box::new(e)),
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn append(&self, records: &[Record]) -> ace_core::Result<()> {
        self.append_batch(records).map_err(|e| self.explain_schema(e))
    }

    fn save_baselines(&self, baselines: &[BaselineRecord]) -> ace_core::Result<()> {
        self.run(writes::save_baselines(&self.pool, baselines))
    }

    fn load_baselines(&self) -> ace_core::Result<Vec<BaselineRecord>> {
        self.run(read::baselines(&self.pool, self.source()))
    }

    fn query_metrics(&self, query: &MetricQuery) -> ace_core::Result<Vec<MetricRecord>> {
        self.run(read::metrics(&self.pool, self.source(), query))
    }

    fn count_metrics(&self) -> ace_core::Result<u64> {
        self.run(read::count_metrics(&self.pool))
    }

    fn query_errors(&self, query: &ErrorQuery) -> ace_core::Result<Vec<ErrorRecord>> {
        self.run(read::errors(&self.pool, self.source(), query, false))
    }

    fn save_patterns(&self, patterns: &[PatternRecord]) -> ace_core::Result<()> {
        self.run(writes::save_patterns(&self.pool, patterns))
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
        crate::learnt::records("postgres", rows)
    }

    fn load_patterns(&self) -> ace_core::Result<Vec<PatternRecord>> {
        self.run(read::patterns(&self.pool, self.source()))
    }

    fn query_interventions(&self, agent: Option<&str>, limit: usize) -> ace_core::Result<Vec<InterventionRecord>> {
        let mut query = InterventionQuery::all().limit(limit);
        query.agent = agent.map(str::to_owned);
        self.run(read::interventions(&self.pool, self.source(), &query, false))
    }

    fn recent_interventions(&self, query: &InterventionQuery) -> ace_core::Result<Vec<InterventionRecord>> {
        self.run(read::interventions(&self.pool, self.source(), query, true))
    }

    fn recent_errors(&self, query: &ErrorQuery) -> ace_core::Result<Vec<ErrorRecord>> {
        self.run(read::errors(&self.pool, self.source(), query, true))
    }

    fn append_playbook(&self, entries: &[PlaybookEntry]) -> ace_core::Result<()> {
        self.run(writes::append_playbook(&self.pool, entries))
    }

    fn load_playbook(&self, domain: &str) -> ace_core::Result<Vec<PlaybookEntry>> {
        self.run(read::playbook(&self.pool, self.source(), domain))
    }

    fn delete_before(&self, cutoff: ace_core::Timestamp, max_rows: u64) -> ace_core::Result<u64> {
        self.delete_chunks(cutoff.as_micros(), max_rows)
    }

    fn spill_key(&self) -> Option<String> {
        // The URL without its password, and the schema: one directory per database and schema.
        Some(format!("postgres:{}:{}", self.location, self.schema.as_deref().unwrap_or("public")))
    }

    fn ping(&self) -> ace_core::Result<Duration> {
        let started = Instant::now();
        // Health checks wait at most 5 s, however long a query may take.
        let limit = self.options.query_timeout.min(Duration::from_secs(5));
        self.run_within(limit, async {
            sqlx::query("SELECT 1").execute(&self.pool).await.map_err(|e| query_err("ping", e))
        })?;
        Ok(started.elapsed())
    }

    fn close(&self) -> ace_core::Result<()> {
        let limit = self.options.query_timeout;
        self.run_within(limit, async {
            self.pool.close().await;
            Ok(())
        })
    }
}
