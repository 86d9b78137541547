//! Redis (or Redis Cluster) as the fleet's shared cache, through fred.
//!
//! Keys are namespaced (`ace:{namespace}:...`) so several fleets can share a server. Claims are
//! `SET key value NX PX ttl`; counters are `INCR` then `PEXPIRE` on the first increment; shared
//! counts are `HINCRBY`s in one script (all or none, a batch once); leases are one script that
//! reads and writes the lease by the server's clock (`TIME`), so two replicas never both hold
//! one. Every
//! command has a timeout (`command_timeout`, 250 ms by default), so an agent never waits long on
//! a cache that hangs; while the server is down the client reconnects in the background and the
//! engine decides on local state. `rediss://` URLs use TLS (rustls); passwords are never printed.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use fred::prelude::{
    Builder, ClientLike, Config, Expiration, HashesInterface, KeysInterface, LuaInterface, ReconnectPolicy, SetOptions,
};

use crate::common::block_on;
use crate::error::Error;

const BACKEND: &str = "redis";

/// `KEYS[1]`: the hash; `KEYS[2]`: the batch's marker; `ARGV`: field, delta, field, delta...
const ADD_COUNTS: &str = r"
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', 86400000) then return 0 end
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
";

/// `KEYS[1]`: the board; `ARGV`: field, value, fresh ms. Stamps the post with the server's time,
/// removes posts older than fresh, returns the rest as field, value, field, value...
const POST: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fresh = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', now) .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], fresh)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local at, value = string.match(all[i + 1], '^(%d+)|(.*)$')
  if at == nil or tonumber(at) < now - fresh then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = value
  end
end
return out
";

/// `KEYS[1]`: the lease; `ARGV`: owner, ttl ms, keep ms, added, last. Returns the stored form
/// `holder|until_ms|count|last` (see `ace_core::Lease::parse`).
const LEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder, untilms, count, last = '', 0, 0, 0
local v = redis.call('GET', KEYS[1])
if v then
  local h, u, c, l = string.match(v, '^(.*)|(%-?%d+)|(%d+)|(%-?%d+)$')
  if h then holder, untilms, count, last = h, tonumber(u), tonumber(c), tonumber(l) end
end
count = count + tonumber(ARGV[4])
local asked = tonumber(ARGV[5])
if asked > last then last = asked end
if holder == '' or holder == ARGV[1] or untilms <= now then
  holder = ARGV[1]
  untilms = now + tonumber(ARGV[2])
end
local value = holder .. '|' .. string.format('%d', untilms) .. '|' .. string.format('%d', count) .. '|' .. string.format('%d', last)
redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
return value
";

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

fn lease_args(request: &ace_core::LeaseRequest<'_>) -> Vec<String> {
    vec![
        request.owner.to_owned(),
        i64::try_from(request.ttl.as_millis()).unwrap_or(i64::MAX / 4).to_string(),
        millis(request.keep).to_string(),
        request.added.to_string(),
        request.last.to_string(),
    ]
}

fn parse_lease(value: &str) -> ace_core::Result<ace_core::Lease> {
    ace_core::Lease::parse(value)
        .map(|(lease, _)| lease)
        .ok_or_else(|| ace_core::Error::Internal(format!("the cache returned a malformed lease: {value:?}")))
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

    fn add_counts(&self, key: &str, batch: &str, deltas: &[(String, i64)]) -> ace_core::Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let keys = vec![self.key(key), self.key(&format!("{key}:batch:{batch}"))];
        let args: Vec<String> = deltas.iter().flat_map(|(f, d)| [f.clone(), d.to_string()]).collect();
        self.run(async { self.client.eval::<i64, _, _, _>(ADD_COUNTS, keys, args).await })
            .map(drop)
            .map_err(|e| failed("add counts", e))
    }

    fn counts(&self, key: &str) -> ace_core::Result<Vec<(String, i64)>> {
        let key = self.key(key);
        let all: std::collections::HashMap<String, i64> =
            self.run(async { self.client.hgetall(key).await }).map_err(|e| failed("read counts", e))?;
        let mut out: Vec<(String, i64)> = all.into_iter().collect();
        out.sort();
        Ok(out)
    }

    fn post(&self, key: &str, field: &str, value: &str, fresh: Duration) -> ace_core::Result<Vec<(String, String)>> {
        let key = self.key(key);
        let args = vec![field.to_owned(), value.to_owned(), millis(fresh).to_string()];
        let flat: Vec<String> =
            self.run(async { self.client.eval(POST, key, args).await }).map_err(|e| failed("post to a board", e))?;
        let mut out: Vec<(String, String)> =
            flat.chunks_exact(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect();
        out.sort();
        Ok(out)
    }

    fn lease(&self, key: &str, request: &ace_core::LeaseRequest<'_>) -> ace_core::Result<ace_core::Lease> {
        let key = self.key(key);
        let value: String = self
            .run(async { self.client.eval(LEASE, key, lease_args(request)).await })
            .map_err(|e| failed("lease", e))?;
        parse_lease(&value)
    }

    fn leases(&self, requests: &[(String, ace_core::LeaseRequest<'_>)]) -> ace_core::Result<Vec<ace_core::Lease>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        // Sent together: the client multiplexes them on its connection, so they cost about one
        // round trip (fred pipelines do not take scripts).
        let calls: Vec<(String, Vec<String>)> =
            requests.iter().map(|(key, request)| (self.key(key), lease_args(request))).collect();
        let values: Vec<String> = self
            .run(async {
                let mut set = tokio::task::JoinSet::new();
                for (i, (key, args)) in calls.into_iter().enumerate() {
                    let client = self.client.clone();
                    set.spawn(async move { (i, client.eval::<String, _, _, _>(LEASE, key, args).await) });
                }
                let mut out = vec![String::new(); set.len()];
                while let Some(done) = set.join_next().await {
                    let (i, value) =
                        done.map_err(|e| fred::error::Error::new(fred::error::ErrorKind::Unknown, e.to_string()))?;
                    out[i] = value?;
                }
                Ok::<_, fred::error::Error>(out)
            })
            .map_err(|e| failed("lease", e))?;
        values.iter().map(|v| parse_lease(v)).collect()
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
