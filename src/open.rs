//! Opening an engine from the arguments every binding takes: a URL, a cache URL, settings by
//! name and whether the environment counts. Python's `Ace(url, cache=..., config=...)` and
//! Node's `Ace.open(url, {cache, config})` both build an [`EngineSpec`], so a URL and a setting
//! mean the same thing in Rust, Python and Node.

use std::sync::Arc;

use ace_core::breaker::CircuitBreaker;
use ace_core::breaker::config::BreakerOptions;
use ace_core::{Ace, AceBuilder, AceConfig, Result};

use crate::{DEFAULT_DATABASE_URL, builder_for};

/// Whether `url` names a Redis cache (`redis://`, `rediss://`) rather than a store.
#[must_use]
pub fn is_cache_url(url: &str) -> bool {
    let url = url.trim_start();
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// What an engine is built from: its configuration and the store it uses when the
/// configuration names none. Kept whole so that an engine can be built again (Python rebuilds
/// one in a forked child).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineSpec {
    /// The configuration, with the URLs given folded in (`database_url`, `redis_url`).
    pub config: AceConfig,
    /// The store when `config.database_url` is unset: [`DEFAULT_DATABASE_URL`] when the
    /// environment was read, `memory` otherwise.
    pub default_url: &'static str,
}

impl EngineSpec {
    /// The engine `url` names, with the shared cache `cache`, configured by `settings`
    /// (`(key, value)` pairs as [`AceConfig::from_settings`] reads them) over the environment
    /// when `from_env`, over the defaults otherwise.
    ///
    /// `url` is a store (`memory`, `sqlite://PATH`, `postgresql://...`) or, as `redis://` or
    /// `rediss://`, the cache (the store is then the default). Without a `url`, the store is
    /// `DATABASE_URL` when the environment is read (else [`DEFAULT_DATABASE_URL`]), memory
    /// otherwise. A URL given here overrides the same setting in `settings`.
    ///
    /// ```
    /// use ace::EngineSpec;
    ///
    /// let spec = EngineSpec::new(Some("redis://127.0.0.1:6379"), None, [("cooldown_seconds", "5")], false)?;
    /// assert_eq!(spec.config.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
    /// assert_eq!((spec.config.database_url.as_deref(), spec.default_url), (None, "memory"));
    /// # Ok::<(), ace::Error>(())
    /// ```
    pub fn new<K: AsRef<str>, V: AsRef<str>>(
        url: Option<&str>,
        cache: Option<&str>,
        settings: impl IntoIterator<Item = (K, V)>,
        from_env: bool,
    ) -> Result<Self> {
        let (url, cache) = match url {
            Some(u) if is_cache_url(u) => (None, Some(u)),
            other => (other, cache),
        };
        let given: Vec<(String, String)> = settings
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .chain(url.map(|u| ("DATABASE_URL".to_owned(), u.to_owned())))
            .chain(cache.map(|c| ("REDIS_URL".to_owned(), c.to_owned())))
            .collect();
        let config = if from_env { AceConfig::from_env_and_settings(given)? } else { AceConfig::from_settings(given)? };
        Ok(EngineSpec { config, default_url: if from_env { DEFAULT_DATABASE_URL } else { "memory" } })
    }

    /// A builder for this engine: its store opened and its cache connected (see
    /// [`builder_for`]); add an embedder, a judge or `persist(false)` before building.
    pub fn builder(&self) -> Result<AceBuilder> {
        builder_for(self.config.clone(), self.default_url)
    }

    /// The engine.
    pub fn open(&self) -> Result<Ace> {
        self.builder()?.build()
    }
}

/// An engine on the store (or, as `redis://`, with the cache) `url` names, configured by
/// `settings` over the defaults; see [`EngineSpec::new`].
///
/// ```
/// let ace = ace::open("memory", [("batch_size", "50")])?;
/// assert_eq!(ace.config().batch_size, 50);
/// # Ok::<(), ace::Error>(())
/// ```
pub fn open<K: AsRef<str>, V: AsRef<str>>(url: &str, settings: impl IntoIterator<Item = (K, V)>) -> Result<Ace> {
    EngineSpec::new(Some(url), None, settings, false)?.open()
}

/// The breaker `name` of `ace`: made with `options` on first use (with the registry's
/// defaults when they are empty); an existing breaker keeps its own configuration.
pub fn breaker_with(ace: &Ace, name: &str, options: &BreakerOptions) -> Result<Arc<CircuitBreaker>> {
    ace.ensure_open()?;
    if options.is_empty() {
        return ace.breaker(name);
    }
    let config = options.config(ace.config().breaker_failures, ace.config().breaker_wait)?;
    ace.breakers().get_with(name, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: [(&str, &str); 0] = [];

    #[test]
    fn a_redis_url_is_the_cache() {
        assert!(is_cache_url("redis://h:6379") && is_cache_url("rediss://h") && !is_cache_url("sqlite://a.db"));
        let spec = EngineSpec::new(Some("rediss://h:1"), Some("redis://other:2"), NONE, false).unwrap();
        assert_eq!(spec.config.redis_url.as_deref(), Some("rediss://h:1"));
        assert_eq!(spec.config.database_url, None);
        let spec = EngineSpec::new(Some("sqlite://a.db"), Some("redis://c:2"), NONE, false).unwrap();
        assert_eq!(spec.config.database_url.as_deref(), Some("sqlite://a.db"));
        assert_eq!(spec.config.redis_url.as_deref(), Some("redis://c:2"));
    }

    #[test]
    fn a_url_given_overrides_the_setting() {
        let spec = EngineSpec::new(Some("sqlite://b.db"), None, [("database_url", "sqlite://a.db")], false).unwrap();
        assert_eq!(spec.config.database_url.as_deref(), Some("sqlite://b.db"));
        let spec = EngineSpec::new(None, None, [("databaseUrl", "sqlite://a.db")], false).unwrap();
        assert_eq!(spec.config.database_url.as_deref(), Some("sqlite://a.db"));
    }

    #[test]
    fn memory_and_sqlite_urls_open() {
        let ace = open("memory", NONE).unwrap();
        assert_eq!(ace.store().backend(), "memory");
        ace.close().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let ace = open(&url, [("ACE_SPILL_DIR", "off")]).unwrap();
        assert_eq!(ace.store().backend(), "sqlite");
        ace.close().unwrap();
        let ace = EngineSpec::new(None, None, NONE, false).unwrap().open().unwrap();
        assert_eq!(ace.store().backend(), "memory");
        ace.close().unwrap();
    }

    #[test]
    fn bad_urls_and_settings_are_typed_errors() {
        assert_eq!(open("nonsense", NONE).unwrap_err().code(), "config");
        let err = open("mysql://u:hunter2@h/db", NONE).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(open("memory", [("no_such_setting", "1")]).unwrap_err().code(), "config");
    }

    #[test]
    fn breakers_take_their_options_once() {
        let ace = open("memory", NONE).unwrap();
        let options = BreakerOptions { window: Some("count:4".parse().unwrap()), ..Default::default() };
        let b = breaker_with(&ace, "llm", &options).unwrap();
        assert_eq!(b.name(), "llm");
        let plain = breaker_with(&ace, "db", &BreakerOptions::default()).unwrap();
        assert_eq!(plain.name(), "db");
        let bad = BreakerOptions { failure_rate: Some(150.0), ..options };
        assert_eq!(breaker_with(&ace, "other", &bad).unwrap_err().code(), "config");
        ace.close().unwrap();
    }
}
