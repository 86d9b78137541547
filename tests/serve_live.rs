//! The live page and its JSON API over real TCP (curl and raw sockets): what they show, and how
//! bad requests, a token and a closed engine are answered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use ace::{Ace, Serve, ServeOptions};
use serde_json::Value;

/// `curl -s -i URL` with extra arguments: (status code, headers, body).
fn curl(url: &str, extra: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

fn json(url: &str) -> Value {
    let (status, _, body) = curl(url, &[]);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// Sends `request` raw and returns the answer's status line.
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).lines().next().unwrap_or("").to_owned()
}

/// An engine with errors of two agents, one of them in a burst of timeouts.
fn engine() -> Ace {
    let ace = Ace::builder().build().unwrap();
    for i in 0..12 {
        ace.record_error(
            "agent-7",
            &format!("task-{i}"),
            "execution",
            "Timeout",
            &format!("call {i} timed out after 30s"),
            None,
        )
        .unwrap();
    }
    ace.record_error("agent-2", "task-1", "planning", "ValueError", "bad plan", None).unwrap();
    for i in 0..40 {
        ace.record_stage("agent-2", &format!("task-{i}"), "planning", 0.4 + f64::from(i % 3) * 0.01, true).unwrap();
    }
    ace.flush().unwrap();
    ace
}

#[test]
fn the_page_and_its_api_show_what_the_engine_holds() {
    let ace = engine();
    let server = ace.serve("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.local_addr());
    let (status, head, page) = curl(&format!("{base}/"), &[]);
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/html"), "{head}");
    assert!(page.contains("<title>ace: live</title>") && page.contains("fetch(\"api/\""), "the page reads /api/");
    assert!(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere");

    let overview = json(&format!("{base}/api/overview"));
    assert_eq!(overview["health"]["database"], "connected");
    assert_eq!(overview["stats"]["errors"], 13);

    let agents = json(&format!("{base}/api/agents"));
    assert_eq!(agents["total"], 2);
    assert_eq!(agents["agents"][0]["agent"], "agent-7", "the agent with more errors needs more attention");
    let agent2 = &agents["agents"][1];
    assert_eq!(agent2["agent"], "agent-2");
    let planning =
        agent2["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "planning" && s["metric"] == "duration_s");
    let planning = planning.unwrap_or_else(|| panic!("{agent2}"));
    // The sparkline: the last 30 durations recorded, oldest first.
    let spark: Vec<f64> = planning["spark"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let expected: Vec<f64> = (10..40).map(|i| 0.4 + f64::from(i % 3) * 0.01).collect();
    assert_eq!(spark.len(), expected.len());
    assert!(spark.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-9), "{spark:?}");
    let paged = json(&format!("{base}/api/agents?per_page=1&page=2"));
    assert_eq!(paged["agents"].as_array().unwrap().len(), 1);
    assert_eq!(paged["agents"][0]["agent"], "agent-2");

    let errors = json(&format!("{base}/api/errors?agent=agent-7&limit=5"));
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 5);
    assert_eq!(errors[0]["message"], "call 11 timed out after 30s", "newest first");
    let patterns = json(&format!("{base}/api/patterns"));
    let timeout = patterns.as_array().unwrap().iter().find(|p| p["kind"] == "Timeout").expect("a Timeout pattern");
    assert_eq!(timeout["count"], 12);
    assert!(timeout["severity"].is_string(), "{timeout}");
    let interventions = json(&format!("{base}/api/interventions?since=0"));
    let stored = ace.interventions(&ace::InterventionQuery::all()).unwrap();
    assert_eq!(interventions.as_array().unwrap().len(), stored.len());
}

#[test]
fn bad_requests_get_clear_answers_and_the_listener_lives_on() {
    let ace = engine();
    let server = ace.serve("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    let base = format!("http://{addr}");
    let (status, _, body) = curl(&format!("{base}/api/nope"), &[]);
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "not_found");
    assert_eq!(curl(&format!("{base}/nope"), &[]).0, 404);
    for bad in [
        "errors?limit=0",
        "errors?limit=99999999",
        "errors?since=yesterday",
        "agents?page=0",
        "errors?x=1",
        "errors?agent=%zz",
    ] {
        let (status, _, body) = curl(&format!("{base}/api/{bad}"), &[]);
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "bad_request", "{bad}");
    }
    // A query over the target limit, and a request line longer than a request head may be.
    let huge = "a".repeat(ace::MAX_TARGET);
    assert_eq!(curl(&format!("{base}/api/errors?agent={huge}"), &[]).0, 414);
    let line = format!("GET /api/errors?agent={} HTTP/1.1\r\nHost: x\r\n\r\n", "b".repeat(40_000));
    assert!(raw(addr, line.as_bytes()).contains("414"), "a 40 kB request line is refused");
    // Binary garbage and a bare newline are answered, not a crash.
    assert!(raw(addr, b"\x00\xff\xfe garbage\r\n\r\n").starts_with("HTTP/1.1 4"));
    assert!(raw(addr, b"\r\n\r\n").starts_with("HTTP/1.1 4"));
    for method in ["POST", "PUT", "DELETE"] {
        assert_eq!(curl(&format!("{base}/api/overview"), &["-X", method]).0, 405, "{method}");
    }
    let (status, head, body) = curl(&format!("{base}/api/overview"), &["-I"]);
    assert_eq!((status, body.as_str()), (200, ""), "HEAD: {head}");
    // A closed engine: 503 everywhere, the listener still answering.
    ace.close().unwrap();
    for path in ["/", "/metrics", "/health", "/api/overview", "/api/errors"] {
        assert_eq!(curl(&format!("{base}{path}"), &[]).0, 503, "{path}");
    }
    assert_eq!(curl(&format!("{base}/nope"), &["-X", "POST"]).0, 405);
}

#[test]
fn a_bearer_token_guards_the_page_and_the_api() {
    let ace = engine();
    let server = ace::serve_with(&ace, "127.0.0.1:0", ServeOptions::default().token("s3cret")).unwrap();
    let base = format!("http://{}", server.local_addr());
    for path in ["/", "/api/overview", "/api/errors", "/api/nope"] {
        let (status, head, _) = curl(&format!("{base}{path}"), &[]);
        assert_eq!(status, 401, "{path}");
        assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
        assert_eq!(curl(&format!("{base}{path}"), &["-H", "Authorization: Bearer s3cre"]).0, 401, "{path}");
    }
    assert_eq!(curl(&format!("{base}/api/overview"), &["-H", "Authorization: Bearer s3cret"]).0, 200);
}

#[test]
fn a_listener_on_a_shared_store_shows_what_other_engines_stored() {
    // As `ace serve` on the fleet's store: the serving engine records nothing itself.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ace.db").display());
    let viewer = ace::open(&url, [("ACE_SPILL_DIR", "off")]).unwrap();
    let server = viewer.serve("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.local_addr());
    let worker = ace::open(&url, [("ACE_SPILL_DIR", "off")]).unwrap();
    for i in 0..4 {
        worker
            .record_error("w-1", &format!("t{i}"), "execution", "Timeout", &format!("call {i} timed out"), None)
            .unwrap();
    }
    worker.flush().unwrap();
    let patterns = json(&format!("{base}/api/patterns"));
    assert!(patterns.as_array().unwrap().iter().any(|p| p["kind"] == "Timeout" && p["count"] == 4), "{patterns}");
    let errors = json(&format!("{base}/api/errors"));
    assert_eq!(errors.as_array().unwrap().len(), 4);
    let agents = json(&format!("{base}/api/agents"));
    assert_eq!(agents["agents"][0]["agent"], "w-1");
    worker.close().unwrap();
}
