//! Records that find the buffer full go to disk, written by the recording thread itself.
//!
//! The buffers hold `buffer_capacity` records. A caller that outruns the writer for longer than
//! that lasts (one hot key in a tight loop while the writer and the store share the machine's
//! cores) would otherwise lose what comes next. With a spill directory (the default), such a
//! record is encoded in the spill files' binary format (tens of nanoseconds) into the *overflow
//! segment*: a spill file being written, through a user-space buffer written out every
//! [`WRITE_AT`] bytes (a `write` into the page cache, no `fsync`), so memory stays bounded and
//! the call waits neither on the store nor on the disk's sync. The writer thread finishes the
//! segment at its next turn (header, `fsync`, rename to a `.spill` name), and it is stored
//! with the other spill files, oldest first. The segment counts against `ACE_SPILL_MAX_BYTES`
//! with them; past it records are dropped and counted (`spill_full`).
//!
//! Durable mode has its own overflow, in the journal ([`super::spill::Journal`]): there every
//! record must reach the file before the call returns.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::owner::Owner;
use super::spill::SpillBytes;
use super::spill_codec;
use crate::store::Record;

/// The segment's buffer is written out once it holds this many bytes...
const WRITE_AT: usize = 256 * 1024;
/// ...and refuses records past this many while the disk refuses the writes (they are counted
/// as dropped: nothing is held without bound).
const HOLD_AT: usize = 4 * WRITE_AT;

/// What became of a record offered to the overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Written to the segment; `first`: it started a new one (the writer is woken to pick it up).
    Yes { first: bool },
    /// Not taken: the spill budget is used up.
    Budget,
    /// Not taken: the disk refused (full, read-only, gone) or the record cannot be encoded.
    Failed,
}

/// The overflow segment of a spill directory, shared by the recording threads.
pub(crate) struct Overflow {
    dir: PathBuf,
    /// This process's hold on the directory; its tag names the segments.
    owner: Arc<Owner>,
    open: parking_lot::Mutex<Option<Segment>>,
    bytes: Arc<SpillBytes>,
    max_bytes: u64,
    seq: AtomicU64,
}

struct Segment {
    file: fs::File,
    tmp: PathBuf,
    name: String,
    /// Encoded frames not yet written (the file starts with a blank header, filled at the end).
    buf: Vec<u8>,
    count: u64,
    /// Bytes in the file and in `buf`.
    size: u64,
}

/// A segment the writer finished: now a spill file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    pub records: u64,
    pub bytes: u64,
}

impl Overflow {
    pub(super) fn new(dir: &Path, owner: Arc<Owner>, bytes: Arc<SpillBytes>, max_bytes: u64) -> Self {
        Overflow { dir: dir.to_path_buf(), owner, open: parking_lot::Mutex::new(None), bytes, max_bytes, seq: 0.into() }
    }

    /// Writes `record` to the segment, starting one if none is open.
    pub(crate) fn take(&self, record: &Record) -> Taken {
        let mut open = self.open.lock();
        let first = open.is_none();
        let segment = match &mut *open {
            Some(segment) => segment,
            None => match self.start() {
                Ok(segment) => open.insert(segment),
                Err(e) => {
                    tracing::error!(dir = %self.dir.display(), error = %e, "cannot start a spill overflow segment");
                    return Taken::Failed;
                }
            },
        };
        if segment.buf.len() >= HOLD_AT {
            return Taken::Failed;
        }
        let at = segment.buf.len();
        if spill_codec::encode_frame(&mut segment.buf, record).is_err() {
            return Taken::Failed;
        }
        let size = (segment.buf.len() - at) as u64;
        if self.bytes.waiting.load(Ordering::Relaxed) + segment.size + size > self.max_bytes {
            segment.buf.truncate(at);
            return Taken::Budget;
        }
        segment.count += 1;
        segment.size += size;
        self.bytes.open.store(segment.size, Ordering::Relaxed);
        if segment.buf.len() >= WRITE_AT {
            // A refused write keeps the frames in `buf` for the next try (up to `HOLD_AT`).
            if let Err(e) = segment.file.write_all(&segment.buf) {
                tracing::error!(file = %segment.tmp.display(), error = %e, "cannot write the spill overflow");
            } else {
                segment.buf.clear();
            }
        }
        Taken::Yes { first }
    }

    fn start(&self) -> std::io::Result<Segment> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let name = format!("{:020}-{}-o{seq:08}", now.as_nanos(), self.owner.tag());
        let tmp = self.dir.join(format!("{name}.tmp"));
        let file = fs::File::create(&tmp)?;
        let mut buf = Vec::with_capacity(WRITE_AT + 4096);
        buf.resize(spill_codec::HEADER, 0);
        Ok(Segment { file, tmp, name, buf, count: 0, size: spill_codec::HEADER as u64 })
    }

    /// Finishes the open segment, if any: written out, its header filled, synced and renamed
    /// to a spill file. Called by the writer thread. On an error the segment's records are lost
    /// (the file is removed) and their number is returned in the error, for the caller to count.
    pub(crate) fn finish(&self) -> Result<Option<Finished>, (std::io::Error, u64)> {
        let Some(segment) = self.open.lock().take() else { return Ok(None) };
        self.bytes.open.store(0, Ordering::Relaxed);
        let Segment { mut file, tmp, name, buf, count, size } = segment;
        if count == 0 {
            let _ = fs::remove_file(&tmp);
            return Ok(None);
        }
        let done = (|| {
            file.write_all(&buf)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&spill_codec::header(count))?;
            file.sync_all()?;
            fs::rename(&tmp, self.dir.join(format!("{name}.spill")))
        })();
        match done {
            Ok(()) => Ok(Some(Finished { records: count, bytes: size })),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err((e, count))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::persist::spill::Spill;
    use crate::record::MetricRecord;

    fn record(i: i64) -> Record {
        Record::Metric(MetricRecord {
            ts: Timestamp::from_micros(i),
            agent: Arc::from("agent-1"),
            task: Arc::from("task-1"),
            stage: Arc::from("planning"),
            duration_s: Some(0.5),
            success: Some(true),
            metrics: Vec::new(),
        })
    }

    #[test]
    fn a_finished_segment_is_a_spill_file_with_every_record_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::open(dir.path(), u64::MAX).unwrap();
        let overflow = spill.overflow();
        // Enough records to write the buffer out several times.
        let n = 3 * WRITE_AT / 40;
        for i in 0..n {
            assert_eq!(overflow.take(&record(i as i64)), Taken::Yes { first: i == 0 });
        }
        assert!(spill.pending().is_empty(), "an open segment is not a spill file yet");
        let finished = overflow.finish().unwrap().unwrap();
        assert_eq!(finished.records, n as u64);
        spill.adopt(finished.bytes);
        let files = spill.pending();
        assert_eq!(files.len(), 1);
        assert_eq!(fs::metadata(&files[0]).unwrap().len(), finished.bytes);
        let read = Spill::read(&files[0]).unwrap();
        assert_eq!(read.unreadable, 0);
        let times: Vec<i64> = read
            .records
            .iter()
            .map(|r| match r {
                Record::Metric(m) => m.ts.as_micros(),
                _ => -1,
            })
            .collect();
        assert_eq!(times, (0..n as i64).collect::<Vec<_>>());
        assert_eq!(overflow.finish().unwrap(), None, "nothing open, nothing finished");
        // The next record starts a new segment.
        assert_eq!(overflow.take(&record(0)), Taken::Yes { first: true });
    }

    #[test]
    fn the_segment_and_the_spilled_files_share_one_budget() {
        let dir = tempfile::tempdir().unwrap();
        let frame = spill_codec::encode(&[record(0)]).unwrap().len() as u64 - spill_codec::HEADER as u64;
        let max = spill_codec::HEADER as u64 + 10 * frame;
        let mut spill = Spill::open(dir.path(), max).unwrap();
        let overflow = spill.overflow();
        let taken = (0..20).filter(|&i| overflow.take(&record(i)) != Taken::Budget).count();
        assert_eq!(taken, 10);
        // The writer's own files see the open segment's bytes.
        assert!(spill.write(&[record(99)]).is_err(), "the budget is used up by the open segment");
        let finished = overflow.finish().unwrap().unwrap();
        spill.adopt(finished.bytes);
        // A finished segment still counts until it is stored.
        assert_eq!(overflow.take(&record(0)), Taken::Budget);
    }
}
