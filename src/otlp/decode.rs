//! An OTLP/HTTP request body to an `ExportTraceServiceRequest`: the content type picks protobuf
//! or OTLP/JSON, the content encoding `gzip` or none; anything else is refused with the status
//! the OTLP/HTTP specification gives it.

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// The two encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/x-protobuf`: the binary protobuf encoding.
    Protobuf,
    /// `application/json`: the OTLP/JSON encoding (hex ids, 64-bit integers as strings or numbers).
    Json,
}

impl Format {
    /// The format a `Content-Type` names (parameters such as `charset` are ignored).
    pub(crate) fn from_content_type(content_type: Option<&str>) -> Option<Format> {
        let essence = content_type?.split(';').next()?.trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Format::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Format::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Why a request was refused as a whole: an HTTP status and a message for the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The status line's code and reason (`400 Bad Request`).
    pub status: &'static str,
    /// What was wrong, in a sentence.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(status: &'static str, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into() }
    }
}

/// The body as sent, or inflated when `Content-Encoding` is `gzip`; at most `max` bytes either
/// way (a small gzip body that inflates past `max` is refused like a large one: `413`).
pub(crate) fn inflate(encoding: Option<&str>, body: Vec<u8>, max: usize) -> Result<Vec<u8>, Refusal> {
    match encoding.map(str::trim) {
        None | Some("") => Ok(body),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(body),
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
            let read = flate2::read::GzDecoder::new(body.as_slice()).take(max as u64 + 1).read_to_end(&mut out);
            match read {
                Err(e) => Err(Refusal::new("400 Bad Request", format!("the gzip body cannot be inflated: {e}"))),
                Ok(n) if n > max => Err(Refusal::new(
                    "413 Content Too Large",
                    format!("the body inflates past the limit of {max} bytes"),
                )),
                Ok(_) => Ok(out),
            }
        }
        Some(other) => Err(Refusal::new(
            "415 Unsupported Media Type",
            format!("Content-Encoding {other:?} is not supported: send gzip or no encoding"),
        )),
    }
}

/// Decodes an export request.
pub(crate) fn decode(format: Format, body: &[u8]) -> Result<ExportTraceServiceRequest, Refusal> {
    match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(body).map_err(|e| {
            Refusal::new("400 Bad Request", format!("the body is not an OTLP protobuf export request: {e}"))
        }),
        Format::Json => serde_json::from_slice(body)
            .map_err(|e| Refusal::new("400 Bad Request", format!("the body is not an OTLP/JSON export request: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_encodings() {
        assert_eq!(Format::from_content_type(Some("application/x-protobuf")), Some(Format::Protobuf));
        assert_eq!(Format::from_content_type(Some("Application/JSON; charset=utf-8")), Some(Format::Json));
        assert_eq!(Format::from_content_type(Some("text/plain")), None);
        assert_eq!(Format::from_content_type(None), None);
        assert_eq!(inflate(Some("br"), vec![1], 10).unwrap_err().status, "415 Unsupported Media Type");
        assert_eq!(inflate(Some("gzip"), vec![1, 2, 3], 10).unwrap_err().status, "400 Bad Request");
        assert_eq!(inflate(None, vec![1, 2], 10).unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'{'; 100_000]).unwrap();
        let small = gz.finish().unwrap();
        assert!(small.len() < 1000);
        assert_eq!(inflate(Some("gzip"), small.clone(), 50_000).unwrap_err().status, "413 Content Too Large");
        assert_eq!(inflate(Some("GZIP"), small, 100_000).unwrap().len(), 100_000);
    }
}
