//! What the SQL stores share: blocking on their runtime, and the text forms of records.

use std::future::Future;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::sync::Arc;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use ace_core::errors::PatternId;

/// Runs `fut` on `rt`; inside another tokio runtime (a host's), waits on a scoped helper thread
/// instead of panicking.
pub(crate) fn block_on<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    } else {
        rt.block_on(fut)
    }
}

/// The columns of `ace_performance_metrics` that make a [`ace_core::store::MetricRecord`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const METRIC_COLUMNS: &str = "created_at, agent_id, task_id, stage, duration_s, success, metrics";
/// The columns of `ace_errors` that make a [`ace_core::store::ErrorRecord`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const ERROR_COLUMNS: &str = "created_at, agent_id, task_id, stage, kind, message, severity, pattern_id";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// A record's named metrics as a JSON object, in the order given (`None` for none). Names are
/// validated (ASCII letters, digits, `_-.:`) and values finite, so nothing needs escaping.
pub(crate) fn metrics_json(metrics: &[(Arc<str>, f64)]) -> Option<String> {
    if metrics.is_empty() {
        return None;
    }
    let mut s = String::with_capacity(16 * metrics.len() + 2);
    s.push('{');
    for (i, (name, value)) in metrics.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        s.push_str(name);
        s.push_str("\":");
        s.push_str(&serde_json::Number::from_f64(*value).map_or_else(|| "null".to_owned(), |n| n.to_string()));
    }
    s.push('}');
    Some(s)
}

/// A pattern id from its 16 hex digits.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn parse_pattern_id(hex: &str) -> Option<PatternId> {
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten().map(PatternId)
}
