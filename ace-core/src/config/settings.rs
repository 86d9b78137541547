//! The settings table: every `ACE_*` variable, the field it sets and how its text is read.

use std::time::Duration;

use super::AceConfig;
use crate::error::{Error, Result};
use crate::event::Severity;

/// One setting: its environment variable, the [`AceConfig`] field it sets, what it means, and
/// how its text is read. [`SETTINGS`] lists them all; every way of configuring ace (the
/// environment, [`AceConfig::from_lookup`], the bindings' [`AceConfig::from_settings`]) reads
/// through it, so a setting is added in one place.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Setting {
    /// The environment variable (`ACE_BATCH_SIZE`), also the name errors give.
    pub name: &'static str,
    /// The [`AceConfig`] field it sets (`batch_size`).
    pub field: &'static str,
    /// What it means, in one line.
    pub doc: &'static str,
    set: fn(&mut AceConfig, &str) -> Result<()>,
}

impl Setting {
    /// Reads `value` (trimmed, not empty) into its field of `config`; a bad value is an
    /// [`Error::Config`] naming the setting.
    pub fn apply(&self, config: &mut AceConfig, value: &str) -> Result<()> {
        (self.set)(config, value)
    }

    /// The setting a key names, given as its environment variable (`ACE_BATCH_SIZE`), in lower
    /// case (`ace_batch_size`), without the `ACE_` prefix (`batch_size`, `BATCH_SIZE`) or in
    /// camelCase (`batchSize`, `databaseUrl`).
    #[must_use]
    pub fn find(key: &str) -> Option<&'static Setting> {
        let name = setting_name(key);
        SETTINGS.iter().find(|s| s.name == name || s.name.strip_prefix("ACE_") == Some(name.as_str()))
    }
}

/// A key in the upper snake case of the environment variables (`batchSize` → `BATCH_SIZE`).
pub(super) fn setting_name(key: &str) -> String {
    let key = key.trim();
    let camel = !key.contains('_');
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if camel && c.is_ascii_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

macro_rules! setting {
    ($name:literal, $field:ident, $read:ident, $doc:literal) => {
        Setting {
            name: $name,
            field: stringify!($field),
            doc: $doc,
            set: |c, v| {
                c.$field = $read($name, v)?;
                Ok(())
            },
        }
    };
}

/// Every setting ace reads, in the order of `docs/configuration.md`.
pub const SETTINGS: &[Setting] = &[
    setting!("ACE_BATCH_SIZE", batch_size, whole, "records buffered before a write to the store is triggered"),
    setting!("ACE_BATCH_TIMEOUT", batch_timeout, seconds, "the longest a record waits in the buffer"),
    setting!("ACE_BUFFER_CAPACITY", buffer_capacity, whole, "records held in memory waiting for the store"),
    setting!(
        "ACE_MEMORY_MAX_RECORDS",
        memory_max_records,
        whole,
        "records of each kind the in-memory store keeps (the oldest evicted past it)"
    ),
    setting!("ACE_ENABLE_CACHING", enable_caching, boolean, "share hot state through the cache when one is configured"),
    setting!("ACE_CACHE_TTL", cache_ttl, seconds, "time to live of cached entries"),
    setting!(
        "ACE_ERROR_THRESHOLD",
        error_threshold,
        whole,
        "occurrences of one error pattern that make an accumulation"
    ),
    setting!("ACE_ERROR_WINDOW", error_window, seconds, "the sliding window for error accumulation"),
    setting!("ACE_COOLDOWN_SECONDS", cooldown, seconds, "minimum time between two interventions on one task"),
    setting!("ACE_MAX_INTERVENTIONS_PER_TASK", max_interventions_per_task, whole, "cap of interventions per task"),
    setting!("ACE_INTERVENTION_ENABLED", intervention_enabled, boolean, "whether interventions are issued at all"),
    setting!("ACE_INTERVENTION_SEED", intervention_seed, whole, "seed of the strategy sampling"),
    setting!(
        "ACE_INTERVENTION_MIN_FAILURE",
        intervention_min_failure,
        number,
        "act on a signal while the chance its task fails may reach this"
    ),
    setting!("ACE_JUDGE_TIMEOUT", judge_timeout, seconds, "the longest the judge hook may take over one proposal"),
    setting!("ACE_JUDGE_BELOW", judge_below, number_or_off, "only decisions less confident than this go to the judge"),
    setting!("ACE_JUDGE_BLOCKING", judge_blocking, boolean, "whether the recording call waits for the judge"),
    setting!("ACE_REFLECT_PER_MINUTE", reflect_per_minute, whole, "reflections run per minute at most"),
    setting!(
        "ACE_CONTEXT_STALENESS_THRESHOLD",
        context_staleness_threshold,
        number,
        "staleness score in [0, 1] that raises a signal"
    ),
    setting!(
        "ACE_CONTEXT_TIME_HALF_LIFE",
        context_time_half_life,
        seconds,
        "time since the last refresh at which the time part of staleness is 0.5"
    ),
    setting!(
        "ACE_CONTEXT_STEPS_HALF_LIFE",
        context_steps_half_life,
        number,
        "stages since the last refresh at which the steps part of staleness is 0.5"
    ),
    setting!(
        "ACE_CONTEXT_ERRORS_HALF_LIFE",
        context_errors_half_life,
        number,
        "errors since the last refresh at which the errors part of staleness is 0.5"
    ),
    setting!(
        "ACE_TASK_ERROR_SEVERITY",
        task_error_severity,
        severity_or_off,
        "the first error of a task at or above this severity raises `task_error`; `off` for none"
    ),
    setting!("ACE_LOOP_THRESHOLD", loop_threshold, whole, "failures in a row of one stage of a task that make `loop`"),
    setting!("ACE_FAILURE_RUN", failure_run, whole, "failed stages in a row in a task that make `failure_run`"),
    setting!(
        "ACE_TOOL_REPEAT",
        tool_repeat,
        whole,
        "calls of one tool with the same arguments among a task's last 16 tool calls that make `tool_repeat`"
    ),
    setting!(
        "ACE_TOOL_ALTERNATION",
        tool_alternation,
        whole,
        "tool calls in a row alternating between two calls (A B A B) that make `tool_alternation`"
    ),
    setting!(
        "ACE_TOOL_RETRY_FAILURES",
        tool_retry_failures,
        whole,
        "failures of one tool among a task's last 16 tool calls that make `tool_retry_failure`"
    ),
    setting!(
        "ACE_LONG_TASK_QUANTILE",
        long_task_quantile,
        number,
        "quantile of the agent's recent task lengths above which a task raises `long_task`"
    ),
    setting!(
        "ACE_LONG_TASK_MIN_TASKS",
        long_task_min_tasks,
        whole,
        "finished tasks before an agent's limit is learned"
    ),
    setting!("ACE_TASK_MAX_STEPS", task_max_steps, whole, "a fixed limit of stages per task for `long_task`"),
    setting!("ACE_BASELINE_WARMUP", baseline_warmup, whole, "observations before a baseline is used to judge"),
    setting!("ACE_BASELINE_ALPHA", baseline_alpha, number, "how fast baselines forget"),
    setting!("ACE_DEGRADATION_Z", degradation_z, number, "standard errors the recent level must be from the baseline"),
    setting!("ACE_DEGRADATION_MIN_PCT", degradation_min_pct, number, "relative shift, in percent, that counts"),
    setting!("ACE_DEGRADATION_SUSTAIN", degradation_sustain, whole, "consecutive observations the shift must persist"),
    setting!("ACE_METRICS_MAX_AGENTS", metrics_max_agents, whole, "distinct `agent_id` label values in metrics"),
    setting!("ACE_BREAKER_FAILURES", breaker_failures, whole, "failures in a row that open a breaker made by name"),
    setting!("ACE_BREAKER_WAIT_SECONDS", breaker_wait, seconds, "how long such a breaker stays open before a trial"),
    setting!("ACE_TRACE_PATH", trace_path, text, "a file the engine appends its input to as a trace"),
    setting!("ACE_SPILL_DIR", spill_dir, path_or_off, "where records go while the store fails; `off` for memory only"),
    setting!(
        "ACE_SPILL_MAX_BYTES",
        spill_max_bytes,
        whole,
        "the most spilled records may take on disk; past it they are dropped and counted"
    ),
    setting!(
        "ACE_RETAIN_DAYS",
        retain_days,
        whole_or_off,
        "delete records older than this many days from the store, hourly; `off` keeps them all"
    ),
    setting!("ACE_DURABLE", durable, boolean, "journal every accepted record before the recording call returns"),
    setting!("ACE_COARSE_CLOCK", coarse_clock, boolean, "read time from a clock ticked once a millisecond"),
    setting!("DATABASE_URL", database_url, text, "the store (`sqlite://PATH`, `postgresql://...`, `memory`)"),
    setting!("REDIS_URL", redis_url, text, "the shared cache"),
    setting!("REDIS_CLUSTER_URLS", redis_cluster_urls, list, "comma-separated Redis Cluster nodes"),
    setting!("POSTGRES_MAX_CONNECTIONS", postgres_max_connections, whole, "PostgreSQL pool size"),
    setting!("REDIS_MAX_CONNECTIONS", redis_max_connections, whole, "Redis pool size"),
];

/// Every environment variable ace reads (the names of [`SETTINGS`]), for docs and `--help`.
pub const ENV_VARS: &[&str] = &{
    let mut names = [""; SETTINGS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = SETTINGS[i].name;
        i += 1;
    }
    names
};

fn whole<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.parse().map_err(|_| Error::config(key, v, "must be a whole number"))
}

fn whole_or_off<T: std::str::FromStr>(key: &str, v: &str) -> Result<Option<T>> {
    if off(v) {
        return Ok(None);
    }
    whole(key, v).map(Some)
}

fn number(key: &str, v: &str) -> Result<f64> {
    let x: f64 = v.parse().map_err(|_| Error::config(key, v, "must be a number"))?;
    if !x.is_finite() {
        return Err(Error::config(key, v, "must be a finite number"));
    }
    Ok(x)
}

fn number_or_off(key: &str, v: &str) -> Result<Option<f64>> {
    if off(v) {
        return Ok(None);
    }
    number(key, v).map(Some)
}

fn seconds(key: &str, v: &str) -> Result<Duration> {
    let x: f64 = v.parse().map_err(|_| Error::config(key, v, "must be a number of seconds"))?;
    Duration::try_from_secs_f64(x)
        .map_err(|_| Error::config(key, v, "must be a finite, non-negative number of seconds"))
}

fn boolean(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(key, v, "must be true or false")),
    }
}

fn off(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "off" | "none")
}

fn severity_or_off(key: &str, v: &str) -> Result<Option<Severity>> {
    if off(v) {
        return Ok(None);
    }
    let s = v.to_ascii_lowercase().parse();
    s.map(Some).map_err(|_| Error::config(key, v, "must be low, medium, high, critical or off"))
}

fn path_or_off(_key: &str, v: &str) -> Result<Option<std::path::PathBuf>> {
    Ok((!off(v)).then(|| std::path::PathBuf::from(v)))
}

fn text(_key: &str, v: &str) -> Result<Option<String>> {
    Ok(Some(v.to_owned()))
}

fn list(_key: &str, v: &str) -> Result<Vec<String>> {
    Ok(v.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect())
}
