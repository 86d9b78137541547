//! Versioned schema migrations, embedded in the binary.
//!
//! Each migration has an `up` and a `down` script. Applied migrations are recorded in
//! `ace_schema_migrations` with a checksum of their `up` script, so a database migrated by a
//! different build of ace (an edited migration, a newer schema) is refused with a clear error
//! instead of being written to blindly.

/// One schema migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// The version it brings the schema to (1, 2, ...).
    pub version: i64,
    /// A short name.
    pub name: &'static str,
    /// SQL that applies it.
    pub up: &'static str,
    /// SQL that reverts it.
    pub down: &'static str,
}

impl Migration {
    /// A stable checksum of the `up` script (FNV-1a, 64 bits, hex).
    #[must_use]
    pub fn checksum(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.up.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// The SQLite migrations, oldest first.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        up: include_str!("../migrations/sqlite/0001_init.up.sql"),
        down: include_str!("../migrations/sqlite/0001_init.down.sql"),
    },
    Migration {
        version: 2,
        name: "errors",
        up: include_str!("../migrations/sqlite/0002_errors.up.sql"),
        down: include_str!("../migrations/sqlite/0002_errors.down.sql"),
    },
    Migration {
        version: 3,
        name: "interventions",
        up: include_str!("../migrations/sqlite/0003_interventions.up.sql"),
        down: include_str!("../migrations/sqlite/0003_interventions.down.sql"),
    },
    Migration {
        version: 4,
        name: "playbooks",
        up: include_str!("../migrations/sqlite/0004_playbooks.up.sql"),
        down: include_str!("../migrations/sqlite/0004_playbooks.down.sql"),
    },
    Migration {
        version: 5,
        name: "time_ordered_metrics",
        up: include_str!("../migrations/sqlite/0005_time_ordered_metrics.up.sql"),
        down: include_str!("../migrations/sqlite/0005_time_ordered_metrics.down.sql"),
    },
    Migration {
        version: 6,
        name: "metrics_by_time_and_agent",
        up: include_str!("../migrations/sqlite/0006_metrics_by_time_and_agent.up.sql"),
        down: include_str!("../migrations/sqlite/0006_metrics_by_time_and_agent.down.sql"),
    },
    Migration {
        version: 7,
        name: "errors_and_interventions_by_time_and_agent",
        up: include_str!("../migrations/sqlite/0007_errors_and_interventions_by_time_and_agent.up.sql"),
        down: include_str!("../migrations/sqlite/0007_errors_and_interventions_by_time_and_agent.down.sql"),
    },
];

/// The PostgreSQL migrations, oldest first.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        up: include_str!("../migrations/postgres/0001_init.up.sql"),
        down: include_str!("../migrations/postgres/0001_init.down.sql"),
    },
    Migration {
        version: 2,
        name: "batches",
        up: include_str!("../migrations/postgres/0002_batches.up.sql"),
        down: include_str!("../migrations/postgres/0002_batches.down.sql"),
    },
];
