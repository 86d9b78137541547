//! The simulated fleet: each worker thread runs its slice of the agents task by task, on the
//! engine's simulated clock, and keeps what the engine told it.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ace::{Ace, Evidence, ManualClock, Result, SignalKind, Timestamp, metric_names as m, stages};

use super::Plan;
use super::fault::Fault;
use crate::cli::sim::Rng;

pub(super) struct StageProfile {
    pub(super) name: &'static str,
    median_s: f64,
    sigma: f64,
    tokens_in: f64,
    tokens_out: f64,
}

pub(super) const PROFILES: [StageProfile; 4] = [
    StageProfile { name: stages::PLANNING, median_s: 1.2, sigma: 0.35, tokens_in: 1500.0, tokens_out: 300.0 },
    StageProfile { name: stages::EXECUTION, median_s: 4.0, sigma: 0.5, tokens_in: 3000.0, tokens_out: 800.0 },
    StageProfile { name: stages::REFLECTION, median_s: 0.8, sigma: 0.3, tokens_in: 900.0, tokens_out: 200.0 },
    StageProfile { name: stages::VERIFICATION, median_s: 1.5, sigma: 0.4, tokens_in: 600.0, tokens_out: 100.0 },
];
const BASE_FAILURE_RATE: f64 = 0.01;
const PRICE_IN: f64 = 3e-6;
const PRICE_OUT: f64 = 15e-6;
/// Simulated seconds per task round.
const TASK_SECONDS: u64 = 10;
/// What an ordinary failed stage reports: (kind, message template; `#` is a number).
const ERRORS: [(&str, &str); 6] = [
    ("TimeoutError", "model call timed out after # s"),
    ("RateLimitError", "rate limit exceeded for model gpt-4o, retry after # ms"),
    ("JSONDecodeError", "Expecting value: line # column # (char #)"),
    ("ToolError", "search tool returned HTTP 50# for request req-#"),
    ("ValueError", "plan step # references an unknown tool"),
    ("KeyError", "'answer' missing from tool output of call #"),
];

/// A degradation or recovery seen by a worker: (agent index, task index, stage, metric, kind).
pub(super) type Seen = (usize, usize, String, String, SignalKind);

#[derive(Default)]
pub(super) struct WorkerReport {
    pub(super) events: u64,
    pub(super) errors: u64,
    /// Interventions issued, by strategy.
    pub(super) interventions: BTreeMap<&'static str, u64>,
    /// Error signals: (agent index, task index, kind).
    pub(super) error_signals: Vec<(usize, usize, SignalKind)>,
    pub(super) error_sample: Option<String>,
    pub(super) record_time: Duration,
    pub(super) seen: Vec<Seen>,
    pub(super) sample: Option<String>,
    pub(super) tokens: f64,
    pub(super) cost: f64,
    /// Tasks without an active fault, and how many of them got an intervention.
    pub(super) healthy_tasks: u64,
    pub(super) healthy_intervened: u64,
    /// Tasks that failed (the verification burst), reported to the engine at their end.
    pub(super) failed_tasks: u64,
    /// Agents with an intervention on a task of theirs whose fault was active.
    pub(super) fault_intervened: Vec<usize>,
}

impl WorkerReport {
    /// Adds another worker's report to this one (the first sample found is kept).
    pub(super) fn absorb(&mut self, mut r: WorkerReport) {
        self.events += r.events;
        self.errors += r.errors;
        for (k, n) in std::mem::take(&mut r.interventions) {
            *self.interventions.entry(k).or_default() += n;
        }
        self.error_signals.append(&mut r.error_signals);
        self.error_sample = self.error_sample.take().or(r.error_sample);
        self.record_time += r.record_time;
        self.seen.append(&mut r.seen);
        self.tokens += r.tokens;
        self.cost += r.cost;
        self.sample = self.sample.take().or(r.sample);
        self.healthy_tasks += r.healthy_tasks;
        self.healthy_intervened += r.healthy_intervened;
        self.failed_tasks += r.failed_tasks;
        self.fault_intervened.append(&mut r.fault_intervened);
    }
}

pub(super) fn simulate(
    ace: &Ace,
    plan: &Plan,
    worker: usize,
    workers: usize,
    progress: &AtomicU64,
    clock: &ManualClock,
    start: Timestamp,
) -> Result<WorkerReport> {
    let mine: Vec<usize> = (worker..plan.agents).step_by(workers).collect();
    let names: Vec<String> = mine.iter().map(|i| format!("agent-{i:05}")).collect();
    let mut rngs: Vec<Rng> =
        mine.iter().map(|&i| Rng::new(plan.seed.wrapping_mul(1_000_003).wrapping_add(i as u64))).collect();
    let traits: Vec<(f64, f64)> =
        rngs.iter_mut().map(|r| (0.7 + 0.7 * r.uniform(), 0.8 + 0.45 * r.uniform())).collect();
    let capacity = ace.config().buffer_capacity as u64;
    let mut report = WorkerReport::default();
    let mut task_id = String::with_capacity(32);
    for t in 0..plan.tasks {
        if plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        clock.advance_to(start.plus(Duration::from_secs(TASK_SECONDS * t as u64)));
        for (k, &i) in mine.iter().enumerate() {
            let fault = Fault::of_agent(i);
            let active = |f: Fault| {
                fault == Some(f)
                    && t >= plan.onset_of(f)
                    && (f != Fault::Failures || t < plan.onset_of(f) + plan.burst_len)
            };
            let (speed, verbosity) = traits[k];
            task_id.clear();
            let _ = write!(StrWriter(&mut task_id), "{}/task-{t:06}", names[k]);
            let rng = &mut rngs[k];
            let began = Instant::now();
            let faulty = Fault::ALL.iter().any(|f| active(*f));
            let (mut intervened, mut failed) = (false, false);
            // These agents rebuild their context for every task, so it never goes stale.
            ace.refresh_context(&names[k])?;
            for p in &PROFILES {
                let mut duration = rng.lognormal(p.median_s * speed, p.sigma);
                if p.name == stages::EXECUTION && active(Fault::Slowdown) {
                    duration *= 3.0;
                }
                let mut success = !rng.chance(BASE_FAILURE_RATE);
                if p.name == stages::VERIFICATION && active(Fault::Failures) {
                    success = rng.chance(0.1);
                }
                let mut tokens_in = (rng.lognormal(p.tokens_in * verbosity, 0.2)).round();
                if p.name == stages::PLANNING && active(Fault::TokenBloat) {
                    tokens_in = (tokens_in * 2.5).round();
                }
                let tokens_out = rng.lognormal(p.tokens_out * verbosity, 0.25).round();
                let cost = tokens_in * PRICE_IN + tokens_out * PRICE_OUT;
                report.tokens += tokens_in + tokens_out;
                report.cost += cost;
                let stage_report = ace.record_stage_with(
                    &names[k],
                    &task_id,
                    p.name,
                    duration,
                    success,
                    &[(m::TOKENS_IN, tokens_in), (m::TOKENS_OUT, tokens_out), (m::COST_USD, cost)],
                )?;
                if let Some(i) = &stage_report.intervention {
                    *report.interventions.entry(i.strategy.as_str()).or_default() += 1;
                    intervened = true;
                }
                for s in stage_report.signals {
                    let Evidence::BaselineShift { metric, .. } = &s.evidence else { continue };
                    if s.kind == SignalKind::Degradation && report.sample.is_none() && fault.is_some() {
                        report.sample = Some(s.message.clone());
                    }
                    report.seen.push((i, t, p.name.to_owned(), metric.clone(), s.kind));
                }
                if !success {
                    let burst = p.name == stages::VERIFICATION && active(Fault::Failures);
                    // A stage failing at random is retried and the task succeeds; a failed
                    // verification in the burst fails the task.
                    failed |= burst;
                    let (kind, message) = if burst {
                        let answer = rng.below(100_000);
                        (
                            "AssertionError",
                            format!("verification failed for answer {answer}: expected 42, got {}", answer % 97),
                        )
                    } else {
                        let (kind, template) = ERRORS[rng.below(ERRORS.len() as u64) as usize];
                        (
                            kind,
                            template.split('#').enumerate().fold(String::new(), |mut out, (j, part)| {
                                if j > 0 {
                                    out.push_str(&rng.below(1000).to_string());
                                }
                                out.push_str(part);
                                out
                            }),
                        )
                    };
                    let r = ace.record_error(&names[k], &task_id, p.name, kind, &message, None)?;
                    report.errors += 1;
                    if let Some(i) = &r.intervention {
                        *report.interventions.entry(i.strategy.as_str()).or_default() += 1;
                        intervened = true;
                    }
                    for s in r.signals {
                        if report.error_sample.is_none() && fault == Some(Fault::Failures) {
                            report.error_sample = Some(s.message.clone());
                        }
                        report.error_signals.push((i, t, s.kind));
                    }
                }
            }
            // The agent knows whether its task succeeded; the engine learns from it which
            // signals precede failures.
            ace.end_task_with(&names[k], &task_id, Some(!failed))?;
            report.failed_tasks += u64::from(failed);
            if faulty {
                if intervened {
                    report.fault_intervened.push(i);
                }
            } else {
                report.healthy_tasks += 1;
                report.healthy_intervened += u64::from(intervened);
            }
            report.record_time += began.elapsed();
            report.events += PROFILES.len() as u64;
        }
        progress.fetch_add((mine.len() * PROFILES.len()) as u64, Ordering::Relaxed);
        // Keep to the store's pace, as a real fleet would: never let the buffer overflow.
        // (A quarter of the capacity: the shards' half is spread over 16 shards unevenly.)
        while ace.stats().buffered > capacity / 4 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(report)
}

/// Formats into a reused `String` without a fresh allocation per task id.
struct StrWriter<'a>(&'a mut String);

impl Write for StrWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push_str(std::str::from_utf8(buf).map_err(std::io::Error::other)?);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_add_up_and_keep_the_first_sample() {
        let mut all = WorkerReport::default();
        let mut a = WorkerReport { events: 4, errors: 1, sample: Some("a".into()), ..Default::default() };
        a.interventions.insert("reflect", 2);
        let mut b =
            WorkerReport { events: 8, sample: Some("b".into()), error_sample: Some("e".into()), ..Default::default() };
        b.interventions.insert("reflect", 1);
        b.interventions.insert("backoff", 1);
        all.absorb(a);
        all.absorb(b);
        assert_eq!((all.events, all.errors), (12, 1));
        assert_eq!(all.sample.as_deref(), Some("a"));
        assert_eq!(all.error_sample.as_deref(), Some("e"));
        assert_eq!(all.interventions.get("reflect"), Some(&3));
        assert_eq!(all.interventions.get("backoff"), Some(&1));
    }
}
