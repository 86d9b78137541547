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
use std::io::BufRead;
use std::time::Instant;

use hashbrown::HashMap;
use serde::Deserialize;
use serde_json::Value;

use crate::clock::{ManualClock, Timestamp};
use crate::config::AceConfig;
use crate::engine::Ace;
use crate::error::{Error, Result};
use crate::event::Severity;
use crate::store::MemoryStore;
use crate::tool::ToolCall;

mod folds;
mod read;
mod scan;
mod score;
mod words;

pub use folds::*;
pub use score::{Flagger, Label, ReplayScore, Run, TaskRun, TaskScore};

/// The longest line a trace may have (1 MiB); a longer one is an error naming its line.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// A UTF-8 byte-order mark, skipped at the start of a trace.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// One line as written: every field the format knows, borrowed where the text allows.
#[derive(Debug, Default, Deserialize)]
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
    /// The scan's metrics when they are few (serde's go to `metrics`).
    #[serde(skip)]
    few: Few<'a>,
}

/// Metrics the scan read without allocating: at most [`FEW`] borrowed pairs.
#[derive(Debug, Default)]
struct Few<'a> {
    pairs: [(&'a str, f64); FEW],
    len: usize,
}

/// How many metrics a line may have for the scan to keep them without allocating.
const FEW: usize = 8;

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

    #[inline]
    fn need<T>(&self, value: Option<T>, key: &str) -> Result<T> {
        match value {
            Some(v) => Ok(v),
            None => Err(self.missing(key)),
        }
    }

    #[cold]
    fn missing(&self, key: &str) -> Error {
        self.fail(format!("missing `{key}`"))
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

/// Checks the fast reader of common trace lines against serde on one line: whether it read the
/// line, panicking if its reading differs from serde's. For the trace fuzz target and its seeded
/// counterpart in the tests.
#[doc(hidden)]
pub fn check_scan(line: &[u8]) -> bool {
    scan::agrees(line)
}

/// Replays the trace read from `reader` (named `name` in errors) on a fresh engine with
/// `config`, and scores it. A malformed line is an [`Error::InvalidInput`] naming its line
/// number; so is an event the engine refuses (an invalid stage name, say).
pub fn replay(reader: impl BufRead, name: &str, config: AceConfig) -> Result<ReplayScore> {
    Ok(run(reader, name, config)?.score())
}

/// Replays the trace read from `reader` on a fresh engine with `config` and returns what
/// happened task by task (see [`Run::score_of`] to score a subset, or the baseline).
///
/// A `task_end` is passed on with its `success` when the trace has one
/// ([`Ace::end_task_with`]): the engine learns online, from tasks that ended before each
/// decision, which signals preceded failures. Labels are never fed.
///
/// The engine keeps only what signals and decisions need (no records for a store, no
/// per-(agent, stage) series or timings); [`run_full`] replays on the full engine, with the same
/// results (tested), more slowly.
pub fn run(reader: impl BufRead, name: &str, config: AceConfig) -> Result<Run> {
    replay_on(reader, name, config, true)
}

/// [`run`] on the full engine: every series kept, every record built and written to an
/// in-memory store.
pub fn run_full(reader: impl BufRead, name: &str, config: AceConfig) -> Result<Run> {
    replay_on(reader, name, config, false)
}

/// A replay on the scoring-only engine or the full one.
fn replay_on(reader: impl BufRead, name: &str, config: AceConfig, scoring: bool) -> Result<Run> {
    let clock = ManualClock::new(Timestamp::EPOCH);
    let builder = Ace::builder().config(config).clock(clock.clone()).store(MemoryStore::new());
    let ace = if scoring { builder.scoring_only() } else { builder }.build()?;
    feed(reader, name, ace, clock)
}

fn feed(reader: impl BufRead, name: &str, ace: Ace, clock: ManualClock) -> Result<Run> {
    let mut feed = Feed { ace, clock, index: HashMap::new(), last: 0, out: Run::default() };
    let started = Instant::now();
    read::read(reader, name, &mut |raw, at| feed.event(raw, at))?;
    let mut out = feed.out;
    out.seconds = started.elapsed().as_secs_f64();
    feed.ace.close()?;
    Ok(out)
}

/// The engine being fed, and what it did so far.
struct Feed {
    ace: Ace,
    clock: ManualClock,
    index: HashMap<String, usize>,
    /// The previous event's task (see [`track`]).
    last: usize,
    out: Run,
}

impl Feed {
    /// Feeds the event of one line (or keeps its label).
    fn event(&mut self, raw: &Raw<'_>, at: &At<'_>) -> Result<()> {
        if raw.kind == "label" {
            let failed = at.need(raw.failed, "failed")?;
            let task = at.need(raw.task.as_deref(), "task")?;
            let i = track(&mut self.index, &mut self.out.tasks, &mut self.last, task);
            self.out.tasks[i].label = Some(Label { failed, mistake_index: raw.mistake_index.map(|m| m as usize) });
            return Ok(());
        }
        let ts = at.need(raw.ts, "ts")?;
        let ts = Timestamp::from_secs_f64(ts).ok_or_else(|| at.fail(format!("`ts` {ts} is not a time")))?;
        self.clock.advance_to(ts);
        let agent = at.need(raw.agent.as_deref(), "agent")?;
        self.out.events += 1;
        if raw.kind == "context_refresh" {
            self.ace.refresh_context(agent).map_err(|e| at.fail(e))?;
            return Ok(());
        }
        let task = at.need(raw.task.as_deref(), "task")?;
        let slot = track(&mut self.index, &mut self.out.tasks, &mut self.last, task);
        let track = &mut self.out.tasks[slot];
        let event = track.events;
        track.events += 1;
        let (signals, intervention) = match &*raw.kind {
            "task_start" => (Vec::new(), None),
            "task_end" => {
                self.ace.end_task_with(agent, task, raw.success).map_err(|e| at.fail(e))?;
                (Vec::new(), None)
            }
            "stage" => {
                let stage = at.need(raw.stage.as_deref(), "stage")?;
                let duration = at.need(raw.duration_s, "duration_s")?;
                let success = at.need(raw.success, "success")?;
                // A few metrics are passed without a copy on the heap.
                let mut few = [("", 0.0); FEW];
                let many: Vec<(&str, f64)>;
                let metrics: &[(&str, f64)] = if raw.few.len > 0 {
                    &raw.few.pairs[..raw.few.len]
                } else if raw.metrics.len() <= few.len() {
                    for (slot, (k, v)) in few.iter_mut().zip(&raw.metrics) {
                        *slot = (&**k, *v);
                    }
                    &few[..raw.metrics.len()]
                } else {
                    many = raw.metrics.iter().map(|(k, v)| (&**k, *v)).collect();
                    &many
                };
                let report = match raw.tool.as_deref() {
                    Some(tool) => {
                        let args_digest = raw.args_digest.as_deref();
                        let call = ToolCall { agent, task, stage, tool, args_digest, duration_s: duration, success };
                        self.ace.record_tool_call_with(&call, metrics)
                    }
                    None => self.ace.record_stage_with(agent, task, stage, duration, success, metrics),
                };
                let report = report.map_err(|e| at.fail(e))?;
                (report.signals, report.intervention)
            }
            "error" => {
                if track.first_error.is_none() {
                    track.first_error = Some(event);
                }
                let severity = match raw.severity.as_deref() {
                    Some(s) => Some(s.parse::<Severity>().map_err(|e| at.fail(e))?),
                    None => None,
                };
                let stage = at.need(raw.stage.as_deref(), "stage")?;
                let kind = at.need(raw.error_kind.as_deref(), "kind")?;
                let message = at.need(raw.message.as_deref(), "message")?;
                let report =
                    self.ace.record_error(agent, task, stage, kind, message, severity).map_err(|e| at.fail(e))?;
                (report.signals, report.intervention)
            }
            other => return Err(at.fail(format!("unknown event type {other:?}"))),
        };
        let track = &mut self.out.tasks[slot];
        for s in &signals {
            *track.signals.entry(s.kind.as_str()).or_default() += 1;
        }
        if let Some(i) = intervention {
            track.intervened_on.push(i.signals.first().map_or("", |s| s.kind.as_str()));
            track.interventions += 1;
            if track.first_intervention.is_none() {
                track.first_intervention = Some(event);
                track.first_kind = Some(i.signals[0].kind);
            }
            *track.strategies.entry(i.strategy.as_str()).or_default() += 1;
        }
        Ok(())
    }
}

/// The index of the task's entry, added in order of first appearance. `last` (the previous
/// event's task, most often this one's too) is tried before the map.
#[inline]
fn track(index: &mut HashMap<String, usize>, tasks: &mut Vec<TaskRun>, last: &mut usize, task: &str) -> usize {
    if tasks.get(*last).is_some_and(|t| t.task == task) {
        return *last;
    }
    track_new(index, tasks, last, task)
}

/// [`track`] for a task other than the previous event's.
fn track_new(index: &mut HashMap<String, usize>, tasks: &mut Vec<TaskRun>, last: &mut usize, task: &str) -> usize {
    let i = *index.entry_ref(task).or_insert_with(|| {
        tasks.push(TaskRun { task: task.to_owned(), ..TaskRun::default() });
        tasks.len() - 1
    });
    *last = i;
    i
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

    /// A trace of many agents and tasks, with failures, slow stages, tool repeats and errors,
    /// so that every kind of signal and intervention turns up.
    fn generated() -> String {
        let mut out = String::new();
        let mut ts = 1_700_000_000.0;
        let mut x: u64 = 7;
        let mut rand = move |n: u64| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % n
        };
        for t in 0..400 {
            let agent = format!("agent-{}", t % 7);
            let bad = t % 5 == 0;
            out += &format!("{{\"ts\":{ts},\"type\":\"task_start\",\"agent\":\"{agent}\",\"task\":\"t{t}\"}}\n");
            for step in 0..(10 + rand(30)) {
                ts += 0.5 + rand(100) as f64 / 10.0;
                let stage = ["planning", "execution", "observation"][rand(3) as usize];
                let slow = if bad && step > 5 { 20.0 } else { 1.0 };
                let success = !(bad && rand(3) == 0) && rand(20) != 0;
                let duration = slow * (0.5 + rand(100) as f64 / 100.0);
                let tool = if rand(4) == 0 {
                    format!(",\"tool\":\"search\",\"args_digest\":\"{:016x}\"", rand(if bad { 2 } else { 1000 }))
                } else {
                    String::new()
                };
                out += &format!(
                    "{{\"ts\":{ts},\"type\":\"stage\",\"agent\":\"{agent}\",\"task\":\"t{t}\",\"stage\":\"{stage}\",\"duration_s\":{duration},\"success\":{success},\"metrics\":{{\"tokens\":{}}}{tool}}}\n",
                    100 + rand(50) * if bad { 9 } else { 1 }
                );
                if rand(if bad { 3 } else { 25 }) == 0 {
                    out += &format!(
                        "{{\"ts\":{ts},\"type\":\"error\",\"agent\":\"{agent}\",\"task\":\"t{t}\",\"stage\":\"{stage}\",\"kind\":\"ToolError\",\"message\":\"connection to db-{}:5432 refused\"}}\n",
                        rand(9)
                    );
                }
                if rand(60) == 0 {
                    out += &format!("{{\"ts\":{ts},\"type\":\"context_refresh\",\"agent\":\"{agent}\"}}\n");
                }
            }
            out += &format!(
                "{{\"ts\":{ts},\"type\":\"task_end\",\"agent\":\"{agent}\",\"task\":\"t{t}\",\"success\":{}}}\n",
                !bad
            );
            out += &format!("{{\"type\":\"label\",\"task\":\"t{t}\",\"failed\":{bad},\"mistake_index\":6}}\n");
        }
        out
    }

    /// The scoring-only engine of `run` and the full engine see the same signals and issue the
    /// same interventions, on the shared traces and on a generated one.
    #[test]
    fn the_scoring_engine_matches_the_full_engine() {
        let mut traces = vec![("generated".to_owned(), generated())];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/traces");
        match std::fs::read_dir(&root) {
            Ok(dir) => {
                for f in dir.flatten().filter(|f| f.path().extension().is_some_and(|e| e == "jsonl")) {
                    traces.push((f.path().display().to_string(), std::fs::read_to_string(f.path()).unwrap()));
                }
                assert!(traces.len() >= 3, "the shared traces are in {}", root.display());
            }
            Err(_) => {
                assert!(std::env::var_os("CI").is_none(), "CI runs next to ../shared/data; it is missing");
                eprintln!("{} not found: the generated trace only", root.display());
            }
        }
        let tools = AceConfig::builder().tool_repeat(3).build().unwrap();
        for (name, text) in &traces {
            for config in [AceConfig::default(), tools.clone()] {
                let lean = run(text.as_bytes(), name, config.clone()).unwrap();
                let full = run_full(text.as_bytes(), name, config).unwrap();
                assert_eq!(lean.events, full.events, "{name}");
                assert_eq!(lean.tasks, full.tasks, "{name}");
                // The scored output, field by field (and task by task), but the speed.
                let (mut a, mut b) = (lean.score(), full.score());
                (a.events_per_second, b.events_per_second) = (0.0, 0.0);
                assert_eq!(a, b, "{name}");
                assert_eq!(a.per_task, b.per_task, "{name}");
                let score = lean.score();
                assert!(score.interventions > 0 && score.flagged_tasks > 0, "{name}: {score:?}");
                let kinds: std::collections::BTreeSet<_> = lean.tasks.iter().flat_map(|t| t.signals.keys()).collect();
                assert!(kinds.len() >= 3, "{name}: {kinds:?}");
            }
        }
    }

    /// The scoring-only engine saves no baselines or patterns at close (its store is dropped
    /// unread); the full engine saves both.
    #[test]
    fn the_scoring_engine_leaves_its_store_empty() {
        use crate::store::Store;
        for scoring in [false, true] {
            let store = std::sync::Arc::new(MemoryStore::new());
            let builder = Ace::builder().store_arc(store.clone());
            let ace = if scoring { builder.scoring_only() } else { builder }.build().unwrap();
            ace.record_stage("a", "t", "planning", 1.0, true).unwrap();
            ace.record_error("a", "t", "execution", "E", "boom 1", None).unwrap();
            ace.close().unwrap();
            assert_eq!(store.load_baselines().unwrap().is_empty(), scoring, "scoring only: {scoring}");
            assert_eq!(store.load_patterns().unwrap().is_empty(), scoring, "scoring only: {scoring}");
        }
    }

    /// The shared traces, or none where they are missing (CI has them).
    fn shared_traces() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/traces");
        let Ok(dir) = std::fs::read_dir(&root) else {
            assert!(std::env::var_os("CI").is_none(), "CI runs next to ../shared/data; it is missing");
            return Vec::new();
        };
        dir.flatten()
            .filter(|f| f.path().extension().is_some_and(|e| e == "jsonl"))
            .map(|f| (f.path().display().to_string(), std::fs::read_to_string(f.path()).unwrap()))
            .collect()
    }

    /// Lines read where they lie in the reader's buffer, lines cut by its end, lines the scan
    /// leaves to serde (escapes, blanks, odd numbers): the same run, whatever the buffer's size,
    /// on the scoring-only engine as on the full one; and a bad line is named alike.
    #[test]
    fn the_reader_buffer_size_changes_nothing() {
        let odd = concat!(
            "\u{feff}{\"ts\":1,\"type\":\"task_start\",\"agent\":\"a\",\"task\":\"t1\"}\n",
            "\n   \n",
            " {\"ts\":2, \"type\":\"error\",\"agent\":\"a\",\"task\":\"t1\",\"stage\":\"execution\",\"kind\":\"E\",\"message\":\"caf\u{e9}\\n\\u0041 \\\"x\\\"\"}\r\n",
            "{\"ts\":3.0000000000000001,\"type\":\"stage\",\"agent\":\"a\",\"task\":\"t1\",\"stage\":\"planning\",\"duration_s\":1.5e0,\"success\":true}\n",
        );
        let mut traces = vec![("generated".to_owned(), generated()), ("odd".to_owned(), format!("{odd}{TRACE}"))];
        traces.extend(shared_traces());
        for (name, text) in &traces {
            let whole = run(text.as_bytes(), name, AceConfig::default());
            let full = run_full(text.as_bytes(), name, AceConfig::default());
            for size in [1, 2, 7, 64, 181, 4096, 65_536] {
                let lean = run(std::io::BufReader::with_capacity(size, text.as_bytes()), name, AceConfig::default());
                match (&whole, &lean, &full) {
                    (Ok(w), Ok(l), Ok(f)) => {
                        assert_eq!((w.events, &w.tasks), (l.events, &l.tasks), "{name}, buffer of {size}");
                        assert_eq!((w.events, &w.tasks), (f.events, &f.tasks), "{name}, full engine");
                    }
                    (Err(w), Err(l), Err(f)) => {
                        assert_eq!(w.to_string(), l.to_string(), "{name}, buffer of {size}");
                        assert_eq!(w.to_string(), f.to_string(), "{name}, full engine");
                    }
                    _ => panic!("{name}, buffer of {size}: {:?} / {:?}", whole.is_ok(), lean.is_ok()),
                }
            }
        }
        // A bad line after good ones, and bytes that are not UTF-8, are named by their number.
        for (bad, needle) in [
            (&b"{\"type\":\"label\",\"task\":\"t\",\"failed\":true}\n{\"ts\":1,\"type\":\"x\xff\",\"agent\":\"a\",\"task\":\"t\"}\n"[..], "line 2: not JSON"),
            (b"{\"type\":\"label\",\"task\":\"t\",\"failed\":true}\n\n{\"ts\":1,\"type\":\"launch\",\"agent\":\"a\",\"task\":\"t\"}", "line 3: unknown event type"),
        ] {
            for size in [1, 5, 64, 4096] {
                let e = run(std::io::BufReader::with_capacity(size, bad), "bad", AceConfig::default()).unwrap_err();
                assert!(e.to_string().contains(needle), "{size}: {e}");
            }
        }
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
