//! OpenTelemetry spans under the GenAI semantic conventions to the engine's calls. This is the
//! one place the mapping lives for `ace serve --otlp`; the Python (`ace.integrations.otel`) and
//! Node (`agent-ace/otel`) span processors follow the same table (docs/integrations/otlp.md).
//!
//! | `gen_ai.operation.name` | the engine's call |
//! |---|---|
//! | `chat`, `text_completion`, `generate_content` | a stage `llm`, with `tokens_in`/`tokens_out` from `gen_ai.usage.input_tokens`/`output_tokens` |
//! | `execute_tool` | a tool call: `gen_ai.tool.name` (`unknown` when absent), the digest of `gen_ai.tool.call.arguments` |
//! | `invoke_agent` | the task ends (`end_task`) |
//! | any other | a stage named after the operation (`embeddings`, `agent_step`, ...), with tokens when given |
//! | none | skipped (counted) |
//!
//! The agent is `gen_ai.agent.name`, else the resource's `service.name`, else `unknown_service`;
//! the task is `gen_ai.conversation.id`, else the trace id (32 hex digits). The duration is the
//! span's end minus its start. A span failed when its status is `ERROR`, it has `error.type`, or
//! it has an `exception` event; its error (recorded before the stage, under the same stage) has
//! the kind `error.type`, else the exception's `exception.type`, else `_OTHER`, and the message
//! of the exception, else the status message, else the kind.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};

use ace_core::{Ace, Error};

/// The stage LLM calls are recorded under.
pub const LLM_STAGE: &str = "llm";
/// The agent of a span with neither `gen_ai.agent.name` nor a resource `service.name`.
pub const UNKNOWN_AGENT: &str = "unknown_service";
/// The error kind of a failed span that names none.
pub const OTHER_ERROR: &str = "_OTHER";

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

/// Maps every span of `request` to the engine, each on its own: one bad span is counted in
/// [`Tally::rejected`] and the others are recorded all the same. Stops early only when the
/// engine is closed (`Err`), so the client can send the batch again elsewhere.
pub(crate) fn ingest(ace: &Ace, request: &ExportTraceServiceRequest) -> Result<Tally, Error> {
    let mut tally = Tally::default();
    for resource_spans in &request.resource_spans {
        let service = resource_spans.resource.as_ref().and_then(|r| text(&r.attributes, "service.name"));
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            match map_span(ace, service, span) {
                Ok(true) => tally.accepted += 1,
                Ok(false) => tally.skipped += 1,
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
    Ok(tally)
}

/// Records one span; `Ok(false)` when it has no GenAI operation.
fn map_span(ace: &Ace, service: Option<&str>, span: &Span) -> Result<bool, Error> {
    let attrs = &span.attributes;
    let Some(operation) = text(attrs, "gen_ai.operation.name") else { return Ok(false) };
    let agent = text(attrs, "gen_ai.agent.name").or(service).unwrap_or(UNKNOWN_AGENT);
    let trace = if span.trace_id.len() == 16 && span.trace_id.iter().any(|&b| b != 0) {
        hex(&span.trace_id)
    } else {
        return Err(invalid("trace_id", format!("must be 16 bytes, not all zero; got {} bytes", span.trace_id.len())));
    };
    let task = text(attrs, "gen_ai.conversation.id").unwrap_or(&trace);
    if span.start_time_unix_nano == 0 || span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(invalid("span", "has no start time, or ends before it starts".into()));
    }
    let duration_s = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e9;
    let failure = failure(span);
    let stage = match operation {
        "chat" | "text_completion" | "generate_content" => LLM_STAGE.to_owned(),
        "execute_tool" => crate::otlp::tool::TOOL_STAGE.to_owned(),
        "invoke_agent" => "invoke_agent".to_owned(),
        other => stage_name(other),
    };
    if let Some((kind, message)) = &failure {
        ace.record_error(agent, task, &stage, kind, message, None)?;
    }
    let success = failure.is_none();
    match operation {
        "invoke_agent" => {
            ace.end_task(agent, task)?;
        }
        "execute_tool" => {
            let tool = text(attrs, "gen_ai.tool.name").unwrap_or("unknown");
            let digest = value(attrs, "gen_ai.tool.call.arguments").map(arguments_digest);
            crate::otlp::tool::record(ace, agent, task, tool, digest.as_deref(), duration_s, success)?;
        }
        _ => {
            let mut metrics = Vec::with_capacity(2);
            if let Some(n) = number(attrs, "gen_ai.usage.input_tokens") {
                metrics.push(("tokens_in", n));
            }
            if let Some(n) = number(attrs, "gen_ai.usage.output_tokens") {
                metrics.push(("tokens_out", n));
            }
            ace.record_stage_with(agent, task, &stage, duration_s, success, &metrics)?;
        }
    }
    Ok(true)
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidInput { field, reason }
}

/// The span's error, when it failed: (kind, message).
fn failure(span: &Span) -> Option<(String, String)> {
    let error_type = text(&span.attributes, "error.type");
    let exception = span.events.iter().find(|e| e.name == "exception");
    let status = span.status.as_ref().filter(|s| s.code == StatusCode::Error as i32);
    if error_type.is_none() && exception.is_none() && status.is_none() {
        return None;
    }
    let kind =
        error_type.or_else(|| exception.and_then(|e| text(&e.attributes, "exception.type"))).unwrap_or(OTHER_ERROR);
    let message = exception
        .and_then(|e| text(&e.attributes, "exception.message"))
        .or_else(|| status.map(|s| s.message.as_str()).filter(|m| !m.is_empty()))
        .unwrap_or(kind);
    Some((kind.to_owned(), message.to_owned()))
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

/// The digest of a tool call's arguments: a string holding JSON is parsed and written in the
/// canonical form (keys sorted, no spaces) the bindings use; any other text is hashed as it is;
/// a structured value is written as canonical JSON.
#[must_use]
pub fn arguments_digest(value: &Value) -> String {
    let canonical = match value {
        Value::StringValue(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => canonical_json(&v),
            Err(_) => s.clone(),
        },
        other => canonical_json(&to_json(other)),
    };
    crate::otlp::tool::args_digest(canonical.as_bytes())
}

/// JSON with object keys sorted (by code point) and no whitespace.
fn canonical_json(v: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
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

/// A numeric attribute (an integer or a double).
fn number(attrs: &[KeyValue], key: &str) -> Option<f64> {
    match value(attrs, key)? {
        Value::IntValue(i) => Some(*i as f64),
        Value::DoubleValue(d) => Some(*d),
        _ => None,
    }
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
        let a = arguments_digest(&Value::StringValue(r#"{ "b": [1, "é"], "a": null }"#.into()));
        let b = arguments_digest(&Value::StringValue(r#"{"a":null,"b":[1,"é"]}"#.into()));
        assert_eq!(a, b);
        assert_eq!(a, crate::otlp::tool::args_digest("{\"a\":null,\"b\":[1,\"é\"]}".as_bytes()));
        assert_ne!(a, arguments_digest(&Value::StringValue(r#"{"a":null,"b":[2,"é"]}"#.into())));
        // Not JSON: the text itself.
        assert_eq!(
            arguments_digest(&Value::StringValue("city=Paris".into())),
            crate::otlp::tool::args_digest(b"city=Paris")
        );
    }
}
