//! The PostgreSQL schema: applying and reverting migrations under an advisory lock, and the
//! table that records which ran.

use std::time::Duration;

use sqlx::postgres::PgPool;

use super::timescale::enable_timescale;
use super::{LOG_TARGET, PgStore, query_err};
use crate::error::Error;
use crate::migrate::{Migration, POSTGRES};

impl PgStore {
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
                tracing::info!(target: LOG_TARGET, version = m.version, name = m.name, "applied postgres migration");
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

    /// Reverts migrations down to `target` (0 reverts everything); returns how many ran.
    pub fn migrate_down(&self, target: i64) -> ace_core::Result<usize> {
        let current = self.schema_version()?;
        self.run_within(self.migration_timeout(), async {
            let mut tx = self.pool.begin().await.map_err(|e| query_err("begin migrations", e))?;
            let mut ran = 0;
            for m in POSTGRES.iter().rev().filter(|m| m.version > target && m.version <= current) {
                apply(&mut tx, m, false).await?;
                tracing::info!(target: LOG_TARGET, version = m.version, name = m.name, "reverted postgres migration");
                ran += 1;
            }
            tx.commit().await.map_err(|e| query_err("commit migrations", e))?;
            Ok(ran)
        })
    }

    /// Migrations get at least a minute: they wait on the lock while another replica migrates.
    fn migration_timeout(&self) -> Duration {
        self.options.query_timeout.max(Duration::from_secs(60))
    }
}

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS ace_schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)";

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
