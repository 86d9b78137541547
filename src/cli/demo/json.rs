//! The demo's summary as one JSON object (`--json`), for scripts and the benchmark table.

use serde_json::{Value, json};

use super::Plan;
use super::fleet::WorkerReport;
use super::report::Findings;

pub(super) fn summary(plan: &Plan, all: &WorkerReport, f: &Findings) -> Value {
    let stats = &f.stats;
    json!({
        "agents": plan.agents,
        "tasks_per_agent": f.tasks_run,
        "events": all.events,
        "rejected": f.rejected,
        "events_per_second": f.throughput,
        "record_ns_per_event": f.per_event_ns,
        "wall_seconds": f.walls.total.as_secs_f64(),
        "recording_seconds": f.walls.recording.as_secs_f64(),
        "flush_seconds": f.walls.flush.as_secs_f64(),
        "store": { "backend": f.backend, "location": f.location, "rows_written": f.rows_written,
                   "rows_total": f.rows, "bytes": f.file_bytes, "dropped": stats.dropped },
        "baselines": stats.baselines,
        "baselines_resumed": f.loaded,
        "signals": f.by_kind,
        "faults": f.faults.iter().map(|row| json!({
            "fault": row.fault.describe(), "agents": row.agents, "detected": row.detected,
            "median_stages_to_detect": row.median, "intervened": row.intervened,
        })).collect::<Vec<_>>(),
        "false_alarms": f.false_alarms,
        "interventions": all.interventions,
        "healthy_tasks": f.healthy_tasks,
        "healthy_tasks_intervened": f.healthy_intervened,
        "false_intervention_rate": f.false_intervention_rate(),
        "failed_tasks": all.failed_tasks,
        "errors": { "recorded": all.errors, "patterns": stats.patterns, "signals": f.error_kinds,
                    "burst_agents": f.burst_agents, "burst_detected": f.burst_detected,
                    "median_tasks_to_detect": f.error_median, "signals_outside_burst": f.error_false },
        "healthy_streams": f.healthy_streams,
        "tokens": all.tokens,
        "cost_usd": all.cost,
    })
}
