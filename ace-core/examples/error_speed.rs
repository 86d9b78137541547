//! Error recording speed: `cargo run --profile bench -p agent-ace-core --example error_speed [n]
//! [python]` records `n` errors (default 50,000) of `benches/errors.rs`'s message mix, 100 per
//! task over four agents (with `python`: `benches/python/compare.py`'s, one agent, 100 tasks in
//! turn, few signals, no persistence as there), and prints the mean per call. Deterministic (a
//! manual clock), so that `valgrind --tool=callgrind --toggle-collect='*record_error_event*'`
//! counts a call's instructions.

use std::time::Instant;

use ace_core::{Ace, AceConfig, ManualClock, MemoryStore};

#[path = "common/error_mix.rs"]
mod error_mix;

const PER_TASK: usize = 100;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let python = std::env::args().nth(2).as_deref() == Some("python");
    let config = AceConfig::builder().buffer_capacity(2_000_000).batch_size(1000).build().unwrap();
    let ace = Ace::builder()
        .config(config)
        .clock(ManualClock::default())
        .store(MemoryStore::with_max_records(1000))
        .persist(!python)
        .build()
        .unwrap();
    let messages: Vec<(&str, String)> = (0..257).map(error_mix::message).collect();
    let tasks: Vec<String> = (0..n / PER_TASK + 1).map(|t| format!("task-{t}")).collect();
    let agents = ["agent-1", "agent-2", "agent-3", "agent-4"];
    let start = Instant::now();
    let mut signals = 0;
    if python {
        let messages: Vec<String> =
            (0..1000).map(|i| format!("connection to db-{}:{} refused after {i} ms", i % 50, 5432 + i % 7)).collect();
        for i in 0..n {
            let task = &tasks[i % 100];
            let r = ace.record_error("agent-1", task, "execution", "ConnectionError", &messages[i % 1000], None);
            signals += r.unwrap().signals.len();
        }
    }
    for k in 0..n {
        if std::env::args().nth(2).is_some() {
            break;
        }
        let (task, agent) = (&tasks[k / PER_TASK], agents[(k / PER_TASK) % 4]);
        let (kind, msg) = &messages[k % messages.len()];
        let report = ace.record_error(agent, task, "execution", kind, msg, None).unwrap();
        signals += report.signals.len();
        if (k + 1).is_multiple_of(PER_TASK) {
            ace.end_task(agent, task).unwrap();
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("record_error: {n} calls, {ns:.0} ns each, {signals} signals");
}
