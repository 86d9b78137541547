//! Replay speed: `cargo run --profile bench -p agent-ace-core --example replay_speed --
//! [--scoring] [--copies N] FILE...` replays each file on the full engine and on the
//! scoring-only one of `ace replay`, in turn, 7 times each, and prints the best and median
//! events per second of each. The bench profile keeps line tables, so `perf record` on it names
//! the source.
//!
//! `--scoring`: only the scoring-only engine runs (to profile it alone). `--copies N`: the file
//! is replayed as N copies of itself one after another, each copy's task names suffixed
//! `-c{copy}` and its times shifted (as `benches/replay.rs` makes its trace), from memory.

use std::io::BufReader;

use ace_core::AceConfig;
use ace_core::replay::{run, run_full};

#[path = "common/copies.rs"]
mod copies;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let scoring = args.first().is_some_and(|a| a == "--scoring");
    if scoring {
        args.remove(0);
    }
    let mut copies = 1;
    if args.first().is_some_and(|a| a == "--copies") {
        copies = args.get(1).and_then(|n| n.parse().ok()).ok_or("--copies takes a number")?;
        args.drain(..2);
    }
    let all = [("full engine", false), ("scoring only", true)];
    let runners = if scoring { &all[1..] } else { &all[..] };
    for path in args {
        let text = std::fs::read_to_string(&path)?;
        let text = if copies > 1 { copies::copied(&text, copies)? } else { text };
        let mut speeds = vec![Vec::new(); runners.len()];
        for _ in 0..7 {
            for (i, &(_, lean)) in runners.iter().enumerate() {
                let reader = BufReader::with_capacity(1 << 16, text.as_bytes());
                let r = if lean {
                    run(reader, &path, AceConfig::default())
                } else {
                    run_full(reader, &path, AceConfig::default())
                }?;
                speeds[i].push(r.events as f64 / r.seconds);
            }
        }
        for s in &mut speeds {
            s.sort_by(f64::total_cmp);
        }
        let mut name =
            std::path::Path::new(&path).file_name().map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        if copies > 1 {
            name += &format!(" x{copies}");
        }
        for (i, (engine, _)) in runners.iter().enumerate() {
            let s = &speeds[i];
            let m = s[s.len() / 2];
            print!("replay {name} {engine:12}: median {m:9.0} events/s (best {:9.0})", s[s.len() - 1]);
            if !scoring {
                print!(", {:.2}x the full engine's", m / speeds[0][s.len() / 2]);
            }
            println!();
        }
    }
    Ok(())
}
