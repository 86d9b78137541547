//! The listener's request parsing over a few thousand hostile requests from a seeded generator
//! (the stable counterpart of `fuzz/fuzz_targets/request.rs`): request lines and headers cut,
//! repeated, oversized, in the wrong case, with bytes that are not UTF-8. Each is answered with
//! one of the listener's statuses (never a panic), a request without the token is never served,
//! and the API answers JSON.

use ace::{Ace, MemoryStore};

const TOKEN: &str = "s3cret-t0ken";

/// xorshift64*: a fixed seed, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, of: &'a [T]) -> &'a T {
        &of[self.below(of.len())]
    }
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "get", "", "GET GET", "\u{0}", "DELETE"];
const TARGETS: &[&str] = &[
    "/",
    "/index.html",
    "/metrics",
    "/health",
    "/api/overview",
    "/api/agents?page=2&per_page=5",
    "/api/agents?page=-1",
    "/api/agents?per_page=99999999999999999999999",
    "/api/interventions?agent=agent-1&since=0&limit=3",
    "/api/interventions?since=NaN",
    "/api/errors?agent=%E9%ff&limit=2",
    "/api/errors?limit=1&limit=2",
    "/api/patterns?limit=%",
    "/api/patterns?x=1",
    "/api/../../etc/passwd",
    "/api/",
    "/v1/traces",
    "/%00",
    "*",
    "",
    "http://example.com/metrics",
];
const VERSIONS: &[&str] = &["HTTP/1.1", "HTTP/1.0", "HTTP/9", "", "HTTP/1.1 extra"];
const HEADERS: &[&str] = &[
    "Host: localhost",
    "Authorization: Bearer s3cret-t0ken",
    "authorization: bearer s3cret-t0ken",
    "Authorization: Bearer  s3cret-t0ken ",
    "Authorization: Bearer wrong",
    "Authorization: Basic czNjcmV0LXQwa2Vu",
    "Authorization: Bearer",
    "Authorization:",
    "Accept: application/openmetrics-text; version=1.0.0",
    "Accept: */*",
    "Content-Length: 99999999999999999999999",
    "Content-Length: -1",
    "Transfer-Encoding: chunked",
    "X-Empty:",
    ":",
    "no colon at all",
    " folded continuation",
    "Host: \u{e9}\u{0}\u{1b}[31m",
];
const BREAKS: &[&str] = &["\r\n", "\n", "\r", ""];

/// One request: a request line, some headers, maybe a blank line, maybe garbage.
fn request(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let line = format!("{} {} {}", rng.pick(METHODS), rng.pick(TARGETS), rng.pick(VERSIONS));
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(rng.pick(BREAKS).as_bytes());
    let headers = match rng.below(10) {
        0 => 70, // past the header count
        _ => rng.below(5),
    };
    for _ in 0..headers {
        out.extend_from_slice(rng.pick(HEADERS).as_bytes());
        out.extend_from_slice(rng.pick(BREAKS).as_bytes());
    }
    match rng.below(8) {
        0 => out.extend(std::iter::repeat_n(b'a', 9_000 + rng.below(10_000))),
        1 => out.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
        2 => out.truncate(rng.below(out.len() + 1)),
        _ => out.extend_from_slice(b"\r\n"),
    }
    if rng.below(6) == 0 {
        // Invalid UTF-8 somewhere in the head.
        let at = rng.below(out.len() + 1);
        out.insert(at, 0xff);
    }
    out
}

#[test]
fn hostile_requests_are_answered_within_the_listeners_statuses() {
    let ace = Ace::builder().store(MemoryStore::new()).build().unwrap();
    for i in 0..20 {
        let task = format!("task-{i}");
        ace.record_stage("agent-1", &task, "planning", 0.5 + f64::from(i) / 10.0, i % 5 != 0).unwrap();
        ace.record_error("agent-1", &task, "execution", "TimeoutError", &format!("db-{i} timed out"), None).unwrap();
    }
    ace.flush().unwrap();
    let mut rng = Rng(0x5eed_0000_5e7e_0001);
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..3000 {
        let data = request(&mut rng);
        for token in [None, Some(TOKEN)] {
            let (status, content_type, body) = ace::answer_request(&ace, token, &data);
            let code: u16 = status[..3].parse().unwrap();
            assert!(
                [200, 400, 401, 404, 405, 414, 431, 503].contains(&code),
                "{status} for {:?}",
                String::from_utf8_lossy(&data)
            );
            *seen.entry(code).or_default() += 1;
            if token.is_some() && !data.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()) {
                assert!(code != 200 && code != 404, "served without the token: {:?}", String::from_utf8_lossy(&data));
            }
            if content_type == "application/json" && code == 200 {
                serde_json::from_str::<serde_json::Value>(&body).unwrap();
            }
        }
    }
    eprintln!("answers by status: {seen:?}");
    // The generator reaches every kind of answer, so the checks above were not vacuous.
    for code in [200, 400, 401, 404, 405, 414, 431] {
        assert!(seen.get(&code).copied().unwrap_or(0) >= 10, "{code} answered rarely: {seen:?}");
    }
    ace.close().unwrap();
    let (status, _, _) = ace::answer_request(&ace, None, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(status.starts_with("503"), "a closed engine is answered 503, not {status}");
}
