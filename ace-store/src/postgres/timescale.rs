//! TimescaleDB: turning the time-series tables into compressed-capable hypertables when the
//! server has the extension, and the upkeep that goes with them (compression, retention).

use sqlx::Postgres;

use super::{LOG_TARGET, PgStore, query_err};

/// The tables that become hypertables (partitioned by `created_at`, one-day chunks).
const HYPERTABLES: [&str; 2] = ["ace_performance_metrics", "ace_errors"];

/// One day in the engine clock's microseconds: the chunk interval.
const DAY_MICROS: i64 = 86_400_000_000;

/// The tables retention deletes from: the time series. Baselines, error patterns, playbook
/// versions and what was learnt are kept.
const RETAINED: [&str; 3] = ["ace_performance_metrics", "ace_errors", "ace_interventions"];

/// Rows one `DELETE` of [`PgStore::delete_chunks`] takes at most.
const ROWS_PER_DELETE: u64 = 10_000;

impl PgStore {
    /// Whether `ace_performance_metrics` and `ace_errors` are TimescaleDB hypertables here.
    #[must_use]
    pub fn timescale(&self) -> bool {
        self.timescale.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    /// Looks for hypertables made by an earlier migration (a store opened unmigrated).
    pub(super) fn detect_timescale(&self) -> ace_core::Result<()> {
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
        let cutoff =
            ace_core::Clock::now(&ace_core::SystemClock).as_micros() - i64::from(days).saturating_mul(DAY_MICROS);
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

    /// Deletes metric, error and intervention records older than `days` days (engine-clock
    /// micros before now), with the batch digests of that age; returns how many records went.
    /// Baselines, error patterns, playbook versions and what was learnt are kept. On
    /// hypertables whole chunks past the cutoff are dropped (cheap, no dead rows) and the rest
    /// deleted row by row; everything goes in one transaction.
    ///
    /// Errors: [`ace_core::Error::InvalidInput`] for 0 days (which would delete everything) or
    /// more than [`ace_core::event::MAX_RETAIN_DAYS`]; [`ace_core::Error::Store`] when a delete fails.
    pub fn retain(&self, days: u32) -> ace_core::Result<u64> {
        let cutoff = ace_core::event::retain_cutoff(days, ace_core::Clock::now(&ace_core::SystemClock))?.as_micros();
        let ts = self.timescale.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin retention", e))?;
            let mut removed = 0;
            for table in RETAINED {
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
            // Batch digests go with the records they guard (not counted: they are not records).
            sqlx::query("DELETE FROM ace_batches WHERE created_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(|e| query_err("delete old batch digests", e))?;
            tx.commit().await.map_err(|e| query_err("commit retention", e))?;
            Ok(removed)
        })
    }

    /// `Store::delete_before`: deletes at most `max_rows` records created before `cutoff`
    /// (engine-clock micros), row by row, at most [`ROWS_PER_DELETE`] a statement, each its own
    /// transaction; returns how many went. Batch digests expire on their own (`once.rs`).
    pub(super) fn delete_chunks(&self, cutoff: i64, max_rows: u64) -> ace_core::Result<u64> {
        self.run(async {
            let mut removed = 0;
            for table in RETAINED {
                let sql = format!(
                    "DELETE FROM {table} WHERE created_at < $1 \
                     AND id IN (SELECT id FROM {table} WHERE created_at < $1 LIMIT $2)"
                );
                loop {
                    let chunk = (max_rows - removed).min(ROWS_PER_DELETE);
                    if chunk == 0 {
                        return Ok(removed);
                    }
                    let n = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(cutoff)
                        .bind(i64::try_from(chunk).unwrap_or(i64::MAX))
                        .execute(&self.pool)
                        .await
                        .map_err(|e| query_err("delete old records", e))?
                        .rows_affected();
                    removed += n;
                    if n < chunk {
                        break;
                    }
                }
            }
            Ok(removed)
        })
    }
}

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
pub(super) async fn enable_timescale(conn: &mut sqlx::PgConnection) -> ace_core::Result<Option<String>> {
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
                tracing::warn!(target: LOG_TARGET, error = %e, "TimescaleDB is available but could not be created; using plain tables");
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
        tracing::info!(target: LOG_TARGET, table, "converted to a TimescaleDB hypertable");
    }
    Ok(Some(ext))
}
