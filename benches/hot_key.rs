//! One hot (agent, stage) recorded as fast as Rust can call, from several threads, into a
//! store: how many records the engine took, stored (directly or through the spill files) and
//! dropped. The Rust twin of `benches/python/hot_key.py`.
//!
//! `cargo bench --bench hot_key -- [CALLS_PER_THREAD] [THREADS] [STORE]`
//! (defaults 2000000 1 sqlite; STORE is `sqlite` for a file in a temporary directory with a
//! spill directory next to it, a `sqlite://` URL, or `memory`)

use std::time::Instant;

fn main() -> ace::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let calls: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let store = args.get(2).map_or("sqlite", String::as_str);
    let dir = tempfile::tempdir().map_err(|e| ace::Error::Internal(e.to_string()))?;
    let url = match store {
        "memory" => "memory".to_owned(),
        url if url.starts_with("sqlite://") => url.to_owned(),
        _ => format!("sqlite://{}/hot.db", dir.path().display()),
    };
    let spill = dir.path().join("spill").display().to_string();
    let eng = ace::open(&url, [("spill_dir", spill.as_str())])?;
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..calls {
                    let _ = eng.record_stage("agent-1", "task-1", "planning", 0.5, true);
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    eng.flush()?;
    let stats = eng.stats();
    let total = (calls * threads) as f64;
    let text = eng.metrics_text();
    let spilled = text
        .lines()
        .find(|l| l.starts_with("ace_records_spilled_total"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("0");
    println!(
        "{store}: {threads} x {calls} calls in {elapsed:.2} s ({:.2} M/s): recorded {}, stored {} ({spilled} by way of the spill files), dropped {} ({:.1}%)",
        total / elapsed / 1e6,
        stats.recorded,
        stats.persisted,
        stats.dropped,
        100.0 * stats.dropped as f64 / total
    );
    eng.close()?;
    Ok(())
}
