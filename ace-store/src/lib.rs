//! Durable backends for [ace](https://example.invalid/ace): the embedded SQLite store, and
//! [`open`], which turns a store URL into a store.
//!
//! Every backend implements [`ace_core::Store`] and passes the conformance suite in the
//! repository's `tests/conformance/`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
#[cfg(feature = "sqlite")]
mod json;
pub mod migrate;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;

use ace_core::{MemoryStore, Store};

pub use error::Error;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Opens the store a URL names:
///
/// | URL | store |
/// |---|---|
/// | `memory`, `memory://` | a fresh [`MemoryStore`] |
/// | `sqlite://PATH`, `sqlite:PATH`, or a plain file path | [`SqliteStore`] at `PATH` |
///
/// Anything else (`postgresql://` before the PostgreSQL backend lands, a typo) is a
/// [`ace_core::Error::Config`] naming `DATABASE_URL`; passwords are never printed.
pub fn open(url: &str) -> ace_core::Result<Arc<dyn Store>> {
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
        Some("postgres" | "postgresql") => Err(Error::UnsupportedUrl {
            url: ace_core::error::redact_url(url),
            reason: "the PostgreSQL store is not available in this build of ace yet; use sqlite://PATH or memory"
                .into(),
        }
        .into()),
        Some(other) => Err(Error::UnsupportedUrl {
            url: ace_core::error::redact_url(url),
            reason: format!("unknown scheme {other:?}; use sqlite://PATH, a file path, or memory"),
        }
        .into()),
        #[cfg(not(feature = "sqlite"))]
        None => {
            Err(Error::UnsupportedUrl { url: url.to_owned(), reason: "built without the sqlite feature".into() }.into())
        }
    }
}
