//! `ace retain --days N`: deletes the metric, error and intervention records older than N days
//! from a SQLite file or a PostgreSQL database, the way `SqliteStore::retain` and
//! `PgStore::retain` do (baselines, patterns, playbooks and what was learnt are kept).

use ace::Error;
use clap::Args;

use super::migrate::{Missing, Opened, StoreArg, open};

#[derive(Debug, Args)]
pub(crate) struct RetainArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Keep this many days of records (1 to 36500); older ones are deleted.
    #[arg(long)]
    days: u32,
    /// Print `{"days":D,"deleted":N}` instead of a sentence.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &RetainArgs) -> ace::Result<()> {
    // A store that is not there has nothing to delete: say so rather than create it.
    let store = open(&args.store, Missing::Refuse, "ace retain")?;
    let version = match &store {
        Opened::Sqlite(s) => s.schema_version()?,
        Opened::Postgres(s) => s.schema_version()?,
    };
    if version == 0 {
        return Err(Error::InvalidInput {
            field: "store",
            reason: "the store holds no ace tables (nothing was ever recorded to it)".into(),
        });
    }
    let deleted = match &store {
        Opened::Sqlite(s) => s.retain(args.days)?,
        Opened::Postgres(s) => s.retain(args.days)?,
    };
    if args.json {
        println!("{}", serde_json::json!({ "days": args.days, "deleted": deleted }));
    } else {
        let unit = if args.days == 1 { "day" } else { "days" };
        println!("deleted {deleted} records older than {} {unit}", args.days);
    }
    Ok(())
}
