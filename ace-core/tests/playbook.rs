//! Playbooks through the engine: bullets and domains, delta operations, write-time de-dup,
//! retrieval, rendering, stages, versions (hash chain, tampering, rollback), import/export, and
//! bad input that leaves the playbook as it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ace_core::playbook::{Embedder, Feedback, HashEmbedder, Insight, Stage, Trust};
use ace_core::store::{PlaybookEntry, Store};
use ace_core::{Ace, ManualClock, MemoryStore, Timestamp};

fn engine(store: &MemoryStore) -> Ace {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    Ace::builder().store(store.clone()).clock(clock).build().unwrap()
}

fn insight(section: &str, content: &str) -> Insight {
    Insight::new(section, content)
}

#[test]
fn bullets_get_stable_ace_ids_and_domains_never_mix() {
    let store = MemoryStore::new();
    let ace = engine(&store);
    let pb = ace.playbooks();
    let a = pb.add("tenant-a", "strategies", "Confirm the passenger count before booking", Some("task-7")).unwrap();
    let b = pb.add("tenant-a", "pitfalls", "Gift cards cannot pay for upgrades", None).unwrap();
    let c = pb.add("tenant-a", "strategies", "Quote the refund policy verbatim", None).unwrap();
    assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("str-00001", "pit-00001", "str-00002"));
    let bullet = pb.bullet("tenant-a", "[str-00001]").unwrap();
    assert_eq!((bullet.provenance.as_deref(), bullet.stage, bullet.helpful), (Some("task-7"), Stage::Shadow, 0));
    assert!(pb.bullets("tenant-b").unwrap().is_empty());
    assert!(pb.retrieve("tenant-b", "passenger count booking", 5, Stage::Shadow).unwrap().is_empty());
    assert_eq!(pb.bullet("tenant-b", "str-00001").unwrap_err().code(), "invalid_input");
}

#[test]
fn delta_operations_and_only_explicit_feedback_moves_the_counters() {
    let ace = engine(&MemoryStore::new());
    let pb = ace.playbooks();
    let id = pb.add("d", "strategies", "Search flights before quoting prices", None).unwrap();
    pb.update("d", &id, Some("tools"), Some("Search flights before quoting any price")).unwrap();
    let b = pb.bullet("d", &id).unwrap();
    assert_eq!((b.section.as_str(), b.content.as_str()), ("tools", "Search flights before quoting any price"));
    let rendered = pb.render("d", Some("quoting price"), 5, Stage::Shadow, 1000).unwrap();
    assert_eq!(rendered.ids, vec![id.clone()]);
    let b = pb.bullet("d", &id).unwrap();
    assert_eq!((b.injected, b.helpful, b.harmful), (1, 0, 0), "injection is not helpfulness");
    pb.feedback("d", &id, Feedback::Helpful).unwrap();
    pb.feedback("d", &id, Feedback::Neutral).unwrap();
    let b = pb.bullet("d", &id).unwrap();
    assert_eq!((b.helpful, b.neutral), (1, 1));
    pb.remove("d", &id).unwrap();
    assert!(pb.bullets("d").unwrap().is_empty());
    assert_eq!(pb.feedback("d", &id, Feedback::Helpful).unwrap_err().code(), "invalid_input", "unknown id");
    assert_eq!(pb.remove("d", "nope-1").unwrap_err().code(), "invalid_input");
}

#[test]
fn merge_dedups_at_write_time_within_the_batch_and_against_the_playbook() {
    let ace = engine(&MemoryStore::new());
    let pb = ace.playbooks();
    pb.add("d", "strategies", "Always verify the booking total before charging the card", None).unwrap();
    let report = pb
        .merge(
            "d",
            &[
                insight("strategies", "always verify the booking total, before charging the card!"),
                insight("strategies", "Use exponential backoff when the search API rate limits"),
                insight("strategies", "use exponential backoff when the search api rate-limits"),
                insight("strategies", "Always verify the booking total before you charge the card"),
                insight("strategies", ""),
                insight("strategies", &"x".repeat(1 << 20)),
            ],
        )
        .unwrap();
    assert_eq!(report.merged.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2], "{report:?}");
    assert_eq!(report.merged[0].1, "str-00001");
    assert_eq!(report.added.len(), 2, "{report:?}");
    assert_eq!(report.skipped.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [4, 5]);
    assert!(report.skipped[1].1.contains("at most"), "{:?}", report.skipped[1]);
    // The paraphrase is close but not a duplicate: reported, kept apart without a hook.
    let near: Vec<_> = report.near_duplicates.iter().filter(|n| n.insight == 3).collect();
    assert_eq!(near.len(), 1, "{report:?}");
    assert!(!near[0].merged && near[0].similarity >= 0.8 && near[0].similarity < 0.92);
    assert_eq!(pb.bullet("d", "str-00001").unwrap().reinforced, 1, "a duplicate strengthens the bullet");

    // A hook may merge near-duplicates.
    pb.set_near_duplicate_hook(|_, existing, sim| existing.id == "str-00001" && sim > 0.7);
    pb.add("h", "strategies", "Always verify the booking total before charging the card", None).unwrap();
    let again =
        pb.merge("h", &[insight("strategies", "Always verify the booking total before you charge the card")]).unwrap();
    assert_eq!(again.merged, [(0, "str-00001".to_owned())], "{again:?}");
    assert!(again.near_duplicates[0].merged);
}

/// A stand-in for a sentence model: texts about paying map near one direction, texts about
/// retries near another, whatever their words.
struct Meaning;

impl Embedder for Meaning {
    fn dim(&self) -> usize {
        3
    }

    fn embed(&self, texts: &[&str]) -> ace_core::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| match t {
                t if t.contains("charge") => vec![1.0, 0.0, 0.0],
                t if t.contains("billing") => vec![0.9, 0.3, 0.0],
                t if t.contains("invoice") => vec![0.55, 0.835, 0.0],
                _ => vec![0.0, 0.0, 1.0],
            })
            .collect())
    }
}

#[test]
fn a_semantic_embedder_merges_a_paraphrase_that_shares_no_rare_word() {
    let bullet = "Check the total price before you charge the card";
    let paraphrase = "Verify what is owed prior to billing";
    let related = "Send an invoice afterwards";
    // The hashed embedder sees different words: nothing merges, nothing is even reported.
    let ace = engine(&MemoryStore::new());
    ace.playbooks().add("d", "s", bullet, None).unwrap();
    let report = ace.playbooks().merge("d", &[insight("s", paraphrase)]).unwrap();
    assert_eq!((report.merged.len(), report.near_duplicates.len(), report.added.len()), (0, 0, 1), "{report:?}");

    // A semantic one: the scan over the matrix finds the bullet; 0.95 merges by default, 0.55
    // (0.50 to 0.60) is reported and left to the hook.
    let ace = Ace::builder().embedder(Meaning).build().unwrap();
    let pb = ace.playbooks();
    pb.add("d", "s", bullet, None).unwrap();
    let report = pb.merge("d", &[insight("s", paraphrase), insight("s", related)]).unwrap();
    assert_eq!(report.merged, [(0, "s-00001".to_owned())], "{report:?}");
    assert_eq!(report.added, ["s-00002"], "{report:?}");
    let near = &report.near_duplicates;
    assert_eq!((near.len(), near[0].insight, near[0].merged), (1, 1, false), "{report:?}");
    assert!(near[0].similarity > 0.5 && near[0].similarity < 0.6, "{near:?}");
    let history = pb.history("d").unwrap();
    let note = history.iter().find(|v| v.op == "reinforce").and_then(|v| v.note.clone()).unwrap();
    assert!(note.starts_with("paraphrase merged at cosine 0.9") && note.ends_with(paraphrase), "{note}");
    pb.set_near_duplicate_hook(|_, _, sim| sim > 0.5);
    pb.add("h", "s", bullet, None).unwrap();
    let again = pb.merge("h", &[insight("s", related)]).unwrap();
    assert_eq!(again.merged, [(0, "s-00001".to_owned())], "the hook merges the band: {again:?}");
    assert!(again.near_duplicates[0].merged);
}

#[test]
fn large_batches_are_chunked() {
    let ace = engine(&MemoryStore::new());
    let pb = ace.playbooks();
    let insights: Vec<Insight> = (0..250)
        .map(|i| insight("facts", &format!("fact number {i} about route {} and fare class {}", i * 7, i % 13)))
        .collect();
    let report = pb.merge("d", &insights).unwrap();
    assert_eq!(report.added.len() + report.merged.len(), 250);
    assert_eq!(pb.bullets("d").unwrap().len(), report.added.len());
    assert!(ace.metrics_text().contains("ace_insights_processed_total 250"));
}

#[test]
fn retrieval_ranks_by_relevance_from_a_stage_up() {
    let ace = engine(&MemoryStore::new());
    let pb = ace.playbooks();
    let refund = pb.add("d", "policies", "Refunds go back to the original payment method", None).unwrap();
    let baggage = pb.add("d", "policies", "Each passenger may check two bags on international flights", None).unwrap();
    pb.add("d", "policies", "Basic economy fares cannot be changed", None).unwrap();
    let best = pb.retrieve("d", "how are refunds paid back", 2, Stage::Shadow).unwrap();
    assert_eq!(best[0].bullet.id, refund);
    assert!(best[0].score > best[1].score);
    assert!(pb.retrieve("d", "refunds", 5, Stage::Staging).unwrap().is_empty(), "all still in shadow");
    for _ in 0..3 {
        pb.feedback("d", &baggage, Feedback::Helpful).unwrap();
    }
    let staged = pb.retrieve("d", "refunds", 5, Stage::Staging).unwrap();
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0].bullet.id, baggage);
    assert!(ace.metrics_text().contains("ace_playbook_retrieval_latency_seconds_count 3"));
}

#[test]
fn rendering_groups_by_section_within_the_budget() {
    let ace = engine(&MemoryStore::new());
    let pb = ace.playbooks();
    pb.add("d", "strategies", "Confirm the dates with the user", None).unwrap();
    pb.add("d", "pitfalls", "Do not book without explicit confirmation", None).unwrap();
    pb.add("d", "strategies", "Quote fares including taxes", None).unwrap();
    let all = pb.render("d", None, 10, Stage::Shadow, 10_000).unwrap();
    assert_eq!(
        all.text,
        "## pitfalls\n[pit-00001] helpful=0 harmful=0 :: Do not book without explicit confirmation\n\
         ## strategies\n[str-00001] helpful=0 harmful=0 :: Confirm the dates with the user\n\
         [str-00002] helpful=0 harmful=0 :: Quote fares including taxes\n"
    );
    assert_eq!(all.ids.len(), 3);
    let small = pb.render("d", None, 10, Stage::Shadow, 25).unwrap();
    assert_eq!(small.ids, ["str-00001"], "{small:?}");
    assert!(small.tokens <= 25);
    assert_eq!(pb.bullet("d", "str-00001").unwrap().injected, 2);
}

#[test]
fn evidence_gates_promote_one_step_at_a_time_and_harm_quarantines() {
    let ace = engine(&MemoryStore::new());
    let pb = ace.playbooks();
    let good = pb.add("d", "s", "Good advice", None).unwrap();
    let stages: Vec<Stage> = (0..5).map(|_| pb.feedback("d", &good, Feedback::Helpful).unwrap()).collect();
    assert_eq!(stages, [Stage::Shadow, Stage::Shadow, Stage::Staging, Stage::Staging, Stage::Prod]);
    assert_eq!(pb.feedback("d", &good, Feedback::Harmful).unwrap(), Stage::Prod, "5:1 is exactly the prod gate");
    // More harm drags the ratio under the prod gate: demoted one step.
    assert_eq!(pb.feedback("d", &good, Feedback::Harmful).unwrap(), Stage::Staging);
    let bad = pb.add("d", "s", "Bad advice", None).unwrap();
    pb.feedback("d", &bad, Feedback::Helpful).unwrap();
    pb.feedback("d", &bad, Feedback::Harmful).unwrap();
    assert_eq!(pb.feedback("d", &bad, Feedback::Harmful).unwrap(), Stage::Quarantined);
    assert!(pb.retrieve("d", "Bad advice", 5, Stage::Shadow).unwrap().iter().all(|s| s.bullet.id != bad));
    assert!(ace.metrics_text().contains("ace_bullets_promoted_total 2"));
}

#[test]
fn versions_are_hash_chained_and_tampering_is_refused() {
    let store = MemoryStore::new();
    let ace = engine(&store);
    let pb = ace.playbooks();
    pb.add("d", "s", "Original advice", None).unwrap();
    let v1 = pb.stats("d").unwrap();
    pb.add("d", "s", "More advice", None).unwrap();
    assert_eq!(pb.stats("d").unwrap().version, v1.version + 1);
    ace.close().unwrap();

    // The same log in a fresh store loads to the same hash...
    let log = store.load_playbook("d").unwrap();
    let copy = MemoryStore::new();
    copy.append_playbook(&log).unwrap();
    assert_eq!(engine(&copy).playbooks().stats("d").unwrap().hash, log.last().unwrap().hash);
    // ...and an altered one is refused.
    let mut tampered = log.clone();
    tampered[0].body = tampered[0].body.replace("Original", "Malicious");
    let bad = MemoryStore::new();
    bad.append_playbook(&tampered).unwrap();
    let err = engine(&bad).playbooks().bullets("d").unwrap_err();
    assert_eq!(err.code(), "corrupt");
    assert!(err.to_string().contains("hash mismatch"), "{err}");
}

#[test]
fn snapshots_keep_loading_cheap_and_verified() {
    let store = MemoryStore::new();
    let ace = engine(&store);
    let pb = ace.playbooks();
    let id = pb.add("d", "s", "Advice that gets a lot of feedback", None).unwrap();
    for _ in 0..1000 {
        pb.feedback("d", &id, Feedback::Neutral).unwrap();
    }
    let stats = pb.stats("d").unwrap();
    ace.close().unwrap();
    let log = store.load_playbook("d").unwrap();
    assert!(log.iter().filter(|e| e.snapshot).count() >= 2);
    let again = engine(&store);
    assert_eq!(again.playbooks().stats("d").unwrap(), stats);
    assert_eq!(again.playbooks().bullet("d", &id).unwrap().neutral, 1000);
    // Tampering with the latest snapshot is caught too.
    let mut tampered: Vec<PlaybookEntry> = log.clone();
    let last = tampered.iter().rposition(|e| e.snapshot).unwrap();
    tampered[last].body = tampered[last].body.replace("\"neutral\":", "\"neutral\":1");
    let bad = MemoryStore::new();
    bad.append_playbook(&tampered).unwrap();
    assert_eq!(engine(&bad).playbooks().stats("d").unwrap_err().code(), "corrupt");
}

#[test]
fn rollback_restores_any_version_as_a_new_one() {
    let ace = engine(&MemoryStore::new());
    let pb = ace.playbooks();
    pb.add("d", "s", "First", None).unwrap();
    let at_one = pb.stats("d").unwrap();
    let second = pb.add("d", "s", "Second", None).unwrap();
    pb.feedback("d", &second, Feedback::Helpful).unwrap();
    let restored = pb.rollback("d", at_one.version).unwrap();
    assert!(restored.version > at_one.version, "a new version records the rollback");
    let contents: Vec<String> = pb.bullets("d").unwrap().into_iter().map(|b| b.content).collect();
    assert_eq!(contents, ["First"]);
    assert_eq!(pb.add("d", "s", "Third", None).unwrap(), "s-00002", "ids keep counting from the restored state");
    assert_eq!(pb.rollback("d", 999).unwrap_err().code(), "invalid_input");
}

#[test]
fn export_and_import_json_and_the_ace_text_format() {
    let ace = engine(&MemoryStore::new());
    let pb = ace.playbooks();
    pb.add("src", "strategies", "Keep answers short", None).unwrap();
    let json = pb.export_json("src").unwrap();
    assert_eq!(pb.import_json("dst", &json, Trust::Verify).unwrap(), 1);
    assert_eq!(pb.bullets("dst").unwrap()[0].content, "Keep answers short");
    assert_eq!(pb.import_json("dst", "{not json", Trust::Verify).unwrap_err().code(), "invalid_input");

    let text = "## strategies_and_hard_rules\n[str-00007] helpful=6 harmful=1 :: Always re-read the policy\n\
                noise line\n## pitfalls\n[pit-00002] helpful=0 harmful=4 :: Never guess ids\n[cal-00001] :: plain\n";
    assert_eq!(pb.import_text("txt", text, Trust::Trusted).unwrap(), 3);
    let bullets = pb.bullets("txt").unwrap();
    assert_eq!(bullets[0].id, "str-00007");
    assert_eq!((bullets[0].helpful, bullets[0].harmful, bullets[0].stage), (6, 1, Stage::Prod));
    assert_eq!(bullets[1].stage, Stage::Quarantined);
    assert_eq!(pb.add("txt", "strategies", "New", None).unwrap(), "str-00008");
    assert_eq!(pb.import_text("txt", "[a-1] :: ", Trust::Trusted).unwrap_err().code(), "invalid_input");
}

/// An embedder that can be told to fail or to misbehave.
struct Unreliable {
    fail: AtomicBool,
    nan: AtomicBool,
    wrong_dim: AtomicBool,
}

impl Embedder for Unreliable {
    fn dim(&self) -> usize {
        16
    }

    fn embed(&self, texts: &[&str]) -> ace_core::Result<Vec<Vec<f32>>> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(ace_core::Error::Internal("the model server is down".into()));
        }
        let mut out = HashEmbedder::new(16).unwrap().embed(texts)?;
        if self.nan.load(Ordering::SeqCst) {
            out[0][0] = f32::NAN;
        }
        if self.wrong_dim.load(Ordering::SeqCst) {
            out[0].push(1.0);
        }
        Ok(out)
    }
}

#[test]
fn bad_input_and_bad_embedders_leave_the_playbook_as_it_was() {
    let embedder = Arc::new(Unreliable {
        fail: AtomicBool::new(false),
        nan: AtomicBool::new(false),
        wrong_dim: AtomicBool::new(false),
    });
    struct Shared(Arc<Unreliable>);
    impl Embedder for Shared {
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn embed(&self, texts: &[&str]) -> ace_core::Result<Vec<Vec<f32>>> {
            self.0.embed(texts)
        }
    }
    let ace = Ace::builder().embedder(Shared(embedder.clone())).build().unwrap();
    let pb = ace.playbooks();
    pb.add("d", "s", "Kept", None).unwrap();
    let before = pb.stats("d").unwrap();
    assert_eq!(pb.add("d", "s", "", None).unwrap_err().code(), "invalid_input");
    assert_eq!(pb.add("d", "s", &"y".repeat(1 << 20), None).unwrap_err().code(), "invalid_input");
    assert_eq!(pb.add("d", "bad\nsection", "x", None).unwrap_err().code(), "invalid_input");
    assert_eq!(pb.add("", "s", "x", None).unwrap_err().code(), "invalid_input");
    for (flag, code) in
        [(&embedder.fail, "internal"), (&embedder.nan, "invalid_input"), (&embedder.wrong_dim, "invalid_input")]
    {
        flag.store(true, Ordering::SeqCst);
        let merged = pb.merge("d", &[insight("s", "one new insight"), insight("s", "another one")]);
        assert_eq!(merged.unwrap_err().code(), code);
        assert_eq!(pb.update("d", "s-00001", None, Some("changed")).unwrap_err().code(), code);
        flag.store(false, Ordering::SeqCst);
        assert_eq!(pb.stats("d").unwrap(), before, "unchanged after a {code} embedder error");
    }
    assert_eq!(pb.bullets("d").unwrap()[0].content, "Kept");
}

#[test]
fn idle_domains_are_unloaded_and_come_back_from_the_store() {
    let store = MemoryStore::new();
    let mut config = ace_core::playbook::PlaybookConfig::default();
    config.idle_unload = std::time::Duration::ZERO;
    let ace = Ace::builder().store(store.clone()).playbook_config(config).build().unwrap();
    let pb = ace.playbooks();
    pb.add("tenant-1", "s", "Advice one", None).unwrap();
    pb.add("tenant-2", "s", "Advice two", None).unwrap();
    assert_eq!(pb.loaded(), 1, "loading tenant-2 unloaded the idle tenant-1");
    assert_eq!(pb.bullets("tenant-1").unwrap()[0].content, "Advice one", "back from the store");
}
