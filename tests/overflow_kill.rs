//! The default (not durable) mode against `kill -9` in the middle of an overflow: a child process
//! records from two threads into a SQLite file that a second connection holds in
//! `BEGIN EXCLUSIVE`, with a buffer of 1,000 records, so the recording threads write what finds
//! the buffer full into the spill directory's overflow segment (a `.tmp` file, see
//! `ace-core/src/persist/overflow.rs`). Once the segment has been written out to its file at least
//! once, the child is killed with SIGKILL, and the next engine on the same file and spill
//! directory must store every whole record the spill directory held at the kill: in the overflow
//! segment, in spill files, in a spill file being replayed.
//!
//! What is guaranteed: a record whose frame reached the kernel (a `write` into the page cache,
//! which outlives the process) survives the kill; what was only in the process's memory is lost:
//! the buffers and the writer's hands (`buffer_capacity` records), the spill file the writer was
//! gathering, and the overflow segment's last frames not yet written out (under 256 KiB, the
//! segment's user-space buffer). The test asserts both: every whole record on disk is stored,
//! and no more records accepted before the kill are lost than memory held. (A power loss is
//! another matter: the segment is synced only when the writer finishes it.)
//!
//! The test reads what was on disk itself, from the format `persist/spill_codec.rs` documents (not
//! with ace's reader), so it checks the adoption of the dead process's files
//! (`persist/orphans.rs`) against the bytes the kill left.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ace::store::{MetricQuery, Store};
use ace::{Ace, AceConfig, SqliteStore};

#[path = "common/sqlite_lock.rs"]
mod sqlite_lock;

const DIR_VAR: &str = "ACE_OVERFLOW_CHILD_DIR";
/// The child's buffer, in records, and its recording threads.
const CAPACITY: usize = 1_000;
const THREADS: usize = 2;
/// The child's line once an overflow segment has had bytes written to its file.
const REPORT: &str = "overflow-on-disk";
/// A spill file's header (`persist/spill_codec.rs`); an overflow segment's stays blank until the
/// writer finishes it.
const HEADER: usize = 24;
/// A frame's own header: the payload's length and its checksum (`u32` each).
const FRAME: usize = 8;

/// The child: records from two threads, forever, into a file nobody can write, and says once
/// an overflow segment has bytes on disk. Run only by the test below (ignored otherwise).
#[test]
#[ignore = "the child process of an_overflow_segment_survives_kill_9"]
fn child_overflows_until_killed() {
    let dir = PathBuf::from(std::env::var(DIR_VAR).expect("run by the parent test"));
    let db = dir.join("ace.db");
    let config = AceConfig::builder()
        .buffer_capacity(CAPACITY)
        .batch_size(100)
        .intervention_enabled(false)
        .spill_dir(Some(dir.join("spill")))
        .build()
        .unwrap();
    let ace = Ace::builder().config(config).store(SqliteStore::open(&db).unwrap()).build().unwrap();
    // Held for longer than the child lives (the lock goes with the process): every write waits
    // out the busy timeout and fails, so nothing reaches the file and records pile up on disk.
    let (locked, _holder) = sqlite_lock::hold_exclusive(&db, Duration::from_secs(3600));
    locked.recv().unwrap();
    // Thread `t`'s calls that returned: `task-{t}-0` up to `task-{t}-{n - 1}`.
    let accepted: Arc<[AtomicU64; THREADS]> = Arc::default();
    for t in 0..THREADS {
        let (ace, accepted) = (ace.clone(), accepted.clone());
        std::thread::spawn(move || {
            for i in 0u64.. {
                ace.record_stage("agent", &format!("task-{t}-{i}"), "execution", 0.5, true).unwrap();
                accepted[t].store(i + 1, Ordering::Release);
            }
        });
    }
    loop {
        std::thread::sleep(Duration::from_millis(5));
        // Early in the first write, which waits five seconds for the lock: the writer finishes
        // the segment only before its next try of the store.
        let on_disk = files(&dir.join("spill"))
            .into_iter()
            .filter(|p| is_overflow_segment(p))
            .filter_map(|p| std::fs::metadata(&p).ok())
            .any(|m| m.len() > HEADER as u64);
        if on_disk {
            let counts: Vec<String> = accepted.iter().map(|n| n.load(Ordering::Acquire).to_string()).collect();
            println!("{REPORT} {}", counts.join(" "));
            break;
        }
    }
    // The threads go on recording (and overflowing) until the kill.
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// The whole records in the spill directory's files at the kill.
#[derive(Debug, Default)]
struct OnDisk {
    tasks: Vec<String>,
    /// How many of them were in overflow segments (`.tmp`).
    in_overflow: usize,
    /// Each file, with its number of records (for the log).
    files: Vec<String>,
}

#[test]
fn an_overflow_segment_survives_kill_9() {
    // A kill that lands just after the writer finished the segment (it does so before each try
    // of the store, every five seconds or more here) leaves a new, still empty one: the records
    // are then in a finished spill file, which is checked too, but the adoption of a `.tmp` is
    // not exercised, so the run is repeated.
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        let in_overflow = kill_mid_overflow_and_recover();
        if in_overflow > 0 {
            return;
        }
        eprintln!("attempt {attempt}: no overflow segment held a whole record at the kill; again");
    }
    panic!("in {ATTEMPTS} attempts, no kill landed while an overflow segment held a written record");
}

/// The same with the child in a pid namespace of its own, as a process of another container
/// sharing the spill volume: its pid there (1) names a live process here, so a liveness told by
/// `/proc/<pid>` took it for alive for ever, and what it left was never stored (and a live one
/// of another namespace whose pid is free here was taken for dead). Its owner lock tells: its
/// files are left alone while it lives, and adopted once it is killed.
#[test]
fn a_child_in_another_pid_namespace_is_left_alone_alive_and_adopted_dead() {
    let unshare = unshare_args();
    for attempt in 1..=5 {
        if kill_and_recover(Some(unshare)) > 0 {
            return;
        }
        eprintln!("attempt {attempt}: no overflow segment held a whole record at the kill; again");
    }
    panic!("in 5 attempts, no kill landed while an overflow segment held a written record");
}

/// One child killed mid-overflow and its files recovered; returns the number of records that
/// were in overflow segments (`.tmp`) at the kill.
fn kill_mid_overflow_and_recover() -> usize {
    kill_and_recover(None)
}

/// `unshare`'s arguments for a pid namespace of the child's own: as root, or else inside a user
/// namespace of its own (an unprivileged CI runner).
fn unshare_args() -> &'static [&'static str] {
    const ROOT: &[&str] = &["--pid", "--fork", "--kill-child"];
    const USER: &[&str] = &["--user", "--map-root-user", "--pid", "--fork", "--kill-child"];
    for args in [ROOT, USER] {
        if Command::new("unshare").args(args).arg("true").stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
            return args;
        }
    }
    panic!("this test needs `unshare --pid` (util-linux; as root, or with user namespaces allowed)");
}

/// `unshare`: the child runs in a pid namespace of its own, with these arguments.
fn kill_and_recover(unshare: Option<&[&str]>) -> usize {
    let namespaced = unshare.is_some();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ace.db");
    let spill = dir.path().join("spill");
    let exe = std::env::current_exe().unwrap();
    let args = ["child_overflows_until_killed", "--exact", "--ignored", "--nocapture", "--test-threads=1"];
    let mut command = if let Some(unshare) = unshare {
        // `--kill-child`: the child goes with `unshare` when the test kills it.
        let mut c = Command::new("unshare");
        c.args(unshare).arg(&exe).args(args);
        c
    } else {
        let mut c = Command::new(&exe);
        c.args(args);
        c
    };
    let mut child = command.env(DIR_VAR, dir.path()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let accepted = wait_for_report(&mut child);
    if namespaced {
        // Another process opening the directory while the child lives leaves its files alone:
        // it tells the child alive by its owner lock, adopts none of its files and keeps its lock
        // file. (The child's own files may change meanwhile, its writer finishing and replaying
        // its segments as it goes, so their names alone do not tell.)
        let before = files(&spill);
        let owner = before.iter().find(|f| f.extension().is_some_and(|x| x == "owner")).cloned();
        let owner = owner.unwrap_or_else(|| panic!("the child holds an owner lock file: {before:?}"));
        assert!(before.len() > 1, "the child has spill files: {before:?}");
        // The directory the child writes in (the store's own under `spill`).
        let theirs = owner.parent().expect("the owner file is in a directory");
        let open = ace::SpillDir::open(theirs).unwrap();
        let now = files(&spill);
        assert_eq!(open.adopted(), 0, "a live child's files were adopted: {before:?}, now {now:?}");
        assert!(owner.exists(), "a live child was taken for dead: {before:?}, now {now:?}");
        drop(open);
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    if namespaced {
        wait_until_owners_die(&spill);
    }

    let on_disk = read_on_disk(&spill);
    assert!(!on_disk.tasks.is_empty(), "the child spilled nothing before the kill: {:?}", on_disk.files);

    let config = AceConfig::builder().spill_dir(Some(spill.clone())).build().unwrap();
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    ace.flush().unwrap();
    let rows = store.query_metrics(&MetricQuery::all()).unwrap();
    let stored: HashSet<&str> = rows.iter().map(|r| &*r.task).collect();
    let missing: Vec<&String> = on_disk.tasks.iter().filter(|t| !stored.contains(t.as_str())).collect();
    let lost = (0..THREADS)
        .flat_map(|t| (0..accepted[t]).map(move |i| format!("task-{t}-{i}")))
        .filter(|task| !stored.contains(task.as_str()))
        .count() as u64;
    eprintln!(
        "accepted by the report {accepted:?}; whole records on disk at the kill {} ({} in overflow segments, \
         files {:?}); rows stored {}, distinct {}; accepted by the report but not stored {lost}",
        on_disk.tasks.len(),
        on_disk.in_overflow,
        on_disk.files,
        rows.len(),
        stored.len(),
    );
    assert!(
        missing.is_empty(),
        "{} whole records on disk at the kill were not stored (first: {:?})",
        missing.len(),
        missing.first()
    );
    // What only memory held: the buffers and the writer's hands (`buffer_capacity` records), the
    // spill file the writer is gathering (written once it holds as many, or after 250 ms: under
    // twice the capacity), and the overflow segment's buffer not yet written out (under 256 KiB,
    // at 30 bytes or more a record here). Records accepted after the report only add to what was
    // on disk or in memory at the kill.
    let in_memory = 3 * CAPACITY as u64 + (256 * 1024) / 30;
    assert!(lost <= in_memory, "{lost} records accepted before the report were lost, more than memory held");
    ace.close().unwrap();
    // The engine gone, so is its owner lock file; the dead child's went with the adoption.
    drop(ace);
    let left = files(&spill);
    assert!(left.is_empty(), "every file the dead process left was stored and removed: {left:?}");
    on_disk.in_overflow
}

/// Waits until no owner lock in `spill` is held (the killed child has exited: with `unshare`
/// between, its death follows the kill).
fn wait_until_owners_die(spill: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let held = files(spill).iter().filter(|f| f.extension().is_some_and(|x| x == "owner")).any(|f| {
            std::fs::File::open(f).is_ok_and(|file| match file.try_lock() {
                Ok(()) => false,
                Err(e) => matches!(e, std::fs::TryLockError::WouldBlock),
            })
        });
        if !held {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the killed child's owner lock is still held after 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number of calls each of the child's threads had seen return when it said an overflow
/// segment had bytes on disk. Waits for as long as a loaded machine may need.
fn wait_for_report(child: &mut Child) -> Vec<u64> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The line may follow the child's "test child_overflows_until_killed ... ".
            if let Some((_, n)) = line.split_once(REPORT) {
                let _ = tx.send(n.split_whitespace().map(|n| n.parse::<u64>().unwrap()).collect());
                break;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(n) => n,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child never reported an overflow segment on disk: {e}");
        }
    }
}

/// Every file under `dir` (the store's spill directory is a subdirectory of it).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// An overflow segment being written: `{nanos}-{pid}-o{seq}.tmp`.
fn is_overflow_segment(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.strip_suffix(".tmp").and_then(|stem| stem.split('-').nth(2)).is_some_and(|kind| kind.starts_with('o'))
}

/// The whole records of every file in the spill directory as the kill left it.
fn read_on_disk(spill: &Path) -> OnDisk {
    let mut on_disk = OnDisk::default();
    for path in files(spill) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".owner") {
            // The killed child's owner lock file (empty; its lock died with it).
            continue;
        }
        assert!(
            name.ends_with(".tmp") || name.ends_with(".spill") || name.contains(".replaying-"),
            "a file the test does not expect in a non-durable spill directory: {name}"
        );
        let tasks = whole_records(&std::fs::read(&path).unwrap());
        if is_overflow_segment(&path) {
            on_disk.in_overflow += tasks.len();
        }
        on_disk.files.push(format!("{name}: {} records", tasks.len()));
        on_disk.tasks.extend(tasks);
    }
    on_disk
}

/// The tasks of the whole frames in a spill file's bytes: a header, then frames of a `u32`
/// payload length, a `u32` checksum and the payload. A file cut short by the kill ends in a
/// frame whose payload runs past the end: it is not a whole record, and is not counted.
fn whole_records(bytes: &[u8]) -> Vec<String> {
    let mut tasks = Vec::new();
    let mut at = HEADER;
    while let Some(len) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let Some(payload) = bytes.get(at + FRAME..at + FRAME + len) else { break };
        tasks.push(task_of(payload));
        at += FRAME + len;
    }
    tasks
}

/// A stage record's task: the payload is a kind byte (1, a metric record), the timestamp (8
/// bytes), then the agent and the task, each a LEB128 length (one byte under 128) and UTF-8.
fn task_of(payload: &[u8]) -> String {
    assert_eq!(payload[0], 1, "a metric record");
    let agent = 1 + 8;
    let task = agent + 1 + usize::from(payload[agent]);
    let len = usize::from(payload[task]);
    assert!(len < 128, "a one-byte length");
    String::from_utf8(payload[task + 1..task + 1 + len].to_vec()).unwrap()
}
