//! Durable mode against `kill -9`: a child process records into SQLite with `ACE_DURABLE` as fast
//! as it can (far faster than SQLite stores, so its buffer overflows into the journal), is killed
//! with SIGKILL mid-stream, and the next engine on the same file and spill directory must hold
//! every record the child had been told was accepted (at least once). And without a crash, a
//! burst far larger than the buffer is stored whole.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ace::store::{MetricQuery, Store};
use ace::{Ace, AceConfig, SqliteStore};

const DIR_VAR: &str = "ACE_DURABLE_CHILD_DIR";

/// The child: records forever, printing how many calls have returned. Run only by the test
/// below (ignored otherwise).
#[test]
#[ignore = "the child process of durable_mode_survives_kill_9"]
fn child_records_until_killed() {
    let dir = std::path::PathBuf::from(std::env::var(DIR_VAR).expect("run by the parent test"));
    let config = AceConfig::builder().durable(true).spill_dir(Some(dir.join("spill"))).build().unwrap();
    let ace = Ace::builder().config(config).store(SqliteStore::open(dir.join("ace.db")).unwrap()).build().unwrap();
    for i in 0u64.. {
        ace.record_stage(&format!("agent-{}", i % 50), &format!("task-{i}"), "execution", 1.0, true).unwrap();
        if i % 500 == 499 {
            println!("{}", i + 1);
        }
    }
}

#[test]
fn durable_mode_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_records_until_killed", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut accepted = 0u64;
    while accepted < 200_000 {
        match lines.next() {
            Some(Ok(line)) => accepted = line.trim().parse().unwrap_or(accepted),
            _ => panic!("the child stopped before recording 200,000 events"),
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let config = AceConfig::builder().spill_dir(Some(dir.path().join("spill"))).build().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path().join("ace.db")).unwrap());
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    ace.flush().unwrap();
    let rows = store.query_metrics(&MetricQuery::all()).unwrap();
    let mut tasks: Vec<u64> = rows.iter().map(|r| r.task.trim_start_matches("task-").parse().unwrap()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    let missing = (0..accepted).filter(|t| tasks.binary_search(t).is_err()).count();
    eprintln!(
        "accepted (reported) {accepted}; rows stored {}; distinct {}; duplicates {}; missing {missing}",
        rows.len(),
        tasks.len(),
        rows.len() - tasks.len()
    );
    assert_eq!(missing, 0, "every record the child was told was accepted survived kill -9");
    ace.close().unwrap();
}

#[test]
fn a_durable_burst_larger_than_the_buffer_is_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = AceConfig::builder()
        .durable(true)
        .buffer_capacity(1_000)
        .spill_dir(Some(dir.path().join("spill")))
        .build()
        .unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path().join("ace.db")).unwrap());
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    for i in 0..100_000u64 {
        ace.record_stage(&format!("agent-{}", i % 7), &format!("task-{i}"), "execution", 1.0, true).unwrap();
    }
    ace.flush().unwrap();
    let stats = ace.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(store.count_metrics().unwrap(), 100_000, "every acknowledged record is stored, once");
    ace.close().unwrap();
    // The engine gone, so is its owner lock file (`{tag}.owner`).
    drop(ace);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("spill"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a clean close leaves no journal or spill file: {left:?}");
}
