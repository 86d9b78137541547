//! The metrics listener with a real HTTP client (curl), and a real Prometheus server scraping it
//! and answering PromQL (Debian's `prometheus` package; the test command installs it).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ace::{Ace, Serve, ServeOptions};

/// `curl -s -i URL` with extra arguments: (status code, body).
fn curl(url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn busy_engine() -> Ace {
    let ace = Ace::builder().build().unwrap();
    for p in 0..3 {
        ace.record_error(
            "agent-1",
            "task-1",
            "execution",
            "ConnectionError",
            &format!("connection to db-{p}:5432 refused"),
            None,
        )
        .unwrap();
    }
    ace.record_stage("agent-1", "task-1", "planning", 0.4, true).unwrap();
    ace
}

#[test]
fn metrics_and_health_over_http() {
    let ace = busy_engine();
    let server = ace.serve("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.local_addr());
    // Without an Accept header: the classic text format (what curl and promtool read).
    let (status, body) = curl(&format!("{base}/metrics"), &[]);
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE ace_errors_total counter") && !body.contains("# EOF"), "{body}");
    // Asked for OpenMetrics, as Prometheus asks: OpenMetrics.
    let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let (status, body) = curl(&format!("{base}/metrics"), &["-H", accept]);
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE ace_errors counter") && body.trim_end().ends_with("# EOF"), "{body}");
    let (status, body) = curl(&format!("{base}/health"), &[]);
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["database"], "connected");
    assert_eq!(curl(&format!("{base}/nope"), &[]).0, 404);
    assert_eq!(curl(&format!("{base}/metrics"), &["-X", "POST"]).0, 405);
    server.stop();
    assert_ne!(curl(&format!("{base}/metrics"), &[]).0, 200, "stopped");
}

#[test]
fn a_bearer_token_guards_both_paths() {
    let ace = busy_engine();
    let server = ace::serve_with(&ace, "127.0.0.1:0", ServeOptions::default().token("t0ken")).unwrap();
    let base = format!("http://{}", server.local_addr());
    for path in ["/metrics", "/health"] {
        assert_eq!(curl(&format!("{base}{path}"), &[]).0, 401, "{path} without a token");
        assert_eq!(curl(&format!("{base}{path}"), &["-H", "Authorization: Bearer wrong"]).0, 401);
        assert_eq!(curl(&format!("{base}{path}"), &["-H", "Authorization: Bearer t0ken"]).0, 200);
        // The scheme is case-insensitive (RFC 9110); the token is not.
        assert_eq!(curl(&format!("{base}{path}"), &["-H", "Authorization: bearer t0ken"]).0, 200);
        assert_eq!(curl(&format!("{base}{path}"), &["-H", "Authorization: Bearer T0KEN"]).0, 401);
        assert_eq!(curl(&format!("{base}{path}"), &["-H", "Authorization: Bearer t0ke"]).0, 401);
        assert_eq!(curl(&format!("{base}{path}"), &["-H", "Authorization: Bearer t0kenn"]).0, 401);
    }
}

#[test]
fn slow_and_idle_clients_do_not_hold_up_a_scrape() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let ace = busy_engine();
    let server = ace.serve("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    // Five clients that connect and say nothing, and one that sends its request a byte at a time.
    let idle: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GE").unwrap();
    // A scrape is answered while all six are still connected and unanswered.
    let (status, body) = curl(&format!("http://{addr}/health"), &[]);
    assert_eq!(status, 200, "{body}");
    for mut c in idle.iter().chain([&slow]) {
        c.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let still_open = matches!(c.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(still_open, "the server had not yet closed this client when the scrape was answered");
    }
    // The slow client is cut off at the listener's deadline for a request head, not served.
    slow.set_nonblocking(false).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    loop {
        let _ = slow.write_all(b"T");
        std::thread::sleep(Duration::from_millis(500));
        slow.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        match slow.read_to_end(&mut rest) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) if started.elapsed() < Duration::from_secs(30) => continue,
            Err(e) => panic!("a client sending a byte every half second was never cut off: {e}"),
        }
    }
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "{}", String::from_utf8_lossy(&rest));
}

#[test]
fn oversized_heads_and_other_methods_are_refused() {
    let ace = busy_engine();
    let server = ace.serve("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.local_addr());
    let mut many = Vec::new();
    for i in 0..100 {
        many.extend(["-H".to_owned(), format!("X-Filler-{i}: {i}")]);
    }
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(curl(&format!("{base}/health"), &many).0, 431);
    let huge = format!("X-Huge: {}", "a".repeat(20_000));
    assert_eq!(curl(&format!("{base}/health"), &["-H", &huge]).0, 431);
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        assert_eq!(curl(&format!("{base}/metrics"), &["-X", method]).0, 405, "{method}");
    }
    assert_eq!(curl(&format!("{base}/health"), &[]).0, 200, "still serving");
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let ace = Ace::builder().build().unwrap();
    let first = ace.serve("127.0.0.1:0").unwrap();
    let err = ace.serve(first.local_addr()).unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains("cannot listen"), "{err}");
}

/// The sum of a counter's samples in OpenMetrics text.
fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A PromQL instant query against the server's HTTP API: the first result's value.
fn query(prom: &str, promql: &str) -> Option<f64> {
    let (status, body) =
        curl(&format!("{prom}/api/v1/query"), &["--get", "--data-urlencode", &format!("query={promql}")]);
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_the_listener_and_answers_promql() {
    let ace = busy_engine();
    let server = ace.serve("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ace\n    static_configs:\n      - targets: ['{}']\n",
            server.local_addr()
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (apt-get install prometheus)"),
    );
    let prom = format!("http://127.0.0.1:{port}");
    let expected = sum_of(&ace.metrics_text(), "ace_interventions_total");
    assert!(expected >= 1.0, "the errors led to an intervention");
    // The seeds' queries: interventions issued, errors by severity.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = query(&prom, "sum(ace_interventions_total)");
        if got == Some(expected) {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus never saw the interventions (last answer {got:?})");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(query(&prom, "sum(ace_errors_total)"), Some(3.0));
    assert_eq!(query(&prom, "up{job=\"ace\"}"), Some(1.0));
}
