//! A fleet at a steady pace: CPU share and memory of one process running ace for many agents.
//!
//! Targets (issue 10): at most 1% of one core per 100 agents at 10 stage events per agent per
//! second, and at most 100 MB resident for 10,000 agents.
//!
//! ```text
//! cargo bench --bench scale                                    # 10,000 agents, 10 ev/s, 60 s
//! cargo bench --bench scale -- --agents 1000 --seconds 20
//! cargo bench --bench scale -- --seconds 1800 --every 60       # the soak (scripts/soak.sh)
//! cargo bench --bench scale -- --sqlite-schema 4               # the metrics indexed by agent and stage
//! cargo bench --bench scale -- --agents 1000 --lock-seconds 5  # a second connection holds the file
//! cargo bench --bench scale -- --db /tmp/scale.db                # keep the file (to inspect or time)
//! cargo bench --bench scale -- --seconds 180 --malloc-trim         # resident size without glibc's retention
//! ```
//!
//! With SQLite it also reports the file's bytes per stored record, the records spilled and
//! replayed, and the recording call's latency (p50, p99, p99.9 to within 1/64, and max, over one
//! call in 16, counted in buckets allocated once so that they do not grow the heap over a run).
//! `--lock-seconds N` has a second connection hold the file in `BEGIN EXCLUSIVE` for N seconds
//! right after warm-up (a store that is slow, not down: the writer spills meanwhile).
//!
//! Every agent runs tasks of four stages (`planning`, `execution`, `reflection`,
//! `verification`) with jittered durations and token metrics; 1% of stages fail and record an
//! error. Events are paced in 20 ms ticks over `--threads` recording threads, and the engine
//! persists to a real SQLite file in a temporary directory (`--store sqlite`, the default) or to
//! a store that discards (`--store discard`: ace's own cost, without a database).
//!
//! CPU is reported twice, from the kernel's precise clocks (`CLOCK_PROCESS_CPUTIME_ID`,
//! `CLOCK_THREAD_CPUTIME_ID`):
//! - **the whole process**: the recording threads, the writer, SQLite and this driver, including
//!   the recording threads' 50 wake-ups a second from their sleeps between ticks;
//! - **ace's share**, which the target is checked against: the whole process less the driver's
//!   own parts, that is less this main thread and less the recording threads' time outside their
//!   batches of calls (waking up and going back to sleep). What stays is the time inside the
//!   batches (ace's calls, plus naming the task and drawing a random number per event) and every
//!   thread ace runs (the writer, SQLite).
//!
//! At 100 agents the wake-ups alone cost about as much as ace (docs/benchmarks.md). Memory is
//! the resident set (`VmRSS`, peak `VmHWM`). The first `--warmup` seconds (baselines warming,
//! buffers growing) are left out of the CPU figures.
//! With `--every N` a line is printed every N seconds, and the run ends with whether memory
//! stayed flat (the last resident size within 10% of the one right after warm-up).
//! Beside the resident size, each line and the result give the heap in use (glibc's `mallinfo2`:
//! what the allocator handed out and did not get back), which tells what the process holds from
//! freed memory the allocator keeps. `--malloc-trim` has the main thread call `malloc_trim(0)`
//! every 200 ms, handing the allocator's wholly free pages back to the system.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ace::{Ace, AceConfig, SqliteStore, Store};

struct Args {
    agents: usize,
    rate: f64,
    seconds: f64,
    warmup: f64,
    threads: usize,
    every: f64,
    store: String,
    sqlite_schema: Option<i64>,
    lock_seconds: f64,
    db: Option<std::path::PathBuf>,
    malloc_trim: bool,
}

fn parse() -> Args {
    let mut a = Args {
        agents: 10_000,
        rate: 10.0,
        seconds: 60.0,
        warmup: 10.0,
        threads: 2,
        every: 10.0,
        store: "sqlite".into(),
        sqlite_schema: None,
        lock_seconds: 0.0,
        db: None,
        malloc_trim: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // cargo bench passes --bench to every bench binary.
        if flag == "--bench" {
            continue;
        }
        if flag == "--malloc-trim" {
            a.malloc_trim = true;
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        if flag == "--store" {
            assert!(value == "sqlite" || value == "discard", "--store sqlite|discard");
            a.store = value;
            continue;
        }
        if flag == "--db" {
            a.db = Some(value.into());
            continue;
        }
        let num = || value.parse::<f64>().unwrap_or_else(|_| panic!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--agents" => a.agents = num() as usize,
            "--rate" => a.rate = num(),
            "--seconds" => a.seconds = num(),
            "--warmup" => a.warmup = num(),
            "--threads" => a.threads = (num() as usize).max(1),
            "--every" => a.every = num(),
            "--sqlite-schema" => a.sqlite_schema = Some(num() as i64),
            "--lock-seconds" => a.lock_seconds = num(),
            other => panic!(
                "unknown flag {other} (--agents --rate --seconds --warmup --threads --every --store --sqlite-schema --lock-seconds --db --malloc-trim)"
            ),
        }
    }
    assert!(a.agents > 0 && a.rate > 0.0 && a.seconds > a.warmup, "need agents, a rate and seconds > warmup");
    a
}

fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec and both clocks exist on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock})");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// CPU seconds of the whole process (all threads, user and system), to the nanosecond.
fn process_cpu() -> f64 {
    clock_seconds(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU seconds of the calling thread.
fn thread_cpu() -> f64 {
    clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// A recording thread's CPU, published after each batch for the driver to read: the thread's
/// whole CPU time and the part spent inside batches, in nanoseconds.
#[derive(Default)]
struct ThreadCpu {
    total: AtomicU64,
    inside: AtomicU64,
}

/// Driver CPU so far (seconds): this thread's, plus the recording threads' outside batches.
fn driver_cpu(threads: &[Arc<ThreadCpu>]) -> f64 {
    let outside: u64 =
        threads.iter().map(|t| t.total.load(Ordering::Relaxed).saturating_sub(t.inside.load(Ordering::Relaxed))).sum();
    thread_cpu() + outside as f64 / 1e9
}

/// (`VmRSS`, `VmHWM`) in MB.
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Has glibc's allocator give the pages it holds free back to the system (`--malloc-trim`), so
/// the resident size follows what the process holds rather than what it held at its peak.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory() {
    // SAFETY: `malloc_trim` takes no pointers; glibc locks each arena while it trims it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}

/// What the allocator has handed out and not had back, in MB (glibc's `mallinfo2`, over all
/// arenas): the heap the process holds, apart from what the allocator keeps free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use_mb() -> Option<f64> {
    // SAFETY: `mallinfo2` takes no arguments and returns a plain struct.
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks + info.hblkhd) as f64 / 1e6)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use_mb() -> Option<f64> {
    None
}

/// Recording-call latencies in a fixed number of buckets (log-linear: 64 buckets per power of
/// two, so a quantile is within 1/64 of the true value), allocated once: a run of any length
/// holds the same memory for them, and the heap the bench reports is the engine's.
struct Latencies {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Latencies {
    const SUB: u32 = 6;

    fn new() -> Self {
        Latencies { buckets: vec![0; (64 << Self::SUB) as usize], count: 0, max: 0 }
    }

    fn bucket(ns: u64) -> usize {
        if ns < 1 << Self::SUB {
            return ns as usize;
        }
        let power = 63 - ns.leading_zeros();
        let within = (ns >> (power - Self::SUB)) & ((1 << Self::SUB) - 1);
        (((power - Self::SUB + 1) << Self::SUB) as u64 + within) as usize
    }

    /// The smallest value of a bucket (the inverse of [`Latencies::bucket`]).
    fn low(bucket: usize) -> u64 {
        let (group, within) = (bucket as u64 >> Self::SUB, bucket as u64 & ((1 << Self::SUB) - 1));
        if group == 0 { within } else { ((1 << Self::SUB) + within) << (group - 1) }
    }

    fn add(&mut self, ns: u64) {
        self.buckets[Self::bucket(ns)] += 1;
        self.count += 1;
        self.max = self.max.max(ns);
    }

    fn merge(&mut self, other: &Latencies) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (the low end of its bucket), `None` before any call is timed.
    fn at(&self, q: f64) -> Option<u64> {
        let rank = ((self.count as f64 * q) as u64).min(self.count.checked_sub(1)?);
        let mut seen = 0;
        self.buckets
            .iter()
            .position(|&n| {
                seen += n;
                seen > rank
            })
            .map(Self::low)
    }
}

const STAGES: [(&str, f64); 4] = [("planning", 1.2), ("execution", 4.0), ("reflection", 0.8), ("verification", 1.5)];

fn main() {
    let args = parse();
    let dir = tempfile::tempdir().unwrap();
    let builder = Ace::builder().config(AceConfig::default());
    let db = args.db.clone().unwrap_or_else(|| dir.path().join("scale.db"));
    let builder = if args.store == "sqlite" {
        let store = SqliteStore::open(&db).unwrap();
        if let Some(v) = args.sqlite_schema {
            store.migrate_down(v).unwrap();
        }
        println!("sqlite schema version {}", store.schema_version().unwrap());
        builder.store(store)
    } else {
        builder.store(support::NullStore::default())
    };
    let ace = Arc::new(builder.build().unwrap());
    let agents: Arc<Vec<String>> = Arc::new((0..args.agents).map(|i| format!("agent-{i:05}")).collect());
    let events = Arc::new(AtomicU64::new(0));
    let interventions = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tick = Duration::from_millis(20);
    let per_tick = args.rate * tick.as_secs_f64();
    println!(
        "ace scale: {} agents x {} stage events/s = {:.0} events/s on {} threads, {} s ({} s warm-up), {} store",
        args.agents,
        args.rate,
        args.agents as f64 * args.rate,
        args.threads,
        args.seconds,
        args.warmup,
        args.store
    );
    let cpus: Vec<Arc<ThreadCpu>> = (0..args.threads).map(|_| Arc::default()).collect();
    let measuring = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..args.threads)
        .map(|t| {
            let measuring = measuring.clone();
            let (ace, agents, events, stop) = (ace.clone(), agents.clone(), events.clone(), stop.clone());
            let interventions = interventions.clone();
            let cpu = cpus[t].clone();
            let threads = args.threads;
            std::thread::spawn(move || {
                let mine: Vec<usize> = (t..agents.len()).step_by(threads).collect();
                let mut step = vec![0u64; mine.len()];
                let mut task = String::new();
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ t as u64;
                let mut owed = 0.0;
                let mut cursor = 0;
                let mut next = Instant::now();
                let mut inside = 0.0;
                let mut latencies = Latencies::new();
                let mut calls = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let measure = measuring.load(Ordering::Relaxed);
                    let batch_start = thread_cpu();
                    owed += per_tick * mine.len() as f64;
                    let n = owed as usize;
                    owed -= n as f64;
                    for _ in 0..n {
                        let slot = cursor % mine.len();
                        cursor += 1;
                        let agent = &agents[mine[slot]];
                        let s = step[slot];
                        step[slot] += 1;
                        let (stage, median) = STAGES[(s % 4) as usize];
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let jitter = 0.75 + (rng % 1000) as f64 / 2000.0;
                        let ok = !rng.is_multiple_of(100);
                        task.clear();
                        use std::fmt::Write;
                        let _ = write!(task, "task-{}", s / 4);
                        calls = calls.wrapping_add(1);
                        let timed = (measure && calls.is_multiple_of(16)).then(Instant::now);
                        let report = ace
                            .record_stage_with(
                                agent,
                                &task,
                                stage,
                                median * jitter,
                                ok,
                                &[("tokens_in", 900.0 * jitter)],
                            )
                            .unwrap();
                        if let Some(t) = timed {
                            latencies.add(t.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64);
                        }
                        let mut acted = report.intervention.is_some();
                        if !ok {
                            let report = ace
                                .record_error(
                                    agent,
                                    &task,
                                    stage,
                                    "TimeoutError",
                                    "model call timed out after 30 s",
                                    None,
                                )
                                .unwrap();
                            acted |= report.intervention.is_some();
                        }
                        if acted {
                            interventions.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    events.fetch_add(n as u64, Ordering::Relaxed);
                    let batch_end = thread_cpu();
                    inside += batch_end - batch_start;
                    cpu.inside.store((inside * 1e9) as u64, Ordering::Relaxed);
                    cpu.total.store((batch_end * 1e9) as u64, Ordering::Relaxed);
                    next += tick;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
                latencies
            })
        })
        .collect();

    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let (cpu0, driver0, t0, ev0) = (process_cpu(), driver_cpu(&cpus), Instant::now(), events.load(Ordering::Relaxed));
    let rss_after_warmup = memory_mb().0;
    let heap_after_warmup = heap_in_use_mb();
    measuring.store(true, Ordering::Relaxed);
    let locker = (args.lock_seconds > 0.0 && args.store == "sqlite").then(|| {
        let hold = Duration::from_secs_f64(args.lock_seconds);
        let (locked, holder) = support::hold_exclusive(&db, hold);
        locked.recv().unwrap();
        println!("  (a second connection holds the file for {} s)", hold.as_secs_f64());
        holder
    });
    let mut last_report = Instant::now();
    while start.elapsed().as_secs_f64() < args.seconds {
        std::thread::sleep(Duration::from_millis(200));
        if args.malloc_trim {
            release_freed_memory();
        }
        if args.every > 0.0 && last_report.elapsed().as_secs_f64() >= args.every {
            last_report = Instant::now();
            let wall = t0.elapsed().as_secs_f64();
            let (rss, hwm) = memory_mb();
            let process = process_cpu() - cpu0;
            println!(
                "  t={:>6.0}s  events/s {:>8.0}  cpu {:>5.1}% of a core (ace {:>5.1}%)  rss {:>6.1} MB (peak {:.1}, heap in use {})  buffered {}  dropped {}  open tasks {}  interventions {}",
                start.elapsed().as_secs_f64(),
                (events.load(Ordering::Relaxed) - ev0) as f64 / wall,
                process / wall * 100.0,
                (process - (driver_cpu(&cpus) - driver0)) / wall * 100.0,
                rss,
                hwm,
                heap_in_use_mb().map_or_else(|| "-".to_string(), |h| format!("{h:.1}")),
                ace.stats().buffered,
                ace.stats().dropped,
                ace.stats().open_tasks,
                interventions.load(Ordering::Relaxed)
            );
        }
    }
    let (cpu1, driver1) = (process_cpu(), driver_cpu(&cpus));
    let (wall, ev1) = (t0.elapsed().as_secs_f64(), events.load(Ordering::Relaxed));
    let (rss, hwm) = memory_mb();
    let heap = heap_in_use_mb();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Latencies::new();
    for w in workers {
        latencies.merge(&w.join().unwrap());
    }
    if let Some(l) = locker {
        l.join().unwrap();
    }
    let behind = ace.stats();
    while ace.flush().is_err() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = ace.stats();
    let share = (cpu1 - cpu0) / wall * 100.0;
    let ace_share = ((cpu1 - cpu0) - (driver1 - driver0)) / wall * 100.0;
    let hundreds = args.agents as f64 / 100.0;
    let per_100 = ace_share / hundreds;
    let flat = rss <= rss_after_warmup * 1.10;
    println!("result:");
    println!("  events/s           {:.0} (asked {:.0})", (ev1 - ev0) as f64 / wall, args.agents as f64 * args.rate);
    println!(
        "  cpu                {share:.1}% of one core over {wall:.0} s (whole process: {:.3}% per 100 agents)",
        share / hundreds
    );
    println!("  cpu, ace's share   {ace_share:.1}% of one core (less the driver's sleeps, wake-ups and main thread)");
    println!(
        "  cpu per 100 agents {per_100:.3}% of one core, ace's share (target <= 1% at 10 ev/s: {})",
        if per_100 <= 1.0 { "met" } else { "missed" }
    );
    println!(
        "  resident           {rss:.1} MB, peak {hwm:.1} MB (target <= 100 MB for 10,000 agents: {})",
        if hwm <= 100.0 { "met" } else { "missed" }
    );
    println!(
        "  memory flat        {} ({rss_after_warmup:.1} MB after warm-up, {rss:.1} MB at the end)",
        if flat { "yes" } else { "no" }
    );
    if let (Some(before), Some(after)) = (heap_after_warmup, heap) {
        println!("  heap in use        {before:.1} MB after warm-up, {after:.1} MB at the end (glibc's mallinfo2)");
    }
    println!(
        "  records            {} persisted, {} dropped, {} buffered when the load stopped",
        stats.persisted, stats.dropped, behind.buffered
    );
    let text = ace.metrics_text();
    let counter = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            .abs()
    };
    println!(
        "  spilled            {} records ({} replayed), {} dropped in all reasons",
        counter("ace_records_spilled_total"),
        counter("ace_records_replayed_total"),
        counter("ace_records_dropped_total")
    );
    for line in text.lines().filter(|l| l.starts_with("ace_records_dropped_total{") && !l.ends_with(" 0")) {
        println!("  dropped by reason  {line}");
    }
    if let (Some(p50), Some(p99), Some(p999)) = (latencies.at(0.5), latencies.at(0.99), latencies.at(0.999)) {
        println!(
            "  record call        p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.1} us ({} calls timed)",
            p50 as f64 / 1e3,
            p99 as f64 / 1e3,
            p999 as f64 / 1e3,
            latencies.max as f64 / 1e3,
            latencies.count
        );
    }
    ace.close().unwrap();
    if args.store == "sqlite" {
        // After close: the last connection checkpoints the write-ahead log into the file.
        let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
        let bytes: u64 = [&db, &wal].iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        let stored = SqliteStore::open(&db).unwrap().count_metrics().unwrap();
        println!(
            "  sqlite file        {:.1} MB for {stored} stage records: {:.0} bytes a record",
            bytes as f64 / 1e6,
            bytes as f64 / stored.max(1) as f64
        );
    }
}
