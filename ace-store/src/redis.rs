//! Redis (or Redis Cluster) as the fleet's shared cache, through fred.
//!
//! Keys are namespaced (`ace:{namespace}:...`) so several fleets can share a server. Claims are
//! `SET key value NX PX ttl`; counters are `INCR` then `PEXPIRE` on the first increment. Every
//! command has a timeout (`command_timeout`, 250 ms by default), so an agent never waits long on
//! a cache that hangs; while the server is down the client reconnects in the background and the
//! engine decides on local state. `rediss://` URLs use TLS (rustls); passwords are never printed.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use fred::prelude::{Builder, ClientLike, Config, Expiration, KeysInterface, ReconnectPolicy, SetOptions};

use crate::common::block_on;
use crate::error::Error;

const BACKEND: &str = "redis";

/// How to connect.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The key prefix after `ace:` (default `default`).
    pub namespace: String,
    /// The longest a command may take (default 250 ms).
    pub command_timeout: Duration,
    /// How long to wait for the first connection (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            namespace: "default".to_owned(),
            command_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl RedisOptions {
    /// Sets [`RedisOptions::namespace`].
    #[must_use]
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Sets [`RedisOptions::command_timeout`].
    #[must_use]
    pub fn command_timeout(mut self, d: Duration) -> Self {
        self.command_timeout = d;
        self
    }
}

/// The shared cache in Redis.
///
/// ```no_run
/// use ace_core::Ace;
/// use ace_store::RedisCache;
///
/// let cache = RedisCache::connect("redis://127.0.0.1:6379", Default::default())?;
/// let ace = Ace::builder().cache(cache).build()?;
/// # Ok::<(), ace_core::Error>(())
/// ```
pub struct RedisCache {
    rt: Option<tokio::runtime::Runtime>,
    client: fred::prelude::Client,
    prefix: String,
    location: String,
    timeout: Duration,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("location", &self.location)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`, `rediss://...` for TLS, or
    /// `redis-cluster://host:port?node=host:port...` for a cluster).
    pub fn connect(url: &str, options: RedisOptions) -> ace_core::Result<Self> {
        let location = ace_core::error::redact_url(url);
        let config = Config::from_url(url).map_err(|e| ace_core::Error::Config {
            key: "REDIS_URL".into(),
            value: location.clone(),
            reason: e.details().to_owned(),
        })?;
        Self::with_config(config, location, options)
    }

    /// Connects to a Redis Cluster through any of `nodes` (`host:port` or `redis://host:port`,
    /// as in `REDIS_CLUSTER_URLS`).
    pub fn connect_cluster(nodes: &[String], options: RedisOptions) -> ace_core::Result<Self> {
        let hosts: Vec<String> = nodes
            .iter()
            .map(|n| {
                n.trim().trim_start_matches("redis://").trim_start_matches("rediss://").trim_end_matches('/').to_owned()
            })
            .filter(|n| !n.is_empty())
            .collect();
        let Some((first, rest)) = hosts.split_first() else {
            return Err(ace_core::Error::Config {
                key: "REDIS_CLUSTER_URLS".into(),
                value: String::new(),
                reason: "no nodes given".into(),
            });
        };
        let query: Vec<String> = rest.iter().map(|h| format!("node={h}")).collect();
        let url = format!("redis-cluster://{first}{}{}", if query.is_empty() { "" } else { "?" }, query.join("&"));
        let config = Config::from_url(&url).map_err(|e| ace_core::Error::Config {
            key: "REDIS_CLUSTER_URLS".into(),
            value: ace_core::error::redact_url(&url),
            reason: e.details().to_owned(),
        })?;
        Self::with_config(config, ace_core::error::redact_url(&url), options)
    }

    fn with_config(config: Config, location: String, options: RedisOptions) -> ace_core::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ace-redis")
            .enable_all()
            .build()
            .map_err(|e| Error::Open { backend: BACKEND, location: location.clone(), source: e.into() })?;
        let timeout = options.command_timeout;
        let connect_timeout = options.connect_timeout;
        let client = block_on(&rt, async {
            let client = Builder::from_config(config)
                .with_performance_config(|p| p.default_command_timeout = timeout)
                .with_connection_config(|c| {
                    c.connection_timeout = connect_timeout;
                    c.internal_command_timeout = timeout.max(Duration::from_millis(500));
                    c.max_command_attempts = 1;
                })
                .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
                .build()?;
            client.init().await?;
            Ok::<_, fred::error::Error>(client)
        })
        .map_err(|e| ace_core::Error::StoreUnavailable {
            backend: BACKEND,
            message: format!("cannot connect to {location}: {}", e.details()),
            source: Some(Box::new(e)),
        })?;
        Ok(RedisCache { rt: Some(rt), client, prefix: format!("ace:{}:", options.namespace), location, timeout })
    }

    fn run<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        block_on(self.rt.as_ref().expect("runtime present until drop"), fut)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The server, with the password replaced by `***`.
    #[must_use]
    pub fn location(&self) -> &str {
        &self.location
    }
}

fn failed(operation: &'static str, e: fred::error::Error) -> ace_core::Error {
    Error::Query { backend: BACKEND, operation, source: Box::new(e) }.into()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl Drop for RedisCache {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            let client = self.client.clone();
            // Best effort: tell the server goodbye, then stop the runtime.
            let _ = rt.block_on(async { tokio::time::timeout(Duration::from_millis(200), client.quit()).await });
            rt.shutdown_background();
        }
    }
}

impl ace_core::Cache for RedisCache {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn get(&self, key: &str) -> ace_core::Result<Option<String>> {
        let key = self.key(key);
        self.run(async { self.client.get::<Option<String>, _>(key).await }).map_err(|e| failed("get", e))
    }

    fn set(&self, key: &str, value: &str, ttl: Duration) -> ace_core::Result<()> {
        let key = self.key(key);
        self.run(async {
            self.client.set::<(), _, _>(key, value, Some(Expiration::PX(millis(ttl))), None, false).await
        })
        .map_err(|e| failed("set", e))
    }

    fn claim(&self, key: &str, value: &str, ttl: Duration) -> ace_core::Result<bool> {
        let key = self.key(key);
        let set: Option<String> = self
            .run(async {
                self.client
                    .set::<Option<String>, _, _>(
                        key,
                        value,
                        Some(Expiration::PX(millis(ttl))),
                        Some(SetOptions::NX),
                        false,
                    )
                    .await
            })
            .map_err(|e| failed("claim", e))?;
        Ok(set.is_some())
    }

    fn incr(&self, key: &str, ttl: Duration) -> ace_core::Result<i64> {
        let key = self.key(key);
        self.run(async {
            let n: i64 = self.client.incr(&key).await?;
            if n == 1 {
                self.client.pexpire::<(), _>(&key, millis(ttl), None).await?;
            }
            Ok(n)
        })
        .map_err(|e| failed("increment", e))
    }

    fn delete(&self, key: &str) -> ace_core::Result<()> {
        let key = self.key(key);
        self.run(async { self.client.del::<(), _>(key).await }).map_err(|e| failed("delete", e))
    }

    fn ping(&self) -> ace_core::Result<Duration> {
        let started = Instant::now();
        let timeout = self.timeout;
        self.run(async { tokio::time::timeout(timeout, self.client.ping::<String>(None)).await })
            .map_err(|_| ace_core::Error::StoreUnavailable {
                backend: BACKEND,
                message: format!("{} did not answer a ping", self.location),
                source: None,
            })?
            .map_err(|e| failed("ping", e))?;
        Ok(started.elapsed())
    }
}
