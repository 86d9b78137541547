//! What the run recorded and what ace noticed, scored against the faults injected: detections
//! and their delay, false alarms on healthy streams, the fleet's learned baselines, the store.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use ace::{Ace, Result, SignalKind, Stats, metric_names as m};

use super::Plan;
use super::fault::Fault;
use super::fleet::{PROFILES, Seen, WorkerReport};

/// Wall times of the run.
pub(super) struct Walls {
    /// The fleet's recording, until the last worker finished.
    pub(super) recording: Duration,
    /// The final `flush()`.
    pub(super) flush: Duration,
    /// Both.
    pub(super) total: Duration,
}

/// One injected fault: how many agents had it, how many ace caught, the median delay in tasks.
pub(super) struct FaultRow {
    pub(super) fault: Fault,
    pub(super) agents: usize,
    pub(super) detected: usize,
    pub(super) median: Option<usize>,
    /// Agents with an intervention on a task while their fault was active.
    pub(super) intervened: usize,
}

pub(super) struct Findings {
    pub(super) walls: Walls,
    pub(super) tasks_run: u64,
    pub(super) per_event_ns: f64,
    pub(super) throughput: f64,
    pub(super) rejected: u64,
    pub(super) stats: Stats,
    /// Baselines loaded from the store at start.
    pub(super) loaded: u64,
    pub(super) backend: &'static str,
    pub(super) location: String,
    pub(super) rows: u64,
    pub(super) rows_written: u64,
    pub(super) file_bytes: Option<u64>,
    /// Signals of every kind, stage and error signals together.
    pub(super) by_kind: BTreeMap<&'static str, u64>,
    pub(super) faults: Vec<FaultRow>,
    pub(super) false_alarms: usize,
    pub(super) error_kinds: BTreeMap<&'static str, u64>,
    /// Agents whose verification burst started within the run, and how many ace caught.
    pub(super) burst_agents: usize,
    pub(super) burst_detected: usize,
    pub(super) error_median: Option<usize>,
    /// Error signals outside the burst: the background 1% failure rate.
    pub(super) error_false: u64,
    pub(super) healthy_streams: usize,
    /// Tasks without an active fault, and those of them that got an intervention.
    pub(super) healthy_tasks: u64,
    pub(super) healthy_intervened: u64,
    /// Per stage, the fleet median of healthy agents' baselines, one per metric of `METRICS`.
    pub(super) baselines: Vec<(&'static str, Vec<f64>)>,
}

/// The metrics of the baselines table, in its column order.
pub(super) const METRICS: [&str; 5] = [m::DURATION, m::SUCCESS, m::TOKENS_IN, m::TOKENS_OUT, m::COST_USD];

impl Findings {
    /// The share of tasks without an active fault that got an intervention.
    pub(super) fn false_intervention_rate(&self) -> f64 {
        self.healthy_intervened as f64 / self.healthy_tasks.max(1) as f64
    }

    pub(super) fn gather(
        ace: &Ace,
        plan: &Plan,
        all: &WorkerReport,
        loaded: u64,
        before_rows: u64,
        location: String,
        walls: Walls,
    ) -> Result<Self> {
        let stats = ace.stats();
        let store = ace.store();
        let rows = store.count_metrics()?;
        let tasks_run = all.events / (PROFILES.len() as u64 * plan.agents as u64).max(1);
        let per_event_ns = all.record_time.as_nanos() as f64 / all.events.max(1) as f64;
        let throughput = all.events as f64 / walls.total.as_secs_f64().max(1e-9);

        // What was noticed, against what was injected.
        let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut first_hit: HashMap<(usize, Fault), usize> = HashMap::new();
        let mut false_alarms: Vec<&Seen> = Vec::new();
        for seen in &all.seen {
            let (agent, task, stage, metric, kind) = seen;
            *by_kind.entry(kind.as_str()).or_default() += 1;
            if *kind != SignalKind::Degradation {
                continue;
            }
            let expected = Fault::of_agent(*agent)
                .filter(|f| *task >= plan.onset_of(*f) && f.streams().iter().any(|(s, mm)| s == stage && mm == metric));
            match expected {
                Some(f) => {
                    first_hit.entry((*agent, f)).and_modify(|t| *t = (*t).min(*task)).or_insert(*task);
                }
                None => {
                    tracing::info!(agent, task, stage = %stage, metric = %metric, "false alarm: degradation on a healthy stream");
                    false_alarms.push(seen);
                }
            }
        }
        let mut faults = Vec::new();
        for f in Fault::ALL {
            let injected: Vec<usize> = (0..plan.agents)
                .filter(|&i| Fault::of_agent(i) == Some(f) && (tasks_run as usize) > plan.onset_of(f))
                .collect();
            let mut delays: Vec<usize> =
                injected.iter().filter_map(|i| first_hit.get(&(*i, f)).map(|t| t - plan.onset_of(f))).collect();
            delays.sort_unstable();
            let median = delays.get(delays.len() / 2).copied();
            let intervened = injected.iter().filter(|i| all.fault_intervened.contains(i)).count();
            faults.push(FaultRow { fault: f, agents: injected.len(), detected: delays.len(), median, intervened });
        }
        // Error signals: the verification burst should be caught as a repeated error.
        let mut error_kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut error_first: HashMap<usize, usize> = HashMap::new();
        let mut error_false = 0u64;
        let burst = (plan.onset_of(Fault::Failures), plan.onset_of(Fault::Failures) + plan.burst_len);
        for &(agent, task, kind) in &all.error_signals {
            *by_kind.entry(kind.as_str()).or_default() += 1;
            *error_kinds.entry(kind.as_str()).or_default() += 1;
            let in_burst = Fault::of_agent(agent) == Some(Fault::Failures) && task >= burst.0 && task < burst.1 + 30;
            if in_burst && kind == SignalKind::ErrorAccumulation {
                error_first.entry(agent).and_modify(|t| *t = (*t).min(task)).or_insert(task);
            } else if !in_burst {
                error_false += 1;
            }
        }
        let burst_agents = (0..plan.agents)
            .filter(|&i| Fault::of_agent(i) == Some(Fault::Failures) && (tasks_run as usize) > burst.0)
            .count();
        let mut error_delays: Vec<usize> = error_first.values().map(|t| t - burst.0).collect();
        error_delays.sort_unstable();
        let error_median = error_delays.get(error_delays.len() / 2).copied();

        let faulted_streams: usize = (0..plan.agents).filter_map(Fault::of_agent).map(|f| f.streams().len()).sum();
        let streams = plan.agents * PROFILES.len() * 5;
        let healthy_streams = streams - faulted_streams;

        // Fleet medians of the learned baselines.
        let mut baselines = Vec::new();
        for p in &PROFILES {
            let mut row = Vec::new();
            for metric in METRICS {
                let mut means: Vec<f64> = (0..plan.agents)
                    .filter(|i| Fault::of_agent(*i).is_none())
                    .filter_map(|i| ace.baseline(&format!("agent-{i:05}"), p.name, metric))
                    .map(|b| b.mean)
                    .collect();
                means.sort_by(f64::total_cmp);
                row.push(means.get(means.len() / 2).copied().unwrap_or(f64::NAN));
            }
            baselines.push((p.name, row));
        }

        let file_bytes = sqlite_bytes(&location, store.backend());
        Ok(Findings {
            walls,
            tasks_run,
            per_event_ns,
            throughput,
            rejected: stats_rejected(ace),
            stats,
            loaded,
            backend: store.backend(),
            location,
            rows,
            rows_written: rows - before_rows.min(rows),
            file_bytes,
            by_kind,
            faults,
            false_alarms: false_alarms.len(),
            error_kinds,
            burst_agents,
            burst_detected: error_first.len(),
            error_median,
            error_false,
            healthy_streams,
            healthy_tasks: all.healthy_tasks,
            healthy_intervened: all.healthy_intervened,
            baselines,
        })
    }
}

fn stats_rejected(ace: &Ace) -> u64 {
    // Rejections live in the metrics registry; the demo sends only valid events, so this is a check.
    ace.metrics_text()
        .lines()
        .filter(|l| l.starts_with("ace_events_rejected_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Where the store lives, as the summary shows it: a SQLite path (relative ones with `./`), or
/// the backend's name.
pub(super) fn store_location(url: &str, backend: &str) -> String {
    match backend {
        "sqlite" => {
            let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
            let path = PathBuf::from(path.split('?').next().unwrap_or(path));
            if path.is_absolute() || path.starts_with(".") {
                path.display().to_string()
            } else {
                format!("./{}", path.display())
            }
        }
        other => other.to_owned(),
    }
}

fn sqlite_bytes(location: &str, backend: &str) -> Option<u64> {
    if backend != "sqlite" {
        return None;
    }
    let main = std::fs::metadata(location).ok()?.len();
    let wal = std::fs::metadata(format!("{location}-wal")).map(|m| m.len()).unwrap_or(0);
    Some(main + wal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_locations_read_as_paths() {
        assert_eq!(store_location("ace.db", "sqlite"), "./ace.db");
        assert_eq!(store_location("sqlite://ace.db?mode=rwc", "sqlite"), "./ace.db");
        assert_eq!(store_location("sqlite:///tmp/d.db", "sqlite"), "/tmp/d.db");
        assert_eq!(store_location("./d.db", "sqlite"), "./d.db");
        assert_eq!(store_location("memory", "memory"), "memory");
    }
}
