//! Fuzzes the listener's request parsing (`ace serve`, `eng.serve`): any bytes as what a client
//! sends, read and answered as the listener would (`ace::answer_request`, no socket), against an
//! engine holding a little of everything, with and without a bearer token. Checks that nothing
//! panics, that every answer is one of the listener's statuses, that a request not carrying
//! the token is never served, and that the API answers JSON.
//!
//! Run: `cargo +nightly fuzz run request` (from the repository root; needs `cargo install cargo-fuzz`).
//! The stable counterpart is `tests/serve_requests.rs`.

#![no_main]

use std::sync::OnceLock;

use ace::{Ace, MemoryStore};
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "s3cret-t0ken";

fn engine() -> &'static Ace {
    static ENGINE: OnceLock<Ace> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let ace = Ace::builder().store(MemoryStore::new()).build().expect("an engine");
        for i in 0..20 {
            let task = format!("task-{i}");
            ace.record_stage("agent-1", &task, "planning", 0.5 + f64::from(i) / 10.0, i % 5 != 0).expect("recorded");
            ace.record_error("agent-1", &task, "execution", "TimeoutError", &format!("db-{i} timed out"), None)
                .expect("recorded");
        }
        ace.flush().expect("flushed");
        ace
    })
}

fuzz_target!(|data: &[u8]| {
    let ace = engine();
    for token in [None, Some(TOKEN)] {
        let (status, content_type, body) = ace::answer_request(ace, token, data);
        let code: u16 = status[..3].parse().expect("a status code");
        assert!(
            [200, 400, 401, 404, 405, 414, 431, 503].contains(&code),
            "{status} for {:?}",
            String::from_utf8_lossy(data)
        );
        if token.is_some() && !data.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()) {
            assert!(code != 200 && code != 404, "served without the token: {:?}", String::from_utf8_lossy(data));
        }
        if content_type == "application/json" && code == 200 {
            serde_json::from_str::<serde_json::Value>(&body).expect("the API answers JSON");
        }
    }
});
