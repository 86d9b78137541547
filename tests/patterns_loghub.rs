//! The default miner on real logs: the eight shared Loghub-2k datasets (when this checkout sits
//! next to `../shared/data`, as it does in CI) and a small committed fixture.
//!
//! These guard the grouping quality `ace patterns eval` reports against regressions; the speed
//! figures live in the eval command and the benches, never in tests.

use std::path::{Path, PathBuf};

use ace::errors::Miner;
use ace::errors::eval::score;

fn group(file: &Path) -> ace::errors::eval::GroupingScore {
    let mut reader = csv::Reader::from_path(file).unwrap();
    let headers = reader.headers().unwrap().clone();
    let content = headers.iter().position(|h| h == "Content").unwrap();
    let event = headers.iter().position(|h| h == "EventId").unwrap();
    let mut miner = Miner::default();
    let mut predicted = Vec::new();
    let mut truth = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        predicted.push(miner.mine("", &record[content]).serial);
        truth.push(record[event].to_owned());
    }
    let predicted: Vec<u64> = predicted.into_iter().map(|s| miner.canonical(s)).collect();
    score(&predicted, &truth)
}

#[test]
fn the_fixture_groups_exactly() {
    let s = group(Path::new("tests/fixtures/mini_2k.log_structured.csv"));
    assert_eq!((s.ga, s.fga, s.predicted_groups), (1.0, 1.0, 5), "{s:?}");
}

#[test]
fn loghub_2k_grouping_accuracy_holds() {
    let root = PathBuf::from("../shared/data/loghub-2k");
    if !root.is_dir() {
        assert!(std::env::var_os("CI").is_none(), "CI runs next to ../shared/data; it is missing");
        eprintln!("skipped: {} not found (the data lives outside the repository)", root.display());
        return;
    }
    let mut scores = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let file = dir.join(format!("{name}_2k.log_structured.csv"));
        if file.is_file() {
            let s = group(&file);
            eprintln!("{name:<10} GA {:.3} FGA {:.3}", s.ga, s.fga);
            assert!(s.ga >= 0.8, "{name}: GA {:.3} fell below 0.8", s.ga);
            scores.push(s);
        }
    }
    assert_eq!(scores.len(), 8, "the eight development datasets");
    let ga = scores.iter().map(|s| s.ga).sum::<f64>() / 8.0;
    let fga = scores.iter().map(|s| s.fga).sum::<f64>() / 8.0;
    assert!(ga >= 0.95 && fga >= 0.90, "average GA {ga:.3}, FGA {fga:.3}");
}
