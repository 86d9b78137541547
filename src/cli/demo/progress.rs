//! The progress line on stderr while the fleet runs: rewritten in place on a terminal, one line
//! every 2 s otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ace::Ace;

use super::text::{group, human};

pub(super) fn show(
    ace: &Ace,
    progress: &AtomicU64,
    done: &AtomicBool,
    total: Option<u64>,
    started: Instant,
    quiet: bool,
) {
    if quiet {
        return;
    }
    let tty = std::io::stderr().is_terminal();
    let tick = if tty { Duration::from_millis(200) } else { Duration::from_secs(2) };
    let mut last = Instant::now();
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() < tick {
            continue;
        }
        last = Instant::now();
        let n = progress.load(Ordering::Relaxed);
        let stats = ace.stats();
        let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let pct = total.map_or(String::new(), |t| format!("{:>3.0}% ", 100.0 * n as f64 / t.max(1) as f64));
        let line = format!(
            "  {pct}{} events  {}/s  stored {}  signals {}",
            group(n),
            human(rate),
            group(stats.persisted),
            stats.signals
        );
        if tty {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
    }
    if tty {
        eprint!("\r{}\r", " ".repeat(90));
    }
}
