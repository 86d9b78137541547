//! A small HTTP listener for one engine: the live page at `/`, its JSON under
//! `/api/`, `GET /metrics` (OpenMetrics text) and `GET /health` (the runbook's JSON),
//! optionally behind a bearer token (compared in constant time). Plain `std::net`: one accepting
//! thread, and a short-lived thread per connection (at most [`MAX_CONNECTIONS`] at once), so a
//! slow or idle client never holds up a scrape. Each connection gets [`IO_TIMEOUT`] in all to
//! send its request head (not per read: a client sending a byte a second is cut off too), at most
//! [`MAX_HEAD`] bytes, [`MAX_HEADERS`] headers and a [`MAX_TARGET`]-byte path and query, and one
//! request; only GET and HEAD are served, but for `POST /v1/traces` when OTLP is on
//! ([`ServeOptions::otlp`], `otlp` feature): its body, at most [`ServeOptions::otlp_max_body`]
//! bytes with a `Content-Length`, gets [`BODY_TIMEOUT`]. A closed engine is answered `503`.

use std::io::BufReader;
#[cfg(feature = "otlp")]
use std::io::Read;

mod api;
mod http;
mod page;
use http::{Deadline, Head, authorized, read_head, refuse, respond};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ace_core::{Ace, Error, Result};

/// How long a client may take, in all, to send its request head; and to read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read (a scrape's is a few hundred bytes).
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest request target (path and query) served; a longer one is answered `414`.
pub const MAX_TARGET: usize = 8 * 1024;
/// The most header lines a request may have.
pub const MAX_HEADERS: usize = 64;
/// Connections served at once; one more is answered `503` and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take, in all, to send a request body (OTLP exports).
#[cfg(feature = "otlp")]
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for [`serve_with`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Require `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
    /// Take OTLP/HTTP trace exports on `POST /v1/traces` (see [`crate::otlp`]).
    #[cfg(feature = "otlp")]
    pub otlp: bool,
    /// The largest OTLP request body, in bytes, before and after gzip (default
    /// [`crate::otlp::DEFAULT_MAX_BODY`]); a larger one is answered `413`.
    #[cfg(feature = "otlp")]
    pub otlp_max_body: usize,
}

#[cfg_attr(not(feature = "otlp"), allow(clippy::derivable_impls))] // OTLP adds a non-default field
impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            token: None,
            #[cfg(feature = "otlp")]
            otlp: false,
            #[cfg(feature = "otlp")]
            otlp_max_body: crate::otlp::DEFAULT_MAX_BODY,
        }
    }
}

impl ServeOptions {
    /// Requires `token` as a bearer token.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Takes OTLP/HTTP trace exports on `POST /v1/traces`.
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn otlp(mut self, on: bool) -> Self {
        self.otlp = on;
        self
    }

    /// The largest OTLP request body, in bytes.
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn otlp_max_body(mut self, bytes: usize) -> Self {
        self.otlp_max_body = bytes;
        self
    }
}

/// What every connection's thread shares.
#[derive(Debug)]
struct Shared {
    token: Option<String>,
    #[cfg(feature = "otlp")]
    otlp: Option<(crate::otlp::Counters, usize)>,
}

/// A running listener; stopped when dropped (or by [`Server::stop`]).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The address it listens on (with the port chosen, when asked for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept call.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves `ace`'s `/metrics` and `/health` on `addr` (`127.0.0.1:9464`; port 0 picks one).
pub fn serve(ace: &Ace, addr: impl ToSocketAddrs) -> Result<Server> {
    serve_with(ace, addr, ServeOptions::default())
}

/// [`serve`] with options (a bearer token).
pub fn serve_with(ace: &Ace, addr: impl ToSocketAddrs, options: ServeOptions) -> Result<Server> {
    let listener = TcpListener::bind(addr).map_err(|e| Error::Config {
        key: "ACE_METRICS_ADDR".into(),
        value: String::new(),
        reason: format!("cannot listen: {e}"),
    })?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (ace, flag) = (ace.clone(), stop.clone());
    #[cfg(feature = "otlp")]
    let otlp = options.otlp.then(|| (crate::otlp::Counters::new(), options.otlp_max_body));
    let shared = Arc::new(Shared {
        token: options.token,
        #[cfg(feature = "otlp")]
        otlp,
    });
    let thread = std::thread::Builder::new()
        .name("ace-serve".into())
        .spawn(move || {
            let open = Arc::new(AtomicUsize::new(0));
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = refuse(stream);
                    continue;
                }
                let (ace, shared, open) = (ace.clone(), shared.clone(), open.clone());
                let spawned = std::thread::Builder::new().name("ace-serve-conn".into()).spawn(move || {
                    if let Err(e) = answer(&ace, stream, &shared) {
                        tracing::debug!(error = %e, "a metrics client went away");
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
                if spawned.is_err() {
                    tracing::warn!("cannot start a thread for a metrics client; it was dropped");
                }
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start the metrics listener: {e}")))?;
    tracing::info!(%addr, "serving /metrics and /health");
    Ok(Server { addr, stop, thread: Some(thread) })
}

/// Reads one request and writes its answer (one request per connection).
fn answer(ace: &Ace, stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(Deadline { stream: stream.try_clone()?, deadline: Instant::now() + IO_TIMEOUT });
    let head = read_head(&mut reader)?;
    #[cfg(feature = "otlp")]
    if let (Some((counters, max)), "/v1/traces") = (&shared.otlp, parts(&head.request_line).2) {
        let method = parts(&head.request_line).0;
        let answer = if let Some(refused) = head.refused {
            crate::otlp::refuse_unread(None, refused, "the request head is too large".into())
        } else if method != "POST" {
            drain(&mut reader, &head, *max);
            crate::otlp::refuse_unread(None, "405 Method Not Allowed", "only POST".into())
        } else if unauthorized(shared, &head) {
            drain(&mut reader, &head, *max);
            crate::otlp::refuse_unread(None, "401 Unauthorized", "a bearer token is required".into())
        } else {
            export(ace, &mut reader, &head, counters, *max)
        };
        counters.answered(answer.status);
        return respond(stream, answer.status, answer.content_type, &answer.body, false, "POST");
    }
    let (status, content_type, body) = plain(ace, shared, &head);
    respond(stream, status, content_type, body.as_bytes(), parts(&head.request_line).0 == "HEAD", "GET, HEAD")
}

/// A request line's method, target (path and query) and path.
fn parts(request_line: &str) -> (&str, &str, &str) {
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    (method, target, target.split('?').next().unwrap_or(""))
}

/// Whether the listener wants a token that the request does not carry.
fn unauthorized(shared: &Shared, head: &Head) -> bool {
    shared.token.as_deref().is_some_and(|t| !authorized(head.authorization.as_deref(), t))
}

/// The answer to a request that is not an OTLP export: (status, content type, body).
fn plain(ace: &Ace, shared: &Shared, head: &Head) -> (&'static str, &'static str, String) {
    let (method, target, path) = parts(&head.request_line);
    if let Some(refused) = head.refused {
        let why =
            if refused.starts_with("414") { "the request line is too long" } else { "the request head is too large" };
        (refused, "text/plain", format!("{why}\n"))
    } else if target.len() > MAX_TARGET {
        ("414 URI Too Long", "text/plain", format!("the path and query are over {MAX_TARGET} bytes\n"))
    } else if !matches!(method, "GET" | "HEAD") {
        ("405 Method Not Allowed", "text/plain", "only GET and HEAD\n".to_owned())
    } else if unauthorized(shared, head) {
        ("401 Unauthorized", "text/plain", "a bearer token is required\n".to_owned())
    } else if ace.is_closed() {
        ("503 Service Unavailable", "text/plain", "the engine is closed\n".to_owned())
    } else {
        route(ace, shared, path, target.split_once('?').map_or("", |(_, q)| q), head.openmetrics)
    }
}

/// Parses `request` (a request head, as bytes from a client) and answers it as the listener
/// would, with no socket: (status, content type, body). The entry point of the request fuzz
/// target (`fuzz/fuzz_targets/request.rs`) and of its seeded counterpart in the tests; OTLP
/// exports are not taken here.
#[doc(hidden)]
pub fn answer_request(ace: &Ace, token: Option<&str>, request: &[u8]) -> (&'static str, &'static str, String) {
    let shared = Shared {
        token: token.map(str::to_owned),
        #[cfg(feature = "otlp")]
        otlp: None,
    };
    match read_head(&mut std::io::BufReader::new(request)) {
        Ok(head) => plain(ace, &shared, &head),
        // A slice never fails to read; a socket's error drops the connection unanswered.
        Err(e) => ("400 Bad Request", "text/plain", format!("{e}\n")),
    }
}

/// A GET's answer: (status, content type, body).
fn route(
    ace: &Ace,
    shared: &Shared,
    path: &str,
    query: &str,
    openmetrics: bool,
) -> (&'static str, &'static str, String) {
    match path {
        "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", page::PAGE.to_owned()),
        // Prometheus asks for OpenMetrics; curl, promtool and older scrapers get the classic format.
        "/metrics" if openmetrics => {
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics_text(ace, shared))
        }
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            ace_core::telemetry::prometheus_text(&metrics_text(ace, shared)),
        ),
        "/health" => {
            let h = ace.health();
            let status = if h.status == "unhealthy" { "503 Service Unavailable" } else { "200 OK" };
            (status, "application/json", h.to_json())
        }
        _ if path.starts_with("/api/") => api::answer(ace, &path[5..], query),
        _ => ("404 Not Found", "text/plain", "try /, /metrics, /health or /api/\n".to_owned()),
    }
}

/// The engine's metrics, with the listener's own when it takes OTLP.
fn metrics_text(ace: &Ace, shared: &Shared) -> String {
    let text = ace.metrics_text();
    #[cfg(feature = "otlp")]
    if let Some((counters, _)) = &shared.otlp {
        return counters.append_to(text);
    }
    let _ = shared;
    text
}

/// Reads an export's body (with its own deadline) and answers it.
#[cfg(feature = "otlp")]
fn export(
    ace: &Ace,
    reader: &mut BufReader<Deadline>,
    head: &Head,
    counters: &crate::otlp::Counters,
    max: usize,
) -> crate::otlp::Answer {
    use crate::otlp::refuse_unread;
    let content_type = head.content_type.as_deref();
    let len = match head.content_length {
        _ if head.chunked => {
            return refuse_unread(content_type, "411 Length Required", "send the body with a Content-Length".into());
        }
        None => return refuse_unread(content_type, "411 Length Required", "a Content-Length is required".into()),
        Some(Err(())) => {
            return refuse_unread(content_type, "400 Bad Request", "the Content-Length is not a number".into());
        }
        Some(Ok(len)) => len,
    };
    if len > max {
        drain(reader, head, max);
        return refuse_unread(
            content_type,
            "413 Content Too Large",
            format!("the body is {len} bytes; the limit is {max} (ACE_OTLP_MAX_BODY)"),
        );
    }
    reader.get_mut().deadline = Instant::now() + BODY_TIMEOUT;
    let mut body = Vec::with_capacity(len);
    if let Err(e) = reader.by_ref().take(len as u64).read_to_end(&mut body) {
        return refuse_unread(content_type, "400 Bad Request", format!("the body could not be read: {e}"));
    }
    if body.len() < len {
        return refuse_unread(
            content_type,
            "400 Bad Request",
            format!("the body ended after {} of {len} bytes", body.len()),
        );
    }
    crate::otlp::export(ace, counters, content_type, head.content_encoding.as_deref(), body, max)
}

/// Reads (and drops) a bounded part of a body that will not be used, for two seconds at most, so
/// the client is not cut off mid-send (a reset) before it can read the answer.
#[cfg(feature = "otlp")]
fn drain(reader: &mut BufReader<Deadline>, head: &Head, max: usize) {
    if let Some(Ok(len)) = head.content_length {
        reader.get_mut().deadline = Instant::now() + Duration::from_secs(2);
        let _ = std::io::copy(&mut reader.by_ref().take(len.min(16 * max) as u64), &mut std::io::sink());
    }
}
