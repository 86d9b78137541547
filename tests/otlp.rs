//! `POST /v1/traces` on the listener (`ace serve --otlp`): OTLP protobuf and OTLP/JSON batches of
//! GenAI spans recorded field by field (read back from the engine's trace file), and every kind
//! of bad input answered with its status, never a lost span of a valid batch.
#![cfg(feature = "otlp")]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use ace::{Ace, AceConfig, ServeOptions};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Event};
use prost::Message;
use serde_json::{Value as Json, json};

const T0: u64 = 1_764_800_000_000_000_000;
const TRACE: [u8; 16] = [0xab; 16];

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
}
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

fn span(id: u8, name: &str, start_ms: u64, end_ms: u64, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: vec![id; 8],
        name: name.into(),
        start_time_unix_nano: T0 + start_ms * 1_000_000,
        end_time_unix_nano: T0 + end_ms * 1_000_000,
        attributes,
        ..Default::default()
    }
}

/// A batch as an instrumented agent sends it: an agent run (the root) with an LLM call, a tool
/// call, a failed LLM call and an embedding under it (which inherit its agent and conversation),
/// an HTTP span without GenAI attributes, a second trace with one bare LLM call, and one broken
/// span.
fn batch() -> ExportTraceServiceRequest {
    let child = |mut s: Span, parent: u8| {
        s.parent_span_id = vec![parent; 8];
        s
    };
    let mut failed =
        span(4, "chat gpt-x", 400, 650, vec![s("gen_ai.operation.name", "chat"), s("x.custom", "ignored")]);
    failed.status = Some(Status { code: 2, message: "upstream said no".into() });
    failed.events.push(Event {
        name: "exception".into(),
        time_unix_nano: T0 + 650_000_000,
        attributes: vec![s("exception.type", "RateLimitError"), s("exception.message", "429 from api-1: slow down")],
        ..Default::default()
    });
    let mut broken = span(7, "chat broken", 0, 10, vec![s("gen_ai.operation.name", "chat")]);
    broken.trace_id = vec![1, 2, 3];
    let mut other =
        span(8, "chat gpt-x", 0, 500, vec![s("gen_ai.operation.name", "chat"), i("gen_ai.usage.prompt_tokens", 5)]);
    other.trace_id = vec![0xcd; 16];
    let spans = vec![
        child(
            span(
                1,
                "chat gpt-x",
                0,
                1500,
                vec![
                    s("gen_ai.operation.name", "chat"),
                    i("gen_ai.usage.input_tokens", 120),
                    i("gen_ai.usage.output_tokens", 30),
                    kv("gen_ai.request.temperature", Value::DoubleValue(0.2)),
                ],
            ),
            6,
        ),
        child(
            span(
                2,
                "execute_tool get_weather",
                1500,
                1750,
                vec![
                    s("gen_ai.operation.name", "execute_tool"),
                    s("gen_ai.tool.name", "get_weather"),
                    s("gen_ai.tool.call.arguments", r#"{ "units": "c", "city": "Paris" }"#),
                ],
            ),
            6,
        ),
        child(span(3, "GET /api", 10, 20, vec![s("http.request.method", "GET")]), 1),
        child(failed, 6),
        child(
            span(
                5,
                "embeddings m",
                700,
                800,
                vec![s("gen_ai.operation.name", "embeddings"), i("gen_ai.usage.input_tokens", 8)],
            ),
            6,
        ),
        span(
            6,
            "invoke_agent planner",
            0,
            2000,
            vec![
                s("gen_ai.operation.name", "invoke_agent"),
                s("gen_ai.agent.name", "planner"),
                s("gen_ai.conversation.id", "conv-1"),
            ],
        ),
        other,
        broken,
    ];
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![s("service.name", "travel-svc")], ..Default::default() }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

struct Served {
    ace: Ace,
    server: ace::Server,
    trace: tempfile::NamedTempFile,
}

fn served(options: ServeOptions) -> Served {
    let trace = tempfile::NamedTempFile::new().unwrap();
    let config = AceConfig::builder().trace_path(trace.path().to_str().unwrap()).build().unwrap();
    let ace = Ace::builder().config(config).build().unwrap();
    let server = ace::serve_with(&ace, "127.0.0.1:0", options.otlp(true)).unwrap();
    Served { ace, server, trace }
}

impl Served {
    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The trace file's lines, without their time.
    fn events(&self) -> Vec<Json> {
        self.ace.flush().unwrap();
        std::fs::read_to_string(self.trace.path())
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: Json = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("ts");
                v
            })
            .collect()
    }

    fn metric(&self, outcome: &str) -> u64 {
        let (status, _, body) = http(self.addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"", false);
        assert_eq!(status, 200);
        let body = String::from_utf8(body).unwrap();
        let line = body
            .lines()
            .find(|l| l.starts_with("ace_otlp_spans_total{") && l.contains(&format!("outcome=\"{outcome}\"")))
            .unwrap_or_else(|| panic!("no {outcome} counter in {body}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }
}

/// Sends `head` (request line and headers, ending in a blank line) and `body`; `half_close` shuts
/// the write side after it. Returns (status, content type, body).
fn http(addr: SocketAddr, head: &str, body: &[u8], half_close: bool) -> (u16, String, Vec<u8>) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    let _ = conn.write_all(body);
    if half_close {
        let _ = conn.shutdown(Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("an answer head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).unwrap_or_default().to_owned();
    (status, content_type, out[split + 4..].to_vec())
}

fn post(addr: SocketAddr, content_type: &str, extra: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    http(addr, &head, body, false)
}

/// What the batch must leave in the trace, field by field.
fn expected() -> Vec<Json> {
    let other = "cd".repeat(16);
    vec![
        json!({"type": "stage", "agent": "planner", "task": "conv-1", "stage": "llm", "duration_s": 1.5, "success": true,
               "metrics": {"tokens_in": 120.0, "tokens_out": 30.0}}),
        json!({"type": "stage", "agent": "planner", "task": "conv-1", "stage": "tool", "duration_s": 0.25, "success": true,
               "tool": "get_weather", "args_digest": ace::tool::digest_json(r#"{"city":"Paris","units":"c"}"#).unwrap()}),
        json!({"type": "error", "agent": "planner", "task": "conv-1", "stage": "llm", "kind": "RateLimitError",
               "message": "429 from api-1: slow down"}),
        json!({"type": "stage", "agent": "planner", "task": "conv-1", "stage": "llm", "duration_s": 0.25, "success": false}),
        json!({"type": "stage", "agent": "planner", "task": "conv-1", "stage": "embeddings", "duration_s": 0.1, "success": true,
               "metrics": {"tokens_in": 8.0}}),
        json!({"type": "stage", "agent": "planner", "task": "conv-1", "stage": "invoke_agent", "duration_s": 2.0, "success": true}),
        json!({"type": "task_end", "agent": "planner", "task": "conv-1"}),
        // A root span of its own: no agent name (the service's), no conversation (the trace id).
        json!({"type": "stage", "agent": "travel-svc", "task": other, "stage": "llm", "duration_s": 0.5, "success": true,
               "metrics": {"tokens_in": 5.0}}),
        json!({"type": "task_end", "agent": "travel-svc", "task": other}),
    ]
}

fn assert_recorded(events: &[Json]) {
    let want = expected();
    assert_eq!(events.len(), want.len(), "{events:#?}");
    for (got, want) in events.iter().zip(&want) {
        for (k, v) in want.as_object().unwrap() {
            let g = &got[k];
            match (g.as_f64(), v.as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{k}: {got} vs {want}"),
                _ => assert_eq!(g, v, "{k}: {got} vs {want}"),
            }
        }
    }
}

#[test]
fn a_protobuf_batch_is_recorded_span_by_span() {
    let s = served(ServeOptions::default());
    let (status, content_type, body) = post(s.addr(), "application/x-protobuf", "", &batch().encode_to_vec());
    assert_eq!((status, content_type.as_str()), (200, "application/x-protobuf"));
    let response = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    let partial = response.partial_success.expect("one span was rejected");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace_id") && partial.error_message.contains("1 of 8"),
        "{}",
        partial.error_message
    );
    assert_recorded(&s.events());
    assert_eq!((s.metric("accepted"), s.metric("skipped"), s.metric("rejected")), (6, 1, 1));
    // The failed LLM call's error was grouped like any other.
    assert!(s.ace.patterns().iter().any(|p| p.kind == "RateLimitError"));
}

/// The batch in the OTLP/JSON encoding: hex ids, 64-bit integers as strings, enums as numbers.
fn batch_json() -> Json {
    let trace = "ab".repeat(16);
    let t = |ms: u64| (T0 + ms * 1_000_000).to_string();
    let sv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let iv = |k: &str, v: i64| json!({"key": k, "value": {"intValue": v.to_string()}});
    let sp = |id: u8, parent: Option<u8>, name: &str, a: u64, b: u64, attrs: Vec<Json>| {
        json!({"traceId": trace, "spanId": format!("{id:02x}").repeat(8), "name": name, "kind": 1,
               "parentSpanId": parent.map_or(String::new(), |p| format!("{p:02x}").repeat(8)),
               "startTimeUnixNano": t(a), "endTimeUnixNano": t(b), "attributes": attrs})
    };
    let mut failed =
        sp(4, Some(6), "chat gpt-x", 400, 650, vec![sv("gen_ai.operation.name", "chat"), sv("x.custom", "ignored")]);
    failed["status"] = json!({"code": 2, "message": "upstream said no"});
    failed["events"] = json!([{"name": "exception", "timeUnixNano": t(650), "attributes": [
        sv("exception.type", "RateLimitError"), sv("exception.message", "429 from api-1: slow down")]}]);
    let mut other = sp(
        8,
        None,
        "chat gpt-x",
        0,
        500,
        vec![sv("gen_ai.operation.name", "chat"), iv("gen_ai.usage.prompt_tokens", 5)],
    );
    other["traceId"] = json!("cd".repeat(16));
    let mut broken = sp(7, None, "chat broken", 0, 10, vec![sv("gen_ai.operation.name", "chat")]);
    broken["traceId"] = json!("010203");
    json!({"resourceSpans": [{
        "resource": {"attributes": [sv("service.name", "travel-svc")]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": [
            sp(1, Some(6), "chat gpt-x", 0, 1500, vec![sv("gen_ai.operation.name", "chat"),
                iv("gen_ai.usage.input_tokens", 120), iv("gen_ai.usage.output_tokens", 30),
                json!({"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.2}})]),
            sp(2, Some(6), "execute_tool get_weather", 1500, 1750, vec![sv("gen_ai.operation.name", "execute_tool"),
                sv("gen_ai.tool.name", "get_weather"), sv("gen_ai.tool.call.arguments", r#"{ "units": "c", "city": "Paris" }"#)]),
            sp(3, Some(1), "GET /api", 10, 20, vec![sv("http.request.method", "GET")]),
            failed,
            sp(5, Some(6), "embeddings m", 700, 800, vec![sv("gen_ai.operation.name", "embeddings"), iv("gen_ai.usage.input_tokens", 8)]),
            sp(6, None, "invoke_agent planner", 0, 2000, vec![sv("gen_ai.operation.name", "invoke_agent"),
                sv("gen_ai.agent.name", "planner"), sv("gen_ai.conversation.id", "conv-1")]),
            other,
            broken,
        ]}]
    }]})
}

#[test]
fn an_otlp_json_batch_is_recorded_like_the_protobuf_one() {
    let s = served(ServeOptions::default());
    let body = batch_json().to_string();
    let (status, content_type, answer) = post(s.addr(), "application/json", "", body.as_bytes());
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{}", String::from_utf8_lossy(&answer));
    let answer: Json = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"].to_string().trim_matches('"'), "1", "{answer}");
    assert_recorded(&s.events());
}

#[test]
fn gzip_bodies_are_inflated() {
    let s = served(ServeOptions::default());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&batch().encode_to_vec()).unwrap();
    let body = gz.finish().unwrap();
    let (status, _, _) = post(s.addr(), "application/x-protobuf", "Content-Encoding: gzip\r\n", &body);
    assert_eq!(status, 200);
    assert_recorded(&s.events());
}

#[test]
fn malformed_bodies_get_a_clear_400_and_record_nothing() {
    let s = served(ServeOptions::default());
    let (status, content_type, body) = post(s.addr(), "application/x-protobuf", "", b"\xff\xff\xff\xff not protobuf");
    assert_eq!((status, content_type.as_str()), (400, "application/x-protobuf"));
    // A google.rpc.Status: field 2 is the message.
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("not an OTLP protobuf export request"), "{text}");
    for bad in [r#"{"resourceSpans": 5}"#, "{", r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#]
    {
        let (status, content_type, body) = post(s.addr(), "application/json", "", bad.as_bytes());
        assert_eq!((status, content_type.as_str()), (400, "application/json"), "{bad}");
        let status: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["code"], 3);
        assert!(status["message"].as_str().unwrap().contains("not an OTLP/JSON export request"), "{status}");
    }
    let (status, _, _) = post(s.addr(), "application/x-protobuf", "Content-Encoding: gzip\r\n", b"not gzip");
    assert_eq!(status, 400);
    assert!(s.events().is_empty());
}

#[test]
fn unsupported_types_and_encodings_get_415() {
    let s = served(ServeOptions::default());
    let body = batch().encode_to_vec();
    assert_eq!(post(s.addr(), "text/plain", "", &body).0, 415);
    assert_eq!(post(s.addr(), "application/x-protobuf", "Content-Encoding: br\r\n", &body).0, 415);
    assert!(s.events().is_empty());
}

#[test]
fn oversize_bodies_get_413_before_and_after_inflating() {
    let s = served(ServeOptions::default().otlp_max_body(1000));
    let (status, _, body) = post(s.addr(), "application/json", "", &vec![b' '; 5000]);
    assert_eq!(status, 413);
    assert!(String::from_utf8_lossy(&body).contains("limit is 1000"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 100_000]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1000);
    assert_eq!(post(s.addr(), "application/json", "Content-Encoding: gzip\r\n", &bomb).0, 413);
    // A batch under the limit still goes through.
    let small = ExportTraceServiceRequest { resource_spans: batch().resource_spans[..0].to_vec() };
    assert_eq!(post(s.addr(), "application/x-protobuf", "", &small.encode_to_vec()).0, 200);
}

#[test]
fn lengths_methods_and_tokens() {
    let s = served(ServeOptions::default().token("t0ken"));
    let auth = "Authorization: Bearer t0ken\r\n";
    let body = batch().encode_to_vec();
    assert_eq!(post(s.addr(), "application/x-protobuf", "", &body).0, 401);
    assert_eq!(post(s.addr(), "application/x-protobuf", "Authorization: Bearer nope\r\n", &body).0, 401);
    // No length, a chunked body, a length that is not a number, a body shorter than its length.
    let head = format!("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n{auth}\r\n");
    assert_eq!(http(s.addr(), &head, &body, true).0, 411);
    let chunked = head.replace("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(http(s.addr(), &chunked, b"0\r\n\r\n", true).0, 411);
    let nan = head.replace("\r\n\r\n", "\r\nContent-Length: ten\r\n\r\n");
    assert_eq!(http(s.addr(), &nan, &body, true).0, 400);
    let short = head.replace("\r\n\r\n", &format!("\r\nContent-Length: {}\r\n\r\n", body.len() + 10));
    let (status, _, answer) = http(s.addr(), &short, &body, true);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&answer).contains("ended after"));
    assert_eq!(http(s.addr(), &format!("GET /v1/traces HTTP/1.1\r\n{auth}\r\n"), b"", true).0, 405);
    assert!(s.events().is_empty(), "nothing was recorded from a refused request");
    assert_eq!(post(s.addr(), "application/x-protobuf", auth, &body).0, 200);
    assert_recorded(&s.events());
}

/// An answer given before the body is read (a `411`) reaches the client even when the body is
/// large: the listener closes gracefully, reading what the client still sends, instead of
/// closing with it unread, which resets the connection and loses the answer.
#[test]
fn a_refusal_reaches_a_client_still_sending_its_body() {
    let s = served(ServeOptions::default());
    let head = "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\r\n";
    for _ in 0..5 {
        assert_eq!(http(s.addr(), head, &vec![0u8; 16 << 20], true).0, 411);
    }
}

#[test]
fn unknown_attributes_and_values_are_ignored_and_odd_spans_counted() {
    let srv = served(ServeOptions::default());
    let mut spans = vec![
        // Structured arguments, an attribute of every type, a span with no attributes at all.
        span(
            1,
            "execute_tool t",
            0,
            1,
            vec![
                s("gen_ai.operation.name", "execute_tool"),
                s("gen_ai.tool.name", "lookup"),
                kv(
                    "gen_ai.tool.call.arguments",
                    Value::KvlistValue(KeyValueList { values: vec![s("b", "x"), i("a", 1)] }),
                ),
                kv("x.bytes", Value::BytesValue(vec![0, 1])),
                kv("x.bool", Value::BoolValue(true)),
                kv("gen_ai.usage.input_tokens", Value::StringValue("not a number".into())),
            ],
        ),
        span(2, "bare", 0, 1, vec![]),
        // An operation name that is not a stage name: made one.
        span(3, "x", 0, 1, vec![s("gen_ai.operation.name", "Create Agent!")]),
        // Ends before it starts: refused alone.
        span(4, "chat", 5, 1, vec![s("gen_ai.operation.name", "chat")]),
        // An agent name that is no id (control characters): read as absent.
        span(5, "chat", 0, 1, vec![s("gen_ai.operation.name", "chat"), s("gen_ai.agent.name", "a\nb")]),
        // A tool call without a tool name: refused alone.
        span(6, "execute_tool", 0, 1, vec![s("gen_ai.operation.name", "execute_tool")]),
    ];
    spans[1].trace_id = Vec::new();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    };
    let (status, _, body) = post(srv.addr(), "application/x-protobuf", "", &request.encode_to_vec());
    assert_eq!(status, 200);
    assert_eq!(ExportTraceServiceResponse::decode(body.as_slice()).unwrap().partial_success.unwrap().rejected_spans, 2);
    // Each span is a root: its task ends with it.
    let events: Vec<_> = srv.events().into_iter().filter(|e| e["type"] != "task_end").collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[0]["agent"], "unknown_service", "no service.name: the default agent");
    assert_eq!(events[0]["stage"], "tool");
    assert_eq!(events[1]["stage"], "create_agent");
    assert_eq!((events[2]["stage"].as_str(), events[2]["agent"].as_str()), (Some("llm"), Some("unknown_service")));
    assert_eq!((srv.metric("accepted"), srv.metric("skipped"), srv.metric("rejected")), (3, 1, 2));
}

#[test]
fn without_otlp_the_path_is_not_served() {
    let ace = Ace::builder().build().unwrap();
    let server = ace::serve_with(&ace, "127.0.0.1:0", ServeOptions::default()).unwrap();
    let (status, _, _) = post(server.local_addr(), "application/x-protobuf", "", &batch().encode_to_vec());
    assert_eq!(status, 405);
}
