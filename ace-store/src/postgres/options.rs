//! How a [`super::PgStore`] connects: pool size, timeouts, schema, migrations, TimescaleDB and
//! `COPY`, as a builder with documented defaults.

use std::time::Duration;

/// How to connect.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PgOptions {
    /// Pool size (`POSTGRES_MAX_CONNECTIONS`, default 50).
    pub max_connections: u32,
    /// How long to wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// A schema to create (if missing) and use instead of `public`: tests give each run its own.
    pub schema: Option<String>,
    /// Apply pending migrations on connect (default true). `ace migrate` turns it off to apply
    /// them itself and report what ran; a store left unmigrated cannot take records.
    pub migrate: bool,
    /// Use TimescaleDB when the server has it (default true): migrating up creates the extension
    /// if it is available and not yet created (falling back to plain tables, with a warning, when
    /// the role may not create it), turns `ace_performance_metrics` and `ace_errors` into
    /// hypertables with one-day chunks and enables compression on them. Off: plain tables always.
    pub timescale: bool,
    /// Append metric rows with `COPY ... FROM STDIN` (default true, the fastest way in). Off:
    /// one `INSERT ... SELECT FROM UNNEST` per batch, for PostgreSQL-compatible servers and
    /// proxies that do not speak the copy sub-protocol (PGlite, for one).
    pub copy: bool,
    /// How long one store operation (a batch, a query, a migration) may take before it fails
    /// as unavailable and the writer retries or spills (default 10 s). Migrations get at least
    /// a minute: they wait on the lock while another replica migrates.
    pub query_timeout: Duration,
}

impl PgOptions {
    /// Sets [`PgOptions::max_connections`].
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`PgOptions::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets [`PgOptions::migrate`].
    #[must_use]
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }

    /// Sets [`PgOptions::timescale`].
    #[must_use]
    pub fn timescale(mut self, on: bool) -> Self {
        self.timescale = on;
        self
    }

    /// Sets [`PgOptions::query_timeout`].
    #[must_use]
    pub fn query_timeout(mut self, d: Duration) -> Self {
        self.query_timeout = d;
        self
    }

    /// Sets [`PgOptions::copy`].
    #[must_use]
    pub fn copy(mut self, on: bool) -> Self {
        self.copy = on;
        self
    }

    /// Sets [`PgOptions::schema`].
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 50,
            connect_timeout: Duration::from_secs(10),
            schema: None,
            migrate: true,
            timescale: true,
            copy: true,
            query_timeout: Duration::from_secs(10),
        }
    }
}
