//! `ace replay FILE... [--json] [--tasks] [--config FILE] [--set KEY=VALUE]...`: score the engine's
//! interventions on labelled traces.

use std::io::BufReader;
use std::path::PathBuf;

use ace::replay::{ReplayScore, replay};
use ace::{AceConfig, Error};

/// The read buffer of a trace file: small enough that its pages, faulted in by the first read,
/// are reused by every later one and the lines scanned stay in the core's cache (a buffer the
/// size of the file would fault in a page per 4 KiB read and scan from further out).
const READ_BUFFER: usize = 64 << 10;

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// Trace files (JSON Lines).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per file instead of a table.
    #[arg(long)]
    json: bool,
    /// Also one JSON line per labelled task (after its file's summary): whether it failed, was
    /// flagged, the signals raised for it and what the interventions acted on.
    #[arg(long)]
    tasks: bool,
    /// Settings as `ACE_*=value` lines (`#` starts a comment), over the environment's.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// One setting, `ACE_*=value`, over the config file's and the environment's (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// The settings: the environment, then the config file, then `--set`.
fn settings(args: &ReplayArgs) -> ace::Result<AceConfig> {
    layered(args.config.as_deref(), &args.set)
}

/// The environment's settings, then those of the `config` file (`ACE_*=value` lines), then
/// each of `set` (`ACE_*=value`).
pub(crate) fn layered(config: Option<&std::path::Path>, set: &[String]) -> ace::Result<AceConfig> {
    let mut over: Vec<(String, String)> = Vec::new();
    let mut parse = |line: &str, origin: &str| -> ace::Result<()> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::InvalidInput {
                field: "config",
                reason: format!("{origin}: expected KEY=VALUE, got {line:?}"),
            });
        };
        let key = key.trim();
        if !ace::config::ENV_VARS.contains(&key) {
            return Err(Error::InvalidInput { field: "config", reason: format!("{origin}: unknown setting {key:?}") });
        }
        let value = value.split_once(" #").map_or(value, |(v, _)| v);
        over.push((key.to_owned(), value.trim().trim_matches('"').to_owned()));
        Ok(())
    };
    if let Some(path) = config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidInput { field: "config", reason: format!("{}: {e}", path.display()) })?;
        for (i, line) in text.lines().enumerate() {
            parse(line, &format!("{} line {}", path.display(), i + 1))?;
        }
    }
    for item in set {
        parse(item, "--set")?;
    }
    AceConfig::from_lookup(|key| {
        over.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone()).or_else(|| std::env::var(key).ok())
    })
}

pub(crate) fn run(args: &ReplayArgs) -> ace::Result<()> {
    // The engine's settings come from the ACE_* variables, as everywhere else, then the options.
    let config = settings(args)?;
    for path in &args.files {
        let name = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| Error::InvalidInput { field: "trace", reason: format!("{name}: {e}") })?;
        let score = replay(BufReader::with_capacity(READ_BUFFER, file), &name, config.clone())?;
        if args.json {
            let mut v = serde_json::to_value(&score).unwrap_or_default();
            v["file"] = serde_json::Value::String(name);
            println!("{v}");
        } else {
            print_table(&name, &score);
        }
        if args.tasks {
            for t in &score.per_task {
                println!("{}", serde_json::to_string(t).unwrap_or_default());
            }
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
