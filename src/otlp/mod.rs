//! OpenTelemetry in over the network: `POST /v1/traces` on the listener of [`crate::serve_with`]
//! (`ace serve --otlp`) takes OTLP/HTTP trace exports, protobuf (`application/x-protobuf`) or
//! OTLP/JSON (`application/json`), plain or `Content-Encoding: gzip`, and maps their GenAI spans
//! to the engine (the `map` module has the table). Any agent with a stock OTLP exporter feeds ace this way.
//!
//! Answers follow the OTLP/HTTP specification: `200` with an export response, whose
//! `partial_success` counts the spans refused one by one (the others are recorded all the same);
//! `400` for a body that does not decode, `413` past the size limit (before or after inflating),
//! `415` for another content type or encoding, `503` when the engine is closed; errors carry a
//! `google.rpc.Status` in the request's encoding. Spans without `gen_ai.operation.name` are
//! skipped. Accepted, skipped and rejected spans are counted in `ace_otlp_spans_total`.

mod decode;
mod map;
mod tool;

use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message;

use ace_core::Ace;
pub use map::{LLM_STAGE, MAX_ARGUMENT_CHARS, Tally, UNKNOWN_AGENT, arguments_digest, stage_name};

use decode::{Format, Refusal};

/// The largest request body taken by default, in bytes (and the most a gzip body may inflate to).
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

type Labels = Vec<(&'static str, &'static str)>;

/// The listener's OTLP counters: spans by outcome and requests by status.
pub(crate) struct Counters {
    registry: Mutex<Registry>,
    spans: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Counters {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let (spans, requests) = (Family::<Labels, Counter>::default(), Family::<Labels, Counter>::default());
        registry.register(
            "ace_otlp_spans",
            "Spans received on /v1/traces, by outcome: accepted (recorded), skipped (no gen_ai.operation.name), rejected (refused one by one)",
            spans.clone(),
        );
        registry.register("ace_otlp_requests", "Export requests on /v1/traces, by HTTP status", requests.clone());
        Counters { registry: Mutex::new(registry), spans, requests }
    }

    fn count(&self, tally: &Tally) {
        for (outcome, n) in [("accepted", tally.accepted), ("skipped", tally.skipped), ("rejected", tally.rejected)] {
            self.spans.get_or_create(&vec![("outcome", outcome)]).inc_by(n);
        }
    }

    /// Counts a request answered with `status` (`"400 Bad Request"`).
    pub(crate) fn answered(&self, status: &'static str) {
        let code = status.split(' ').next().unwrap_or(status);
        self.requests.get_or_create(&vec![("code", code)]).inc();
    }

    /// `metrics` (OpenMetrics text, ending in `# EOF`) with these counters added.
    pub(crate) fn append_to(&self, metrics: String) -> String {
        let mut out = metrics;
        if out.ends_with("# EOF\n") {
            out.truncate(out.len() - "# EOF\n".len());
        }
        let registry = self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// An answer to an export request.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The status line's code and reason.
    pub status: &'static str,
    /// Its content type.
    pub content_type: &'static str,
    /// Its body.
    pub body: Vec<u8>,
}

/// Answers `POST /v1/traces`: the body is at most `max` bytes already (the caller refuses a
/// larger `Content-Length` with `413` without reading it).
pub(crate) fn export(
    ace: &Ace,
    counters: &Counters,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: Vec<u8>,
    max: usize,
) -> Answer {
    let Some(format) = Format::from_content_type(content_type) else {
        return refused(
            None,
            Refusal::new(
                "415 Unsupported Media Type",
                format!(
                    "Content-Type {content_type:?} is not supported: send application/x-protobuf or application/json"
                ),
            ),
        );
    };
    let request = match decode::inflate(content_encoding, body, max).and_then(|b| decode::decode(format, &b)) {
        Ok(r) => r,
        Err(refusal) => return refused(Some(format), refusal),
    };
    let tally = match map::ingest(ace, &request) {
        Ok(t) => t,
        Err(e) => return refused(Some(format), Refusal::new("503 Service Unavailable", e.to_string())),
    };
    counters.count(&tally);
    if tally.accepted > 0 {
        // The answer says the spans are recorded: the store and the trace file have them.
        if let Err(e) = ace.flush() {
            tracing::warn!(error = %e, "OTLP spans are recorded but the flush after them failed");
        }
    }
    if tally.rejected > 0 {
        tracing::debug!(rejected = tally.rejected, first = ?tally.first_error, "OTLP spans refused");
    }
    let partial_success = (tally.rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(tally.rejected).unwrap_or(i64::MAX),
        error_message: format!(
            "{} of {} spans rejected; the first: {}",
            tally.rejected,
            tally.accepted + tally.skipped + tally.rejected,
            tally.first_error.as_deref().unwrap_or("")
        ),
    });
    let response = ExportTraceServiceResponse { partial_success };
    let body = match format {
        Format::Protobuf => response.encode_to_vec(),
        Format::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    };
    Answer { status: "200 OK", content_type: format.content_type(), body }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An error answer: a `google.rpc.Status` in `format`, or plain text when the format is unknown.
pub(crate) fn refused(format: Option<Format>, refusal: Refusal) -> Answer {
    // gRPC codes: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE.
    let code = if refusal.status.starts_with("413") {
        8
    } else if refusal.status.starts_with("503") {
        14
    } else {
        3
    };
    let status = RpcStatus { code, message: refusal.message };
    let body = match format {
        Some(Format::Protobuf) => status.encode_to_vec(),
        Some(Format::Json) => {
            serde_json::json!({ "code": status.code, "message": status.message }).to_string().into_bytes()
        }
        None => format!("{}\n", status.message).into_bytes(),
    };
    let content_type = format.map_or("text/plain", Format::content_type);
    Answer { status: refusal.status, content_type, body }
}

/// Refuses a body before reading it (too large, no length).
pub(crate) fn refuse_unread(content_type: Option<&str>, status: &'static str, message: String) -> Answer {
    refused(Format::from_content_type(content_type), Refusal::new(status, message))
}
