//! Fuzzes the trace reader behind `ace replay`: any bytes, as a trace, replayed on the scoring
//! engine. Checks that nothing panics, that a refused trace is an `invalid_input` error naming
//! the trace and its line, and that on every line the fast reader of common lines agrees with
//! serde wherever it answers (`ace_core::replay::check_scan`).
//!
//! Run: `cargo +nightly fuzz run trace` (from the repository root; needs `cargo install cargo-fuzz`).
//! The stable counterpart is `ace-core/tests/trace_fuzz.rs`.

#![no_main]

use ace_core::AceConfig;
use ace_core::replay;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        replay::check_scan(line);
    }
    match replay::run(data, "fuzz", AceConfig::default()) {
        Ok(run) => {
            assert!(run.events as usize <= data.split(|&b| b == b'\n').count());
            let _ = run.score();
        }
        Err(e) => {
            assert_eq!(e.code(), "invalid_input", "{e}");
            assert!(e.to_string().contains("fuzz line "), "{e}");
        }
    }
});
