//! Replay: feed a recorded trace (the JSON Lines format of `TRACE_FORMAT.md`) to a fresh engine
//! on a manual clock, and score its interventions against the trace's labels.
//!
//! Events are fed as a live agent would have sent them; `label` lines are never fed, only used
//! for the score. Timestamps drive the clock; one earlier than the previous event's is taken as
//! the previous time (the clock never goes back, so windows and cooldowns stay sound).
//!
//! Scores: a task is *flagged* when the engine issued at least one intervention for it;
//! `precision` = flagged tasks that failed / flagged tasks, `recall` = flagged tasks that failed /
//! failed tasks, `early_hits` = among tasks with a `mistake_index` and an `error` event at or
//! before it, the share whose first intervention came at or before that index.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Instant;

use hashbrown::HashMap;
use serde::Serialize;
use serde_json::Value;

use crate::clock::{ManualClock, Timestamp};
use crate::config::AceConfig;
use crate::engine::Ace;
use crate::error::{Error, Result};
use crate::event::Severity;
use crate::store::MemoryStore;

/// What a replay measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplayScore {
    /// Tasks with a label.
    pub tasks: u64,
    /// Labelled tasks that really failed.
    pub failed_tasks: u64,
    /// Labelled tasks with at least one intervention.
    pub flagged_tasks: u64,
    /// Flagged tasks that failed / flagged tasks (`None` when none is flagged).
    pub precision: Option<f64>,
    /// Flagged tasks that failed / failed tasks (`None` when none failed).
    pub recall: Option<f64>,
    /// See the module docs (`None` when no task qualifies).
    pub early_hits: Option<f64>,
    /// Interventions issued.
    pub interventions: u64,
    /// Interventions per labelled task.
    pub interventions_per_task: f64,
    /// Interventions by strategy.
    pub strategies: BTreeMap<String, u64>,
    /// Events fed (labels excluded).
    pub events: u64,
    /// Events fed per second of wall time.
    pub events_per_second: f64,
}

#[derive(Default)]
struct TaskTrack {
    events: usize,
    first_error: Option<usize>,
    first_intervention: Option<usize>,
    interventions: u64,
}

struct Line<'a> {
    name: &'a str,
    number: usize,
    value: Value,
}

impl Line<'_> {
    fn fail(&self, reason: impl std::fmt::Display) -> Error {
        Error::invalid("trace", format!("{} line {}: {reason}", self.name, self.number))
    }

    fn str(&self, key: &str) -> Result<&str> {
        match self.value.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.fail(format!("`{key}` must be a string, got {other}"))),
            None => Err(self.fail(format!("missing `{key}`"))),
        }
    }

    fn num(&self, key: &str) -> Result<f64> {
        match self.value.get(key) {
            Some(Value::Number(n)) => n.as_f64().ok_or_else(|| self.fail(format!("`{key}` is out of range"))),
            Some(other) => Err(self.fail(format!("`{key}` must be a number, got {other}"))),
            None => Err(self.fail(format!("missing `{key}`"))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.value.get(key) {
            Some(Value::Bool(b)) => Ok(Some(*b)),
            None | Some(Value::Null) => Ok(None),
            Some(other) => Err(self.fail(format!("`{key}` must be true or false, got {other}"))),
        }
    }
}

/// Replays the trace read from `reader` (named `name` in errors) on a fresh engine with
/// `config`. A malformed line is an [`Error::InvalidInput`] naming its line number; so is an
/// event the engine refuses (an invalid stage name, say).
pub fn replay(reader: impl BufRead, name: &str, config: AceConfig) -> Result<ReplayScore> {
    let clock = ManualClock::new(Timestamp::EPOCH);
    let ace = Ace::builder().config(config).clock(clock.clone()).store(MemoryStore::new()).build()?;
    let mut tasks: HashMap<String, TaskTrack> = HashMap::new();
    let mut labels: Vec<(String, bool, Option<usize>)> = Vec::new();
    let mut score = ReplayScore::default();
    let started = Instant::now();
    for (i, text) in reader.lines().enumerate() {
        let number = i + 1;
        let text = text.map_err(|e| Error::invalid("trace", format!("{name} line {number}: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid("trace", format!("{name} line {number}: not JSON: {e}")))?;
        let line = Line { name, number, value };
        let kind = line.str("type")?;
        if kind == "label" {
            let mistake = match line.value.get("mistake_index") {
                Some(Value::Number(n)) => {
                    Some(n.as_u64().ok_or_else(|| line.fail("`mistake_index` must be a whole number >= 0"))? as usize)
                }
                None | Some(Value::Null) => None,
                Some(other) => return Err(line.fail(format!("`mistake_index` must be a number, got {other}"))),
            };
            let failed = line.bool("failed")?.ok_or_else(|| line.fail("missing `failed`"))?;
            labels.push((line.str("task")?.to_owned(), failed, mistake));
            continue;
        }
        let ts = line.num("ts")?;
        let ts = Timestamp::from_secs_f64(ts).ok_or_else(|| line.fail(format!("`ts` {ts} is not a time")))?;
        clock.advance_to(ts);
        let agent = line.str("agent")?;
        score.events += 1;
        if kind == "context_refresh" {
            ace.refresh_context(agent).map_err(|e| line.fail(e))?;
            continue;
        }
        let task = line.str("task")?;
        let track = tasks.entry_ref(task).or_default();
        let index = track.events;
        track.events += 1;
        let intervention = match kind {
            "task_start" => None,
            "task_end" => {
                line.bool("success")?;
                ace.end_task(agent, task).map_err(|e| line.fail(e))?;
                None
            }
            "stage" => {
                let stage = line.str("stage")?;
                let duration = line.num("duration_s")?;
                let success = line.bool("success")?.ok_or_else(|| line.fail("missing `success`"))?;
                let mut metrics: Vec<(&str, f64)> = Vec::new();
                match line.value.get("metrics") {
                    Some(Value::Object(m)) => {
                        for (k, v) in m {
                            let v = v.as_f64().ok_or_else(|| line.fail(format!("metric `{k}` must be a number")))?;
                            metrics.push((k.as_str(), v));
                        }
                    }
                    None | Some(Value::Null) => {}
                    Some(other) => return Err(line.fail(format!("`metrics` must be an object, got {other}"))),
                }
                ace.record_stage_with(agent, task, stage, duration, success, &metrics)
                    .map_err(|e| line.fail(e))?
                    .intervention
            }
            "error" => {
                if track.first_error.is_none() {
                    track.first_error = Some(index);
                }
                let severity = match line.value.get("severity") {
                    Some(Value::String(s)) => Some(s.parse::<Severity>().map_err(|e| line.fail(e))?),
                    None | Some(Value::Null) => None,
                    Some(other) => return Err(line.fail(format!("`severity` must be a string, got {other}"))),
                };
                ace.record_error(agent, task, line.str("stage")?, line.str("kind")?, line.str("message")?, severity)
                    .map_err(|e| line.fail(e))?
                    .intervention
            }
            other => return Err(line.fail(format!("unknown event type {other:?}"))),
        };
        if let Some(i) = intervention {
            let track = tasks.get_mut(task).expect("tracked above");
            track.interventions += 1;
            track.first_intervention.get_or_insert(index);
            score.interventions += 1;
            *score.strategies.entry(i.strategy.as_str().to_owned()).or_default() += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    ace.close()?;

    let (mut hits, mut early_total, mut true_flags) = (0u64, 0u64, 0u64);
    for (task, failed, mistake) in &labels {
        let track = tasks.get(task.as_str());
        let flagged = track.is_some_and(|t| t.interventions > 0);
        score.tasks += 1;
        score.failed_tasks += u64::from(*failed);
        score.flagged_tasks += u64::from(flagged);
        true_flags += u64::from(flagged && *failed);
        if let (Some(m), Some(t)) = (mistake, track)
            && t.first_error.is_some_and(|e| e <= *m)
        {
            early_total += 1;
            hits += u64::from(t.first_intervention.is_some_and(|f| f <= *m));
        }
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    score.precision = ratio(true_flags, score.flagged_tasks);
    score.recall = ratio(true_flags, score.failed_tasks);
    score.early_hits = ratio(hits, early_total);
    score.interventions_per_task = if score.tasks == 0 { 0.0 } else { score.interventions as f64 / score.tasks as f64 };
    score.events_per_second = score.events as f64 / elapsed.max(1e-9);
    Ok(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"{"ts":1700000000.0,"type":"task_start","agent":"a","task":"t1"}
{"ts":1700000001.0,"type":"error","agent":"a","task":"t1","stage":"execution","kind":"ToolError","message":"tool 1 failed"}
{"ts":1700000002.0,"type":"error","agent":"a","task":"t1","stage":"execution","kind":"ToolError","message":"tool 2 failed"}
{"ts":1700000003.0,"type":"error","agent":"a","task":"t1","stage":"execution","kind":"ToolError","message":"tool 3 failed","severity":"high"}
{"ts":1700000004.0,"type":"task_end","agent":"a","task":"t1","success":false}
{"ts":1700000005.0,"type":"task_start","agent":"a","task":"t2"}
{"ts":1700000004.5,"type":"stage","agent":"a","task":"t2","stage":"planning","duration_s":1.0,"success":true,"metrics":{"chars":12}}
{"ts":1700000006.0,"type":"context_refresh","agent":"a"}
{"ts":1700000007.0,"type":"task_end","agent":"a","task":"t2","unknown_field":1}
{"type":"label","task":"t1","failed":true,"mistake_index":3}
{"type":"label","task":"t2","failed":false}
"#;

    #[test]
    fn a_trace_is_replayed_and_scored() {
        let s = replay(TRACE.as_bytes(), "mem", AceConfig::default()).unwrap();
        assert_eq!((s.tasks, s.failed_tasks, s.flagged_tasks, s.events), (2, 1, 1, 9));
        assert_eq!((s.precision, s.recall, s.early_hits), (Some(1.0), Some(1.0), Some(1.0)));
        assert_eq!(s.interventions, 1);
        assert_eq!(s.strategies.values().sum::<u64>(), 1);
    }

    #[test]
    fn malformed_lines_name_their_number() {
        for (bad, needle) in [
            ("{not json", "line 1: not JSON"),
            (
                r#"{"ts":1,"type":"stage","agent":"a","task":"t","duration_s":1,"success":true}"#,
                "line 1: missing `stage`",
            ),
            (r#"{"ts":"x","type":"task_start","agent":"a","task":"t"}"#, "`ts` must be a number"),
            (r#"{"ts":1,"type":"launch","agent":"a","task":"t"}"#, "unknown event type"),
            (
                r#"{"ts":1,"type":"error","agent":"a","task":"t","stage":"s","kind":"E","message":"m","severity":"huge"}"#,
                "line 1",
            ),
            (
                r#"{"ts":1,"type":"stage","agent":"a","task":"t","stage":"Bad Stage","duration_s":1,"success":true}"#,
                "line 1",
            ),
            (r#"{"type":"label","task":"t","failed":"yes"}"#, "`failed` must be true or false"),
        ] {
            let e = replay(bad.as_bytes(), "bad.jsonl", AceConfig::default()).unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{bad}");
            assert!(e.to_string().contains(needle) && e.to_string().contains("bad.jsonl"), "{bad}: {e}");
        }
    }
}
