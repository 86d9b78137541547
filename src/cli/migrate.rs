//! `ace migrate up|down|status`: the store's schema, by hand.

use ace::{Error, PgOptions, PgStore, SqliteStore};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCommand {
    /// Apply every pending migration (opening a store does this too).
    Up(StoreArg),
    /// Revert migrations down to a version (0: drop every ace table).
    Down(DownArgs),
    /// Print the schema version.
    Status(StoreArg),
}

#[derive(Debug, Args)]
pub(crate) struct StoreArg {
    /// The store: a SQLite file path, sqlite://PATH or postgresql://... (default: DATABASE_URL,
    /// else ace.db).
    #[arg(long)]
    store: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The version to go down to.
    #[arg(long)]
    to: i64,
}

/// A SQL store opened by hand (`ace migrate`, `ace retain`).
pub(crate) enum Opened {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Whether opening may create the store: a new SQLite file is what `ace migrate` starts from,
/// and a typo for `ace retain`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Create,
    Refuse,
}

/// Opens the store `arg` names without migrating it; `what` names the command in errors.
pub(crate) fn open(arg: &StoreArg, missing: Missing, what: &str) -> ace::Result<Opened> {
    let url = arg
        .store
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| ace::DEFAULT_DATABASE_URL.to_owned());
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            Ok(Opened::Postgres(PgStore::connect(&url, PgOptions::default().max_connections(2).migrate(false))?))
        }
        Some("sqlite") | None => {
            let path = url.strip_prefix("sqlite://").unwrap_or(&url);
            if missing == Missing::Refuse && !std::path::Path::new(path).exists() {
                return Err(Error::InvalidInput { field: "store", reason: format!("no SQLite file at {path}") });
            }
            Ok(Opened::Sqlite(SqliteStore::open_unmigrated(path)?))
        }
        Some(other) => Err(Error::InvalidInput {
            field: "store",
            reason: format!("`{what}` works on sqlite and postgresql stores, not {other:?}"),
        }),
    }
}

pub(crate) fn run(cmd: &MigrateCommand) -> ace::Result<()> {
    let (arg, action) = match cmd {
        MigrateCommand::Up(a) => (a, None),
        MigrateCommand::Down(d) => (&d.store, Some(d.to)),
        MigrateCommand::Status(a) => (a, Some(-1)),
    };
    let store = open(arg, Missing::Create, "ace migrate")?;
    let (version, ran) = match (&store, action) {
        (Opened::Sqlite(s), None) => (None, s.migrate_up()?),
        (Opened::Postgres(s), None) => (None, s.migrate_up()?),
        (Opened::Sqlite(s), Some(-1)) => (Some(s.schema_version()?), 0),
        (Opened::Postgres(s), Some(-1)) => (Some(s.schema_version()?), 0),
        (Opened::Sqlite(s), Some(to)) => (None, s.migrate_down(to)?),
        (Opened::Postgres(s), Some(to)) => (None, s.migrate_down(to)?),
    };
    let version = match version {
        Some(v) => v,
        None => match &store {
            Opened::Sqlite(s) => s.schema_version()?,
            Opened::Postgres(s) => s.schema_version()?,
        },
    };
    println!("{{\"schema_version\":{version},\"migrations_run\":{ran}}}");
    Ok(())
}
