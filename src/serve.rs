//! A small HTTP listener for one engine: `GET /metrics` (OpenMetrics text) and `GET /health`
//! (the runbook's JSON), optionally behind a bearer token. Plain `std::net`: one accepting
//! thread, and a short-lived thread per connection (at most [`MAX_CONNECTIONS`] at once), so a
//! slow or idle client never holds up a scrape. Each connection gets [`IO_TIMEOUT`] in all to
//! send its request head (not per read: a client sending a byte a second is cut off too), at most
//! [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers, and one request; only GET and HEAD are served.

use std::io::{BufRead, BufReader, Read, Write};
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
/// The most header lines a request may have.
pub const MAX_HEADERS: usize = 64;
/// Connections served at once; one more is answered `503` and closed.
pub const MAX_CONNECTIONS: usize = 64;

/// Options for [`serve_with`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Require `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
}

impl ServeOptions {
    /// Requires `token` as a bearer token.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
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
    let token: Option<Arc<str>> = options.token.map(Arc::from);
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
                let (ace, token, open) = (ace.clone(), token.clone(), open.clone());
                let spawned = std::thread::Builder::new().name("ace-serve-conn".into()).spawn(move || {
                    if let Err(e) = answer(&ace, stream, token.as_deref()) {
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

/// Answers a client over the connection limit.
fn refuse(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let body = "too many connections\n";
    write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A reader that gives up once `deadline` has passed, however the bytes trickle in.
struct Deadline {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the request head took too long"));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// The request head, as far as the listener needs it.
#[derive(Default)]
struct Head {
    request_line: String,
    authorization: Option<String>,
    openmetrics: bool,
    /// Why the head was refused (too large, too many headers).
    refused: Option<&'static str>,
}

fn read_head(reader: &mut impl BufRead) -> std::io::Result<Head> {
    let mut head = Head::default();
    reader.by_ref().take(MAX_HEAD as u64).read_line(&mut head.request_line)?;
    let mut size = head.request_line.len();
    let mut headers = 0;
    loop {
        let mut line = String::new();
        let n = reader.by_ref().take((MAX_HEAD + 1 - size.min(MAX_HEAD)) as u64).read_line(&mut line)?;
        size += n;
        if n == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        headers += 1;
        if size > MAX_HEAD || headers > MAX_HEADERS {
            head.refused = Some("431 Request Header Fields Too Large");
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("authorization") {
                head.authorization = Some(value.trim().to_owned());
            } else if name.eq_ignore_ascii_case("accept") {
                head.openmetrics = value.contains("application/openmetrics-text");
            }
        }
    }
    Ok(head)
}

/// Whether `authorization` carries `token` as a bearer token (the scheme in any case, the token
/// compared in constant time).
fn authorized(authorization: Option<&str>, token: &str) -> bool {
    let Some((scheme, given)) = authorization.and_then(|a| a.split_once(' ')) else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let (given, token) = (given.trim().as_bytes(), token.as_bytes());
    let mut diff = given.len() ^ token.len();
    for (i, &b) in token.iter().enumerate() {
        diff |= usize::from(b ^ given.get(i).copied().unwrap_or(!b));
    }
    diff == 0
}

/// Reads one request and writes its answer (one request per connection).
fn answer(ace: &Ace, stream: TcpStream, token: Option<&str>) -> std::io::Result<()> {
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(Deadline { stream: stream.try_clone()?, deadline: Instant::now() + IO_TIMEOUT });
    let head = read_head(&mut reader)?;
    let request_line = head.request_line;
    let (authorization, openmetrics) = (head.authorization, head.openmetrics);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if let Some(refused) = head.refused {
        (refused, "text/plain", "the request head is too large\n".to_owned())
    } else if !matches!(method, "GET" | "HEAD") {
        ("405 Method Not Allowed", "text/plain", "only GET and HEAD\n".to_owned())
    } else if token.is_some_and(|t| !authorized(authorization.as_deref(), t)) {
        ("401 Unauthorized", "text/plain", "a bearer token is required\n".to_owned())
    } else {
        match path {
            // Prometheus asks for OpenMetrics; curl, promtool and older scrapers get the classic format.
            "/metrics" if openmetrics => {
                ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", ace.metrics_text())
            }
            "/metrics" => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", ace.metrics_text_prometheus()),
            "/health" => {
                let h = ace.health();
                let status = if h.status == "unhealthy" { "503 Service Unavailable" } else { "200 OK" };
                (status, "application/json", h.to_json())
            }
            _ => ("404 Not Found", "text/plain", "try /metrics or /health\n".to_owned()),
        }
    };
    let mut out = stream;
    let auth = if status.starts_with("401") { "WWW-Authenticate: Bearer\r\n" } else { "" };
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}
