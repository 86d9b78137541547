//! Queries against SQLite: the statements in its dialect (`?` placeholders, `IN` over a list,
//! the metrics column stored as text); [`crate::rows`] turns the rows into records.

use ace_core::Severity;
use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionQuery, InterventionRecord, MetricQuery, MetricRecord,
    PlaybookEntry,
};
use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Sqlite};

use super::query_err;
use crate::common::{ERROR_COLUMNS, METRIC_COLUMNS};
use crate::rows::Source;

pub(super) async fn baselines(pool: &SqlitePool, src: Source<'_>) -> ace_core::Result<Vec<BaselineRecord>> {
    let rows = sqlx::query(
        "SELECT agent_id, stage, metric, count, mean, variance, recent, degraded, updated_at \
         FROM ace_baselines ORDER BY agent_id, stage, metric",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| query_err("load baselines", e))?;
    rows.iter().map(|r| src.baseline(r)).collect()
}

pub(super) async fn metrics(
    pool: &SqlitePool,
    src: Source<'_>,
    query: &MetricQuery,
) -> ace_core::Result<Vec<MetricRecord>> {
    let rows = metrics_query("", query).build().fetch_all(pool).await.map_err(|e| query_err("query metrics", e))?;
    rows.iter().map(|r| src.metric(r, "metrics")).collect()
}

/// The statement of [`metrics`], after `prefix` (`EXPLAIN QUERY PLAN ` in tests).
fn metrics_query(prefix: &str, query: &MetricQuery) -> QueryBuilder<Sqlite> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("{prefix}SELECT {METRIC_COLUMNS} FROM ace_performance_metrics WHERE 1=1"));
    if let Some(agent) = &query.agent {
        qb.push(" AND agent_id = ").push_bind(agent.clone());
    }
    if let Some(stage) = &query.stage {
        qb.push(" AND stage = ").push_bind(stage.clone());
    }
    if let Some(since) = query.since {
        qb.push(" AND created_at >= ").push_bind(since.as_micros());
    }
    qb.push(" ORDER BY created_at, id");
    if query.limit > 0 {
        qb.push(" LIMIT ").push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
    }
    qb
}

pub(super) async fn count_metrics(pool: &SqlitePool) -> ace_core::Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ace_performance_metrics")
        .fetch_one(pool)
        .await
        .map_err(|e| query_err("count metrics", e))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) async fn errors(
    pool: &SqlitePool,
    src: Source<'_>,
    query: &ErrorQuery,
    newest: bool,
) -> ace_core::Result<Vec<ErrorRecord>> {
    let rows =
        errors_query("", query, newest).build().fetch_all(pool).await.map_err(|e| query_err("query errors", e))?;
    rows.iter().map(|r| src.error(r)).collect()
}

/// The statement of [`errors`], after `prefix` (`EXPLAIN QUERY PLAN ` in tests).
fn errors_query(prefix: &str, query: &ErrorQuery, newest: bool) -> QueryBuilder<Sqlite> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("{prefix}SELECT {ERROR_COLUMNS} FROM ace_errors WHERE 1=1"));
    if let Some(agent) = &query.agent {
        qb.push(" AND agent_id = ").push_bind(agent.clone());
    }
    if let Some(min) = query.min_severity {
        qb.push(" AND severity IN (");
        let mut sep = qb.separated(", ");
        for s in Severity::ALL.into_iter().filter(|s| *s >= min) {
            sep.push_bind(s.as_str());
        }
        qb.push(")");
    }
    if let Some(since) = query.since {
        qb.push(" AND created_at >= ").push_bind(since.as_micros());
    }
    qb.push(if newest { " ORDER BY created_at DESC, id DESC" } else { " ORDER BY created_at, id" });
    if query.limit > 0 {
        qb.push(" LIMIT ").push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
    }
    qb
}

pub(super) async fn patterns(pool: &SqlitePool, src: Source<'_>) -> ace_core::Result<Vec<PatternRecord>> {
    let rows =
        sqlx::query("SELECT kind, template, pattern_id, count FROM ace_error_patterns ORDER BY count DESC, pattern_id")
            .fetch_all(pool)
            .await
            .map_err(|e| query_err("load patterns", e))?;
    rows.iter().map(|r| src.pattern(r)).collect()
}

pub(super) async fn interventions(
    pool: &SqlitePool,
    src: Source<'_>,
    query: &InterventionQuery,
    newest: bool,
) -> ace_core::Result<Vec<InterventionRecord>> {
    let rows = interventions_query("", query, newest)
        .build()
        .fetch_all(pool)
        .await
        .map_err(|e| query_err("query interventions", e))?;
    rows.iter().map(|r| src.intervention(r)).collect()
}

/// The statement of [`interventions`], after `prefix` (`EXPLAIN QUERY PLAN ` in tests).
fn interventions_query(prefix: &str, query: &InterventionQuery, newest: bool) -> QueryBuilder<Sqlite> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{prefix}SELECT intervention_id, created_at, agent_id, task_id, strategy, severity, signal_kind, reason, \
         signals, outcome FROM ace_interventions WHERE 1=1"
    ));
    if let Some(agent) = &query.agent {
        qb.push(" AND agent_id = ").push_bind(agent.clone());
    }
    if let Some(since) = query.since {
        qb.push(" AND created_at >= ").push_bind(since.as_micros());
    }
    qb.push(if newest { " ORDER BY created_at DESC, id DESC" } else { " ORDER BY created_at, id" });
    if query.limit > 0 {
        qb.push(" LIMIT ").push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
    }
    qb
}

pub(super) async fn playbook(pool: &SqlitePool, src: Source<'_>, domain: &str) -> ace_core::Result<Vec<PlaybookEntry>> {
    let rows = sqlx::query(
        "SELECT version, created_at, hash, snapshot, body FROM ace_playbook_versions WHERE domain = ? ORDER BY version",
    )
    .bind(domain)
    .fetch_all(pool)
    .await
    .map_err(|e| query_err("load a playbook", e))?;
    rows.iter().map(|r| src.playbook_entry(r, domain)).collect()
}

#[cfg(test)]
mod tests {
    use ace_core::store::{ErrorQuery, InterventionQuery, MetricQuery};
    use ace_core::{Severity, Timestamp};
    use sqlx::{QueryBuilder, Row, Sqlite};

    use super::{errors_query, interventions_query, metrics_query};
    use crate::SqliteStore;

    const SINCE: i64 = 1_700_000_000_000_000;

    /// The plan SQLite chooses for `statement` (built after `EXPLAIN QUERY PLAN `) on a new file.
    fn plan_of(statement: impl FnOnce(&str) -> QueryBuilder<Sqlite>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("plan.db")).unwrap();
        let mut qb = statement("EXPLAIN QUERY PLAN ");
        store.run(async {
            let rows = qb.build().fetch_all(&store.readers).await.unwrap();
            rows.iter().map(|r| r.get::<String, _>("detail")).collect()
        })
    }

    /// Whether `plan` searches `table` through `index` from `constraint` and never scans it.
    fn searches(plan: &[String], table: &str, index: &str, constraint: &str) -> bool {
        plan.iter().any(|d| d.starts_with(&format!("SEARCH {table} USING INDEX {index} ({constraint})")))
            && !plan.iter().any(|d| d.starts_with(&format!("SCAN {table}")))
    }

    /// The seed's query, one agent over a time range, is served by the index in time order then
    /// agent (schema v6): a search on the time, not a scan of the table.
    #[test]
    fn a_query_by_agent_over_a_time_range_uses_the_time_and_agent_index() {
        let query = MetricQuery::all().agent("agent-1").since(Timestamp::from_micros(SINCE));
        let plan = plan_of(|prefix| metrics_query(prefix, &query));
        assert!(
            searches(&plan, "ace_performance_metrics", "idx_ace_metrics_created_agent", "created_at>?"),
            "{plan:?}"
        );
    }

    /// Errors and interventions by agent over a time range, oldest or newest first, search their
    /// index in time order then agent (schema v7); errors by severity search the severity index.
    #[test]
    fn errors_and_interventions_by_agent_or_severity_are_searched_through_an_index() {
        let since = Timestamp::from_micros(SINCE);
        for newest in [false, true] {
            let query = ErrorQuery::all().agent("agent-1").since(since).limit(100);
            let plan = plan_of(|prefix| errors_query(prefix, &query, newest));
            assert!(searches(&plan, "ace_errors", "idx_ace_errors_created_agent", "created_at>?"), "{plan:?}");

            let query = InterventionQuery::all().agent("agent-1").since(since).limit(100);
            let plan = plan_of(|prefix| interventions_query(prefix, &query, newest));
            let index = "idx_ace_interventions_created_agent";
            assert!(searches(&plan, "ace_interventions", index, "created_at>?"), "{plan:?}");

            let query = ErrorQuery::all().min_severity(Severity::High).since(since).limit(100);
            let plan = plan_of(|prefix| errors_query(prefix, &query, newest));
            let index = "idx_ace_errors_severity_created";
            assert!(searches(&plan, "ace_errors", index, "severity=? AND created_at>?"), "{plan:?}");

            let query = ErrorQuery::all().min_severity(Severity::High);
            let plan = plan_of(|prefix| errors_query(prefix, &query, newest));
            assert!(searches(&plan, "ace_errors", index, "severity=?"), "{plan:?}");
        }
    }
}
