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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::time::Instant;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{ManualClock, Timestamp};
use crate::config::AceConfig;
use crate::engine::Ace;
use crate::error::{Error, Result};
use crate::event::Severity;
use crate::store::MemoryStore;
use crate::tool::ToolCall;

/// The longest line a trace may have (1 MiB); a longer one is an error naming its line.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// A UTF-8 byte-order mark, skipped at the start of a trace.
const BOM: &[u8] = b"\xef\xbb\xbf";

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
    /// Each labelled task's outcome, in label order (not in the JSON summary; `ace replay
    /// --tasks` prints them), for scoring subsets of tasks such as cross-validation folds.
    #[serde(skip)]
    pub per_task: Vec<TaskScore>,
}

/// What the engine did for one labelled task.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskScore {
    /// The task.
    pub task: String,
    /// Whether it really failed (its label).
    pub failed: bool,
    /// Whether it had at least one intervention.
    pub flagged: bool,
    /// The index (over the task's events) of its first intervention.
    pub first_intervention: Option<usize>,
    /// The index of its first `error` event.
    pub first_error: Option<usize>,
    /// Its `mistake_index` label.
    pub mistake_index: Option<usize>,
    /// Signals raised for it, by kind (`tool_repeat`: 1).
    pub signals: BTreeMap<&'static str, u32>,
    /// The signal kinds its interventions acted on, in order.
    pub intervened_on: Vec<&'static str>,
}

#[derive(Default)]
struct TaskTrack {
    events: usize,
    first_error: Option<usize>,
    first_intervention: Option<usize>,
    interventions: u64,
    signals: BTreeMap<&'static str, u32>,
    intervened_on: Vec<&'static str>,
}

/// One line as written: every field the format knows, borrowed where the text allows.
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    ts: Option<f64>,
    #[serde(borrow)]
    agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    task: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stage: Option<Cow<'a, str>>,
    duration_s: Option<f64>,
    success: Option<bool>,
    #[serde(borrow, default, deserialize_with = "metrics")]
    metrics: Vec<(Cow<'a, str>, f64)>,
    #[serde(borrow)]
    tool: Option<Cow<'a, str>>,
    #[serde(borrow)]
    args_digest: Option<Cow<'a, str>>,
    #[serde(rename = "kind", borrow)]
    error_kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    severity: Option<Cow<'a, str>>,
    failed: Option<bool>,
    mistake_index: Option<u64>,
}

/// `metrics`: an object of name -> number (or null), kept in order without a map.
fn metrics<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<(Cow<'de, str>, f64)>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(Cow<'de, str>, f64)>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of name -> number")
        }

        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> std::result::Result<Self::Value, M::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<Borrowed<'de>, f64>()? {
                out.push((k.0, v));
            }
            Ok(out)
        }
    }
    d.deserialize_any(Pairs)
}

/// A string borrowed from the input when it has no escapes.
struct Borrowed<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Borrowed<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Cow::<'de, str>::deserialize(d).map(Borrowed)
    }
}

struct At<'a> {
    name: &'a str,
    number: usize,
}

impl At<'_> {
    fn fail(&self, reason: impl std::fmt::Display) -> Error {
        Error::invalid("trace", format!("{} line {}: {reason}", self.name, self.number))
    }

    fn need<T>(&self, value: Option<T>, key: &str) -> Result<T> {
        value.ok_or_else(|| self.fail(format!("missing `{key}`")))
    }

    /// Why a line that failed the typed parse is wrong, in the format's own words.
    fn explain(&self, text: &[u8], parse: &serde_json::Error) -> Error {
        let value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("not JSON: {e}")),
        };
        let Value::Object(map) = &value else { return self.fail("not a JSON object") };
        let strings = ["type", "agent", "task", "stage", "kind", "message", "severity", "tool", "args_digest"];
        for (key, v) in map {
            let wrong = match (key.as_str(), v) {
                (_, Value::Null) => None,
                (k, Value::String(_)) if strings.contains(&k) => None,
                (k, _) if strings.contains(&k) => Some("a string"),
                ("ts" | "duration_s", Value::Number(_)) => None,
                ("ts" | "duration_s", _) => Some("a number"),
                ("success" | "failed", Value::Bool(_)) => None,
                ("success" | "failed", _) => Some("true or false"),
                ("mistake_index", Value::Number(n)) if n.as_u64().is_some() => None,
                ("mistake_index", _) => Some("a whole number >= 0"),
                ("metrics", Value::Object(m)) => {
                    if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_number()) {
                        return self.fail(format!("metric `{k}` must be a number"));
                    }
                    None
                }
                ("metrics", _) => Some("an object"),
                _ => None,
            };
            if let Some(what) = wrong {
                return self.fail(format!("`{key}` must be {what}, got {v}"));
            }
        }
        if !map.contains_key("type") {
            return self.fail("missing `type`");
        }
        self.fail(parse)
    }
}

/// Replays the trace read from `reader` (named `name` in errors) on a fresh engine with
/// `config`. A malformed line is an [`Error::InvalidInput`] naming its line number; so is an
/// event the engine refuses (an invalid stage name, say).
pub fn replay(mut reader: impl BufRead, name: &str, config: AceConfig) -> Result<ReplayScore> {
    let clock = ManualClock::new(Timestamp::EPOCH);
    let ace = Ace::builder().config(config).clock(clock.clone()).store(MemoryStore::new()).persist(false).build()?;
    let mut tasks: HashMap<String, TaskTrack> = HashMap::new();
    let mut labels: Vec<(String, bool, Option<usize>)> = Vec::new();
    let mut score = ReplayScore::default();
    let mut text: Vec<u8> = Vec::new();
    let mut number = 0;
    let started = Instant::now();
    loop {
        text.clear();
        number += 1;
        let at = At { name, number };
        // At most one byte past the limit is read, so input without newlines (`/dev/zero`)
        // costs bounded memory and fails at once.
        let read = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut text);
        if read.map_err(|e| at.fail(e))? == 0 {
            break;
        }
        if text.len() > MAX_LINE_BYTES && text.last() != Some(&b'\n') {
            return Err(at.fail(format!("the line is longer than {MAX_LINE_BYTES} bytes")));
        }
        if number == 1 && text.starts_with(BOM) {
            text.drain(..BOM.len());
        }
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let raw: Raw<'_> = serde_json::from_slice(&text).map_err(|e| at.explain(&text, &e))?;
        if raw.kind == "label" {
            let failed = at.need(raw.failed, "failed")?;
            let task = at.need(raw.task, "task")?;
            labels.push((task.into_owned(), failed, raw.mistake_index.map(|m| m as usize)));
            continue;
        }
        let ts = at.need(raw.ts, "ts")?;
        let ts = Timestamp::from_secs_f64(ts).ok_or_else(|| at.fail(format!("`ts` {ts} is not a time")))?;
        clock.advance_to(ts);
        let agent = at.need(raw.agent.as_deref(), "agent")?;
        score.events += 1;
        if raw.kind == "context_refresh" {
            ace.refresh_context(agent).map_err(|e| at.fail(e))?;
            continue;
        }
        let task = at.need(raw.task.as_deref(), "task")?;
        let track = tasks.entry_ref(task).or_default();
        let index = track.events;
        track.events += 1;
        let (signals, intervention) = match &*raw.kind {
            "task_start" => (Vec::new(), None),
            "task_end" => {
                ace.end_task(agent, task).map_err(|e| at.fail(e))?;
                (Vec::new(), None)
            }
            "stage" => {
                let stage = at.need(raw.stage.as_deref(), "stage")?;
                let duration = at.need(raw.duration_s, "duration_s")?;
                let success = at.need(raw.success, "success")?;
                let metrics: Vec<(&str, f64)> = raw.metrics.iter().map(|(k, v)| (&**k, *v)).collect();
                let report = match raw.tool.as_deref() {
                    Some(tool) => {
                        let args_digest = raw.args_digest.as_deref();
                        let call = ToolCall { agent, task, stage, tool, args_digest, duration_s: duration, success };
                        ace.record_tool_call_with(&call, &metrics)
                    }
                    None => ace.record_stage_with(agent, task, stage, duration, success, &metrics),
                };
                let report = report.map_err(|e| at.fail(e))?;
                (report.signals, report.intervention)
            }
            "error" => {
                if track.first_error.is_none() {
                    track.first_error = Some(index);
                }
                let severity = match raw.severity.as_deref() {
                    Some(s) => Some(s.parse::<Severity>().map_err(|e| at.fail(e))?),
                    None => None,
                };
                let stage = at.need(raw.stage.as_deref(), "stage")?;
                let kind = at.need(raw.error_kind.as_deref(), "kind")?;
                let message = at.need(raw.message.as_deref(), "message")?;
                let report = ace.record_error(agent, task, stage, kind, message, severity).map_err(|e| at.fail(e))?;
                (report.signals, report.intervention)
            }
            other => return Err(at.fail(format!("unknown event type {other:?}"))),
        };
        if !signals.is_empty() || intervention.is_some() {
            let track = tasks.get_mut(task).expect("tracked above");
            for s in &signals {
                *track.signals.entry(s.kind.as_str()).or_default() += 1;
            }
            if let Some(i) = &intervention {
                track.intervened_on.push(i.signals.first().map_or("", |s| s.kind.as_str()));
            }
        }
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
        score.per_task.push(TaskScore {
            task: task.clone(),
            failed: *failed,
            flagged,
            first_intervention: track.and_then(|t| t.first_intervention),
            first_error: track.and_then(|t| t.first_error),
            mistake_index: *mistake,
            signals: track.map(|t| t.signals.clone()).unwrap_or_default(),
            intervened_on: track.map(|t| t.intervened_on.clone()).unwrap_or_default(),
        });
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
    fn a_line_past_the_limit_fails_at_once_with_bounded_memory() {
        // An endless input without a newline (what `ace replay /dev/zero` reads).
        let zeros = std::io::BufReader::new(std::io::repeat(0));
        let e = replay(zeros, "zeros", AceConfig::default()).unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert!(e.to_string().contains("zeros line 1: the line is longer than 1048576 bytes"), "{e}");
        // A line exactly at the limit is read (and then judged as JSON).
        let mut long = vec![b' '; MAX_LINE_BYTES - 1];
        long.push(b'\n');
        long.extend_from_slice(TRACE.as_bytes());
        assert_eq!(replay(&long[..], "long", AceConfig::default()).unwrap().events, 9);
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped() {
        let with_bom = format!("\u{feff}{TRACE}");
        assert_eq!(replay(with_bom.as_bytes(), "bom", AceConfig::default()).unwrap().events, 9);
    }

    #[test]
    fn escaped_strings_and_null_fields_are_read() {
        let trace = concat!(
            r#"{"ts":1,"type":"error","agent":"a\u0062","task":"t\"1","stage":"execution","kind":"E","message":"line\nbreak","severity":null}"#,
            "\n",
            r#"{"ts":2,"type":"stage","agent":"ab","task":"t\"1","stage":"execution","duration_s":1,"success":false,"metrics":null}"#,
            "\n",
            r#"{"type":"label","task":"t\"1","failed":true,"mistake_index":null}"#,
        );
        let s = replay(trace.as_bytes(), "mem", AceConfig::default()).unwrap();
        assert_eq!((s.tasks, s.failed_tasks, s.flagged_tasks, s.events), (1, 1, 1, 2));
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
            (
                r#"{"ts":1,"type":"stage","agent":"a","task":"t","stage":"s","duration_s":1,"success":true,"metrics":{"x":"1"}}"#,
                "metric `x` must be a number",
            ),
            (
                r#"{"ts":1,"type":"stage","agent":"a","task":"t","stage":"s","duration_s":1,"success":true,"metrics":[1]}"#,
                "`metrics` must be an object",
            ),
            (
                r#"{"type":"label","task":"t","failed":true,"mistake_index":-1}"#,
                "`mistake_index` must be a whole number",
            ),
            ("[1, 2]", "not a JSON object"),
            (r#"{"ts":1,"agent":"a"}"#, "missing `type`"),
            (r#"{"ts":1,"type":"context_refresh"}"#, "missing `agent`"),
        ] {
            let e = replay(bad.as_bytes(), "bad.jsonl", AceConfig::default()).unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{bad}");
            assert!(e.to_string().contains(needle) && e.to_string().contains("bad.jsonl"), "{bad}: {e}");
        }
    }
}
