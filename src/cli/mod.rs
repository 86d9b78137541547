//! Command-line parsing, logging set-up and dispatch.

mod demo;
mod eval;
mod migrate;
mod patterns;
mod playbook;
mod read;
mod replay;
mod retain;
mod serve;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ace: the in-process oversight engine for AI agents.
#[derive(Debug, Parser)]
#[command(name = "ace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a fleet of agents with injected faults and show what ace notices.
    Demo(demo::DemoArgs),
    /// Every figure ace is judged by: the error miner on Loghub (leave one system out), the
    /// interventions on labelled traces (5 folds, beside the first-error rule), the demo's
    /// false interventions and fault detection.
    Eval(eval::EvalArgs),
    /// The error patterns the store holds, most frequent first (`ace patterns eval`: evaluate
    /// the default miner on labelled logs).
    Patterns(patterns::PatternsArgs),
    /// The newest interventions the store holds, with their reasons and outcomes.
    Interventions(read::ReadArgs),
    /// The newest errors the store holds, with their patterns.
    Errors(read::ReadArgs),
    /// Feed recorded traces (JSON Lines, see TRACE_FORMAT.md) to a fresh engine and score its
    /// interventions against the traces' labels.
    Replay(replay::ReplayArgs),
    /// The store's schema: migrate up, down, or show the version.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Delete the metric, error and intervention records older than --days days from a SQLite
    /// file or PostgreSQL database (baselines, patterns and playbooks are kept).
    Retain(retain::RetainArgs),
    /// Playbooks in the store: export, import, stats, rollback.
    #[command(subcommand)]
    Playbook(playbook::PlaybookCommand),
    /// Serve the engine's /metrics and /health (configured from DATABASE_URL, REDIS_URL and
    /// ACE_*; ACE_METRICS_TOKEN requires a bearer token).
    Serve(serve::ServeArgs),
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = init_logging() {
        eprintln!("ace: {message}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Patterns(args) => match &args.command {
            Some(cmd) => patterns::run(cmd),
            None => read::run(read::What::Patterns, &args.read),
        },
        Command::Interventions(args) => read::run(read::What::Interventions, &args),
        Command::Errors(args) => read::run(read::What::Errors, &args),
        Command::Replay(args) => replay::run(&args),
        Command::Playbook(cmd) => playbook::run(&cmd),
        Command::Migrate(cmd) => migrate::run(&cmd),
        Command::Retain(args) => retain::run(&args),
        Command::Serve(args) => serve::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ace: error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

/// `LOG_LEVEL` (default `warn`, or any `tracing` filter such as `ace_core=debug`) and
/// `LOG_FORMAT` (`text`, the default, or `json`); logs go to standard error.
fn init_logging() -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "warn".into()).to_ascii_lowercase();
    let level = if level == "warning" {
        "warn".to_owned()
    } else if level == "critical" {
        "error".to_owned()
    } else {
        level
    };
    let filter = EnvFilter::try_new(&level).map_err(|e| format!("invalid LOG_LEVEL {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match std::env::var("LOG_FORMAT").unwrap_or_default().to_ascii_lowercase().as_str() {
        "json" => builder.json().init(),
        "" | "text" => builder.init(),
        other => return Err(format!("invalid LOG_FORMAT {other:?}: use text or json")),
    }
    Ok(())
}
