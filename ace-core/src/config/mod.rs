//! Configuration: every default from the design, every field an `ACE_*` variable.
//!
//! [`AceConfig::from_env`] reads the process environment; [`AceConfig::from_lookup`] reads any
//! key/value source (tests use it instead of mutating the environment); [`AceConfig::builder`]
//! sets fields in code. All three validate, and a bad value is a [`Error::Config`] naming the
//! variable.

mod builder;
mod settings;

use std::time::Duration;

pub use builder::AceConfigBuilder;
use settings::setting_name;
pub use settings::{ENV_VARS, SETTINGS, Setting};

use crate::error::{Error, Result, redact_url};
use crate::event::Severity;

/// The engine's configuration. Build one with [`AceConfig::builder`], [`AceConfig::from_env`] or
/// `AceConfig::default()`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AceConfig {
    /// `ACE_BATCH_SIZE` (100): records buffered before a write to the store is triggered.
    pub batch_size: usize,
    /// `ACE_BATCH_TIMEOUT` (1.0 s): the longest a record waits in the buffer.
    pub batch_timeout: Duration,
    /// `ACE_BUFFER_CAPACITY` (100000): records held in memory waiting for the store. Beyond it new
    /// records are not persisted; each is counted in `ace_records_dropped_total` and logged.
    pub buffer_capacity: usize,
    /// `ACE_MEMORY_MAX_RECORDS` (100000): with the in-memory store (`memory`, and an engine
    /// built without a store), the records of each kind (metrics, errors, interventions) kept;
    /// past it the oldest are evicted, so an engine with no store runs in bounded memory.
    pub memory_max_records: usize,
    /// `ACE_ENABLE_CACHING` (true): share hot state through the cache when one is configured.
    pub enable_caching: bool,
    /// `ACE_CACHE_TTL` (3600 s): time to live of cached entries.
    pub cache_ttl: Duration,
    /// `ACE_ERROR_THRESHOLD` (3): occurrences of one error pattern that make an accumulation.
    pub error_threshold: u32,
    /// `ACE_ERROR_WINDOW` (300 s): the sliding window for error accumulation.
    pub error_window: Duration,
    /// `ACE_COOLDOWN_SECONDS` (60 s): minimum time between two interventions on one task.
    pub cooldown: Duration,
    /// `ACE_MAX_INTERVENTIONS_PER_TASK` (5): cap of interventions per task.
    pub max_interventions_per_task: u32,
    /// `ACE_INTERVENTION_ENABLED` (true): whether interventions are issued at all.
    pub intervention_enabled: bool,
    /// `ACE_INTERVENTION_SEED` (0): seed of the strategy sampling; the same seed and the same
    /// events give the same interventions (strategies and reasons; each engine draws its own
    /// ids, so a restart or a replica never reuses one).
    pub intervention_seed: u64,
    /// `ACE_INTERVENTION_MIN_FAILURE` (0.5): a signal is acted on while the chance that its
    /// task fails, learnt from task outcomes and intervention outcomes, may reach this (the
    /// posterior mean plus two standard deviations); 0 acts on every signal.
    pub intervention_min_failure: f64,
    /// `ACE_JUDGE_TIMEOUT` (2 s): the longest the judge hook may take over one proposal before
    /// the engine issues its own choice.
    pub judge_timeout: Duration,
    /// `ACE_JUDGE_BELOW` (off): when set, only decisions whose
    /// confidence (`Intervention::confidence`) is under it (or that rest on fewer than 5
    /// reported outcomes) go to the judge; off sends every proposal the judge `wants`.
    pub judge_below: Option<f64>,
    /// `ACE_JUDGE_BLOCKING` (true): the recording call waits for the judge (up to
    /// `ACE_JUDGE_TIMEOUT`); false issues the engine's choice at once and delivers the verdict
    /// to the subscribers as an amended intervention with the same id.
    pub judge_blocking: bool,
    /// `ACE_REFLECT_PER_MINUTE` (10): reflections (`Ace::reflect`) run per minute at most; the
    /// others are skipped and counted.
    pub reflect_per_minute: u32,
    /// `ACE_CONTEXT_STALENESS_THRESHOLD` (0.8): staleness score in [0, 1] that raises a signal.
    pub context_staleness_threshold: f64,
    /// `ACE_CONTEXT_TIME_HALF_LIFE` (600 s): time since the last refresh at which the time part of
    /// staleness is 0.5.
    pub context_time_half_life: Duration,
    /// `ACE_CONTEXT_STEPS_HALF_LIFE` (20): stages since the last refresh at which the steps part
    /// of staleness is 0.5.
    pub context_steps_half_life: f64,
    /// `ACE_CONTEXT_ERRORS_HALF_LIFE` (3): errors since the last refresh at which the errors part
    /// of staleness is 0.5.
    pub context_errors_half_life: f64,
    /// `ACE_TASK_ERROR_SEVERITY` (medium): the first error of a task at or above this severity
    /// raises a `task_error` signal; `off` for none.
    pub task_error_severity: Option<Severity>,
    /// `ACE_LOOP_THRESHOLD` (3): failures in a row of the same stage of a task that make a
    /// `loop` signal; 0 for none.
    pub loop_threshold: u32,
    /// `ACE_FAILURE_RUN` (4): failed stages in a row in a task, whichever stages, that make a
    /// `failure_run` signal; 0 for none.
    pub failure_run: u32,
    /// `ACE_TOOL_REPEAT` (0: off; see `docs/replay.md`): calls of one tool with the same arguments digest among a task's
    /// last 16 tool calls that make a `tool_repeat` signal; 0 for none.
    pub tool_repeat: u32,
    /// `ACE_TOOL_ALTERNATION` (0: off): tool calls in a row alternating between two calls
    /// (A B A B) that make a `tool_alternation` signal; 0 for none (at least 4 otherwise).
    pub tool_alternation: u32,
    /// `ACE_TOOL_RETRY_FAILURES` (0: off): failures of one tool among a task's last 16 tool calls
    /// that make a `tool_retry_failure` signal; 0 for none.
    pub tool_retry_failures: u32,
    /// `ACE_LONG_TASK_QUANTILE` (0.95): a task longer (in stages) than this quantile of the
    /// agent's recent finished tasks, and than 1.5 times their median, raises `long_task`;
    /// 0 to learn no limit.
    pub long_task_quantile: f64,
    /// `ACE_LONG_TASK_MIN_TASKS` (20): finished tasks of an agent before its limit is learned.
    pub long_task_min_tasks: u32,
    /// `ACE_TASK_MAX_STEPS` (0): a fixed limit of stages per task for `long_task`, whatever the
    /// history; 0 for none.
    pub task_max_steps: u32,
    /// `ACE_BASELINE_WARMUP` (20): observations before a baseline is used to judge.
    pub baseline_warmup: u32,
    /// `ACE_BASELINE_ALPHA` (0.01): how fast baselines forget (weight of each new observation).
    pub baseline_alpha: f64,
    /// `ACE_DEGRADATION_Z` (4.0): standard errors the recent level must be from the baseline.
    pub degradation_z: f64,
    /// `ACE_DEGRADATION_MIN_PCT` (20.0): relative shift, in percent, that counts as significant.
    pub degradation_min_pct: f64,
    /// `ACE_DEGRADATION_SUSTAIN` (3): consecutive observations the shift must persist.
    pub degradation_sustain: u32,
    /// `ACE_METRICS_MAX_AGENTS` (1000): distinct `agent_id` label values in metrics; further agents
    /// share the series `agent_id="__overflow__"` and are counted in `ace_metrics_label_overflow_total`.
    pub metrics_max_agents: usize,
    /// `ACE_BREAKER_FAILURES` (5): failures in a row that open a breaker made by name with the
    /// registry's default configuration.
    pub breaker_failures: u32,
    /// `ACE_BREAKER_WAIT_SECONDS` (60 s): how long such a breaker stays open before a trial call.
    pub breaker_wait: Duration,
    /// `ACE_SPILL_DIR` (`<temp dir>/ace-spill`): where records go while the store fails, to be
    /// stored once it answers again; `off` to hold them in memory only (then at most
    /// `buffer_capacity`, and the rest dropped and counted).
    pub spill_dir: Option<std::path::PathBuf>,
    /// `ACE_SPILL_MAX_BYTES` (1 GiB): the most the spill files waiting for the store may take on
    /// disk. Records are spilled while the store fails or falls behind; past this budget they are
    /// dropped and counted (`ace_records_dropped_total{reason="spill_full"}`), never waited for.
    pub spill_max_bytes: u64,
    /// `ACE_RETAIN_DAYS` (off): the engine deletes the metric, error and intervention records
    /// older than this many days (1 to [`crate::event::MAX_RETAIN_DAYS`]) from the store, on
    /// start and then hourly, on a thread the writer starts, 10,000 rows a call
    /// (`Store::delete_before`; see `docs/operations.md`, "Deleting old records"). Baselines,
    /// patterns and playbooks are kept.
    pub retain_days: Option<u32>,
    /// `ACE_DURABLE` (false): every accepted record is written to a journal under the spill
    /// directory before the recording call returns, so even `kill -9` loses none (see
    /// `docs/architecture.md`, "Spilling"). Costs a `write` system call per record.
    pub durable: bool,
    /// `ACE_COARSE_CLOCK` (false): the engine reads time from a [`crate::CoarseClock`] (an
    /// atomic load, ticked once a millisecond by a thread) rather than the system clock; records
    /// then have millisecond timestamps. Ignored when the builder is given a clock.
    pub coarse_clock: bool,
    /// `ACE_TRACE_PATH` (unset): a file the engine appends its input to as a trace, for
    /// `ace replay` (see `docs/replay.md`).
    pub trace_path: Option<String>,
    /// `DATABASE_URL` (unset): the store (`sqlite://path`, or `postgresql://...` once supported).
    pub database_url: Option<String>,
    /// `REDIS_URL` (unset): the shared cache.
    pub redis_url: Option<String>,
    /// `REDIS_CLUSTER_URLS` (unset): comma-separated Redis Cluster nodes.
    pub redis_cluster_urls: Vec<String>,
    /// `POSTGRES_MAX_CONNECTIONS` (50): PostgreSQL pool size.
    pub postgres_max_connections: u32,
    /// `REDIS_MAX_CONNECTIONS` (50): Redis pool size.
    pub redis_max_connections: u32,
}

impl Default for AceConfig {
    fn default() -> Self {
        AceConfig {
            batch_size: 100,
            batch_timeout: Duration::from_secs(1),
            buffer_capacity: 100_000,
            memory_max_records: 100_000,
            enable_caching: true,
            cache_ttl: Duration::from_secs(3600),
            error_threshold: 3,
            error_window: Duration::from_secs(300),
            cooldown: Duration::from_secs(60),
            max_interventions_per_task: 5,
            intervention_enabled: true,
            intervention_seed: 0,
            intervention_min_failure: 0.5,
            judge_timeout: Duration::from_secs(2),
            judge_below: None,
            judge_blocking: true,
            reflect_per_minute: 10,
            context_staleness_threshold: 0.8,
            context_time_half_life: Duration::from_secs(600),
            context_steps_half_life: 20.0,
            context_errors_half_life: 3.0,
            task_error_severity: Some(Severity::Medium),
            loop_threshold: 3,
            failure_run: 4,
            // Off: none improved the cross-validated precision or recall on the development
            // traces (docs/replay.md, scripts/tool_signals_cv.py).
            tool_repeat: 0,
            tool_alternation: 0,
            tool_retry_failures: 0,
            long_task_quantile: 0.95,
            long_task_min_tasks: 20,
            task_max_steps: 0,
            baseline_warmup: 20,
            baseline_alpha: 0.01,
            degradation_z: 4.0,
            degradation_min_pct: 20.0,
            degradation_sustain: 3,
            metrics_max_agents: 1000,
            breaker_failures: 5,
            breaker_wait: Duration::from_secs(60),
            trace_path: None,
            durable: false,
            coarse_clock: false,
            spill_dir: Some(std::env::temp_dir().join("ace-spill")),
            spill_max_bytes: 1 << 30,
            retain_days: None,
            database_url: None,
            redis_url: None,
            redis_cluster_urls: Vec::new(),
            postgres_max_connections: 50,
            redis_max_connections: 50,
        }
    }
}

impl AceConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> AceConfigBuilder {
        AceConfigBuilder { config: AceConfig::default() }
    }

    /// The defaults overridden by any `ACE_*` (and `DATABASE_URL`, `REDIS_*`, `POSTGRES_*`)
    /// variables set in the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// The defaults overridden by the values `lookup` returns for the variable names in
    /// [`ENV_VARS`]. An empty value counts as unset.
    ///
    /// ```
    /// use ace_core::AceConfig;
    ///
    /// let cfg = AceConfig::from_lookup(|k| (k == "ACE_BATCH_SIZE").then(|| "250".to_string())).unwrap();
    /// assert_eq!(cfg.batch_size, 250);
    /// let err = AceConfig::from_lookup(|k| (k == "ACE_BATCH_SIZE").then(|| "lots".to_string())).unwrap_err();
    /// assert!(err.to_string().contains("ACE_BATCH_SIZE"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = AceConfig::default();
        for s in SETTINGS {
            if let Some(v) = lookup(s.name) {
                let v = v.trim();
                if !v.is_empty() {
                    s.apply(&mut c, v)?;
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// The defaults overridden by `settings`, as the bindings take them: `(key, value)` pairs
    /// whose key names a setting in any of the forms [`Setting::find`] knows (`ACE_BATCH_SIZE`,
    /// `batch_size`, `batchSize`) and whose value is the text its variable would hold. A later
    /// pair overrides an earlier one; a key that names no setting is an [`Error::Config`].
    ///
    /// ```
    /// use ace_core::AceConfig;
    ///
    /// let cfg = AceConfig::from_settings([("batchSize", "250"), ("cooldown_seconds", "5")]).unwrap();
    /// assert_eq!(cfg.batch_size, 250);
    /// let err = AceConfig::from_settings([("no_such_setting", "1")]).unwrap_err();
    /// assert_eq!(err.code(), "config");
    /// ```
    pub fn from_settings<K: AsRef<str>, V: AsRef<str>>(settings: impl IntoIterator<Item = (K, V)>) -> Result<Self> {
        Self::from_settings_over(settings, |_| None)
    }

    /// [`AceConfig::from_settings`] over the process environment instead of the defaults.
    pub fn from_env_and_settings<K: AsRef<str>, V: AsRef<str>>(
        settings: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        Self::from_settings_over(settings, |key| std::env::var(key).ok())
    }

    /// [`AceConfig::from_settings`] over what `lookup` returns for a setting not given.
    pub fn from_settings_over<K: AsRef<str>, V: AsRef<str>>(
        settings: impl IntoIterator<Item = (K, V)>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut given: Vec<(&'static str, String)> = Vec::new();
        for (key, value) in settings {
            let (key, value) = (key.as_ref(), value.as_ref());
            let Some(s) = Setting::find(key) else {
                return Err(Error::config(
                    &setting_name(key),
                    &redact_url(value),
                    "no such setting (see docs/configuration.md)",
                ));
            };
            given.push((s.name, value.to_owned()));
        }
        Self::from_lookup(|name| {
            given.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone()).or_else(|| lookup(name))
        })
    }

    /// Checks every field's range; the error names the variable of the first bad field.
    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, key: &str, value: impl ToString, reason: &str) -> Result<()> {
            if ok { Ok(()) } else { Err(Error::config(key, &value.to_string(), reason)) }
        }
        let secs = |d: Duration| d.as_secs_f64();
        check(
            self.batch_size >= 1 && self.batch_size <= 1_000_000,
            "ACE_BATCH_SIZE",
            self.batch_size,
            "must be 1 to 1000000",
        )?;
        check(
            self.batch_timeout >= Duration::from_millis(1) && self.batch_timeout <= Duration::from_secs(3600),
            "ACE_BATCH_TIMEOUT",
            secs(self.batch_timeout),
            "must be 0.001 to 3600 seconds",
        )?;
        check(
            self.buffer_capacity >= self.batch_size,
            "ACE_BUFFER_CAPACITY",
            self.buffer_capacity,
            "must be at least ACE_BATCH_SIZE",
        )?;
        check(self.memory_max_records >= 1, "ACE_MEMORY_MAX_RECORDS", self.memory_max_records, "must be at least 1")?;
        if let Some(days) = self.retain_days {
            check(
                (1..=crate::event::MAX_RETAIN_DAYS).contains(&days),
                "ACE_RETAIN_DAYS",
                days,
                "must be 1 to 36500 days, or off",
            )?;
        }
        check(self.error_threshold >= 1, "ACE_ERROR_THRESHOLD", self.error_threshold, "must be at least 1")?;
        check(
            !self.error_window.is_zero(),
            "ACE_ERROR_WINDOW",
            secs(self.error_window),
            "must be more than 0 seconds",
        )?;
        check(
            (0.0..=1.0).contains(&self.context_staleness_threshold),
            "ACE_CONTEXT_STALENESS_THRESHOLD",
            self.context_staleness_threshold,
            "must be between 0 and 1",
        )?;
        check(
            self.tool_repeat != 1 && self.tool_repeat <= 16,
            "ACE_TOOL_REPEAT",
            self.tool_repeat,
            "must be 0 (off) or 2 to 16 (calls among the task's last 16)",
        )?;
        check(
            self.tool_alternation == 0 || self.tool_alternation >= 4,
            "ACE_TOOL_ALTERNATION",
            self.tool_alternation,
            "must be 0 (off) or at least 4 (A B A B)",
        )?;
        check(
            self.tool_retry_failures != 1 && self.tool_retry_failures <= 16,
            "ACE_TOOL_RETRY_FAILURES",
            self.tool_retry_failures,
            "must be 0 (off) or 2 to 16 (failures among the task's last 16 tool calls)",
        )?;
        check(self.baseline_warmup >= 2, "ACE_BASELINE_WARMUP", self.baseline_warmup, "must be at least 2")?;
        check(
            self.baseline_alpha > 0.0 && self.baseline_alpha < 1.0,
            "ACE_BASELINE_ALPHA",
            self.baseline_alpha,
            "must be between 0 and 1, exclusive",
        )?;
        check(
            self.degradation_z.is_finite() && self.degradation_z > 0.0,
            "ACE_DEGRADATION_Z",
            self.degradation_z,
            "must be a positive number",
        )?;
        check(
            self.degradation_min_pct.is_finite() && self.degradation_min_pct >= 0.0,
            "ACE_DEGRADATION_MIN_PCT",
            self.degradation_min_pct,
            "must be a number >= 0",
        )?;
        check(
            !self.context_time_half_life.is_zero(),
            "ACE_CONTEXT_TIME_HALF_LIFE",
            self.context_time_half_life.as_secs_f64(),
            "must be more than 0 seconds",
        )?;
        check(
            self.context_steps_half_life > 0.0,
            "ACE_CONTEXT_STEPS_HALF_LIFE",
            self.context_steps_half_life,
            "must be more than 0",
        )?;
        check(
            self.context_errors_half_life > 0.0,
            "ACE_CONTEXT_ERRORS_HALF_LIFE",
            self.context_errors_half_life,
            "must be more than 0",
        )?;
        if let Some(below) = self.judge_below {
            check((0.0..=1.0).contains(&below), "ACE_JUDGE_BELOW", below, "must be in [0, 1]")?;
        }
        check(
            (0.0..=1.0).contains(&self.intervention_min_failure),
            "ACE_INTERVENTION_MIN_FAILURE",
            self.intervention_min_failure,
            "must be in [0, 1]",
        )?;
        check(
            (0.0..=1.0).contains(&self.long_task_quantile),
            "ACE_LONG_TASK_QUANTILE",
            self.long_task_quantile,
            "must be in [0, 1]",
        )?;
        check(self.breaker_failures >= 1, "ACE_BREAKER_FAILURES", self.breaker_failures, "must be at least 1")?;
        check(
            !self.breaker_wait.is_zero(),
            "ACE_BREAKER_WAIT_SECONDS",
            secs(self.breaker_wait),
            "must be more than 0",
        )?;
        check(
            self.long_task_min_tasks >= 1,
            "ACE_LONG_TASK_MIN_TASKS",
            self.long_task_min_tasks,
            "must be at least 1",
        )?;
        check(
            self.degradation_sustain >= 1,
            "ACE_DEGRADATION_SUSTAIN",
            self.degradation_sustain,
            "must be at least 1",
        )?;
        check(
            self.postgres_max_connections >= 1,
            "POSTGRES_MAX_CONNECTIONS",
            self.postgres_max_connections,
            "must be at least 1",
        )?;
        check(
            self.redis_max_connections >= 1,
            "REDIS_MAX_CONNECTIONS",
            self.redis_max_connections,
            "must be at least 1",
        )?;
        if let Some(url) = &self.database_url {
            check(
                url.contains(':') || url.trim() == "memory",
                "DATABASE_URL",
                redact_url(url),
                "must be a URL such as sqlite://ace.db, or memory",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<AceConfig> {
        AceConfig::from_lookup(|k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_match_the_design() {
        let c = from(&[]).unwrap();
        assert_eq!(c, AceConfig::default());
        assert_eq!(c.batch_size, 100);
        assert_eq!(c.batch_timeout, Duration::from_secs(1));
        assert_eq!(c.cache_ttl, Duration::from_secs(3600));
        assert_eq!(c.error_threshold, 3);
        assert_eq!(c.error_window, Duration::from_secs(300));
        assert_eq!(c.cooldown, Duration::from_secs(60));
        assert_eq!(c.max_interventions_per_task, 5);
        assert!(c.intervention_enabled && c.enable_caching);
        assert_eq!(c.context_staleness_threshold, 0.8);
        assert_eq!((c.postgres_max_connections, c.redis_max_connections), (50, 50));
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("ACE_BATCH_SIZE", "200"),
            ("ACE_BATCH_TIMEOUT", "2.5"),
            ("ACE_BUFFER_CAPACITY", "5000"),
            ("ACE_ENABLE_CACHING", "false"),
            ("ACE_CACHE_TTL", "10"),
            ("ACE_ERROR_THRESHOLD", "4"),
            ("ACE_ERROR_WINDOW", "60"),
            ("ACE_COOLDOWN_SECONDS", "30"),
            ("ACE_MAX_INTERVENTIONS_PER_TASK", "2"),
            ("ACE_INTERVENTION_ENABLED", "0"),
            ("ACE_CONTEXT_STALENESS_THRESHOLD", "0.6"),
            ("ACE_BASELINE_WARMUP", "10"),
            ("ACE_BASELINE_ALPHA", "0.05"),
            ("ACE_DEGRADATION_Z", "3"),
            ("ACE_DEGRADATION_MIN_PCT", "10"),
            ("ACE_DEGRADATION_SUSTAIN", "5"),
            ("ACE_METRICS_MAX_AGENTS", "7"),
            ("ACE_TASK_ERROR_SEVERITY", "high"),
            ("ACE_LOOP_THRESHOLD", "5"),
            ("ACE_FAILURE_RUN", "0"),
            ("ACE_LONG_TASK_QUANTILE", "0.9"),
            ("ACE_LONG_TASK_MIN_TASKS", "50"),
            ("ACE_TASK_MAX_STEPS", "100"),
            ("ACE_BREAKER_FAILURES", "3"),
            ("ACE_BREAKER_WAIT_SECONDS", "30"),
            ("ACE_DURABLE", "yes"),
            ("ACE_SPILL_DIR", "/var/spool/ace"),
            ("DATABASE_URL", "sqlite://x.db"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("REDIS_CLUSTER_URLS", "redis://a:1, redis://b:2,"),
            ("POSTGRES_MAX_CONNECTIONS", "8"),
            ("REDIS_MAX_CONNECTIONS", "9"),
        ])
        .unwrap();
        assert_eq!(c.batch_size, 200);
        assert_eq!(c.batch_timeout, Duration::from_millis(2500));
        assert_eq!(c.buffer_capacity, 5000);
        assert!(!c.enable_caching && !c.intervention_enabled);
        assert_eq!(c.cache_ttl, Duration::from_secs(10));
        assert_eq!((c.error_threshold, c.max_interventions_per_task), (4, 2));
        assert_eq!((c.error_window, c.cooldown), (Duration::from_secs(60), Duration::from_secs(30)));
        assert_eq!(c.context_staleness_threshold, 0.6);
        assert_eq!((c.baseline_warmup, c.baseline_alpha), (10, 0.05));
        assert_eq!((c.degradation_z, c.degradation_min_pct, c.degradation_sustain), (3.0, 10.0, 5));
        assert_eq!(c.metrics_max_agents, 7);
        assert_eq!(c.task_error_severity, Some(Severity::High));
        assert_eq!((c.loop_threshold, c.failure_run, c.long_task_min_tasks, c.task_max_steps), (5, 0, 50, 100));
        assert_eq!(c.long_task_quantile, 0.9);
        assert_eq!((c.breaker_failures, c.breaker_wait), (3, Duration::from_secs(30)));
        assert!(c.durable);
        assert_eq!(c.spill_dir.as_deref(), Some(std::path::Path::new("/var/spool/ace")));
        assert_eq!(from(&[("ACE_SPILL_DIR", "off")]).unwrap().spill_dir, None);
        assert_eq!(from(&[("ACE_RETAIN_DAYS", "30")]).unwrap().retain_days, Some(30));
        assert_eq!(from(&[("ACE_RETAIN_DAYS", "off")]).unwrap().retain_days, None);
        assert_eq!(AceConfig::default().retain_days, None, "nothing is deleted unless asked");
        assert_eq!(from(&[("ACE_TASK_ERROR_SEVERITY", "off")]).unwrap().task_error_severity, None);
        assert_eq!(c.database_url.as_deref(), Some("sqlite://x.db"));
        assert_eq!(c.redis_cluster_urls, vec!["redis://a:1", "redis://b:2"]);
        assert_eq!((c.postgres_max_connections, c.redis_max_connections), (8, 9));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (key, value) in [
            ("ACE_BATCH_SIZE", "-1"),
            ("ACE_BATCH_SIZE", "0"),
            ("ACE_RETAIN_DAYS", "0"),
            ("ACE_RETAIN_DAYS", "36501"),
            ("ACE_RETAIN_DAYS", "7d"),
            ("ACE_BATCH_TIMEOUT", "NaN"),
            ("ACE_BATCH_TIMEOUT", "-2"),
            ("ACE_ENABLE_CACHING", "maybe"),
            ("ACE_CONTEXT_STALENESS_THRESHOLD", "1.5"),
            ("ACE_BASELINE_ALPHA", "inf"),
            ("ACE_DEGRADATION_SUSTAIN", "0"),
            ("ACE_BUFFER_CAPACITY", "10"),
            ("ACE_TASK_ERROR_SEVERITY", "loud"),
            ("ACE_LONG_TASK_QUANTILE", "1.5"),
            ("ACE_LONG_TASK_MIN_TASKS", "0"),
            ("ACE_BREAKER_FAILURES", "0"),
            ("ACE_BREAKER_WAIT_SECONDS", "0"),
            ("ACE_DURABLE", "sometimes"),
        ] {
            let err = from(&[(key, value)]).unwrap_err();
            assert_eq!(err.code(), "config");
            assert!(err.to_string().contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn database_url_password_is_never_printed() {
        let err = from(&[("DATABASE_URL", "nonsense")]).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"));
        let c = AceConfig::builder().database_url("postgres://u:hunter2@h/db").build().unwrap();
        assert!(c.database_url.unwrap().contains("hunter2"));
        assert_eq!(redact_url("postgres://u:hunter2@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn settings_take_every_key_form_and_the_last_pair_wins() {
        let c = AceConfig::from_settings([
            ("ACE_BATCH_SIZE", "50"),
            ("cooldown_seconds", "5"),
            ("intervention_enabled", "false"),
            ("maxInterventionsPerTask", "2"),
            ("databaseUrl", "sqlite://a.db"),
            ("redis_cluster_urls", "redis://a:1,redis://b:2"),
            ("BATCH_SIZE", "60"),
            ("ace_error_threshold", "7"),
        ])
        .unwrap();
        assert_eq!(c.batch_size, 60);
        assert_eq!(c.cooldown, Duration::from_secs(5));
        assert!(!c.intervention_enabled);
        assert_eq!((c.max_interventions_per_task, c.error_threshold), (2, 7));
        assert_eq!(c.database_url.as_deref(), Some("sqlite://a.db"));
        assert_eq!(c.redis_cluster_urls.len(), 2);
        let empty: [(&str, &str); 0] = [];
        assert_eq!(AceConfig::from_settings(empty).unwrap(), AceConfig::default());
        // An empty value is unset: the default, not the lookup's value.
        let c = AceConfig::from_settings_over([("batch_size", " ")], |k| (k == "ACE_BATCH_SIZE").then(|| "7".into()))
            .unwrap();
        assert_eq!(c.batch_size, 100);
        let c = AceConfig::from_settings_over(std::iter::empty::<(&str, &str)>(), |k| {
            (k == "ACE_BATCH_SIZE").then(|| "300".into())
        })
        .unwrap();
        assert_eq!(c.batch_size, 300);
    }

    #[test]
    fn bad_settings_are_typed_errors_naming_the_setting() {
        for (key, value, named) in [
            ("no_such_setting", "1", "NO_SUCH_SETTING"),
            ("ACE_DATABASE_URL", "sqlite://x", "ACE_DATABASE_URL"),
            ("batchSize", "lots", "ACE_BATCH_SIZE"),
            ("batch_size", "-5", "ACE_BATCH_SIZE"),
            ("batch_timeout", "NaN", "ACE_BATCH_TIMEOUT"),
            ("cooldown_seconds", "-1", "ACE_COOLDOWN_SECONDS"),
            ("baseline_alpha", "NaN", "ACE_BASELINE_ALPHA"),
            ("degradation_z", "-3", "ACE_DEGRADATION_Z"),
            ("task_error_severity", "loud", "ACE_TASK_ERROR_SEVERITY"),
            ("enable_caching", "maybe", "ACE_ENABLE_CACHING"),
        ] {
            let err = AceConfig::from_settings([(key, value)]).unwrap_err();
            assert_eq!(err.code(), "config", "{key}={value}");
            match &err {
                Error::Config { key: k, .. } => assert_eq!(k, named),
                other => panic!("{other:?}"),
            }
        }
        let err = AceConfig::from_settings([("nope", "redis://:hunter2@h")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn the_table_names_every_field_once() {
        let mut names: Vec<_> = SETTINGS.iter().map(|s| s.name).collect();
        let mut fields: Vec<_> = SETTINGS.iter().map(|s| s.field).collect();
        assert_eq!(ENV_VARS, names.as_slice());
        names.sort_unstable();
        names.dedup();
        fields.sort_unstable();
        fields.dedup();
        assert_eq!((names.len(), fields.len()), (SETTINGS.len(), SETTINGS.len()));
        assert!(SETTINGS.iter().all(|s| !s.doc.is_empty()));
        // Every field of the Debug form is a setting's field.
        let debug = format!("{:?}", AceConfig::default());
        let shown = debug.matches(": ").count();
        assert_eq!(shown, SETTINGS.len(), "{debug}");
        for s in SETTINGS {
            assert!(debug.contains(&format!("{}: ", s.field)), "{} is not a field", s.field);
            assert_eq!(Setting::find(s.name).map(|f| f.field), Some(s.field));
        }
        assert!(Setting::find("memory").is_none());
    }

    #[test]
    fn memory_is_a_database_url() {
        let c = AceConfig::from_settings([("DATABASE_URL", "memory")]).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("memory"));
    }
}
