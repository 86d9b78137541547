//! `ace patterns eval` as a user runs it: the real binary on real files.
#![cfg(feature = "cli")]

mod common;
use common::ace;

#[test]
fn eval_prints_json_per_dataset_and_the_average() {
    let (ok, out, err) = ace(&["patterns", "eval", "--json", "tests/fixtures/mini_2k.log_structured.csv"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["dataset"], "mini");
    assert_eq!(rows[0]["grouping_accuracy"], 1.0);
    assert_eq!(rows[0]["patterns_true"], 5);
    assert_eq!(rows[1]["dataset"], "average");
    assert!(rows[0]["lines_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn eval_loo_prints_in_sample_and_held_out_scores() {
    let fixture = "tests/fixtures/mini_2k.log_structured.csv";
    let (ok, out, err) = ace(&["patterns", "eval", "--loo", "--json", fixture, fixture]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["dataset"], "mini");
    assert_eq!(rows[0]["in_sample_ga"], 1.0);
    assert_eq!(rows[0]["loo_ga"], 1.0);
    assert_eq!(rows[2]["dataset"], "average");
    let (ok, out, err) = ace(&["patterns", "eval", "--loo", "--grid", fixture]);
    assert!(ok, "{err}");
    assert!(out.contains("picked on the others") && out.contains("sim 0.5 merge 5"), "{out}");
}

#[test]
fn eval_refuses_bad_input_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let no_column = dir.path().join("x_structured.csv");
    std::fs::write(&no_column, "LineId,Message\n1,hello\n").unwrap();
    let broken = dir.path().join("y_structured.csv");
    std::fs::write(&broken, "Content,EventId\n\"unterminated,E1\nok,E2,extra\n").unwrap();
    for (args, needle) in [
        (vec!["patterns", "eval", "/no/such/file.csv"], "No such file"),
        (vec!["patterns", "eval", no_column.to_str().unwrap()], "no \"Content\" column"),
        (vec!["patterns", "eval", broken.to_str().unwrap()], "y_structured.csv"),
        (vec!["patterns", "eval", dir.path().join("empty").to_str().unwrap()], "No such file"),
    ] {
        let (ok, _, err) = ace(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains("invalid_input") && err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn an_empty_dataset_is_left_out_of_the_average() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty_2k.log_structured.csv");
    std::fs::write(&empty, "LineId,Content,EventId\n").unwrap();
    let fixture = "tests/fixtures/mini_2k.log_structured.csv";
    let (ok, out, err) = ace(&["patterns", "eval", "--json", fixture, empty.to_str().unwrap()]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[1]["dataset"], "average");
    assert_eq!(rows[1]["grouping_accuracy"], rows[0]["grouping_accuracy"], "the empty dataset did not count as 0");
    assert!(err.contains("empty_2k.log_structured.csv: no rows"), "{err}");
    let (ok, out, err) = ace(&["patterns", "eval", "--loo", "--json", fixture, fixture, empty.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let (ok, _, err) = ace(&["patterns", "eval", empty.to_str().unwrap()]);
    assert!(!ok && err.contains("nothing to score"), "{err}");
}
