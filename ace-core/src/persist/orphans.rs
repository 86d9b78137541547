//! Files a process left in the spill directory when it died: its durable journal's segments,
//! and spill files it had not finished writing.
//!
//! Every file a process writes there carries its pid in its name (`{nanos}-{pid}-{kind}{seq}`).
//! When the next engine opens the directory, the files of a process that is gone (Linux: no
//! `/proc/<pid>`) are made into spill files and stored in order with the rest. Files with this
//! process's own pid are a dead process's too when this process opens the directory for the
//! first time: a process that had the same pid wrote them (a restarted container's process
//! often gets its predecessor's pid, 1 or 7 say), since this one has written nothing there yet.
//!
//! - a journal segment (`.journal`) is renamed to a JSON Lines spill file as it is;
//! - a spill file it had claimed for replay (`.replaying-<pid>`, the pid the claimer's) goes
//!   back under its spill name, to be stored again (at least once: what the dead process
//!   stored of it before it died may be stored twice);
//! - a half-written binary file (`.tmp`): the writer's own spill file cut short by the crash, or
//!   an overflow segment (records that found the buffers full, whose header is written only when
//!   the writer finishes it). What decodes is written again as a whole spill file, synced,
//!   before the `.tmp` goes; a torn last frame is counted and logged. A `.tmp` with no whole
//!   record in it is removed.
//!
//! A temporary file of an adoption cut short (`.adopting-<pid>`) is removed: the `.tmp` it was
//! made from is still there. A process's files are never touched while it lives, so two
//! engines (in one process or in several) can share the directory; within one process, the
//! directories it has opened are remembered, and an adoption is done under that lock.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::spill::{JOURNAL, JSONL, SUFFIX};
use super::spill_codec;

const TMP: &str = ".tmp";

/// The spill directories this process has opened (as canonical paths). Held for the whole of
/// an adoption, so an engine of this process that opens the directory meanwhile writes its
/// files only after the first one's adoption has passed (they would look like a predecessor's).
/// A `std` lock, which a fork leaves usable (see `super::fork`).
static VISITED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Which processes count as alive while a directory is adopted.
#[derive(Clone, Copy)]
struct Liveness {
    /// This process has not opened the directory before: files with its pid are a dead
    /// predecessor's that had the same pid.
    first_visit: bool,
}

impl Liveness {
    /// Whether the process that named a file `stem` still runs (a name without a pid is left
    /// alone).
    fn of_stem(self, stem: &str) -> bool {
        stem.split('-').nth(1).and_then(|p| p.parse::<u32>().ok()).is_none_or(|pid| self.of_pid(pid))
    }

    fn of_pid(self, pid: u32) -> bool {
        if pid == std::process::id() {
            return !self.first_visit;
        }
        Path::new(&format!("/proc/{pid}")).exists()
    }
}

/// What [`adopt`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Adopted {
    /// Journal segments made into spill files.
    pub journals: u64,
    /// Spill files a dead process had claimed, given back.
    pub released: u64,
    /// Half-written files made into spill files, and the records they held.
    pub files: u64,
    pub records: u64,
    /// Bytes of half-written files that held no whole record (a torn tail), dropped.
    pub torn_bytes: u64,
}

/// Makes the files of processes that are gone into spill files (see the module's docs).
pub(crate) fn adopt(dir: &Path) -> Adopted {
    let mut adopted = Adopted::default();
    let mut visited = VISITED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let live = Liveness { first_visit: !visited.contains(&key) };
    if live.first_visit {
        visited.push(key);
    }
    let Ok(entries) = fs::read_dir(dir) else { return adopted };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if let Some(stem) = name.strip_suffix(JOURNAL).and_then(|n| n.strip_suffix('.')) {
            if !live.of_stem(stem) && fs::rename(&path, dir.join(format!("{stem}{JSONL}"))).is_ok() {
                adopted.journals += 1;
            }
        } else if let Some(stem) = name.strip_suffix(TMP)
            && !live.of_stem(stem)
        {
            finish(dir, &path, stem, &mut adopted);
        } else if let Some((stem, pid)) = claimed_by(name, ".replaying-")
            && !live.of_pid(pid)
        {
            let mut head = [0u8; 8];
            let binary = fs::File::open(&path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
                && spill_codec::is_binary(&head);
            let back = dir.join(format!("{stem}{}", if binary { SUFFIX } else { JSONL }));
            if fs::rename(&path, back).is_ok() {
                adopted.released += 1;
            }
        } else if let Some((_, pid)) = claimed_by(name, ".adopting-")
            && !live.of_pid(pid)
        {
            let _ = fs::remove_file(&path);
        }
    }
    if adopted != Adopted::default() {
        tracing::warn!(
            dir = %dir.display(),
            journals = adopted.journals,
            released = adopted.released,
            files = adopted.files,
            records = adopted.records,
            torn_bytes = adopted.torn_bytes,
            "found files left by a process that died in the spill directory: their records will be stored"
        );
    }
    adopted
}

/// `{stem}{marker}{pid}` as (stem, pid).
fn claimed_by<'a>(name: &'a str, marker: &str) -> Option<(&'a str, u32)> {
    let (stem, pid) = name.rsplit_once(marker)?;
    Some((stem, pid.parse().ok()?))
}

/// Writes what decodes in the half-written file `path` as the spill file `{stem}.spill`.
fn finish(dir: &Path, path: &Path, stem: &str, adopted: &mut Adopted) {
    let Ok(mut bytes) = fs::read(path) else { return };
    if bytes.len() >= spill_codec::HEADER && !spill_codec::is_binary(&bytes) {
        // An overflow segment's header is blank until it is finished.
        if bytes[..spill_codec::HEADER].iter().all(|&b| b == 0) {
            bytes[..spill_codec::HEADER].copy_from_slice(&spill_codec::header(0));
        }
    }
    let decoded = spill_codec::decode(&bytes).ok();
    let records = decoded.as_ref().map_or(&[][..], |d| &d.records[..]);
    adopted.torn_bytes += decoded
        .as_ref()
        .map_or(bytes.len() as u64, |d| d.skipped.iter().map(|r| (r.0.end - r.0.start) as u64).sum::<u64>());
    if !records.is_empty() {
        let written = spill_codec::encode(records).and_then(|whole| {
            let tmp = dir.join(format!("{stem}.adopting-{}", std::process::id()));
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&whole)?;
            file.sync_all()?;
            fs::rename(&tmp, dir.join(format!("{stem}{SUFFIX}")))
        });
        if let Err(e) = written {
            tracing::error!(file = %path.display(), error = %e, "cannot store the records of a half-written spill file; it is kept");
            return;
        }
        adopted.files += 1;
        adopted.records += records.len() as u64;
    }
    let _ = fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::Timestamp;
    use crate::persist::spill::Spill;
    use crate::record::{MetricRecord, Record};

    fn record(i: i64) -> Record {
        Record::Metric(MetricRecord {
            ts: Timestamp::from_micros(i),
            agent: Arc::from("agent-1"),
            task: Arc::from(format!("task-{i}")),
            stage: Arc::from("planning"),
            duration_s: Some(0.5),
            success: Some(true),
            metrics: Vec::new(),
        })
    }

    /// A pid no process has (Linux's largest is 4,194,304).
    const GONE: u32 = 4_194_305;

    fn times(records: &[Record]) -> Vec<i64> {
        records
            .iter()
            .map(|r| match r {
                Record::Metric(m) => m.ts.as_micros(),
                _ => -1,
            })
            .collect()
    }

    #[test]
    fn an_overflow_segment_left_by_a_dead_process_is_stored_up_to_its_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        // What an overflow segment holds when its process dies: a blank header, whole frames,
        // and the first bytes of a frame the crash cut short.
        let mut bytes = vec![0u8; spill_codec::HEADER];
        for i in 0..50 {
            spill_codec::encode_frame(&mut bytes, &record(i)).unwrap();
        }
        let mut last = Vec::new();
        spill_codec::encode_frame(&mut last, &record(50)).unwrap();
        bytes.extend_from_slice(&last[..last.len() / 2]);
        let stem = format!("00000000000000000001-{GONE}-o00000001");
        fs::write(dir.path().join(format!("{stem}.tmp")), &bytes).unwrap();
        // The same from this process (alive, the directory opened before): left alone.
        adopt(dir.path());
        let mine = format!("00000000000000000002-{}-o00000001.tmp", std::process::id());
        fs::write(dir.path().join(&mine), &bytes).unwrap();

        let spill = Spill::open(dir.path(), u64::MAX).unwrap();
        let pending = spill.pending();
        assert_eq!(pending, vec![dir.path().join(format!("{stem}.spill"))]);
        let read = Spill::read(&pending[0]).unwrap();
        assert_eq!((read.unreadable, read.aside), (0, None), "the recovered file is whole");
        assert_eq!(times(&read.records), (0..50).collect::<Vec<_>>());
        assert!(!dir.path().join(format!("{stem}.tmp")).exists());
        assert!(dir.path().join(&mine).exists(), "a live process's file is not touched");
    }

    #[test]
    fn a_writers_half_written_file_keeps_its_whole_records_and_an_empty_one_goes() {
        let dir = tempfile::tempdir().unwrap();
        let whole = spill_codec::encode(&(0..20).map(record).collect::<Vec<_>>()).unwrap();
        let cut = format!("00000000000000000001-{GONE}-00000003");
        fs::write(dir.path().join(format!("{cut}.tmp")), &whole[..whole.len() - 3]).unwrap();
        let empty = format!("00000000000000000002-{GONE}-00000004");
        fs::write(dir.path().join(format!("{empty}.tmp")), b"").unwrap();
        let junk = format!("00000000000000000003-{GONE}-o00000005");
        fs::write(dir.path().join(format!("{junk}.tmp")), b"not a spill file at all, just text").unwrap();

        let adopted = adopt(dir.path());
        assert_eq!((adopted.files, adopted.records), (1, 19));
        assert!(adopted.torn_bytes > 0);
        let spill = Spill::open(dir.path(), u64::MAX).unwrap();
        let pending = spill.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(times(&Spill::read(&pending[0]).unwrap().records), (0..19).collect::<Vec<_>>());
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "nothing but the recovered file is left: {left:?}");
    }

    #[test]
    fn a_file_a_dead_process_was_replaying_goes_back_and_a_cut_adoption_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let binary = spill_codec::encode(&(0..3).map(record).collect::<Vec<_>>()).unwrap();
        let mine = std::process::id();
        adopt(dir.path());
        let files = [
            (format!("00000000000000000001-{mine}-00000001.replaying-{GONE}"), &binary[..]),
            (format!("00000000000000000002-{mine}-00000002.replaying-{GONE}"), &b"{\"json\": 1}\n"[..]),
            (format!("00000000000000000003-{mine}-00000003.replaying-{mine}"), &binary[..]),
            (format!("00000000000000000004-{GONE}-o00000004.adopting-{GONE}"), &binary[..]),
        ];
        for (name, bytes) in &files {
            fs::write(dir.path().join(name), bytes).unwrap();
        }
        assert_eq!(adopt(dir.path()).released, 2);
        let mut left: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                format!("00000000000000000001-{mine}-00000001.spill"),
                format!("00000000000000000002-{mine}-00000002.jsonl"),
                format!("00000000000000000003-{mine}-00000003.replaying-{mine}"),
            ],
            "claims of the dead go back by format, a live claim stays, a cut adoption goes"
        );
    }

    #[test]
    fn files_with_this_processs_pid_are_a_dead_predecessors_until_it_opens_the_directory() {
        // A restarted container's process often has its predecessor's pid: what that one left
        // carries this process's pid, in a directory this process has not opened yet.
        let dir = tempfile::tempdir().unwrap();
        let mine = std::process::id();
        let journal = format!("00000000000000000001-{mine}-j00000001");
        fs::write(dir.path().join(format!("{journal}.journal")), b"").unwrap();
        let segment = format!("00000000000000000002-{mine}-o00000002");
        let mut bytes = vec![0u8; spill_codec::HEADER];
        for i in 0..5 {
            spill_codec::encode_frame(&mut bytes, &record(i)).unwrap();
        }
        fs::write(dir.path().join(format!("{segment}.tmp")), &bytes).unwrap();
        let claimed = format!("00000000000000000003-{GONE}-00000003.replaying-{mine}");
        fs::write(dir.path().join(&claimed), spill_codec::encode(&[record(9)]).unwrap()).unwrap();

        let adopted = adopt(dir.path());
        assert_eq!((adopted.journals, adopted.files, adopted.records, adopted.released), (1, 1, 5, 1));
        assert!(dir.path().join(format!("{journal}.jsonl")).exists());
        assert!(dir.path().join(format!("{segment}.spill")).exists());
        assert!(dir.path().join(format!("00000000000000000003-{GONE}-00000003.spill")).exists());

        // Now the directory is this process's: its files are left alone, also when the
        // directory is reached by another path.
        let live = format!("00000000000000000004-{mine}-j00000004.journal");
        fs::write(dir.path().join(&live), b"").unwrap();
        assert_eq!(adopt(dir.path()), Adopted::default());
        assert_eq!(adopt(&dir.path().join(".")), Adopted::default());
        assert!(dir.path().join(&live).exists());
    }

    #[test]
    fn a_dead_processs_journal_becomes_a_json_lines_spill_file() {
        let dir = tempfile::tempdir().unwrap();
        let stem = format!("00000000000000000001-{GONE}-j00000001");
        fs::write(dir.path().join(format!("{stem}.journal")), b"").unwrap();
        assert_eq!(adopt(dir.path()).journals, 1);
        assert!(dir.path().join(format!("{stem}.jsonl")).exists());
    }
}
