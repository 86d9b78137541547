//! Fuzzes the error pattern miner: any bytes, as several (kind, message) pairs, through one
//! miner with small limits (so eviction, leaf caps, truncation and variant merges all happen).
//! Checks that nothing panics and that the invariants hold: patterns within the cap, ids equal
//! to the hash of kind and template, canonical serials stable.
//!
//! Run: `cargo +nightly fuzz run miner` (from the repository root; needs `cargo install cargo-fuzz`).

#![no_main]

use ace_core::errors::{Miner, MinerConfig, PatternId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = MinerConfig { max_patterns: 20, max_message_bytes: 256, max_tokens: 16, ..MinerConfig::default() };
    let mut miner = Miner::new(cfg).expect("valid config");
    // Records separated by 0xff; the first byte of each picks one of four kinds.
    for chunk in data.split(|&b| b == 0xff) {
        let (kind, rest) = match chunk.split_first() {
            Some((k, rest)) => (["", "E", "TimeoutError", "é"][usize::from(*k) % 4], rest),
            None => ("", chunk),
        };
        let message = String::from_utf8_lossy(rest);
        let mined = miner.mine(kind, &message);
        assert_eq!(mined.id, PatternId::of(kind, &mined.template));
        assert!(miner.len() <= 20);
        assert_eq!(miner.canonical(mined.serial), mined.serial);
    }
    for p in miner.patterns() {
        assert_eq!(p.id, PatternId::of(&p.kind, &p.template));
    }
});
