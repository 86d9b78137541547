//! The listener's HTTP: reading a request head within its limits, the bearer token check, and
//! writing an answer.

use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::{MAX_HEAD, MAX_HEADERS, MAX_TARGET};

/// Answers a client over the connection limit.
pub(super) fn refuse(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let body = "too many connections\n";
    write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A reader that gives up once `deadline` has passed, however the bytes trickle in.
pub(super) struct Deadline {
    pub(super) stream: TcpStream,
    pub(super) deadline: Instant,
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
pub(super) struct Head {
    pub(super) request_line: String,
    pub(super) authorization: Option<String>,
    pub(super) openmetrics: bool,
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    /// `Content-Length`: `Some(Err(()))` when it is not a number.
    pub(super) content_length: Option<std::result::Result<usize, ()>>,
    pub(super) chunked: bool,
    /// Why the head was refused (too large, too many headers).
    pub(super) refused: Option<&'static str>,
}

/// One line of at most `max` bytes (bytes that are not UTF-8 read as U+FFFD: a request of
/// garbage is answered, not dropped).
fn read_line(reader: &mut impl BufRead, max: usize) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    reader.by_ref().take(max as u64).read_until(b'\n', &mut bytes)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

pub(super) fn read_head(reader: &mut impl BufRead) -> std::io::Result<Head> {
    let mut head = Head { request_line: read_line(reader, MAX_TARGET + 64)?, ..Head::default() };
    if !head.request_line.ends_with('\n') && !head.request_line.is_empty() {
        head.refused = Some("414 URI Too Long");
        return Ok(head);
    }
    let mut size = head.request_line.len();
    let mut headers = 0;
    loop {
        let line = read_line(reader, MAX_HEAD + 1 - size.min(MAX_HEAD))?;
        let n = line.len();
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
            } else if name.eq_ignore_ascii_case("content-type") {
                head.content_type = Some(value.trim().to_owned());
            } else if name.eq_ignore_ascii_case("content-encoding") {
                head.content_encoding = Some(value.trim().to_owned());
            } else if name.eq_ignore_ascii_case("content-length") {
                head.content_length = Some(value.trim().parse().map_err(|_| ()));
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = !value.trim().eq_ignore_ascii_case("identity");
            }
        }
    }
    Ok(head)
}

/// Whether `authorization` carries `token` as a bearer token (the scheme in any case, the token
/// compared in constant time).
pub(super) fn authorized(authorization: Option<&str>, token: &str) -> bool {
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

/// How long, and how many bytes, [`respond`] reads after answering before it closes.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// Writes an answer and closes, lingering (see [`linger`]).
/// `allowed` is the path's methods, named in the `Allow` header of a `405`.
pub(super) fn respond(
    mut out: TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    allowed: &str,
) -> std::io::Result<()> {
    let auth = if status.starts_with("401") { "WWW-Authenticate: Bearer\r\n" } else { "" };
    let allow = if status.starts_with("405") { format!("Allow: {allowed}\r\n") } else { String::new() };
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{auth}{allow}Connection: close\r\n\r\n",
        body.len()
    )?;
    if !head_only {
        out.write_all(body)?;
    }
    out.flush()?;
    linger(&mut out);
    Ok(())
}

/// A lingering close. An answer given before the whole request was read (a `411` or `401`
/// refuses a body it never reads) must not be followed by a close with those bytes unread: the
/// kernel then resets the connection, and the client can lose the answer it was sent. So the
/// write side is shut first (the client sees the end of the answer) and what the client still
/// sends is read and discarded until it closes, for at most [`LINGER`] and [`LINGER_BYTES`].
fn linger(out: &mut TcpStream) {
    if out.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 8192];
    let mut read = 0;
    while read < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || out.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match out.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
}
