//! Queries against PostgreSQL: the statements in its dialect (`$n` placeholders, `ANY` over an
//! array, the metrics column read back as text); [`crate::rows`] turns the rows into records.

use ace_core::Severity;
use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionQuery, InterventionRecord, MetricQuery, MetricRecord,
    PlaybookEntry,
};
use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder};

use super::query_err;
use crate::common::{ERROR_COLUMNS, METRIC_COLUMNS};
use crate::rows::Source;

pub(super) async fn baselines(pool: &PgPool, src: Source<'_>) -> ace_core::Result<Vec<BaselineRecord>> {
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
    pool: &PgPool,
    src: Source<'_>,
    query: &MetricQuery,
) -> ace_core::Result<Vec<MetricRecord>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {METRIC_COLUMNS}, metrics::text AS metrics_text FROM ace_performance_metrics WHERE true"
    ));
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
    let rows = qb.build().fetch_all(pool).await.map_err(|e| query_err("query metrics", e))?;
    rows.iter().map(|r| src.metric(r, "metrics_text")).collect()
}

pub(super) async fn count_metrics(pool: &PgPool) -> ace_core::Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ace_performance_metrics")
        .fetch_one(pool)
        .await
        .map_err(|e| query_err("count metrics", e))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) async fn errors(
    pool: &PgPool,
    src: Source<'_>,
    query: &ErrorQuery,
    newest: bool,
) -> ace_core::Result<Vec<ErrorRecord>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {ERROR_COLUMNS} FROM ace_errors WHERE true"));
    if let Some(agent) = &query.agent {
        qb.push(" AND agent_id = ").push_bind(agent.clone());
    }
    if let Some(min) = query.min_severity {
        let allowed: Vec<&str> = Severity::ALL.into_iter().filter(|s| *s >= min).map(Severity::as_str).collect();
        qb.push(" AND severity = ANY(").push_bind(allowed).push(")");
    }
    if let Some(since) = query.since {
        qb.push(" AND created_at >= ").push_bind(since.as_micros());
    }
    qb.push(if newest { " ORDER BY created_at DESC, id DESC" } else { " ORDER BY created_at, id" });
    if query.limit > 0 {
        qb.push(" LIMIT ").push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
    }
    let rows = qb.build().fetch_all(pool).await.map_err(|e| query_err("query errors", e))?;
    rows.iter().map(|r| src.error(r)).collect()
}

pub(super) async fn patterns(pool: &PgPool, src: Source<'_>) -> ace_core::Result<Vec<PatternRecord>> {
    let rows =
        sqlx::query("SELECT kind, template, pattern_id, count FROM ace_error_patterns ORDER BY count DESC, pattern_id")
            .fetch_all(pool)
            .await
            .map_err(|e| query_err("load patterns", e))?;
    rows.iter().map(|r| src.pattern(r)).collect()
}

pub(super) async fn interventions(
    pool: &PgPool,
    src: Source<'_>,
    query: &InterventionQuery,
    newest: bool,
) -> ace_core::Result<Vec<InterventionRecord>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT intervention_id, created_at, agent_id, task_id, strategy, severity, signal_kind, reason, signals, \
         outcome FROM ace_interventions WHERE true",
    );
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
    let rows = qb.build().fetch_all(pool).await.map_err(|e| query_err("query interventions", e))?;
    rows.iter().map(|r| src.intervention(r)).collect()
}

pub(super) async fn playbook(pool: &PgPool, src: Source<'_>, domain: &str) -> ace_core::Result<Vec<PlaybookEntry>> {
    let rows = sqlx::query(
        "SELECT version, created_at, hash, snapshot, body FROM ace_playbook_versions WHERE domain = $1 ORDER BY version",
    )
    .bind(domain)
    .fetch_all(pool)
    .await
    .map_err(|e| query_err("load a playbook", e))?;
    rows.iter().map(|r| src.playbook_entry(r, domain)).collect()
}
