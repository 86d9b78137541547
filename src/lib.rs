//! # ace
//!
//! The in-process oversight engine for AI agents. This facade re-exports the engine
//! ([`ace_core`]) and, with the default `sqlite` feature, the embedded SQLite store
//! ([`ace_store`]); it also ships the `ace` command (`cli` feature).
//!
//! Opening an engine from a URL and settings by name ([`open`], [`EngineSpec`]) lives here, once,
//! for the Python and Node bindings as much as for Rust callers.
//!
//! ```
//! # fn main() -> ace::Result<()> {
//! let ace = ace::Ace::builder().store_arc(ace::open_store("memory")?).build()?;
//! ace.record_stage_with("agent-1", "task-1", "execution", 2.5, true, &[("tokens_out", 310.0)])?;
//! ace.close()?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use ace_core::*;
#[cfg(feature = "sqlite")]
pub use ace_store::{self as stores, SqliteStore};
#[cfg(feature = "postgres")]
pub use ace_store::{PgOptions, PgStore};
#[cfg(feature = "redis")]
pub use ace_store::{RedisCache, RedisOptions};

#[cfg(feature = "sqlite")]
mod open;
#[cfg(feature = "sqlite")]
pub use open::{EngineSpec, breaker_with, is_cache_url, open};
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod readback;
mod serve;
#[doc(hidden)]
pub use serve::answer_request;
pub use serve::{MAX_TARGET, ServeOptions, Server, serve, serve_with};

/// `ace.serve(addr)`: the metrics listener as a method of the engine (see [`serve`]).
pub trait Serve {
    /// Serves `/`, `/api/`, `/metrics` and `/health` on `addr` until the returned [`Server`] is dropped.
    fn serve(&self, addr: impl std::net::ToSocketAddrs) -> Result<Server>;
}

impl Serve for Ace {
    fn serve(&self, addr: impl std::net::ToSocketAddrs) -> Result<Server> {
        serve::serve(self, addr)
    }
}

/// Opens the store a URL names (`memory`, `sqlite://PATH`, or a file path); see
/// [`ace_store::open`].
#[cfg(feature = "sqlite")]
pub fn open_store(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    ace_store::open(url)
}

/// The store URL used when `DATABASE_URL` is not set: `ace.db` in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ace.db";

/// An engine configured from the environment: [`AceConfig::from_env`] for the settings,
/// `DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]) for the store, and `REDIS_URL` or
/// `REDIS_CLUSTER_URLS` (with `ACE_ENABLE_CACHING`, on by default) for the shared cache.
#[cfg(feature = "sqlite")]
pub fn from_env() -> Result<Ace> {
    builder_for(AceConfig::from_env()?, DEFAULT_DATABASE_URL)?.build()
}

/// A builder for the engine `config` describes: the store its `database_url` names
/// (`default_url` when it names none) and, when caching is on, the shared cache its
/// `redis_cluster_urls` or `redis_url` name. The bindings build their engines through this, so
/// a URL means the same thing in Rust, Python and Node.
#[cfg(feature = "sqlite")]
pub fn builder_for(config: AceConfig, default_url: &str) -> Result<AceBuilder> {
    let url = config.database_url.clone().unwrap_or_else(|| default_url.to_owned());
    let store = match url.trim() {
        // The in-memory store keeps the bounded history the configuration asks for.
        "memory" | "memory://" | ":memory:" => {
            std::sync::Arc::new(ace_core::MemoryStore::with_max_records(config.memory_max_records))
        }
        _ => ace_store::open_with(&url, config.postgres_max_connections)?,
    };
    #[allow(unused_mut)]
    let mut builder = Ace::builder().store_arc(store);
    #[cfg(feature = "redis")]
    if config.enable_caching {
        if !config.redis_cluster_urls.is_empty() {
            builder = builder.cache(RedisCache::connect_cluster(&config.redis_cluster_urls, RedisOptions::default())?);
        } else if let Some(redis) = &config.redis_url {
            builder = builder.cache(RedisCache::connect(redis, RedisOptions::default())?);
        }
    }
    Ok(builder.config(config))
}
