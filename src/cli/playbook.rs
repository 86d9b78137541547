//! `ace playbook export|import|stats|rollback|history`: a domain's playbook in the store, by hand.

use std::path::PathBuf;

use ace::playbook::Trust;
use ace::{Ace, Error};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub(crate) enum PlaybookCommand {
    /// Print a domain's playbook as JSON (or the ACE text format).
    Export(ExportArgs),
    /// Replace a domain's playbook with a JSON export or an ACE text file (a new version).
    Import(ImportArgs),
    /// Version, content hash and bullets by stage and section, as JSON.
    Stats(DomainArgs),
    /// Restore a domain as it was at a version (recorded as a new version).
    Rollback(RollbackArgs),
    /// Every version of a domain's log (chain verified) as JSON: what each did, and why for an
    /// import or rollback.
    History(DomainArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DomainArgs {
    /// The domain (tenant).
    domain: String,
    /// The store: a SQLite file path, sqlite://PATH, or memory.
    #[arg(long, default_value = "ace.db")]
    store: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Json,
    Text,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    target: DomainArgs,
    /// `json` (the default; re-importable) or `text` (`[id] helpful=X harmful=Y :: content`).
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    target: DomainArgs,
    /// The file to import.
    file: PathBuf,
    /// `json` or `text`; by default from the file's extension (`.json` is JSON, anything else text).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Import the content as it is: stages and feedback counters kept, a JSON export's digest
    /// not required to match. Without it a JSON export whose digest does not match is refused
    /// and every bullet enters at `shadow` with no feedback counted. The log records which.
    #[arg(long)]
    trust: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    target: DomainArgs,
    /// The version to restore (see `stats`).
    version: u64,
}

fn engine(args: &DomainArgs) -> ace::Result<Ace> {
    let store = ace::open_store(&args.store)?;
    Ace::builder().store_arc(store).build()
}

fn print_json(value: Result<serde_json::Value, serde_json::Error>) -> ace::Result<()> {
    let text = value.and_then(|v| serde_json::to_string_pretty(&v)).map_err(|e| Error::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

pub(crate) fn run(cmd: &PlaybookCommand) -> ace::Result<()> {
    match cmd {
        PlaybookCommand::Export(args) => {
            let ace = engine(&args.target)?;
            let pb = ace.playbooks();
            match args.format {
                Format::Json => println!("{}", pb.export_json(&args.target.domain)?),
                Format::Text => print!("{}", pb.export_text(&args.target.domain)?),
            }
            ace.close()
        }
        PlaybookCommand::Import(args) => {
            let text = std::fs::read_to_string(&args.file)
                .map_err(|e| Error::InvalidInput { field: "file", reason: format!("{}: {e}", args.file.display()) })?;
            let format = args.format.unwrap_or(if args.file.extension().is_some_and(|e| e == "json") {
                Format::Json
            } else {
                Format::Text
            });
            let ace = engine(&args.target)?;
            let pb = ace.playbooks();
            let trust = Trust::from_flag(args.trust);
            let n = match format {
                Format::Json => pb.import_json(&args.target.domain, &text, trust)?,
                Format::Text => pb.import_text(&args.target.domain, &text, trust)?,
            };
            eprintln!("imported {n} bullets into {}", args.target.domain);
            print_json(serde_json::to_value(pb.stats(&args.target.domain)?))?;
            ace.close()
        }
        PlaybookCommand::Stats(args) => {
            let ace = engine(args)?;
            print_json(serde_json::to_value(ace.playbooks().stats(&args.domain)?))?;
            ace.close()
        }
        PlaybookCommand::Rollback(args) => {
            let ace = engine(&args.target)?;
            print_json(serde_json::to_value(ace.playbooks().rollback(&args.target.domain, args.version)?))?;
            ace.close()
        }
        PlaybookCommand::History(args) => {
            let ace = engine(args)?;
            print_json(serde_json::to_value(ace.playbooks().history(&args.domain)?))?;
            ace.close()
        }
    }
}
