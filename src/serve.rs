//! A small HTTP listener for one engine: `GET /metrics` (OpenMetrics text) and `GET /health`
//! (the runbook's JSON), optionally behind a bearer token. Plain `std::net`, one thread; a scrape
//! every few seconds needs nothing more, and the agent's calls never touch it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ace_core::{Ace, Error, Result};

/// How long a client may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read (a scrape's is a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;

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
    let token = options.token.map(|t| format!("Bearer {t}"));
    let thread = std::thread::Builder::new()
        .name("ace-serve".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                if let Err(e) = answer(&ace, stream, token.as_deref()) {
                    tracing::debug!(error = %e, "a metrics client went away");
                }
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start the metrics listener: {e}")))?;
    tracing::info!(%addr, "serving /metrics and /health");
    Ok(Server { addr, stop, thread: Some(thread) })
}

/// Reads one request and writes its answer (one request per connection).
fn answer(ace: &Ace, stream: TcpStream, token: Option<&str>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.by_ref().take(MAX_HEAD as u64).read_line(&mut request_line)?;
    let mut authorization = None;
    let mut openmetrics = false;
    let mut head = request_line.len();
    loop {
        let mut line = String::new();
        let n = reader.by_ref().take(MAX_HEAD as u64).read_line(&mut line)?;
        head += n;
        if n == 0 || line == "\r\n" || line == "\n" || head > MAX_HEAD {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            } else if name.eq_ignore_ascii_case("accept") {
                openmetrics = value.contains("application/openmetrics-text");
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if !matches!(method, "GET" | "HEAD") {
        ("405 Method Not Allowed", "text/plain", "only GET and HEAD\n".to_owned())
    } else if token.is_some_and(|t| authorization.as_deref() != Some(t)) {
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
