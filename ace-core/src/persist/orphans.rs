//! Files a process left in the spill directory when it died: its durable journal's segments,
//! and spill files it had not finished writing.
//!
//! Every file a process writes there carries its owner tag in its name
//! (`{nanos}-{tag}-{kind}{seq}`, see [`super::owner`]). When the next engine opens the
//! directory, the files of an owner that is gone (its lock file free, or removed) are made into
//! spill files and stored in order with the rest; the adopter holds the dead owner's lock
//! meanwhile and removes its lock file after. Files named by a bare pid (before owner tags) are
//! judged by `/proc/<pid>`; those with this process's own pid are a dead process's when this
//! process opens the directory for the first time (a restarted container's process often gets
//! its predecessor's pid, 1 or 7 say).
//!
//! - a journal segment (`.journal`) is renamed to a JSON Lines spill file as it is;
//! - a spill file it had claimed for replay (`.replaying-<tag>`, the claimer's tag) goes
//!   back under its spill name, to be stored again (at least once: what the dead process
//!   stored of it before it died may be stored twice);
//! - a half-written binary file (`.tmp`): the writer's own spill file cut short by the crash, or
//!   an overflow segment (records that found the buffers full, whose header is written only when
//!   the writer finishes it). What decodes is written again as a whole spill file, synced,
//!   before the `.tmp` goes; a torn last frame is counted and logged. A `.tmp` with no whole
//!   record in it is removed.
//!
//! A temporary file of an adoption cut short (`.adopting-<tag>`) is removed: the `.tmp` it was
//! made from is still there. A process's files are never touched while it lives, so two
//! engines (in one process or in several) can share the directory; within one process, the
//! directories it has opened are remembered, and an adoption is done under that lock.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::owner::{self, DeadOwner, Found, OWNER, Owner, UNNAMED};
use super::spill::{JOURNAL, JSONL, SUFFIX};
use super::spill_codec;

const TMP: &str = ".tmp";

/// The spill directories this process has opened (as canonical paths). Held for the whole of
/// an adoption, so an engine of this process that opens the directory meanwhile writes its
/// files only after the first one's adoption has passed (they would look like a predecessor's).
/// A `std` lock, which a fork leaves usable (see `super::fork`).
static VISITED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Which writers count as alive while a directory is adopted.
struct Liveness<'a> {
    dir: &'a Path,
    /// This process's tag in the directory.
    mine: &'a str,
    /// This process has not opened the directory before: files named with its bare pid (as
    /// versions before owner tags named them) are a dead predecessor's that had the same pid.
    first_visit: bool,
    /// Owners already asked about, and whether they live.
    seen: Vec<(String, bool)>,
    /// The locks of the dead owners, held until the adoption ends.
    dead: Vec<DeadOwner>,
}

impl Liveness<'_> {
    /// Whether the writer of a file `stem` (`{nanos}-{owner}-...`) still runs (a name without an
    /// owner is left alone).
    fn of_stem(&mut self, stem: &str) -> bool {
        stem.split('-').nth(1).is_none_or(|owner| self.of_owner(owner))
    }

    /// Whether `owner`, a tag (see `super::owner`) or a bare pid, still runs.
    fn of_owner(&mut self, owner: &str) -> bool {
        if owner == self.mine {
            return true;
        }
        if let Ok(pid) = owner.parse::<u32>() {
            return self.of_pid(pid);
        }
        if !owner.contains('_') {
            return true;
        }
        if let Some((_, live)) = self.seen.iter().find(|(t, _)| t == owner) {
            return *live;
        }
        let live = match owner::find(self.dir, owner) {
            Found::Live => true,
            Found::Dead(lock) => {
                self.dead.extend(lock);
                false
            }
        };
        self.seen.push((owner.to_owned(), live));
        live
    }

    /// A bare pid: `/proc/<pid>` (files of this process's own pid: see `first_visit`).
    fn of_pid(&self, pid: u32) -> bool {
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
pub(crate) fn adopt(dir: &Path, owner: &Owner) -> Adopted {
    let mut adopted = Adopted::default();
    let mut visited = VISITED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut live =
        Liveness { dir, mine: owner.tag(), first_visit: !visited.contains(&key), seen: Vec::new(), dead: Vec::new() };
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
            finish(dir, &path, stem, owner.tag(), &mut adopted);
        } else if let Some((stem, claimer)) = name.rsplit_once(".replaying-")
            && !live.of_owner(claimer)
        {
            let mut head = [0u8; 8];
            let binary = fs::File::open(&path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
                && spill_codec::is_binary(&head);
            let back = dir.join(format!("{stem}{}", if binary { SUFFIX } else { JSONL }));
            if fs::rename(&path, back).is_ok() {
                adopted.released += 1;
            }
        } else if let Some((_, adopter)) = name.rsplit_once(".adopting-")
            && !live.of_owner(adopter)
        {
            let _ = fs::remove_file(&path);
        } else if let Some(tag) = name.strip_suffix(OWNER) {
            // A dead owner's lock file goes with the adoption (its lock is dropped below).
            live.of_owner(tag);
        } else if name.ends_with(UNNAMED) {
            owner::remove_if_unheld(&path);
        }
    }
    drop(live);
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

/// Writes what decodes in the half-written file `path` as the spill file `{stem}.spill`.
fn finish(dir: &Path, path: &Path, stem: &str, tag: &str, adopted: &mut Adopted) {
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
            let tmp = dir.join(format!("{stem}.adopting-{tag}"));
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

    /// Adopts `dir` as an engine of this process opening it would.
    fn adopt_here(dir: &Path) -> Adopted {
        adopt(dir, &owner::hold(dir).unwrap())
    }

    /// The names in `dir`, less the owners' lock files.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(OWNER))
            .collect();
        names.sort();
        names
    }

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
        adopt_here(dir.path());
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

        let adopted = adopt_here(dir.path());
        assert_eq!((adopted.files, adopted.records), (1, 19));
        assert!(adopted.torn_bytes > 0);
        let spill = Spill::open(dir.path(), u64::MAX).unwrap();
        let pending = spill.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(times(&Spill::read(&pending[0]).unwrap().records), (0..19).collect::<Vec<_>>());
        let left = names(dir.path());
        assert_eq!(left.len(), 1, "nothing but the recovered file is left: {left:?}");
    }

    #[test]
    fn a_file_a_dead_process_was_replaying_goes_back_and_a_cut_adoption_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let binary = spill_codec::encode(&(0..3).map(record).collect::<Vec<_>>()).unwrap();
        let mine = std::process::id();
        adopt_here(dir.path());
        let files = [
            (format!("00000000000000000001-{mine}-00000001.replaying-{GONE}"), &binary[..]),
            (format!("00000000000000000002-{mine}-00000002.replaying-{GONE}"), &b"{\"json\": 1}\n"[..]),
            (format!("00000000000000000003-{mine}-00000003.replaying-{mine}"), &binary[..]),
            (format!("00000000000000000004-{GONE}-o00000004.adopting-{GONE}"), &binary[..]),
        ];
        for (name, bytes) in &files {
            fs::write(dir.path().join(name), bytes).unwrap();
        }
        assert_eq!(adopt_here(dir.path()).released, 2);
        assert_eq!(
            names(dir.path()),
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

        let adopted = adopt_here(dir.path());
        assert_eq!((adopted.journals, adopted.files, adopted.records, adopted.released), (1, 1, 5, 1));
        assert!(dir.path().join(format!("{journal}.jsonl")).exists());
        assert!(dir.path().join(format!("{segment}.spill")).exists());
        assert!(dir.path().join(format!("00000000000000000003-{GONE}-00000003.spill")).exists());

        // Now the directory is this process's: its files are left alone, also when the
        // directory is reached by another path.
        let live = format!("00000000000000000004-{mine}-j00000004.journal");
        fs::write(dir.path().join(&live), b"").unwrap();
        assert_eq!(adopt_here(dir.path()), Adopted::default());
        assert_eq!(adopt_here(&dir.path().join(".")), Adopted::default());
        assert!(dir.path().join(&live).exists());
    }

    #[test]
    fn a_dead_processs_journal_becomes_a_json_lines_spill_file() {
        let dir = tempfile::tempdir().unwrap();
        let stem = format!("00000000000000000001-{GONE}-j00000001");
        fs::write(dir.path().join(format!("{stem}.journal")), b"").unwrap();
        assert_eq!(adopt_here(dir.path()).journals, 1);
        assert!(dir.path().join(format!("{stem}.jsonl")).exists());
    }

    #[test]
    fn a_live_owner_in_another_pid_namespace_keeps_its_files_until_its_lock_is_released() {
        // A process in another container: its pid is nowhere in this one's /proc, but it holds
        // its owner lock on the shared directory (a second open file here stands for it).
        let dir = tempfile::tempdir().unwrap();
        let tag = format!("{GONE}_0123456789abcdef");
        let lock = fs::File::create(dir.path().join(format!("{tag}{OWNER}"))).unwrap();
        lock.lock().unwrap();
        let journal = format!("00000000000000000001-{tag}-j00000001.journal");
        fs::write(dir.path().join(&journal), b"").unwrap();
        let segment = format!("00000000000000000002-{tag}-o00000002");
        let mut bytes = vec![0u8; spill_codec::HEADER];
        spill_codec::encode_frame(&mut bytes, &record(1)).unwrap();
        fs::write(dir.path().join(format!("{segment}.tmp")), &bytes).unwrap();
        let claimed = format!("00000000000000000003-{GONE}-00000003.replaying-{tag}");
        fs::write(dir.path().join(&claimed), spill_codec::encode(&[record(9)]).unwrap()).unwrap();
        let before = names(dir.path());

        assert_eq!(adopt_here(dir.path()), Adopted::default(), "a live owner's files are not touched");
        assert_eq!(names(dir.path()), before);

        // It dies: the kernel releases its lock, and its files are adopted.
        drop(lock);
        let adopted = adopt_here(dir.path());
        assert_eq!((adopted.journals, adopted.files, adopted.records, adopted.released), (1, 1, 1, 1));
        assert!(!dir.path().join(format!("{tag}{OWNER}")).exists(), "the dead owner's lock file goes");
        assert_eq!(
            names(dir.path()),
            vec![
                format!("00000000000000000001-{tag}-j00000001.jsonl"),
                format!("00000000000000000002-{tag}-o00000002.spill"),
                format!("00000000000000000003-{GONE}-00000003.spill"),
            ]
        );
    }

    #[test]
    fn an_engine_names_its_files_with_its_owner_tag_and_leaves_a_peers_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::open(dir.path(), u64::MAX).unwrap();
        spill.write(&[record(1)]).unwrap();
        let written = names(dir.path());
        let tag = owner::hold(dir.path()).unwrap().tag().to_owned();
        assert!(written.iter().all(|n| n.split('-').nth(1) == Some(&tag)), "{written:?} by {tag}");
        let mut bytes = vec![0u8; spill_codec::HEADER];
        spill_codec::encode_frame(&mut bytes, &record(2)).unwrap();
        fs::write(dir.path().join(format!("00000000000000000009-{tag}-o00000001.tmp")), &bytes).unwrap();
        assert_eq!(adopt_here(dir.path()), Adopted::default(), "its own overflow segment is left alone");
    }
}
