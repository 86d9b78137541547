//! OpenTelemetry spans under the GenAI semantic conventions (semantic-conventions 1.44.0, whose
//! `gen_ai.*` attributes have the status Development) to the engine's calls. This is the one place
//! the mapping lives for `ace serve --otlp`; the Python (`ace.integrations.otel`) and Node
//! (`agent-ace/otel`) span processors follow the same table (docs/integrations/otlp.md).
//!
//! | `gen_ai.operation.name` | the engine's call |
//! |---|---|
//! | `chat`, `text_completion`, `generate_content` | a stage `llm`, with `tokens_in`/`tokens_out` from `gen_ai.usage.input_tokens`/`output_tokens` (or the older `prompt_tokens`/`completion_tokens`) |
//! | `embeddings` | a stage `embeddings`, with `tokens_in` |
//! | `execute_tool` | a tool call of `gen_ai.tool.name` with the digest of `gen_ai.tool.call.arguments` (none past 65,536 characters); without a tool name the span is rejected |
//! | `invoke_agent` | a stage `invoke_agent`, then the task ends |
//! | any other | a stage named after the operation (`agent_step`, `create_agent`, ...) |
//! | none | skipped (counted) |
//!
//! The agent is `gen_ai.agent.name`, else the nearest ancestor's in the same request, else the
//! resource's `service.name`, else `unknown_service`; the task is `gen_ai.conversation.id`, else
//! the nearest ancestor's, else the trace id (32 hex digits). An id attribute that is blank, over
//! 256 bytes or holds control characters counts as absent. A GenAI span without a parent ends its
//! task at once; the tasks of the other spans end with their trace's root span when it is in the
//! same request (otherwise the engine releases them after an idle hour). The duration is the
//! span's end minus its start.
//!
//! A span failed when its status is `ERROR`, it has `error.type`, or it has an `exception` event.
//! Its error (recorded before the stage, under the same stage) is, with an exception event, kind
//! `exception.type` (else `error.type`, else `Exception`) and message `exception.message` (else
//! the status message, else the kind); without one, kind `error.type` (else `SpanError`) and the
//! status message (else the kind).

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};

use ace_core::{Ace, Error};

/// The stage LLM calls are recorded under.
pub const LLM_STAGE: &str = "llm";
/// The agent of a span with neither `gen_ai.agent.name` nor a resource `service.name`.
pub const UNKNOWN_AGENT: &str = "unknown_service";
/// Tool arguments longer than this (in characters) are recorded without a digest.
pub const MAX_ARGUMENT_CHARS: usize = 65_536;
/// The longest agent or task id taken from an attribute, in bytes.
const MAX_ID: usize = 256;
/// Ancestors looked through for an agent or a task.
const MAX_DEPTH: usize = 64;

/// What became of the spans of one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Spans recorded.
    pub accepted: u64,
    /// Spans without `gen_ai.operation.name`, left aside.
    pub skipped: u64,
    /// Spans refused (a bad id, a span ending before it starts, a value the engine refused).
    pub rejected: u64,
    /// Why the first refused span was refused.
    pub first_error: Option<String>,
}

/// What a span hands down to the spans under it.
struct Known<'a> {
    agent: Option<&'a str>,
    task: Option<&'a str>,
    parent: &'a [u8],
}

/// The spans of one request, by id, for the agent and task a span inherits.
struct Family<'a> {
    spans: HashMap<(&'a [u8], &'a [u8]), Known<'a>>,
}

impl<'a> Family<'a> {
    fn new(request: &'a ExportTraceServiceRequest) -> Self {
        let mut spans = HashMap::new();
        for span in request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
            let known = Known {
                agent: id_attr(&span.attributes, "gen_ai.agent.name"),
                task: id_attr(&span.attributes, "gen_ai.conversation.id"),
                parent: &span.parent_span_id,
            };
            spans.insert((span.trace_id.as_slice(), span.span_id.as_slice()), known);
        }
        Family { spans }
    }

    /// The nearest ancestor's value (the span's own first).
    fn inherit(&self, span: &'a Span, pick: fn(&Known<'a>) -> Option<&'a str>) -> Option<&'a str> {
        let mut key = (span.trace_id.as_slice(), span.span_id.as_slice());
        for _ in 0..MAX_DEPTH {
            let known = self.spans.get(&key)?;
            if let Some(v) = pick(known) {
                return Some(v);
            }
            if known.parent.is_empty() {
                return None;
            }
            key = (key.0, known.parent);
        }
        None
    }
}

/// Maps every span of `request` to the engine, each on its own: one bad span is counted in
/// [`Tally::rejected`] and the others are recorded all the same. Stops early only when the
/// engine is closed (`Err`), so the client can send the batch again elsewhere.
pub(crate) fn ingest(ace: &Ace, request: &ExportTraceServiceRequest) -> Result<Tally, Error> {
    let family = Family::new(request);
    let mut tally = Tally::default();
    // Tasks to end with their trace's root: (trace id, agent, task).
    let mut noted: HashSet<(&[u8], &str, String)> = HashSet::new();
    let mut roots: HashSet<&[u8]> = HashSet::new();
    let mut ended: HashSet<(&str, String)> = HashSet::new();
    for resource_spans in &request.resource_spans {
        let service = resource_spans.resource.as_ref().and_then(|r| id_attr(&r.attributes, "service.name"));
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            if span.parent_span_id.is_empty() {
                roots.insert(&span.trace_id);
            }
            match map_span(ace, &family, service, span) {
                Ok(None) => tally.skipped += 1,
                Ok(Some((agent, task, true))) => {
                    tally.accepted += 1;
                    ended.insert((agent, task));
                }
                Ok(Some((agent, task, false))) => {
                    tally.accepted += 1;
                    noted.insert((&span.trace_id, agent, task));
                }
                Err(Error::Closed) => return Err(Error::Closed),
                Err(e) => {
                    tally.rejected += 1;
                    if tally.first_error.is_none() {
                        tally.first_error = Some(format!("span {} ({:?}): {e}", hex(&span.span_id), span.name));
                    }
                }
            }
        }
    }
    let mut ending: Vec<_> = noted
        .into_iter()
        .filter(|(trace, agent, task)| roots.contains(trace) && !ended.contains(&(*agent, task.clone())))
        .collect();
    ending.sort();
    for (_, agent, task) in ending {
        match ace.end_task(agent, &task) {
            Err(Error::Closed) => return Err(Error::Closed),
            Err(e) => tracing::debug!(error = %e, "an OTLP task could not be ended"),
            Ok(_) => {}
        }
    }
    Ok(tally)
}

/// Records one span; `Ok(None)` when it has no GenAI operation, else the agent and the task it
/// was recorded under, and whether the task ended with it.
fn map_span<'a>(
    ace: &Ace,
    family: &Family<'a>,
    service: Option<&'a str>,
    span: &'a Span,
) -> Result<Option<(&'a str, String, bool)>, Error> {
    let attrs = &span.attributes;
    let operation = match value(attrs, "gen_ai.operation.name") {
        None => return Ok(None),
        Some(Value::StringValue(s)) if !s.trim().is_empty() && s.chars().count() <= 256 => s.as_str(),
        Some(_) => {
            return Err(invalid("gen_ai.operation.name", "must be a non-blank string of at most 256 characters"));
        }
    };
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|&b| b == 0) {
        return Err(invalid("trace_id", format!("must be 16 bytes, not all zero; got {} bytes", span.trace_id.len())));
    }
    if span.start_time_unix_nano == 0 || span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(invalid("span", "has no start time, or ends before it starts"));
    }
    let agent = family.inherit(span, |k| k.agent).or(service).unwrap_or(UNKNOWN_AGENT);
    let task = family.inherit(span, |k| k.task).map_or_else(|| hex(&span.trace_id), str::to_owned);
    let duration_s = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e9;
    let failure = failure(span);
    let success = failure.is_none();
    if operation == "execute_tool" {
        let Some(tool) = text(attrs, "gen_ai.tool.name").filter(|t| !t.trim().is_empty() && t.chars().count() <= 256)
        else {
            return Err(invalid("gen_ai.tool.name", "an execute_tool span needs a tool name"));
        };
        if let Some((kind, message)) = &failure {
            ace.record_error(agent, &task, crate::otlp::tool::TOOL_STAGE, kind, message, None)?;
        }
        let digest = value(attrs, "gen_ai.tool.call.arguments").and_then(arguments_digest);
        crate::otlp::tool::record(ace, agent, &task, tool, digest.as_deref(), duration_s, success)?;
    } else {
        let (stage, metrics) = stage_of(operation, attrs);
        if let Some((kind, message)) = &failure {
            ace.record_error(agent, &task, &stage, kind, message, None)?;
        }
        ace.record_stage_with(agent, &task, &stage, duration_s, success, &metrics)?;
    }
    let ends = operation == "invoke_agent" || span.parent_span_id.is_empty();
    if ends {
        ace.end_task(agent, &task)?;
    }
    Ok(Some((agent, task, ends)))
}

/// The stage of a span that is not a tool call, and its token counts.
fn stage_of(operation: &str, attrs: &[KeyValue]) -> (String, Vec<(&'static str, f64)>) {
    let llm = matches!(operation, "chat" | "text_completion" | "generate_content");
    if !llm && operation != "embeddings" {
        return (stage_name(operation), Vec::new());
    }
    let mut metrics = Vec::with_capacity(2);
    for (ours, theirs) in [
        ("tokens_in", ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"]),
        ("tokens_out", ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"]),
    ] {
        if let Some(n) = theirs.iter().find_map(|k| value(attrs, k)).and_then(count) {
            metrics.push((ours, n));
        }
    }
    ((if llm { LLM_STAGE } else { "embeddings" }).to_owned(), metrics)
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput { field, reason: reason.into() }
}

/// The span's error, when it failed: (kind, message).
fn failure(span: &Span) -> Option<(String, String)> {
    let error_type = text(&span.attributes, "error.type").map(str::trim).filter(|t| !t.is_empty());
    let status = span.status.as_ref().filter(|s| s.code == StatusCode::Error as i32);
    let description = status.map(|s| s.message.as_str()).filter(|m| !m.is_empty());
    if let Some(event) = span.events.iter().find(|e| e.name == "exception") {
        let kind = text(&event.attributes, "exception.type")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .or(error_type)
            .unwrap_or("Exception");
        let message =
            text(&event.attributes, "exception.message").filter(|m| !m.is_empty()).or(description).unwrap_or(kind);
        return Some((short(kind), message.to_owned()));
    }
    if status.is_none() && error_type.is_none() {
        return None;
    }
    let kind = error_type.unwrap_or("SpanError");
    Some((short(kind), description.unwrap_or(kind).to_owned()))
}

/// At most 256 characters.
fn short(s: &str) -> String {
    s.chars().take(256).collect()
}

/// A GenAI operation name as a stage name: lower case, runs of other characters than ASCII
/// letters, digits, `_`, `-` and `.` as one `_`, trimmed of `_`, `s` put before a leading
/// non-letter, at most 64 bytes (the rule of the Python and Node integrations' `stage_name`).
#[must_use]
pub fn stage_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.') {
            if gap {
                out.push('_');
                gap = false;
            }
            out.push(c);
        } else {
            gap = true;
        }
    }
    let trimmed = out.trim_matches('_');
    let mut s = if trimmed.is_empty() { "unnamed".to_owned() } else { trimmed.to_owned() };
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s.insert(0, 's');
    }
    s.truncate(64);
    s
}

/// The digest of a tool call's arguments, as the bindings compute it
/// ([`ace_core::tool::digest_json`]): a string holding JSON is the value it holds, other text is
/// a JSON string, a structured value is its JSON; `None` past [`MAX_ARGUMENT_CHARS`].
#[must_use]
pub fn arguments_digest(value: &Value) -> Option<String> {
    let json = match value {
        Value::StringValue(s) if s.chars().count() > MAX_ARGUMENT_CHARS => return None,
        Value::StringValue(s) => match ace_core::tool::digest_json(s) {
            Ok(d) => return Some(d),
            Err(_) => serde_json::Value::String(s.clone()).to_string(),
        },
        other => to_json(other).to_string(),
    };
    if json.chars().count() > MAX_ARGUMENT_CHARS {
        return None;
    }
    ace_core::tool::digest_json(&json).ok()
}

/// An OTLP value as JSON (bytes as an array of numbers).
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let of = |a: &AnyValue| a.value.as_ref().map_or(J::Null, to_json);
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::ArrayValue(a) => J::Array(a.values.iter().map(of).collect()),
        Value::KvlistValue(kv) => {
            J::Object(kv.values.iter().map(|e| (e.key.clone(), e.value.as_ref().map_or(J::Null, of))).collect())
        }
        Value::BytesValue(b) => J::Array(b.iter().map(|&x| J::from(x)).collect()),
        // An index into a profiles dictionary: nothing to resolve it against in a trace export.
        Value::StringValueStrindex(i) => J::from(*i),
    }
}

fn value<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
}

/// A non-empty string attribute.
fn text<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match value(attrs, key)? {
        Value::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A string attribute usable as an agent or task id: trimmed, not blank, at most 256 bytes, no
/// control characters; else absent.
fn id_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    let s = text(attrs, key)?.trim();
    (!s.is_empty() && s.len() <= MAX_ID && !s.chars().any(char::is_control)).then_some(s)
}

/// A token count: a finite, non-negative integer or double (anything else counts as absent).
fn count(v: &Value) -> Option<f64> {
    let n = match v {
        Value::IntValue(i) => *i as f64,
        Value::DoubleValue(d) => *d,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then_some(n)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_follow_the_bindings_rule() {
        assert_eq!(stage_name("agent_step"), "agent_step");
        assert_eq!(stage_name("Search Web"), "search_web");
        assert_eq!(stage_name("  __x  y__ "), "x_y");
        assert_eq!(stage_name("42"), "s42");
        assert_eq!(stage_name("%%"), "unnamed");
        assert_eq!(stage_name(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn arguments_digest_is_canonical() {
        let a = arguments_digest(&Value::StringValue(r#"{ "b": [1, "é"], "a": null }"#.into())).unwrap();
        let b = arguments_digest(&Value::StringValue(r#"{"a":null,"b":[1.0,"é"]}"#.into())).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, ace_core::tool::args_digest("{\"a\":null,\"b\":[1,\"é\"]}".as_bytes()));
        assert_ne!(Some(a), arguments_digest(&Value::StringValue(r#"{"a":null,"b":[2,"é"]}"#.into())));
        // Not JSON: a JSON string, as a binding's recordTool(..., args: text) has it.
        assert_eq!(
            arguments_digest(&Value::StringValue("city=Paris".into())),
            Some(ace_core::tool::args_digest(br#""city=Paris""#))
        );
        assert_eq!(arguments_digest(&Value::StringValue("x".repeat(MAX_ARGUMENT_CHARS + 1))), None);
    }
}
