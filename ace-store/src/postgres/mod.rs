//! PostgreSQL: the system of record when a fleet outgrows one process.
//!
//! Every batch is one transaction; metric records stream in with `COPY ... FROM STDIN` (text
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

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ace_core::Severity;
use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionRecord, MetricQuery, MetricRecord, OutcomeRecord,
    PlaybookEntry, Record, Store,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};

use crate::common::{block_on, metrics_json};
use crate::error::Error;
use crate::migrate::{Migration, POSTGRES};
use crate::rows;

const BACKEND: &str = "postgres";
const METRIC_COLUMNS: &str = "created_at, agent_id, task_id, stage, duration_s, success, metrics";
const ERROR_COLUMNS: &str = "created_at, agent_id, task_id, stage, kind, message, severity, pattern_id";

/// How to connect.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PgOptions {
    /// Pool size (`POSTGRES_MAX_CONNECTIONS`, default 50).
    pub max_connections: u32,
    /// How long to wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// A schema to create (if missing) and use instead of `public`: tests give each run its own.
    pub schema: Option<String>,
    /// Apply pending migrations on connect (default true). `ace migrate` turns it off to apply
    /// them itself and report what ran; a store left unmigrated cannot take records.
    pub migrate: bool,
    /// Use TimescaleDB when the server has it (default true): migrating up creates the extension
    /// if it is available and not yet created (falling back to plain tables, with a warning, when
    /// the role may not create it), turns `ace_performance_metrics` and `ace_errors` into
    /// hypertables with one-day chunks and enables compression on them. Off: plain tables always.
    pub timescale: bool,
    /// Append metric rows with `COPY ... FROM STDIN` (default true, the fastest way in). Off:
    /// one `INSERT ... SELECT FROM UNNEST` per batch, for PostgreSQL-compatible servers and
    /// proxies that do not speak the copy sub-protocol (PGlite, for one).
    pub copy: bool,
    /// How long one store operation (a batch, a query, a migration) may take before it fails
    /// as unavailable and the writer retries or spills (default 10 s). Migrations get at least
    /// a minute: they wait on the lock while another replica migrates.
    pub query_timeout: Duration,
}

impl PgOptions {
    /// Sets [`PgOptions::max_connections`].
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`PgOptions::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets [`PgOptions::migrate`].
    #[must_use]
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }

    /// Sets [`PgOptions::timescale`].
    #[must_use]
    pub fn timescale(mut self, on: bool) -> Self {
        self.timescale = on;
        self
    }

    /// Sets [`PgOptions::query_timeout`].
    #[must_use]
    pub fn query_timeout(mut self, d: Duration) -> Self {
        self.query_timeout = d;
        self
    }

    /// Sets [`PgOptions::copy`].
    #[must_use]
    pub fn copy(mut self, on: bool) -> Self {
        self.copy = on;
        self
    }

    /// Sets [`PgOptions::schema`].
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 50,
            connect_timeout: Duration::from_secs(10),
            schema: None,
            migrate: true,
            timescale: true,
            copy: true,
            query_timeout: Duration::from_secs(10),
        }
    }
}

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

    fn migration_timeout(&self) -> Duration {
        self.options.query_timeout.max(Duration::from_secs(60))
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

    /// The schema version the database is at (0 for an empty one).
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

    /// Applies every pending migration; returns how many ran. Concurrent starts are serialised
    /// by an advisory lock, so two replicas never migrate at once.
    pub fn migrate_up(&self) -> ace_core::Result<usize> {
        self.run_within(self.migration_timeout(), async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin migrations", e))?;
            sqlx::query("SELECT pg_advisory_xact_lock(7369011)")
                .execute(&mut *tx)
                .await
                .map_err(|e| query_err("lock for migrations", e))?;
            sqlx::raw_sql(MIGRATIONS_TABLE)
                .execute(&mut *tx)
                .await
                .map_err(|e| query_err("create the migrations table", e))?;
            let applied: Vec<(i64, String)> =
                sqlx::query_as("SELECT version, checksum FROM ace_schema_migrations ORDER BY version")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| query_err("read applied migrations", e))?;
            let known_max = POSTGRES.last().map_or(0, |m| m.version);
            if let Some((v, _)) = applied.iter().find(|(v, _)| *v > known_max) {
                return Err(Error::Corrupt {
                    location: self.location.clone(),
                    reason: format!(
                        "schema version {v} is newer than this build of ace knows ({known_max}); upgrade ace"
                    ),
                }
                .into());
            }
            for (v, checksum) in &applied {
                if POSTGRES.iter().find(|m| m.version == *v).is_none_or(|m| &m.checksum() != checksum) {
                    return Err(Error::Corrupt {
                        location: self.location.clone(),
                        reason: format!("migration {v} was applied by a different build of ace (checksum mismatch)"),
                    }
                    .into());
                }
            }
            let mut ran = 0;
            for m in POSTGRES.iter().filter(|m| !applied.iter().any(|(v, _)| *v == m.version)) {
                apply(&mut tx, m, true).await?;
                tracing::info!(version = m.version, name = m.name, "applied postgres migration");
                ran += 1;
            }
            if self.options.timescale {
                let ts = enable_timescale(&mut tx).await?;
                *self.timescale.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = ts;
            }
            tx.commit().await.map_err(|e| query_err("commit migrations", e))?;
            Ok(ran)
        })
    }

    /// Whether `ace_performance_metrics` and `ace_errors` are TimescaleDB hypertables here.
    #[must_use]
    pub fn timescale(&self) -> bool {
        self.timescale.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    /// Looks for hypertables made by an earlier migration (a store opened unmigrated).
    fn detect_timescale(&self) -> ace_core::Result<()> {
        let found = self.run(async {
            let mut conn = self.pool.acquire().await.map_err(|e| query_err("look for TimescaleDB", e))?;
            match timescale_schema(&mut conn).await? {
                Some(ext) if is_hypertable(&mut *conn, HYPERTABLES[0]).await? => Ok::<_, ace_core::Error>(Some(ext)),
                _ => Ok(None),
            }
        })?;
        *self.timescale.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = found;
        Ok(())
    }

    /// Compresses every whole chunk of the hypertables older than `days` days; returns how many
    /// chunks it compressed (already compressed ones are skipped). Compressed rows stay
    /// queryable. Errors with [`ace_core::Error::InvalidInput`] when the tables are plain (no
    /// TimescaleDB): use [`PgStore::retain`] there.
    pub fn compress(&self, days: u32) -> ace_core::Result<u64> {
        let Some(ext) = self.timescale.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() else {
            return Err(ace_core::Error::InvalidInput {
                field: "compress",
                reason: format!("{} has plain tables (no TimescaleDB), nothing can be compressed", self.location),
            });
        };
        let cutoff = ace_core::Clock::now(&ace_core::SystemClock).as_micros() - i64::from(days) * DAY_MICROS;
        self.run(async {
            let mut compressed = 0;
            for table in HYPERTABLES {
                let sql = format!(
                    "SELECT count({ext}.compress_chunk(format('%I.%I', chunk_schema, chunk_name)::regclass)) \
                     FROM timescaledb_information.chunks \
                     WHERE hypertable_schema = current_schema() AND hypertable_name = '{table}' \
                       AND NOT is_compressed AND range_end_integer <= $1"
                );
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(cutoff)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| query_err("compress old chunks", e))?;
                compressed += u64::try_from(n).unwrap_or(0);
            }
            Ok(compressed)
        })
    }

    /// Reverts migrations down to `target` (0 reverts everything); returns how many ran.
    pub fn migrate_down(&self, target: i64) -> ace_core::Result<usize> {
        let current = self.schema_version()?;
        self.run_within(self.migration_timeout(), async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin migrations", e))?;
            let mut ran = 0;
            for m in POSTGRES.iter().rev().filter(|m| m.version > target && m.version <= current) {
                apply(&mut tx, m, false).await?;
                tracing::info!(version = m.version, name = m.name, "reverted postgres migration");
                ran += 1;
            }
            tx.commit().await.map_err(|e| query_err("commit migrations", e))?;
            Ok(ran)
        })
    }

    /// Deletes metric, error and intervention records older than `days` days (engine-clock
    /// micros before now); returns how many rows went. On hypertables whole chunks past the
    /// cutoff are dropped (cheap, no dead rows) and the rest deleted row by row.
    pub fn retain(&self, days: u32) -> ace_core::Result<u64> {
        let cutoff = ace_core::Clock::now(&ace_core::SystemClock).as_micros() - i64::from(days) * DAY_MICROS;
        let ts = self.timescale.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin retention", e))?;
            let mut removed = 0;
            for table in ["ace_performance_metrics", "ace_errors", "ace_interventions"] {
                let delete = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE created_at < $1"));
                match &ts {
                    Some(ext) if HYPERTABLES.contains(&table) => {
                        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                            "SELECT count(*) FROM {table} WHERE created_at < $1"
                        )))
                        .bind(cutoff)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| query_err("count old records", e))?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "SELECT {ext}.drop_chunks('{table}'::regclass, older_than => $1::bigint)"
                        )))
                        .bind(cutoff)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| query_err("drop old chunks", e))?;
                        sqlx::query(delete)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| query_err("delete old records", e))?;
                        removed += u64::try_from(n).unwrap_or(0);
                    }
                    _ => {
                        removed += sqlx::query(delete)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| query_err("delete old records", e))?
                            .rows_affected();
                    }
                }
            }
            tx.commit().await.map_err(|e| query_err("commit retention", e))?;
            Ok(removed)
        })
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

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS ace_schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// The tables that become hypertables (partitioned by `created_at`, one-day chunks).
const HYPERTABLES: [&str; 2] = ["ace_performance_metrics", "ace_errors"];

/// One day in the engine clock's microseconds: the chunk interval, and the unit of retention.
const DAY_MICROS: i64 = 86_400_000_000;

/// The schema of the `timescaledb` extension when it is created in this database.
async fn timescale_schema(conn: &mut sqlx::PgConnection) -> ace_core::Result<Option<String>> {
    let schema: Option<String> = sqlx::query_scalar(
        "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
         WHERE e.extname = 'timescaledb'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| query_err("look for TimescaleDB", e))?;
    Ok(schema)
}

async fn is_hypertable<'c, E>(conn: E, table: &str) -> ace_core::Result<bool>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables \
         WHERE hypertable_schema = current_schema() AND hypertable_name = $1)",
    )
    .bind(table)
    .fetch_one(conn)
    .await
    .map_err(|e| query_err("look for hypertables", e))
}

/// Creates the extension when the server has it and turns the time-series tables into
/// compressed-capable hypertables; returns the extension's schema, or `None` for plain tables.
async fn enable_timescale(conn: &mut sqlx::PgConnection) -> ace_core::Result<Option<String>> {
    use sqlx::Connection as _;
    let mut ext = timescale_schema(conn).await?;
    if ext.is_none() {
        let available: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')")
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| query_err("look for TimescaleDB", e))?;
        if !available {
            return Ok(None);
        }
        // A savepoint: a role that may not create extensions keeps its plain tables.
        let mut sp = conn.begin().await.map_err(|e| query_err("begin a savepoint", e))?;
        match sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb").execute(&mut *sp).await {
            Ok(_) => sp.commit().await.map_err(|e| query_err("create TimescaleDB", e))?,
            Err(e) => {
                let _ = sp.rollback().await;
                tracing::warn!(error = %e, "TimescaleDB is available but could not be created; using plain tables");
                return Ok(None);
            }
        }
        ext = timescale_schema(conn).await?;
    }
    let Some(ext) = ext else { return Ok(None) };
    for table in HYPERTABLES {
        if is_hypertable(&mut *conn, table).await? {
            continue;
        }
        // A hypertable's unique keys must hold the partitioning column.
        let steps = [
            format!("ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, ADD PRIMARY KEY (id, created_at)"),
            format!(
                "SELECT {ext}.create_hypertable('{table}'::regclass, 'created_at', \
                 chunk_time_interval => {DAY_MICROS}::bigint, migrate_data => true)"
            ),
            format!(
                "ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'agent_id', \
                 timescaledb.compress_orderby = 'created_at DESC, id DESC')"
            ),
        ];
        for sql in steps {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .map_err(|e| query_err("make a hypertable", e))?;
        }
        tracing::info!(table, "converted to a TimescaleDB hypertable");
    }
    Ok(Some(ext))
}

async fn ensure_migrations_table(pool: &PgPool) -> ace_core::Result<()> {
    sqlx::raw_sql(MIGRATIONS_TABLE).execute(pool).await.map_err(|e| query_err("create the migrations table", e))?;
    Ok(())
}

async fn apply(tx: &mut sqlx::PgConnection, m: &Migration, up: bool) -> ace_core::Result<()> {
    sqlx::raw_sql(if up { m.up } else { m.down })
        .execute(&mut *tx)
        .await
        .map_err(|e| query_err("run a migration", e))?;
    if up {
        sqlx::query("INSERT INTO ace_schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .bind(ace_core::Clock::now(&ace_core::SystemClock).as_micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| query_err("record a migration", e))?;
    } else {
        sqlx::query("DELETE FROM ace_schema_migrations WHERE version = $1")
            .bind(m.version)
            .execute(&mut *tx)
            .await
            .map_err(|e| query_err("record a migration", e))?;
    }
    Ok(())
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
        let mut metrics: Vec<&MetricRecord> = Vec::new();
        let mut e = ErrorColumns::default();
        let mut interventions: Vec<&InterventionRecord> = Vec::new();
        let mut outcomes: Vec<&OutcomeRecord> = Vec::new();
        for r in records {
            match r {
                Record::Metric(r) => metrics.push(r),
                Record::Error(r) => e.push(r),
                Record::Intervention(i) => interventions.push(i),
                Record::Outcome(o) => outcomes.push(o),
                other => return Err(ace_core::Error::Internal(format!("the postgres store cannot store {other:?}"))),
            }
        }
        if metrics.is_empty() && e.ts.is_empty() && interventions.is_empty() && outcomes.is_empty() {
            return Ok(());
        }
        let copy = self.options.copy;
        let mut m = MetricColumns::default();
        let mut unnest: Vec<MetricArrays> = Vec::new();
        for r in metrics {
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
            for chunk in interventions.chunks(1000) {
                let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
                    "INSERT INTO ace_interventions (intervention_id, created_at, agent_id, task_id, strategy, severity, \
                     signal_kind, reason, signals, outcome) ",
                );
                qb.push_values(chunk, |mut row, i| {
                    row.push_bind(i.id.to_string())
                        .push_bind(i.ts.as_micros())
                        .push_bind(i.agent.to_string())
                        .push_bind(i.task.to_string())
                        .push_bind(i.strategy.as_str())
                        .push_bind(i.severity.as_str())
                        .push_bind(i.signal_kind.as_str())
                        .push_bind(i.reason.clone())
                        .push_bind(i.signals_json.clone())
                        .push_bind(i.outcome);
                });
                qb.push(" ON CONFLICT (intervention_id) DO NOTHING");
                qb.build().execute(&mut *tx).await.map_err(|e| query_err("append interventions", e))?;
            }
            for o in &outcomes {
                sqlx::query("UPDATE ace_interventions SET outcome = $1, outcome_at = $2 WHERE intervention_id = $3")
                    .bind(o.success)
                    .bind(o.ts.as_micros())
                    .bind(o.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| query_err("record an outcome", e))?;
            }
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
            tx.commit().await.map_err(|e| query_err("commit a batch", e))
        })
    }

    fn save_baselines(&self, baselines: &[BaselineRecord]) -> ace_core::Result<()> {
        if baselines.is_empty() {
            return Ok(());
        }
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin saving baselines", e))?;
            for chunk in baselines.chunks(1000) {
                let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
                    "INSERT INTO ace_baselines (agent_id, stage, metric, count, mean, variance, recent, degraded, updated_at) ",
                );
                qb.push_values(chunk, |mut row, b| {
                    row.push_bind(b.agent.clone())
                        .push_bind(b.stage.clone())
                        .push_bind(b.metric.clone())
                        .push_bind(i64::try_from(b.state.count).unwrap_or(i64::MAX))
                        .push_bind(b.state.mean)
                        .push_bind(b.state.var)
                        .push_bind(b.state.recent)
                        .push_bind(b.state.degraded)
                        .push_bind(b.updated_at.as_micros());
                });
                qb.push(
                    " ON CONFLICT (agent_id, stage, metric) DO UPDATE SET count = excluded.count, mean = excluded.mean, \
                     variance = excluded.variance, recent = excluded.recent, degraded = excluded.degraded, \
                     updated_at = excluded.updated_at",
                );
                qb.build().execute(&mut *tx).await.map_err(|e| query_err("save baselines", e))?;
            }
            tx.commit().await.map_err(|e| query_err("commit baselines", e))
        })
    }

    fn load_baselines(&self) -> ace_core::Result<Vec<BaselineRecord>> {
        let location = self.location.clone();
        let src = rows::Source { backend: BACKEND, location: &location };
        self.run(async {
            let rows = sqlx::query(
                "SELECT agent_id, stage, metric, count, mean, variance, recent, degraded, updated_at \
                 FROM ace_baselines ORDER BY agent_id, stage, metric",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|e| query_err("load baselines", e))?;
            rows.iter().map(|r| src.baseline(r)).collect()
        })
    }

    fn query_metrics(&self, query: &MetricQuery) -> ace_core::Result<Vec<MetricRecord>> {
        let location = self.location.clone();
        let src = rows::Source { backend: BACKEND, location: &location };
        self.run(async {
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
                "SELECT {METRIC_COLUMNS}, metrics::text AS metrics_text FROM ace_performance_metrics WHERE true"
            ));
            if let Some(agent) = &query.agent {
                qb.push(" AND agent_id = ").push_bind(agent.clone());
            }
            if let Some(stage) = &query.stage {
                qb.push(" AND stage = ").push_bind(stage.clone());
            }
            if let Some(since) = query.since {
                qb.push(" AND created_at >= ").push_bind(since.as_micros());
            }
            qb.push(" ORDER BY created_at, id");
            if query.limit > 0 {
                qb.push(" LIMIT ").push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
            }
            let rows = qb.build().fetch_all(&self.pool).await.map_err(|e| query_err("query metrics", e))?;
            rows.iter().map(|r| src.metric(r, "metrics_text")).collect()
        })
    }

    fn count_metrics(&self) -> ace_core::Result<u64> {
        self.run(async {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ace_performance_metrics")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| query_err("count metrics", e))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn query_errors(&self, query: &ErrorQuery) -> ace_core::Result<Vec<ErrorRecord>> {
        let location = self.location.clone();
        let src = rows::Source { backend: BACKEND, location: &location };
        self.run(async {
            let mut qb: QueryBuilder<Postgres> =
                QueryBuilder::new(format!("SELECT {ERROR_COLUMNS} FROM ace_errors WHERE true"));
            if let Some(agent) = &query.agent {
                qb.push(" AND agent_id = ").push_bind(agent.clone());
            }
            if let Some(min) = query.min_severity {
                let allowed: Vec<&str> =
                    Severity::ALL.into_iter().filter(|s| *s >= min).map(Severity::as_str).collect();
                qb.push(" AND severity = ANY(").push_bind(allowed).push(")");
            }
            if let Some(since) = query.since {
                qb.push(" AND created_at >= ").push_bind(since.as_micros());
            }
            qb.push(" ORDER BY created_at, id");
            if query.limit > 0 {
                qb.push(" LIMIT ").push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
            }
            let rows = qb.build().fetch_all(&self.pool).await.map_err(|e| query_err("query errors", e))?;
            rows.iter().map(|r| src.error(r)).collect()
        })
    }

    fn save_patterns(&self, patterns: &[PatternRecord]) -> ace_core::Result<()> {
        if patterns.is_empty() {
            return Ok(());
        }
        let now = ace_core::Clock::now(&ace_core::SystemClock).as_micros();
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin saving patterns", e))?;
            // One statement may not touch a row twice: keep the last of each (kind, template).
            let mut latest: std::collections::BTreeMap<(&str, &str), &PatternRecord> =
                std::collections::BTreeMap::new();
            for p in patterns {
                latest.insert((p.kind.as_str(), p.template.as_str()), p);
            }
            let unique: Vec<&PatternRecord> = latest.into_values().collect();
            for chunk in unique.chunks(1000) {
                let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
                    "INSERT INTO ace_error_patterns (kind, template, pattern_id, count, updated_at) ",
                );
                qb.push_values(chunk, |mut row, p| {
                    row.push_bind(p.kind.clone())
                        .push_bind(p.template.clone())
                        .push_bind(p.id.to_string())
                        .push_bind(i64::try_from(p.count).unwrap_or(i64::MAX))
                        .push_bind(now);
                });
                qb.push(
                    " ON CONFLICT (kind, template) DO UPDATE SET pattern_id = excluded.pattern_id, \
                     count = excluded.count, updated_at = excluded.updated_at",
                );
                qb.build().execute(&mut *tx).await.map_err(|e| query_err("save patterns", e))?;
            }
            tx.commit().await.map_err(|e| query_err("commit patterns", e))
        })
    }

    fn load_patterns(&self) -> ace_core::Result<Vec<PatternRecord>> {
        let location = self.location.clone();
        let src = rows::Source { backend: BACKEND, location: &location };
        self.run(async {
            let rows = sqlx::query(
                "SELECT kind, template, pattern_id, count FROM ace_error_patterns ORDER BY count DESC, pattern_id",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|e| query_err("load patterns", e))?;
            rows.iter().map(|r| src.pattern(r)).collect()
        })
    }

    fn query_interventions(&self, agent: Option<&str>, limit: usize) -> ace_core::Result<Vec<InterventionRecord>> {
        let location = self.location.clone();
        let src = rows::Source { backend: BACKEND, location: &location };
        self.run(async {
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
                "SELECT intervention_id, created_at, agent_id, task_id, strategy, severity, signal_kind, reason, signals, \
                 outcome FROM ace_interventions WHERE true",
            );
            if let Some(agent) = agent {
                qb.push(" AND agent_id = ").push_bind(agent.to_owned());
            }
            qb.push(" ORDER BY created_at, id");
            if limit > 0 {
                qb.push(" LIMIT ").push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
            }
            let rows = qb.build().fetch_all(&self.pool).await.map_err(|e| query_err("query interventions", e))?;
            rows.iter().map(|r| src.intervention(r)).collect()
        })
    }

    fn append_playbook(&self, entries: &[PlaybookEntry]) -> ace_core::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin a playbook append", e))?;
            for chunk in entries.chunks(1000) {
                let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
                    "INSERT INTO ace_playbook_versions (domain, version, created_at, hash, snapshot, body) ",
                );
                qb.push_values(chunk, |mut row, e| {
                    row.push_bind(e.domain.clone())
                        .push_bind(i64::try_from(e.version).unwrap_or(i64::MAX))
                        .push_bind(e.at.as_micros())
                        .push_bind(e.hash.clone())
                        .push_bind(e.snapshot)
                        .push_bind(e.body.clone());
                });
                qb.build().execute(&mut *tx).await.map_err(|e| query_err("append playbook entries", e))?;
            }
            tx.commit().await.map_err(|e| query_err("commit playbook entries", e))
        })
    }

    fn load_playbook(&self, domain: &str) -> ace_core::Result<Vec<PlaybookEntry>> {
        let location = self.location.clone();
        let src = rows::Source { backend: BACKEND, location: &location };
        self.run(async {
            let rows = sqlx::query(
                "SELECT version, created_at, hash, snapshot, body FROM ace_playbook_versions WHERE domain = $1 ORDER BY version",
            )
            .bind(domain)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| query_err("load a playbook", e))?;
            rows.iter().map(|r| src.playbook_entry(r, domain)).collect()
        })
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
