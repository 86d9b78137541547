//! `ace demo`: a simulated fleet of agents, with faults injected, recorded into a real store.
//!
//! Each agent runs multi-stage tasks with log-normal timing noise and token/cost metrics; a failed
//! stage also records an error (a realistic kind and message). Three faults are injected into
//! known agents at known times: a 3x slowdown of `execution`, a burst of failing `verification`
//! stages repeating one assertion error, and a 2.5x growth of `planning` prompt tokens (context
//! bloat). The engine runs on a simulated clock (10 s per task), so error windows see the
//! fleet's time, not the demo's compressed wall time.
//! At the end the demo shows what ace recorded, what it noticed, how quickly, and what it raised
//! on healthy agents (false alarms).
//!
//! This file parses the options and runs the pieces in order:
//! - `fleet`: the simulated agents, one worker thread per slice of them;
//! - `fault`: which agents get which fault, and from which task;
//! - `progress`: the progress line on stderr while the fleet runs;
//! - `report`: what was recorded and noticed, against what was injected;
//! - `text` and `json`: that summary as a table or as one JSON object.

mod fault;
mod fleet;
mod json;
mod progress;
mod report;
mod text;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ace::{Ace, AceConfig, Error, ManualClock, Result};

use fault::Fault;
use fleet::{PROFILES, WorkerReport};
use report::{Findings, Walls};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Agents in the simulated fleet (1 to 100000).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Tasks each agent runs (default 200, or unbounded with --duration).
    #[arg(long)]
    tasks: Option<usize>,
    /// Stop after this many seconds of wall time.
    #[arg(long)]
    duration: Option<f64>,
    /// Where to persist: a SQLite file path, sqlite://PATH, or memory.
    #[arg(long, default_value = "ace.db")]
    store: String,
    /// Seed of the simulation: the same seed tells the same story.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads recording events.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What the fleet runs, and when its faults start.
struct Plan {
    agents: usize,
    tasks: usize,
    deadline: Option<Instant>,
    onset: usize,
    burst_len: usize,
    seed: u64,
}

impl Plan {
    fn onset_of(&self, fault: Fault) -> usize {
        match fault {
            Fault::Slowdown => self.onset,
            Fault::Failures => self.onset + self.onset / 5,
            Fault::TokenBloat => self.onset + self.onset * 2 / 5,
        }
    }
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    if args.agents == 0 || args.agents > 100_000 {
        return Err(Error::InvalidInput {
            field: "agents",
            reason: format!("must be 1 to 100000, got {}", args.agents),
        });
    }
    if args.threads == 0 || args.threads > 64 {
        return Err(Error::InvalidInput { field: "threads", reason: format!("must be 1 to 64, got {}", args.threads) });
    }
    if let Some(d) = args.duration
        && !(d.is_finite() && d > 0.0)
    {
        return Err(Error::InvalidInput {
            field: "duration",
            reason: format!("must be a positive number of seconds, got {d}"),
        });
    }
    let tasks = args.tasks.unwrap_or(if args.duration.is_some() { usize::MAX } else { 200 });
    if tasks == 0 {
        return Err(Error::InvalidInput { field: "tasks", reason: "must be at least 1".into() });
    }
    let config = AceConfig::from_env()?;
    let store = ace::open_store(&args.store)?;
    let location = report::store_location(&args.store, store.backend());
    let before_rows = store.count_metrics()?;
    let clock = ManualClock::new(ace::Clock::now(&ace::SystemClock));
    let start = ace::Clock::now(&clock);
    let ace = Ace::builder().config(config).store_arc(store).clock(clock.clone()).build()?;
    let loaded = ace.stats().baselines;

    let onset = if tasks == usize::MAX { 100 } else { (tasks / 2).max(1) };
    let plan = Plan {
        agents: args.agents,
        tasks,
        deadline: args.duration.map(|d| Instant::now() + Duration::from_secs_f64(d)),
        onset,
        burst_len: 10,
        seed: args.seed,
    };
    if !args.json {
        text::print_header(&plan, ace.store().backend(), &location);
    }

    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let reports: Vec<Result<WorkerReport>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.threads)
            .map(|w| {
                let (ace, plan, progress, clock) = (&ace, &plan, &progress, &clock);
                s.spawn(move || fleet::simulate(ace, plan, w, args.threads, progress, clock, start))
            })
            .collect();
        let total = (tasks != usize::MAX).then(|| (plan.agents * tasks * PROFILES.len()) as u64);
        let (ace, progress, done) = (&ace, &progress, &done);
        let show = s.spawn(move || progress::show(ace, progress, done, total, started, args.json));
        let reports = workers.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect();
        done.store(true, Ordering::Release);
        let _ = show.join();
        reports
    });
    let recording = started.elapsed();
    let reports = reports.into_iter().collect::<Result<Vec<_>>>()?;
    let flush_started = Instant::now();
    ace.flush()?;
    let flush = flush_started.elapsed();
    let total = started.elapsed();

    let mut all = WorkerReport::default();
    for r in reports {
        all.absorb(r);
    }
    let findings =
        Findings::gather(&ace, &plan, &all, loaded, before_rows, location, Walls { recording, flush, total })?;
    ace.close()?;
    if args.json {
        let summary = json::summary(&plan, &all, &findings);
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        text::print_summary(&all, &findings);
    }
    Ok(())
}
