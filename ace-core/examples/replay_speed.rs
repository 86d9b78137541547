//! Replay speed: `cargo run --profile bench -p agent-ace-core --example replay_speed -- FILE...`
//! replays each file on the full engine, prints events per second (best of 5), for profiling
//! the replay path with `perf` (the bench profile keeps line tables).

use std::io::BufReader;

use ace_core::AceConfig;
use ace_core::replay::run;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        let mut best = 0f64;
        for _ in 0..5 {
            let file = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
            let r = run(file, &path, AceConfig::default())?;
            best = best.max(r.events as f64 / r.seconds);
        }
        println!("{path}: {best:.0} events/s (best of 5)");
    }
    Ok(())
}
