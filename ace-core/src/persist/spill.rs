//! Spilling: records the store cannot take go to local files, and back into the store in order
//! once it answers again.
//!
//! While a write to the store fails, the writer thread moves what it holds, and what the
//! recorders keep buffering, into files under `ACE_SPILL_DIR` (one file per batch, in the binary
//! format of [`super::spill_codec`], written to a temporary name, synced, then renamed, so a file
//! is either complete or absent). Files in JSON Lines (the journal's overflow segments, and spill
//! files left by earlier versions) are read as well: the first bytes tell the formats apart.
//! When a write succeeds again, spilled files are appended to the store oldest first, each
//! deleted once stored, before newer records. A file is claimed by renaming it before it is
//! replayed, so two processes sharing the directory never store one file twice; files left by a
//! process that died are replayed by the next engine started on the directory (see
//! [`super::orphans`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::owner::Owner;
use super::spill_codec;
use crate::store::Record;

/// Spill files in the binary format...
pub(super) const SUFFIX: &str = ".spill";
/// ...and in JSON Lines.
pub(super) const JSONL: &str = ".jsonl";
pub(super) const JOURNAL: &str = "journal";

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
    /// This process's hold on the directory; its tag names the segments.
    owner: Arc<Owner>,
    file: parking_lot::Mutex<(fs::File, PathBuf, std::time::Instant)>,
    /// The overflow segment being written, if any record overflowed since it was last finished.
    overflow: parking_lot::Mutex<Option<(fs::File, PathBuf)>>,
    seq: std::sync::atomic::AtomicU64,
}

impl Journal {
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let owner = super::owner::hold(dir)?;
        let (file, path) = Self::segment(dir, owner.tag(), 1)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            owner,
            file: parking_lot::Mutex::new((file, path, std::time::Instant::now())),
            overflow: parking_lot::Mutex::new(None),
            seq: 1.into(),
        })
    }

    fn segment(dir: &Path, tag: &str, seq: u64) -> std::io::Result<(fs::File, PathBuf)> {
        Self::named(dir, tag, 'j', seq)
    }

    fn named(dir: &Path, tag: &str, kind: char, seq: u64) -> std::io::Result<(fs::File, PathBuf)> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let path = dir.join(format!("{:020}-{tag}-{kind}{seq:08}.{JOURNAL}", now.as_nanos()));
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
            match Self::named(&self.dir, self.owner.tag(), 'o', seq) {
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
        let spilled = self.dir.join(format!("{stem}{JSONL}"));
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
        match Self::segment(&self.dir, self.owner.tag(), seq) {
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

/// Why a spill file was not written.
#[derive(Debug)]
pub(crate) enum SpillError {
    /// The files waiting in the directory would pass `ACE_SPILL_MAX_BYTES`.
    Budget { pending: u64, file: u64, max: u64 },
    /// The disk refused (full, read-only, gone).
    Io(std::io::Error),
}

impl std::fmt::Display for SpillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpillError::Budget { pending, file, max } => write!(
                f,
                "the spill directory holds {pending} bytes waiting for the store; a file of {file} more would pass \
                 ACE_SPILL_MAX_BYTES ({max})"
            ),
            SpillError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<std::io::Error> for SpillError {
    fn from(e: std::io::Error) -> Self {
        SpillError::Io(e)
    }
}

/// What [`Spill::read`] found in a file.
#[derive(Debug)]
pub(crate) struct SpillRead {
    pub records: Vec<Record>,
    /// Lines that are not records (a torn write, an edit): not stored, counted...
    pub unreadable: u64,
    /// ...and kept in this file beside the spill directory's others, for a person.
    pub aside: Option<PathBuf>,
}

/// Records gathered, encoded, for one spill file: under pressure the writer drains the buffers
/// every few milliseconds, and a file per drain would cost a `fsync` (several milliseconds,
/// whatever its size) per drain; gathered drains are written as one file. Encoded, a record
/// takes a fraction of its size in memory.
pub(crate) struct Gathered {
    name: String,
    file: spill_codec::Encoder,
    since: std::time::Instant,
}

impl Gathered {
    /// An empty file, named now (so it is stored after every file named before it).
    pub(crate) fn new(spill: &mut Spill) -> Self {
        Gathered { name: spill.reserve(), file: spill_codec::Encoder::new(0), since: std::time::Instant::now() }
    }

    /// Adds `records` (none of them on an error).
    pub(crate) fn push(&mut self, records: &[Record]) -> std::io::Result<()> {
        self.file.push(records)
    }

    /// Records gathered.
    pub(crate) fn count(&self) -> u64 {
        self.file.count()
    }

    /// Time since the first records were gathered.
    pub(crate) fn age(&self) -> std::time::Duration {
        self.since.elapsed()
    }
}

pub(crate) struct Spill {
    dir: PathBuf,
    /// This process's hold on the directory; its tag names the files.
    owner: Arc<Owner>,
    seq: u64,
    /// Bytes of the files waiting in the directory (this process's view: what it found at open,
    /// plus what it wrote, less what it stored).
    bytes: u64,
    max_bytes: u64,
    /// `bytes` as the recording threads' overflow sees it, and the bytes of its open segment,
    /// which count against the same budget (see [`super::overflow`]).
    shared: Arc<SpillBytes>,
}

/// The spill budget's use, shared between the writer's files and the overflow segment.
#[derive(Debug, Default)]
pub(crate) struct SpillBytes {
    /// Bytes of the files waiting in the directory (the writer's `Spill::bytes`).
    pub waiting: AtomicU64,
    /// Bytes of the overflow segment being written.
    pub open: AtomicU64,
}

impl Spill {
    /// The spill directory, created if missing, with the files of processes that died there made
    /// into spill files (see [`super::orphans`]); spilled files may take at most `max_bytes`.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        Self::open_adopting(dir, max_bytes).map(|(spill, _)| spill)
    }

    /// [`Spill::open`], with what it adopted of processes that died there.
    fn open_adopting(dir: &Path, max_bytes: u64) -> std::io::Result<(Self, super::orphans::Adopted)> {
        fs::create_dir_all(dir)?;
        let owner = super::owner::hold(dir)?;
        let adopted = super::orphans::adopt(dir, &owner);
        let mut spill = Spill { dir: dir.to_path_buf(), owner, seq: 0, bytes: 0, max_bytes, shared: Arc::default() };
        let found = spill.pending().iter().filter_map(|p| fs::metadata(p).ok()).map(|m| m.len()).sum();
        spill.set_bytes(found);
        Ok((spill, adopted))
    }

    fn set_bytes(&mut self, bytes: u64) {
        self.bytes = bytes;
        self.shared.waiting.store(bytes, Ordering::Relaxed);
    }

    /// The overflow for records that find the buffer full, writing into this directory under
    /// the same budget.
    pub(crate) fn overflow(&self) -> super::overflow::Overflow {
        super::overflow::Overflow::new(&self.dir, self.owner.clone(), self.shared.clone(), self.max_bytes)
    }

    /// Counts a file the overflow finished (`size` bytes) as waiting.
    pub(crate) fn adopt(&mut self, size: u64) {
        self.set_bytes(self.bytes + size);
    }

    /// A name for a file written later that sorts before every file written after this call
    /// (see [`Spill::write_as`]).
    pub(crate) fn reserve(&mut self) -> String {
        self.seq += 1;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{:020}-{}-{:08}", now.as_nanos(), self.owner.tag(), self.seq)
    }

    /// Writes `records` to a new file; returns how many.
    pub(crate) fn write(&mut self, records: &[Record]) -> Result<u64, SpillError> {
        let name = self.reserve();
        self.write_as(&name, records)
    }

    /// Writes `records` to a new file named `name` (from [`Spill::reserve`]), within the budget.
    pub(crate) fn write_as(&mut self, name: &str, records: &[Record]) -> Result<u64, SpillError> {
        if records.is_empty() {
            return Ok(0);
        }
        let text = spill_codec::encode(records)?;
        self.write_file(name, &text)?;
        Ok(records.len() as u64)
    }

    /// Writes the records gathered in `file` (see [`Gathered`]). On a disk error they are given
    /// back, decoded, to be kept in memory; past the budget, their number is in the error.
    pub(crate) fn write_gathered(&mut self, file: Gathered) -> Result<u64, (SpillError, Vec<Record>)> {
        let count = file.file.count();
        let text = file.file.finish();
        match self.write_file(&file.name, &text) {
            Ok(()) => Ok(count),
            Err(e @ SpillError::Budget { .. }) => Err((e, Vec::new())),
            Err(e) => Err((e, spill_codec::decode(&text).map(|d| d.records).unwrap_or_default())),
        }
    }

    /// Writes a whole file, synced, within the budget.
    fn write_file(&mut self, name: &str, text: &[u8]) -> Result<(), SpillError> {
        let size = text.len() as u64;
        let pending = self.bytes + self.shared.open.load(Ordering::Relaxed);
        if pending + size > self.max_bytes {
            return Err(SpillError::Budget { pending, file: size, max: self.max_bytes });
        }
        let tmp = self.dir.join(format!("{name}.tmp"));
        let written = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(text)?;
            file.sync_all()?;
            fs::rename(&tmp, self.dir.join(format!("{name}{SUFFIX}")))
        })();
        if let Err(e) = written {
            // A full disk leaves a partial file: remove it, so the space it took is free for the
            // next try and no half batch is ever replayed.
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        self.set_bytes(self.bytes + size);
        Ok(())
    }

    /// Deletes a stored file of `size` bytes.
    pub(crate) fn remove(&mut self, claimed: &Path, size: u64) {
        if let Err(e) = fs::remove_file(claimed) {
            tracing::error!(file = %claimed.display(), error = %e, "a replayed spill file could not be removed");
        }
        self.set_bytes(self.bytes.saturating_sub(size));
    }

    fn is_spilled(p: &Path) -> bool {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(SUFFIX) || n.ends_with(JSONL))
    }

    /// Spilled files waiting to be stored, oldest first.
    pub(crate) fn pending(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| Self::is_spilled(p)).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Whether any spilled file waits.
    pub(crate) fn has_pending(&self) -> bool {
        fs::read_dir(&self.dir).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| Self::is_spilled(&e.path()))))
    }

    /// Claims `file` for this process (false: another one took it).
    pub(crate) fn claim(&self, file: &Path) -> Option<PathBuf> {
        let claimed = file.with_extension(format!("replaying-{}", self.owner.tag()));
        fs::rename(file, &claimed).ok().map(|()| claimed)
    }

    /// Gives a claimed file back (its replay failed).
    pub(crate) fn release(&self, claimed: &Path, original: &Path) {
        if let Err(e) = fs::rename(claimed, original) {
            tracing::error!(file = %claimed.display(), error = %e, "cannot give a spill file back; it stays under its claimed name");
        }
    }

    /// The records of a file. Records that cannot be read (a write torn by a crash, an edit,
    /// a bad disk) are counted, and set aside in `<file>.unreadable` beside it for a person
    /// (lines of a JSON Lines file with their numbers; bytes of a binary file with their
    /// offsets); the rest is returned. An error only when the file cannot be read at all.
    pub(crate) fn read(file: &Path) -> std::io::Result<SpillRead> {
        let bytes = fs::read(file)?;
        let (records, unreadable, bad) =
            if spill_codec::is_binary(&bytes) { Self::read_binary(&bytes)? } else { Self::read_lines(&bytes) };
        let aside = if bad.is_empty() {
            None
        } else {
            let aside = file.with_extension("unreadable");
            fs::write(&aside, &bad)?;
            Some(aside)
        };
        Ok(SpillRead { records, unreadable, aside })
    }

    fn read_binary(bytes: &[u8]) -> std::io::Result<(Vec<Record>, u64, Vec<u8>)> {
        let decoded =
            spill_codec::decode(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut bad = Vec::new();
        for (range, why) in decoded.skipped {
            bad.extend_from_slice(format!("# bytes {}..{}: {why}\n", range.start, range.end).as_bytes());
            bad.extend_from_slice(&bytes[range]);
            bad.push(b'\n');
        }
        Ok((decoded.records, decoded.missing, bad))
    }

    fn read_lines(bytes: &[u8]) -> (Vec<Record>, u64, Vec<u8>) {
        let mut records = Vec::new();
        let mut bad = Vec::new();
        let mut unreadable = 0;
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => records.push(r),
                Err(e) => {
                    unreadable += 1;
                    bad.extend_from_slice(format!("# line {}: {e}\n", i + 1).as_bytes());
                    bad.extend_from_slice(line);
                    bad.push(b'\n');
                }
            }
        }
        (records, unreadable, bad)
    }
}

/// A spill directory without an engine, for the spill bench (`benches/spill.rs`): what the
/// writer does with it, file by file. Not part of the API.
#[doc(hidden)]
pub struct SpillDir(Spill, u64);

impl SpillDir {
    /// Opens (creates) `dir`, without a byte budget.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let (spill, adopted) = Spill::open_adopting(dir, u64::MAX)?;
        Ok(SpillDir(spill, adopted.journals + adopted.released + adopted.files))
    }

    /// The files of processes that died there that the opening adopted (journal segments,
    /// claimed and half-written files).
    pub fn adopted(&self) -> u64 {
        self.1
    }

    /// Writes `records` to one new file, synced, as the writer spills a drain.
    pub fn write(&mut self, records: &[Record]) -> std::io::Result<u64> {
        self.0.write(records).map_err(|e| match e {
            SpillError::Io(e) => e,
            budget => std::io::Error::other(budget.to_string()),
        })
    }

    /// The size of `records` encoded as a spill file, without writing it (the CPU cost alone).
    pub fn encode(records: &[Record]) -> std::io::Result<usize> {
        spill_codec::encode(records).map(|b| b.len())
    }

    /// Reads and deletes every file, oldest first, as a replay does; returns their records.
    pub fn replay(&mut self) -> std::io::Result<Vec<Record>> {
        let mut records = Vec::new();
        for file in self.0.pending() {
            let Some(claimed) = self.0.claim(&file) else { continue };
            let size = fs::metadata(&claimed)?.len();
            records.append(&mut Spill::read(&claimed)?.records);
            self.0.remove(&claimed, size);
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
        let mut s = Spill::open(&dir, u64::MAX).unwrap();
        assert_eq!(s.write(&[rec(1), rec(2)]).unwrap(), 2);
        assert_eq!(s.write(&[rec(3)]).unwrap(), 1);
        let files = s.pending();
        assert_eq!(files.len(), 2);
        let claimed = s.claim(&files[0]).unwrap();
        assert!(s.claim(&files[0]).is_none(), "claimed once");
        assert_eq!(Spill::read(&claimed).unwrap().records, vec![rec(1), rec(2)]);
        s.release(&claimed, &files[0]);
        assert_eq!(s.pending().len(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn fresh(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ace-spill-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_torn_file_gives_its_good_lines_and_sets_the_bad_ones_aside() {
        let dir = fresh("torn");
        let file = dir.join("0-torn.jsonl");
        let good = |i| serde_json::to_string(&rec(i)).unwrap();
        fs::write(&file, format!("{}\n{{not json}}\n{}\n{{\"torn", good(1), good(2))).unwrap();
        let read = Spill::read(&file).unwrap();
        assert_eq!(read.records, vec![rec(1), rec(2)]);
        assert_eq!(read.unreadable, 2);
        let aside = fs::read_to_string(read.aside.unwrap()).unwrap();
        assert!(aside.contains("# line 2") && aside.contains("{not json}") && aside.contains("# line 4"), "{aside}");
    }

    #[test]
    fn a_damaged_binary_file_gives_its_intact_records_and_counts_the_rest() {
        let dir = fresh("damaged");
        let mut s = Spill::open(&dir, u64::MAX).unwrap();
        s.write(&(1..=5).map(rec).collect::<Vec<_>>()).unwrap();
        let file = s.pending().remove(0);
        assert!(file.extension().is_some_and(|x| x == "spill"), "{file:?}");
        let mut bytes = fs::read(&file).unwrap();
        // A byte of the third record flipped, and the last record cut short.
        let frame = (bytes.len() - 24) / 5;
        bytes[24 + 2 * frame + 12] ^= 0xff;
        bytes.truncate(bytes.len() - 3);
        fs::write(&file, &bytes).unwrap();
        let read = Spill::read(&file).unwrap();
        assert_eq!(read.records, vec![rec(1), rec(2), rec(4)]);
        assert_eq!(read.unreadable, 2);
        let aside = fs::read(read.aside.unwrap()).unwrap();
        let aside = String::from_utf8_lossy(&aside);
        assert!(aside.contains("checksum") && aside.contains("past the end"), "{aside}");
        // A file whose header is damaged cannot be read at all (the writer sets it aside).
        bytes[12] ^= 1;
        fs::write(&file, &bytes).unwrap();
        assert_eq!(Spill::read(&file).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn the_budget_refuses_a_file_that_would_pass_it_and_frees_what_is_stored() {
        let dir = fresh("budget");
        let dir = &dir;
        let two = spill_codec::encode(&[rec(1), rec(2)]).unwrap().len() as u64;
        let mut s = Spill::open(dir, two * 3 / 2).unwrap();
        s.write(&[rec(1), rec(2)]).unwrap();
        let err = s.write(&[rec(3), rec(4)]).unwrap_err();
        assert!(matches!(err, SpillError::Budget { .. }), "{err}");
        assert!(err.to_string().contains("ACE_SPILL_MAX_BYTES"), "{err}");
        assert_eq!(s.pending().len(), 1, "nothing written past the budget");
        let file = s.pending().remove(0);
        let claimed = s.claim(&file).unwrap();
        s.remove(&claimed, fs::metadata(&claimed).unwrap().len());
        s.write(&[rec(3), rec(4)]).unwrap();
        // A new engine on the directory counts what waits there.
        assert_eq!(Spill::open(dir, two * 3 / 2).unwrap().bytes, two);
    }
}
