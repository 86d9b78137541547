//! Quickstart: record an agent's stages into the embedded SQLite store and act on what ace says.
//!
//! Run with `cargo run --example quickstart`. The README's Rust quickstart is copied from here.

use std::time::Duration;

fn main() -> ace::Result<()> {
    let dir = std::env::temp_dir().join(format!("ace-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| ace::Error::Internal(e.to_string()))?;

    // --8<-- [start:quickstart]
    use ace::{Ace, AceConfig, SignalKind, SqliteStore};

    let ace = Ace::builder()
        .config(AceConfig::from_env()?) // ACE_* variables, or the defaults
        .store(SqliteStore::open(dir.join("ace.db"))?)
        .build()?;

    // Time a stage with a guard: duration and success are recorded when it ends.
    let mut timer = ace.time_stage("support-bot", "ticket-1", "planning");
    std::thread::sleep(Duration::from_millis(2));
    timer.metric("tokens_in", 812.0);
    timer.finish()?;

    // Or report a finished stage yourself, with token and cost metrics.
    for i in 0..60 {
        let slow = i >= 50; // the model behind `execution` gets 4x slower
        let report = ace.record_stage_with(
            "support-bot",
            &format!("ticket-{i}"),
            "execution",
            if slow { 8.0 } else { 2.0 + (i % 3) as f64 * 0.1 },
            true,
            &[("tokens_out", 420.0), ("cost_usd", 0.0063)],
        )?;
        for signal in &report.signals {
            if signal.kind == SignalKind::Degradation {
                println!("ace: {}", signal.message);
            }
        }
        // What to do about it, when the signals warrant it; tell ace whether it helped.
        if let Some(intervention) = report.intervention {
            println!("  => {}", intervention.strategy);
            ace.report_outcome(intervention.id, true)?;
        }
    }
    // A new ticket: the agent rebuilds its context (else ace would soon call it stale).
    ace.refresh_context("support-bot")?;
    // Report errors: ace groups them into patterns and notices repeats.
    for port in [5432, 5433, 5434] {
        let msg = format!("connection to db-1:{port} refused");
        let report = ace.record_error("support-bot", "ticket-60", "execution", "ConnectionError", &msg, None)?;
        for signal in &report.signals {
            println!("ace: {}", signal.message);
        }
        if let Some(intervention) = report.intervention {
            println!("  => {}", intervention.strategy);
        }
    }
    ace.end_task("support-bot", "ticket-60")?; // releases the task's windows and gates
    ace.close()?; // flushes everything to ace.db
    // --8<-- [end:quickstart]

    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
