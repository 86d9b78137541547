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
    /// Serve the live page, /api/, /metrics and /health of the demo's engine on this address
    /// (such as 127.0.0.1:9464) while it runs, and keep serving after the summary until stopped
    /// (Ctrl-C). ACE_METRICS_TOKEN requires a bearer token.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
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
        && !(d.is_finite() && d > 0.0 && deadline(d).is_some())
    {
        return Err(Error::InvalidInput {
            field: "duration",
            reason: format!("must be a positive number of seconds this machine's clock can reach, got {d}"),
        });
    }
    let tasks = args.tasks.unwrap_or(if args.duration.is_some() { usize::MAX } else { 200 });
    if tasks == 0 {
        return Err(Error::InvalidInput { field: "tasks", reason: "must be at least 1".into() });
    }
    let config = AceConfig::from_env()?;
    let store = ace::open_store(&args.store)?;
    let location = report::store_location(&args.store, store.backend());
    let options = Options {
        agents: args.agents,
        tasks,
        duration: args.duration,
        seed: args.seed,
        threads: args.threads,
        serve: args.serve.clone(),
    };
    let (plan, all, findings, served) = execute(&options, config, store, location, !args.json)?;
    if args.json {
        let summary = json::summary(&plan, &all, &findings);
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        text::print_summary(&all, &findings);
    }
    if let Some((_ace, server)) = served {
        // On standard error with --json, so the summary stays one JSON document.
        let line = format!("serving the demo's engine on http://{}/ (Ctrl-C to stop)", server.local_addr());
        if args.json {
            eprintln!("{line}");
        } else {
            println!("\n{line}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        loop {
            std::thread::park();
        }
    }
    Ok(())
}

/// Starts the listener of `ace` on `addr` (with ACE_METRICS_TOKEN as its bearer token).
fn serve(ace: &Ace, addr: &str) -> Result<ace::Server> {
    let mut options = ace::ServeOptions::default();
    if let Ok(token) = std::env::var("ACE_METRICS_TOKEN")
        && !token.is_empty()
    {
        options = options.token(token);
    }
    ace::serve_with(ace, addr, options)
}

/// How to run the fleet.
struct Options {
    agents: usize,
    tasks: usize,
    duration: Option<f64>,
    seed: u64,
    threads: usize,
    /// Serve the engine on this address, and keep it open afterwards.
    serve: Option<String>,
}

/// The engine kept open for `--serve`, and its listener.
type Served = Option<(Ace, ace::Server)>;

/// Runs the fleet into `store` and gathers what was noticed; `show` prints the header and the
/// progress line.
fn execute(
    options: &Options,
    config: AceConfig,
    store: std::sync::Arc<dyn ace::Store>,
    location: String,
    show: bool,
) -> Result<(Plan, WorkerReport, Findings, Served)> {
    let tasks = options.tasks;
    let before_rows = store.count_metrics()?;
    let clock = ManualClock::new(ace::Clock::now(&ace::SystemClock));
    let start = ace::Clock::now(&clock);
    let ace = Ace::builder().config(config).store_arc(store).clock(clock.clone()).build()?;
    let loaded = ace.stats().baselines;
    let server = options.serve.as_deref().map(|addr| serve(&ace, addr)).transpose()?;

    let onset = if tasks == usize::MAX { 100 } else { (tasks / 2).max(1) };
    let plan = Plan {
        agents: options.agents,
        tasks,
        deadline: options.duration.and_then(deadline),
        onset,
        burst_len: 10,
        seed: options.seed,
    };
    if show {
        text::print_header(&plan, ace.store().backend(), &location);
    }

    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let reports: Vec<Result<WorkerReport>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..options.threads)
            .map(|w| {
                let (ace, plan, progress, clock) = (&ace, &plan, &progress, &clock);
                s.spawn(move || fleet::simulate(ace, plan, w, options.threads, progress, clock, start))
            })
            .collect();
        let total = (tasks != usize::MAX).then(|| (plan.agents * tasks * PROFILES.len()) as u64);
        let (ace, progress, done) = (&ace, &progress, &done);
        let shower = s.spawn(move || progress::show(ace, progress, done, total, started, !show));
        let reports = workers.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect();
        done.store(true, Ordering::Release);
        let _ = shower.join();
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
    if let Some(server) = server {
        return Ok((plan, all, findings, Some((ace, server))));
    }
    ace.close()?;
    Ok((plan, all, findings, None))
}

/// The demo's figures that `ace eval` reports.
#[derive(Clone, Debug)]
pub(crate) struct DemoCheck {
    pub(crate) agents: usize,
    pub(crate) tasks_per_agent: usize,
    /// Tasks without an active fault, and those of them that got an intervention.
    pub(crate) healthy_tasks: u64,
    pub(crate) healthy_intervened: u64,
    pub(crate) false_intervention_rate: f64,
    /// Per injected fault: (what, agents, detected, intervened on).
    pub(crate) faults: Vec<(&'static str, usize, usize, usize)>,
    /// The verification burst caught as repeated errors: (agents, detected).
    pub(crate) burst: (usize, usize),
}

impl DemoCheck {
    /// Whether every injected fault was detected on every agent that had it.
    pub(crate) fn all_detected(&self) -> bool {
        self.faults.iter().all(|f| f.2 == f.1) && self.burst.0 == self.burst.1
    }
}

/// Runs the demo's fleet quietly, in memory and on one thread (so the run is the same every
/// time), with `config`.
pub(crate) fn check(agents: usize, tasks: usize, seed: u64, config: AceConfig) -> Result<DemoCheck> {
    let options = Options { agents, tasks, duration: None, seed, threads: 1, serve: None };
    let store = ace::open_store("memory")?;
    let (plan, _, f, _) = execute(&options, config, store, "memory".to_owned(), false)?;
    Ok(DemoCheck {
        agents: plan.agents,
        tasks_per_agent: plan.tasks,
        healthy_tasks: f.healthy_tasks,
        healthy_intervened: f.healthy_intervened,
        false_intervention_rate: f.false_intervention_rate(),
        faults: f.faults.iter().map(|r| (r.fault.describe(), r.agents, r.detected, r.intervened)).collect(),
        burst: (f.burst_agents, f.burst_detected),
    })
}

/// `seconds` from now, or `None` when that is past what a `Duration` or the clock can hold
/// (`--duration 1e300` is refused, not a panic).
fn deadline(seconds: f64) -> Option<Instant> {
    Duration::try_from_secs_f64(seconds).ok().and_then(|d| Instant::now().checked_add(d))
}
