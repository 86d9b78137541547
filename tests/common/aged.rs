//! Records of a given age, for the retention tests: a metric, an error and an intervention
//! created `days` days (and `n` microseconds) before now. Each test binary uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use ace::store::{ErrorRecord, InterventionRecord, MetricRecord, Record};
use ace::{InterventionId, PatternId, Severity, SignalKind, Strategy, Timestamp};

const DAY_MICROS: i64 = 86_400_000_000;

/// A metric, an error and an intervention (id `n`), `days` days old.
pub fn aged(days: i64, n: u64) -> [Record; 3] {
    let ts = Timestamp::from_micros(ace::Clock::now(&ace::SystemClock).as_micros() - days * DAY_MICROS - n as i64);
    [
        Record::Metric(aged_metric(ts)),
        Record::Error(ErrorRecord {
            ts,
            agent: Arc::from("a"),
            task: Arc::from("t"),
            stage: Arc::from("execution"),
            kind: Arc::from("TimeoutError"),
            message: Arc::from("timed out"),
            severity: Severity::High,
            pattern: PatternId(7),
        }),
        Record::Intervention(InterventionRecord {
            ts,
            id: InterventionId(n),
            agent: Arc::from("a"),
            task: Arc::from("t"),
            strategy: Strategy::Reflect,
            severity: Severity::High,
            signal_kind: SignalKind::ErrorAccumulation,
            reason: "old enough".into(),
            signals_json: "[]".into(),
            outcome: None,
        }),
    ]
}

/// A metric record at `ts`.
pub fn aged_metric(ts: Timestamp) -> MetricRecord {
    MetricRecord {
        ts,
        agent: Arc::from("a"),
        task: Arc::from("t"),
        stage: Arc::from("planning"),
        duration_s: Some(1.0),
        success: Some(true),
        metrics: vec![],
    }
}

/// Metric, error and intervention records at 40, 31, 29 and 0 days of age: retaining 30 days
/// deletes six of the twelve.
pub fn forty_to_zero_days() -> Vec<Record> {
    [40, 31, 29, 0].iter().zip(1..).flat_map(|(&days, n)| aged(days, n)).collect()
}
