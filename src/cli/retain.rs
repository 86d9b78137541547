//! `ace retain --days N`: deletes the metric, error and intervention records older than N days
//! from a SQLite file or a PostgreSQL database, the way `SqliteStore::retain` and
//! `PgStore::retain` do (baselines, patterns, playbooks and what was learnt are kept).

use clap::Args;

use super::migrate::{Missing, Opened, StoreArg, open};

#[derive(Debug, Args)]
pub(crate) struct RetainArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Keep this many days of records (1 to 36500); older ones are deleted.
    #[arg(long)]
    days: u32,
    /// Print `{"deleted":N,"days":D}` instead of a sentence.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &RetainArgs) -> ace::Result<()> {
    // A store that is not there has nothing to delete: say so rather than create it.
    let deleted = match open(&args.store, Missing::Refuse, "ace retain")? {
        Opened::Sqlite(s) => s.retain(args.days)?,
        Opened::Postgres(s) => s.retain(args.days)?,
    };
    if args.json {
        println!("{}", serde_json::json!({ "deleted": deleted, "days": args.days }));
    } else {
        println!("deleted {deleted} records older than {} days", args.days);
    }
    Ok(())
}
