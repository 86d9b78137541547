//! Durable backends for [ace](https://docs.rs/ace): the embedded SQLite store, and
//! [`open`], which turns a store URL into a store.
//!
//! Every backend implements [`ace_core::Store`] and passes the conformance suite in the
//! repository's `tests/conformance/`.
//!
//! Where things live: `sqlite` and `postgres/` (one folder: options, migrations, TimescaleDB,
//! writes, reads) hold what each database does its own way; `writes` (records into rows) and
//! `rows` (rows into records) hold what the SQL stores do alike; `redis` is the shared cache;
//! `migrate` lists the migrations; `common` holds the runtime wait and column lists.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
mod common;
mod error;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod json;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod learnt;
pub mod migrate;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod writes;

use std::sync::Arc;

use ace_core::{MemoryStore, Store};

pub use error::Error;
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore};
#[cfg(feature = "redis")]
pub use redis::{RedisCache, RedisOptions};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
#[cfg(feature = "sqlite")]
pub use sqlite::fork as sqlite_fork;

/// Opens the store a URL names:
///
/// | URL | store |
/// |---|---|
/// | `memory`, `memory://` | a fresh [`MemoryStore`] |
/// | `sqlite://PATH`, `sqlite:PATH`, or a plain file path | [`SqliteStore`] at `PATH` |
/// | `postgresql://...`, `postgres://...` | [`PgStore`] (pool of 50; see [`open_with`]) |
///
/// Anything else (a typo, an unknown scheme) is a
/// [`ace_core::Error::Config`] naming `DATABASE_URL`; passwords are never printed.
pub fn open(url: &str) -> ace_core::Result<Arc<dyn Store>> {
    open_with(url, 50)
}

/// [`open`] with a PostgreSQL pool of `postgres_max_connections` (`POSTGRES_MAX_CONNECTIONS`).
pub fn open_with(url: &str, postgres_max_connections: u32) -> ace_core::Result<Arc<dyn Store>> {
    #[cfg(not(feature = "postgres"))]
    let _ = postgres_max_connections;
    let url = url.trim();
    if url.is_empty() {
        return Err(Error::UnsupportedUrl { url: String::new(), reason: "the store URL is empty".into() }.into());
    }
    if url == "memory" || url == "memory://" || url == ":memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        #[cfg(feature = "sqlite")]
        Some("sqlite") | None => Ok(Arc::new(SqliteStore::open(sqlite::path_from_url(url))?)),
        #[cfg(feature = "postgres")]
        Some("postgres" | "postgresql") => {
            let options = PgOptions::default().max_connections(postgres_max_connections);
            Ok(Arc::new(PgStore::connect(url, options)?))
        }
        #[cfg(not(feature = "postgres"))]
        Some("postgres" | "postgresql") => Err(Error::UnsupportedUrl {
            url: ace_core::error::redact_url(url),
            reason: "this build of ace has no PostgreSQL store (the postgres feature is off)".into(),
        }
        .into()),
        Some(other) => Err(Error::UnsupportedUrl {
            url: ace_core::error::redact_url(url),
            reason: format!("unknown scheme {other:?}; use sqlite://PATH, postgresql://..., a file path, or memory"),
        }
        .into()),
        #[cfg(not(feature = "sqlite"))]
        None => {
            Err(Error::UnsupportedUrl { url: url.to_owned(), reason: "built without the sqlite feature".into() }.into())
        }
    }
}
