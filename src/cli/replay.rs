//! `ace replay FILE... [--json]`: score the engine's interventions on labelled traces.

use std::io::BufReader;
use std::path::PathBuf;

use ace::replay::{ReplayScore, replay};
use ace::{AceConfig, Error};

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// Trace files (JSON Lines).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per file instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &ReplayArgs) -> ace::Result<()> {
    // The engine's settings come from the ACE_* variables, as everywhere else.
    let config = AceConfig::from_env()?;
    for path in &args.files {
        let name = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| Error::InvalidInput { field: "trace", reason: format!("{name}: {e}") })?;
        let score = replay(BufReader::new(file), &name, config.clone())?;
        if args.json {
            let mut v = serde_json::to_value(&score).unwrap_or_default();
            v["file"] = serde_json::Value::String(name);
            println!("{v}");
        } else {
            print_table(&name, &score);
        }
    }
    Ok(())
}

fn print_table(name: &str, s: &ReplayScore) {
    let pct = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2}"));
    println!("{name}");
    println!("  tasks {} (failed {}), flagged {}", s.tasks, s.failed_tasks, s.flagged_tasks);
    println!("  precision {}  recall {}  early hits {}", pct(s.precision), pct(s.recall), pct(s.early_hits));
    let strategies: Vec<String> = s.strategies.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "  interventions {} ({:.2} per task{}{})",
        s.interventions,
        s.interventions_per_task,
        if strategies.is_empty() { "" } else { ": " },
        strategies.join(", ")
    );
    println!("  events {} at {:.0}/s", s.events, s.events_per_second);
}
