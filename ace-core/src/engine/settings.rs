//! Each organ's own settings, taken from the engine's configuration: organs never see
//! `AceConfig`, so an organ reads (and is tested) alone.

use crate::config::AceConfig;
use crate::context::StalenessConfig;
use crate::fleet::FleetConfig;
use crate::intervene::DecisionConfig;
use crate::monitor::DetectorConfig;
use crate::trajectory::TrajectoryConfig;

pub(super) fn detector(c: &AceConfig) -> DetectorConfig {
    DetectorConfig {
        warmup: c.baseline_warmup,
        alpha: c.baseline_alpha,
        z: c.degradation_z,
        min_pct: c.degradation_min_pct,
        sustain: c.degradation_sustain,
    }
}

pub(super) fn staleness(c: &AceConfig) -> StalenessConfig {
    StalenessConfig {
        threshold: c.context_staleness_threshold,
        time_half_life_s: c.context_time_half_life.as_secs_f64(),
        steps_half_life: c.context_steps_half_life,
        errors_half_life: c.context_errors_half_life,
    }
}

pub(super) fn trajectory(c: &AceConfig) -> TrajectoryConfig {
    TrajectoryConfig {
        loop_threshold: c.loop_threshold,
        failure_run: c.failure_run,
        tool_repeat: c.tool_repeat,
        tool_alternation: c.tool_alternation,
        tool_retry_failures: c.tool_retry_failures,
        quantile: c.long_task_quantile,
        min_tasks: c.long_task_min_tasks,
        max_steps: c.task_max_steps,
    }
}

pub(super) fn decision(c: &AceConfig) -> DecisionConfig {
    DecisionConfig {
        enabled: c.intervention_enabled,
        cooldown: c.cooldown,
        max_per_task: c.max_interventions_per_task,
        seed: c.intervention_seed,
    }
}

pub(super) fn fleet(c: &AceConfig) -> FleetConfig {
    FleetConfig {
        cache_ttl: c.cache_ttl,
        baseline_warmup: u64::from(c.baseline_warmup),
        cooldown: c.cooldown,
        max_per_task: c.max_interventions_per_task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_organs_defaults_are_the_configurations() {
        let c = AceConfig::default();
        assert_eq!(staleness(&c), StalenessConfig::default());
        assert_eq!(trajectory(&c), TrajectoryConfig::default());
    }
}
