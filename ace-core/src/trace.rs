//! Recording: the engine's input written as a trace (`TRACE_FORMAT.md`), for `ace replay`.
//!
//! With `ACE_TRACE_PATH` (or [`AceConfig::trace_path`](crate::AceConfig::trace_path)) set, every
//! accepted stage (with its `tool` and `args_digest` for a tool call), error, context refresh
//! and task end is appended to that file as one JSON line with the engine clock's time, so a user can replay their own history with other settings and
//! see what they would have changed. Metric-only records (`record_metric`) have no event in the
//! format and are not written; labels are the user's to add. Lines are buffered and written out
//! by `Ace::flush` and `Ace::close` (and whenever 64 KiB
//! accumulate). A write that fails is logged once and recording stops; the engine carries on.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use parking_lot::Mutex;
use serde::Serialize;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::event::Severity;

#[derive(Serialize)]
struct Line<'a> {
    ts: f64,
    #[serde(rename = "type")]
    kind: &'static str,
    agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    success: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args_digest: Option<&'a str>,
    #[serde(rename = "kind", skip_serializing_if = "Option::is_none")]
    error_kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
}

impl<'a> Line<'a> {
    fn new(ts: Timestamp, kind: &'static str, agent: &'a str) -> Self {
        Line {
            ts: ts.as_secs_f64(),
            kind,
            agent,
            task: None,
            stage: None,
            duration_s: None,
            success: None,
            metrics: None,
            tool: None,
            args_digest: None,
            error_kind: None,
            message: None,
            severity: None,
        }
    }
}

/// A stage's metrics as a JSON object; a non-finite value (which the engine refuses anyway) is
/// left out.
struct Metrics<'a>(&'a [(&'a str, f64)]);

impl Serialize for Metrics<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(_, v)| v.is_finite()) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The trace file being written.
pub(crate) struct TraceWriter {
    out: Mutex<Option<BufWriter<File>>>,
    path: String,
}

impl TraceWriter {
    /// Opens `path` for appending (created when missing).
    pub(crate) fn open(path: &str) -> Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(Path::new(path)).map_err(|e| {
            Error::config("ACE_TRACE_PATH", path, format!("cannot open the trace file for writing: {e}"))
        })?;
        Ok(TraceWriter { out: Mutex::new(Some(BufWriter::with_capacity(64 * 1024, file))), path: path.to_owned() })
    }

    fn write(&self, line: &Line<'_>) {
        let mut out = self.out.lock();
        let Some(w) = out.as_mut() else { return };
        let written =
            serde_json::to_writer(&mut *w, line).map_err(std::io::Error::other).and_then(|()| w.write_all(b"\n"));
        if let Err(e) = written {
            tracing::error!(path = %self.path, error = %e, "cannot write the trace file; trace recording stops");
            *out = None;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn stage(
        &self,
        ts: Timestamp,
        agent: &str,
        task: &str,
        stage: &str,
        outcome: (f64, bool),
        metrics: &[(&str, f64)],
        tool: Option<(&str, Option<&str>)>,
    ) {
        self.write(&Line {
            tool: tool.map(|(t, _)| t),
            args_digest: tool.and_then(|(_, d)| d),
            task: Some(task),
            stage: Some(stage),
            duration_s: Some(outcome.0),
            success: Some(outcome.1),
            metrics: (!metrics.is_empty()).then_some(Metrics(metrics)),
            ..Line::new(ts, "stage", agent)
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn error(
        &self,
        ts: Timestamp,
        agent: &str,
        task: &str,
        stage: &str,
        kind: &str,
        message: &str,
        severity: Option<Severity>,
    ) {
        self.write(&Line {
            task: Some(task),
            stage: Some(stage),
            error_kind: Some(kind),
            message: Some(message),
            severity,
            ..Line::new(ts, "error", agent)
        });
    }

    pub(crate) fn refresh(&self, ts: Timestamp, agent: &str) {
        self.write(&Line::new(ts, "context_refresh", agent));
    }

    pub(crate) fn task_end(&self, ts: Timestamp, agent: &str, task: &str) {
        self.write(&Line { task: Some(task), ..Line::new(ts, "task_end", agent) });
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&self) -> Result<()> {
        let mut out = self.out.lock();
        if let Some(w) = out.as_mut()
            && let Err(e) = w.flush()
        {
            *out = None;
            return Err(Error::Store { backend: "trace", operation: "write the trace file", source: Box::new(e) });
        }
        Ok(())
    }
}
