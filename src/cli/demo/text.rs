//! The demo as a human reads it: a header naming the faults, then a table of what was recorded,
//! what was noticed and the fleet's baselines.

use std::io::Write;
use std::time::Duration;

use super::Plan;
use super::fault::Fault;
use super::fleet::{PROFILES, WorkerReport};
use super::report::Findings;

pub(super) fn print_header(plan: &Plan, backend: &str, location: &str) {
    println!(
        "ace demo: {} agents x {} tasks x {} stages -> {} store {}",
        plan.agents,
        if plan.tasks == usize::MAX { "as many".to_owned() } else { plan.tasks.to_string() },
        PROFILES.len(),
        backend,
        location
    );
    println!(
        "  injected faults: {} (agents 3, 13, ...) from task {}; {} (agents 7, 27, ...) for {} tasks from task {}; {} (agents 12, 32, ...) from task {}",
        Fault::Slowdown.describe(),
        plan.onset_of(Fault::Slowdown),
        Fault::Failures.describe(),
        plan.burst_len,
        plan.onset_of(Fault::Failures),
        Fault::TokenBloat.describe(),
        plan.onset_of(Fault::TokenBloat)
    );
}

pub(super) fn print_summary(all: &WorkerReport, f: &Findings) {
    let mut out = std::io::stdout().lock();
    for line in summary(all, f) {
        let _ = writeln!(out, "{line}");
    }
}

fn summary(all: &WorkerReport, f: &Findings) -> Vec<String> {
    let stats = &f.stats;
    let mut lines = Vec::new();
    lines.push(String::new());
    lines.push(format!(
        "  recorded      {} stage events ({} tasks per agent), {} rejected",
        group(all.events),
        f.tasks_run,
        f.rejected
    ));
    lines.push(format!(
        "  throughput    {}/s end to end ({} s, of which {} ms final flush); record call {:.0} ns per event",
        human(f.throughput),
        fmt_secs(f.walls.total),
        f.walls.flush.as_millis(),
        f.per_event_ns
    ));
    lines.push(format!(
        "  store         {} {}: {} rows written, {} rows in total{}, dropped {}",
        f.backend,
        f.location,
        group(f.rows_written),
        group(f.rows),
        f.file_bytes.map_or(String::new(), |b| format!(", {:.1} MB on disk", b as f64 / 1e6)),
        stats.dropped
    ));
    lines.push(format!(
        "  baselines     {} (agent, stage) pairs x 5 metrics{}",
        group(stats.baselines),
        if f.loaded > 0 { format!(" ({} resumed from the store)", f.loaded) } else { String::new() }
    ));
    lines.push(format!("  errors        {} recorded, grouped into {} patterns", group(all.errors), stats.patterns));
    let kinds: Vec<String> = f.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    lines.push(format!("  signals       {}", if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") }));
    let advice: Vec<String> = all.interventions.iter().map(|(k, n)| format!("{k} {n}")).collect();
    lines.push(format!("  interventions {}", if advice.is_empty() { "none".to_owned() } else { advice.join(", ") }));
    lines.push(String::new());
    lines.push("  injected fault              agents  detected  median stages to detect  intervened".to_owned());
    for row in &f.faults {
        lines.push(format!(
            "  {:<26} {:>7} {:>9}  {:<23}  {}",
            row.fault.describe(),
            row.agents,
            row.detected,
            row.median.map_or("-".to_owned(), |d| d.to_string()),
            row.intervened
        ));
    }
    lines.push(format!(
        "  {:<26} {:>7} {:>9}  {} (tasks, as repeated errors)",
        "verification errors",
        f.burst_agents,
        f.burst_detected,
        f.error_median.map_or("-".to_owned(), |d| d.to_string())
    ));
    lines.push(format!(
        "  false alarms                {} degradation signals on {} healthy streams",
        f.false_alarms,
        group(f.healthy_streams as u64),
    ));
    lines.push(format!(
        "  healthy tasks               {} of {} got an intervention ({:.2}%); {} tasks failed and said so at their end",
        group(f.healthy_intervened),
        group(f.healthy_tasks),
        100.0 * f.false_intervention_rate(),
        group(all.failed_tasks),
    ));
    lines.push(format!(
        "  background errors           {} error signals from the 1% of stages failing at random (the same error 3 times in 300 s is a real accumulation)",
        f.error_false
    ));
    lines.push(String::new());
    lines.push("  fleet median baselines (healthy agents)".to_owned());
    lines.push("  stage          duration_s  success  tokens_in  tokens_out  cost_usd".to_owned());
    for (stage, row) in &f.baselines {
        lines.push(format!(
            "  {:<14} {:>9.2}s {:>8.3} {:>10.0} {:>11.0} {:>9.5}",
            stage, row[0], row[1], row[2], row[3], row[4]
        ));
    }
    lines.push(format!("  simulated spend: {} tokens, ${:.2}", group(all.tokens as u64), all.cost));
    if let Some(sample) = &all.sample {
        lines.push(String::new());
        lines.push(format!("  e.g. \"{sample}\""));
    }
    if let Some(sample) = &all.error_sample {
        lines.push(format!("       \"{sample}\""));
    }
    lines.push(String::new());
    lines.push(format!(
        "  Metrics, baselines and records are in {}; run again to resume from the stored baselines.",
        f.location
    ));
    lines
}

/// `1234567` as `1,234,567`.
pub(super) fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with a k or M suffix.
pub(super) fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }

    #[test]
    fn rates_get_a_suffix() {
        assert_eq!(human(950.0), "950");
        assert_eq!(human(40_600.0), "40.6k");
        assert_eq!(human(5_700_000.0), "5.70M");
    }
}
