//! Replay speed: `cargo run --profile bench -p agent-ace-core --example replay_speed -- FILE...`
//! replays each file on the full engine and on the scoring-only one of `ace replay`, in turn, 7
//! times each, and prints the best and median events per second of each. The bench profile
//! keeps line tables, so `perf record` on it names the source.

use std::io::BufReader;

use ace_core::AceConfig;
use ace_core::replay::{Run, run, run_full};

type Runner = fn(BufReader<std::fs::File>, &str, AceConfig) -> ace_core::Result<Run>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        let runners: [(&str, Runner); 2] = [("full engine", run_full), ("scoring only", run)];
        let mut speeds = [Vec::new(), Vec::new()];
        for _ in 0..7 {
            for (i, (_, runner)) in runners.iter().enumerate() {
                let file = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
                let r = runner(file, &path, AceConfig::default())?;
                speeds[i].push(r.events as f64 / r.seconds);
            }
        }
        for s in &mut speeds {
            s.sort_by(f64::total_cmp);
        }
        let name = std::path::Path::new(&path).file_name().map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        for (i, (engine, _)) in runners.iter().enumerate() {
            let s = &speeds[i];
            let m = s[s.len() / 2];
            println!(
                "replay {name} {engine:12}: median {m:9.0} events/s (best {:9.0}), {:.2}x the full engine's",
                s[s.len() - 1],
                m / speeds[0][s.len() / 2]
            );
        }
    }
    Ok(())
}
