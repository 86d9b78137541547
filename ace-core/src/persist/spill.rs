//! Spilling: records the store cannot take go to local files, and back into the store in order
//! once it answers again.
//!
//! While a write to the store fails, the writer thread moves what it holds, and what the
//! recorders keep buffering, into files under `ACE_SPILL_DIR` (one JSON Lines file per batch,
//! written to a temporary name, synced, then renamed, so a file is either complete or absent).
//! When a write succeeds again, spilled files are appended to the store oldest first, each
//! deleted once stored, before newer records. A file is claimed by renaming it before it is
//! replayed, so two processes sharing the directory never store one file twice; files left by a
//! process that died are replayed by the next engine started on the directory.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::store::Record;

const SUFFIX: &str = ".jsonl";
const JOURNAL: &str = "journal";

/// Durable mode's journal: every accepted record is appended (one `write` each, no user-space
/// buffer) before the recording call returns, so a `kill -9` loses nothing written; segments are
/// rotated by the writer and deleted once their records are stored or spilled. A segment left by
/// a process that died is replayed like a spill file (at least once: a record stored just before
/// the crash may be stored again).
///
/// A record that finds the buffer full (the store is slower than the callers) is not dropped: it
/// goes to the *overflow* segment instead of the journal, and a finished overflow segment
/// becomes a spill file, stored in order like any other. So every record the journal
/// acknowledged is in a segment that is deleted only once what it holds is stored or spilled.
pub(crate) struct Journal {
    dir: PathBuf,
    file: parking_lot::Mutex<(fs::File, PathBuf, std::time::Instant)>,
    /// The overflow segment being written, if any record overflowed since it was last finished.
    overflow: parking_lot::Mutex<Option<(fs::File, PathBuf)>>,
    seq: std::sync::atomic::AtomicU64,
}

impl Journal {
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let (file, path) = Self::segment(dir, 1)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            file: parking_lot::Mutex::new((file, path, std::time::Instant::now())),
            overflow: parking_lot::Mutex::new(None),
            seq: 1.into(),
        })
    }

    fn segment(dir: &Path, seq: u64) -> std::io::Result<(fs::File, PathBuf)> {
        Self::named(dir, 'j', seq)
    }

    fn named(dir: &Path, kind: char, seq: u64) -> std::io::Result<(fs::File, PathBuf)> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let path = dir.join(format!("{:020}-{}-{kind}{seq:08}.{JOURNAL}", now.as_nanos(), std::process::id()));
        Ok((fs::OpenOptions::new().create(true).append(true).open(&path)?, path))
    }

    fn line(record: &Record) -> Option<Vec<u8>> {
        match serde_json::to_vec(record) {
            Ok(mut l) => {
                l.push(b'\n');
                Some(l)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot journal a record");
                None
            }
        }
    }

    /// Appends one record (a failure is logged: durability is lost for it, the record is not).
    pub(crate) fn append(&self, record: &Record) {
        let Some(line) = Self::line(record) else { return };
        let mut f = self.file.lock();
        if let Err(e) = f.0.write_all(&line) {
            tracing::error!(file = %f.1.display(), error = %e, "cannot write the durable journal");
        }
    }

    /// Appends a record that found the buffer full to the overflow segment; false if it could
    /// not be written (the record is then lost, and the caller counts it).
    pub(crate) fn overflow(&self, record: &Record) -> bool {
        let Some(line) = Self::line(record) else { return false };
        let mut o = self.overflow.lock();
        if o.is_none() {
            let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            match Self::named(&self.dir, 'o', seq) {
                Ok(segment) => *o = Some(segment),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a journal overflow segment");
                    return false;
                }
            }
        }
        let Some((file, path)) = &mut *o else { return false };
        match file.write_all(&line) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot write the journal overflow");
                false
            }
        }
    }

    /// Finishes the overflow segment, if any: it becomes a spill file, stored in order with the
    /// others. Returns whether there was one.
    pub(crate) fn finish_overflow(&self) -> bool {
        let Some((file, path)) = self.overflow.lock().take() else { return false };
        drop(file);
        let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(&format!(".{JOURNAL}")))
        else {
            return false;
        };
        let spilled = self.dir.join(format!("{stem}{SUFFIX}"));
        if let Err(e) = fs::rename(&path, &spilled) {
            tracing::error!(file = %path.display(), error = %e, "cannot turn a journal overflow segment into a spill file");
            return false;
        }
        true
    }

    /// Starts a new segment if the current one is older than `age`; returns the finished one.
    pub(crate) fn rotate(&self, age: std::time::Duration) -> Option<PathBuf> {
        let mut f = self.file.lock();
        if f.2.elapsed() < age {
            return None;
        }
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match Self::segment(&self.dir, seq) {
            Ok((file, path)) => {
                let old = std::mem::replace(&mut *f, (file, path, std::time::Instant::now()));
                Some(old.1)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start a new journal segment");
                None
            }
        }
    }

    /// The current segment (deleted at a clean close).
    pub(crate) fn current(&self) -> PathBuf {
        self.file.lock().1.clone()
    }
}

pub(crate) struct Spill {
    dir: PathBuf,
    seq: u64,
}

impl Spill {
    /// The spill directory, created if missing.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Spill { dir: dir.to_path_buf(), seq: 0 })
    }

    /// Writes `records` to a new file; returns how many.
    pub(crate) fn write(&mut self, records: &[Record]) -> std::io::Result<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        self.seq += 1;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let name = format!("{:020}-{}-{:08}", now.as_nanos(), std::process::id(), self.seq);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let written = (|| {
            let mut out = std::io::BufWriter::new(fs::File::create(&tmp)?);
            for r in records {
                serde_json::to_writer(&mut out, r).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            fs::rename(&tmp, self.dir.join(format!("{name}{SUFFIX}")))
        })();
        if let Err(e) = written {
            // A full disk leaves a partial file: remove it, so the space it took is free for the
            // next try and no half batch is ever replayed.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(records.len() as u64)
    }

    /// Turns the journal segments of processes that are gone into spill files (Linux: a
    /// process is gone when `/proc/<pid>` is).
    pub(crate) fn adopt_orphans(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(stem) = name.strip_suffix(&format!(".{JOURNAL}")) else { continue };
            let pid = stem.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = fs::rename(&path, self.dir.join(format!("{stem}{SUFFIX}")));
            }
        }
    }

    /// Spilled files waiting to be stored, oldest first.
    pub(crate) fn pending(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(SUFFIX)))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Claims `file` for this process (false: another one took it).
    pub(crate) fn claim(&self, file: &Path) -> Option<PathBuf> {
        let claimed = file.with_extension(format!("replaying-{}", std::process::id()));
        fs::rename(file, &claimed).ok().map(|()| claimed)
    }

    /// Gives a claimed file back (its replay failed).
    pub(crate) fn release(&self, claimed: &Path, original: &Path) {
        if let Err(e) = fs::rename(claimed, original) {
            tracing::error!(file = %claimed.display(), error = %e, "cannot give a spill file back; it stays under its claimed name");
        }
    }

    /// The records of a file. A line that does not parse is an error naming the file and line.
    pub(crate) fn read(file: &Path) -> std::io::Result<Vec<Record>> {
        let reader = BufReader::new(fs::File::open(file)?);
        let mut records = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let r: Record = serde_json::from_str(&line).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} line {}: {e}", file.display(), i + 1))
            })?;
            records.push(r);
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::Timestamp;
    use crate::store::MetricRecord;

    fn rec(i: i64) -> Record {
        Record::Metric(MetricRecord {
            ts: Timestamp::from_micros(i),
            agent: Arc::from("a"),
            task: Arc::from("t"),
            stage: Arc::from("s"),
            duration_s: Some(1.5),
            success: Some(true),
            metrics: vec![(Arc::from("tokens_in"), 3.0)],
        })
    }

    #[test]
    fn files_round_trip_in_order_and_are_claimed_once() {
        let dir = std::env::temp_dir().join(format!("ace-spill-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = Spill::open(&dir).unwrap();
        assert_eq!(s.write(&[rec(1), rec(2)]).unwrap(), 2);
        assert_eq!(s.write(&[rec(3)]).unwrap(), 1);
        let files = s.pending();
        assert_eq!(files.len(), 2);
        let claimed = s.claim(&files[0]).unwrap();
        assert!(s.claim(&files[0]).is_none(), "claimed once");
        assert_eq!(Spill::read(&claimed).unwrap(), vec![rec(1), rec(2)]);
        s.release(&claimed, &files[0]);
        assert_eq!(s.pending().len(), 2);
        fs::write(dir.join("0-bad.jsonl"), "{not json}\n").unwrap();
        let err = Spill::read(&dir.join("0-bad.jsonl")).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
