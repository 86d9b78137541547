//! [`AceConfigBuilder`]: setting fields in code.

use std::time::Duration;

use super::AceConfig;
use crate::error::Result;
use crate::event::Severity;

/// Builds an [`AceConfig`]; every setter is named after the field it sets.
///
/// ```
/// use std::time::Duration;
/// use ace_core::AceConfig;
///
/// let config = AceConfig::builder()
///     .batch_size(500)
///     .batch_timeout(Duration::from_millis(250))
///     .buffer_capacity(1_000_000)
///     .error_threshold(3)
///     .error_window(Duration::from_secs(300))
///     .cooldown(Duration::from_secs(60))
///     .max_interventions_per_task(5)
///     .intervention_enabled(true)
///     .context_staleness_threshold(0.8)
///     .baseline_warmup(20)
///     .baseline_alpha(0.01)
///     .degradation_z(4.0)
///     .degradation_min_pct(20.0)
///     .degradation_sustain(3)
///     .metrics_max_agents(1000)
///     .build()
///     .unwrap();
/// assert_eq!(config.batch_size, 500);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct AceConfigBuilder {
    pub(super) config: AceConfig,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty),* $(,)?) => {
        impl AceConfigBuilder {
            $(
                $(#[$doc])*
                pub fn $field(mut self, value: $ty) -> Self {
                    self.config.$field = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// See [`AceConfig::batch_size`].
    batch_size: usize,
    /// See [`AceConfig::batch_timeout`].
    batch_timeout: Duration,
    /// See [`AceConfig::buffer_capacity`].
    buffer_capacity: usize,
    /// See [`AceConfig::memory_max_records`].
    memory_max_records: usize,
    /// See [`AceConfig::spill_max_bytes`].
    spill_max_bytes: u64,
    /// See [`AceConfig::enable_caching`].
    enable_caching: bool,
    /// See [`AceConfig::cache_ttl`].
    cache_ttl: Duration,
    /// See [`AceConfig::error_threshold`].
    error_threshold: u32,
    /// See [`AceConfig::error_window`].
    error_window: Duration,
    /// See [`AceConfig::cooldown`].
    cooldown: Duration,
    /// See [`AceConfig::max_interventions_per_task`].
    max_interventions_per_task: u32,
    /// See [`AceConfig::intervention_enabled`].
    intervention_enabled: bool,
    /// See [`AceConfig::intervention_seed`].
    intervention_seed: u64,
    /// See [`AceConfig::intervention_min_failure`].
    intervention_min_failure: f64,
    /// See [`AceConfig::judge_timeout`].
    judge_timeout: Duration,
    /// See [`AceConfig::judge_below`].
    judge_below: Option<f64>,
    /// See [`AceConfig::judge_blocking`].
    judge_blocking: bool,
    /// See [`AceConfig::reflect_per_minute`].
    reflect_per_minute: u32,
    /// See [`AceConfig::context_staleness_threshold`].
    context_staleness_threshold: f64,
    /// See [`AceConfig::context_time_half_life`].
    context_time_half_life: Duration,
    /// See [`AceConfig::context_steps_half_life`].
    context_steps_half_life: f64,
    /// See [`AceConfig::context_errors_half_life`].
    context_errors_half_life: f64,
    /// See [`AceConfig::task_error_severity`].
    task_error_severity: Option<Severity>,
    /// See [`AceConfig::loop_threshold`].
    loop_threshold: u32,
    /// See [`AceConfig::failure_run`].
    failure_run: u32,
    /// See [`AceConfig::tool_repeat`].
    tool_repeat: u32,
    /// See [`AceConfig::tool_alternation`].
    tool_alternation: u32,
    /// See [`AceConfig::tool_retry_failures`].
    tool_retry_failures: u32,
    /// See [`AceConfig::long_task_quantile`].
    long_task_quantile: f64,
    /// See [`AceConfig::long_task_min_tasks`].
    long_task_min_tasks: u32,
    /// See [`AceConfig::task_max_steps`].
    task_max_steps: u32,
    /// See [`AceConfig::breaker_failures`].
    breaker_failures: u32,
    /// See [`AceConfig::breaker_wait`].
    breaker_wait: Duration,
    /// See [`AceConfig::baseline_warmup`].
    baseline_warmup: u32,
    /// See [`AceConfig::baseline_alpha`].
    baseline_alpha: f64,
    /// See [`AceConfig::degradation_z`].
    degradation_z: f64,
    /// See [`AceConfig::degradation_min_pct`].
    degradation_min_pct: f64,
    /// See [`AceConfig::degradation_sustain`].
    degradation_sustain: u32,
    /// See [`AceConfig::metrics_max_agents`].
    metrics_max_agents: usize,
    /// See [`AceConfig::postgres_max_connections`].
    postgres_max_connections: u32,
    /// See [`AceConfig::redis_max_connections`].
    redis_max_connections: u32,
    /// See [`AceConfig::redis_cluster_urls`].
    redis_cluster_urls: Vec<String>,
}

impl AceConfigBuilder {
    /// See [`AceConfig::coarse_clock`].
    pub fn coarse_clock(mut self, on: bool) -> Self {
        self.config.coarse_clock = on;
        self
    }

    /// See [`AceConfig::durable`].
    pub fn durable(mut self, on: bool) -> Self {
        self.config.durable = on;
        self
    }

    /// See [`AceConfig::spill_dir`] (`None`: off).
    pub fn spill_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.config.spill_dir = dir;
        self
    }

    /// See [`AceConfig::retain_days`] (`None`: off, the default).
    pub fn retain_days(mut self, days: Option<u32>) -> Self {
        self.config.retain_days = days;
        self
    }

    /// See [`AceConfig::trace_path`].
    pub fn trace_path(mut self, path: impl Into<String>) -> Self {
        self.config.trace_path = Some(path.into());
        self
    }

    /// See [`AceConfig::database_url`].
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.config.database_url = Some(url.into());
        self
    }

    /// See [`AceConfig::redis_url`].
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.config.redis_url = Some(url.into());
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<AceConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}
