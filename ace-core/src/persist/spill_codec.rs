//! The spill files' binary format: JSON encoding carried only about 1.2 M records/s, slower than
//! one Python thread records, so a burst the store could not take in time was dropped.
//!
//! A file is a header and one frame per record, all integers little-endian:
//!
//! - header (24 bytes): [`MAGIC`], the format version (`u32`, 1), the number of records (`u64`),
//!   and a checksum of those 20 bytes (`u32`);
//! - frame: the payload's length (`u32`), a checksum of the length and the payload (`u32`), the
//!   payload.
//!
//! A payload starts with a kind byte. Metric and error records, nearly all of what is spilled,
//! are written field by field: timestamps as `i64` microseconds, floats as their exact bits (so
//! NaN and the infinities come back as they went), strings as a LEB128 length and UTF-8 bytes.
//! Other records are written as their JSON, so a variant added later needs no format change.
//!
//! Reading never trusts the file: a frame whose length runs past the end, whose checksum does
//! not match or whose payload does not decode is skipped, and reading resumes at the next offset
//! where a frame checks out. The header's count says exactly how many records were lost that way.

use std::sync::Arc;

use crate::event::Severity;
use crate::record::{ErrorRecord, MetricRecord, Record};

/// The first bytes of a binary spill file (a JSON Lines file starts with `{`).
pub(super) const MAGIC: [u8; 8] = *b"\x89ACESPL\n";
const VERSION: u32 = 1;
pub(super) const HEADER: usize = 24;
const FRAME: usize = 8;

const METRIC: u8 = 1;
const ERROR: u8 = 2;
const JSON: u8 = 3;

/// A 32-bit checksum: a multiply-xor mix over 8-byte words. Each step is a bijection of the
/// state for a given word, so two inputs of the same length that differ anywhere end in
/// different 64-bit states; folded to 32 bits, a corrupt frame passes about once in 4 billion.
fn checksum(seed: u64, bytes: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let step = |h: u64, w: u64| {
        let h = (h ^ w).wrapping_mul(K);
        h ^ (h >> 29)
    };
    let mut h = step(seed, bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = step(h, u64::from_le_bytes(b));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(b));
    }
    let h = h.wrapping_mul(K);
    (h ^ (h >> 32)) as u32
}

/// Encodes `records` as a whole file.
pub(super) fn encode(records: &[Record]) -> std::io::Result<Vec<u8>> {
    let mut file = Encoder::new(records.len());
    file.push(records)?;
    Ok(file.finish())
}

/// A file being encoded, records added in as many steps as they come.
pub(crate) struct Encoder {
    bytes: Vec<u8>,
    count: u64,
}

impl Encoder {
    /// An empty file with room for about `records` records.
    pub(crate) fn new(records: usize) -> Self {
        let mut bytes = Vec::with_capacity(HEADER + records * 64);
        bytes.resize(HEADER, 0);
        Encoder { bytes, count: 0 }
    }

    /// Records encoded so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Adds `records`; on an error none of them is added.
    pub(crate) fn push(&mut self, records: &[Record]) -> std::io::Result<()> {
        let before = self.bytes.len();
        for r in records {
            if let Err(e) = encode_frame(&mut self.bytes, r) {
                self.bytes.truncate(before);
                return Err(e);
            }
        }
        self.count += records.len() as u64;
        Ok(())
    }

    /// The whole file.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes[..HEADER].copy_from_slice(&header(self.count));
        self.bytes
    }
}

/// The header of a file of `count` records.
pub(super) fn header(count: u64) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&count.to_le_bytes());
    let sum = checksum(0, &header[..20]);
    header[20..].copy_from_slice(&sum.to_le_bytes());
    header
}

/// Appends `record`'s frame to `out` (nothing on an error).
pub(super) fn encode_frame(out: &mut Vec<u8>, record: &Record) -> std::io::Result<()> {
    let at = out.len();
    out.extend_from_slice(&[0; FRAME]);
    if let Err(e) = payload(out, record) {
        out.truncate(at);
        return Err(e);
    }
    let Ok(len) = u32::try_from(out.len() - at - FRAME) else {
        out.truncate(at);
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a record of 4 GiB or more cannot be spilled",
        ));
    };
    let sum = checksum(u64::from(len), &out[at + FRAME..]);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    out[at + 4..at + FRAME].copy_from_slice(&sum.to_le_bytes());
    Ok(())
}

fn payload(out: &mut Vec<u8>, record: &Record) -> std::io::Result<()> {
    match record {
        Record::Metric(m) => {
            out.push(METRIC);
            out.extend_from_slice(&m.ts.as_micros().to_le_bytes());
            string(out, &m.agent);
            string(out, &m.task);
            string(out, &m.stage);
            let flags = u8::from(m.duration_s.is_some())
                | u8::from(m.success.is_some()) << 1
                | u8::from(m.success == Some(true)) << 2;
            out.push(flags);
            if let Some(d) = m.duration_s {
                out.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            varint(out, m.metrics.len() as u64);
            for (name, value) in &m.metrics {
                string(out, name);
                out.extend_from_slice(&value.to_bits().to_le_bytes());
            }
        }
        Record::Error(e) => {
            out.push(ERROR);
            out.extend_from_slice(&e.ts.as_micros().to_le_bytes());
            for s in [&e.agent, &e.task, &e.stage, &e.kind, &e.message] {
                string(out, s);
            }
            out.push(Severity::ALL.iter().position(|s| *s == e.severity).unwrap_or(0) as u8);
            out.extend_from_slice(&e.pattern.0.to_le_bytes());
        }
        other => {
            out.push(JSON);
            serde_json::to_writer(&mut *out, other).map_err(std::io::Error::other)?;
        }
    }
    Ok(())
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// What [`decode`] found in a binary file.
#[derive(Debug)]
pub(super) struct Decoded {
    pub records: Vec<Record>,
    /// Records the header counts that could not be read.
    pub missing: u64,
    /// The byte ranges skipped, each with why.
    pub skipped: Vec<(std::ops::Range<usize>, &'static str)>,
}

/// Whether `bytes` start like a binary spill file.
pub(super) fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Decodes a binary file; an error only when its header is unusable (nothing in it can be
/// trusted to be counted).
pub(super) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < HEADER || !is_binary(bytes) {
        return Err("the spill file's header is cut short".into());
    }
    let sum = u32::from_le_bytes(word(&bytes[20..HEADER]));
    if checksum(0, &bytes[..20]) != sum {
        return Err("the spill file's header does not match its checksum".into());
    }
    let version = u32::from_le_bytes(word(&bytes[8..12]));
    if version != VERSION {
        return Err(format!("spill file format version {version} is not known to this version of ace"));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&bytes[12..20]);
    let count = u64::from_le_bytes(count);
    let mut strings = Strings::default();
    let mut records = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(bytes.len() / FRAME));
    let mut skipped = Vec::new();
    let mut at = HEADER;
    while at < bytes.len() {
        match frame(bytes, at, &mut strings) {
            Ok((record, next)) => {
                records.push(record);
                at = next;
            }
            Err(why) => {
                // Resynchronise: the next offset where a whole frame checks out.
                let start = at;
                let found = (at + 1..bytes.len()).find_map(|p| frame(bytes, p, &mut strings).ok().map(|f| (p, f)));
                match found {
                    Some((p, (record, next))) => {
                        records.push(record);
                        skipped.push((start..p, why));
                        at = next;
                    }
                    None => {
                        skipped.push((start..bytes.len(), why));
                        at = bytes.len();
                    }
                }
            }
        }
    }
    let missing = count.saturating_sub(records.len() as u64);
    Ok(Decoded { records, missing, skipped })
}

fn word(b: &[u8]) -> [u8; 4] {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    w
}

/// The record in the frame at `at`, and where the next frame starts.
fn frame(bytes: &[u8], at: usize, strings: &mut Strings) -> Result<(Record, usize), &'static str> {
    let Some(head) = bytes.get(at..at + FRAME) else { return Err("a frame header cut short") };
    let len = u32::from_le_bytes(word(head));
    let sum = u32::from_le_bytes(word(&head[4..]));
    let start = at + FRAME;
    let Some(body) = usize::try_from(len).ok().and_then(|n| bytes.get(start..start.checked_add(n)?)) else {
        return Err("a frame runs past the end of the file");
    };
    if !matches!(body.first(), Some(&(METRIC | ERROR | JSON))) || checksum(u64::from(len), body) != sum {
        return Err("a frame does not match its checksum");
    }
    let record = Reader { bytes: body, at: 0, strings }.record().ok_or("a frame's record does not decode")?;
    Ok((record, start + body.len()))
}

/// The last string read in each field: consecutive records mostly share their agent and stage,
/// so the decoded records share one `Arc` for them, as the engine's own records do.
#[derive(Default)]
struct Strings {
    last: [Option<Arc<str>>; 8],
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    strings: &'a mut Strings,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let b = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(b)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(w))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn string(&mut self, slot: usize) -> Option<Arc<str>> {
        let len = usize::try_from(self.varint()?).ok()?;
        let bytes = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        let last = &mut self.strings.last[slot.min(7)];
        if let Some(s) = last
            && s.as_bytes() == bytes
        {
            return Some(s.clone());
        }
        let s: Arc<str> = Arc::from(std::str::from_utf8(bytes).ok()?);
        *last = Some(s.clone());
        Some(s)
    }

    fn record(mut self) -> Option<Record> {
        let record = match self.u8()? {
            METRIC => {
                let ts = crate::clock::Timestamp::from_micros(self.u64()? as i64);
                let (agent, task, stage) = (self.string(0)?, self.string(1)?, self.string(2)?);
                let flags = self.u8()?;
                if flags > 0b111 {
                    return None;
                }
                let duration_s = if flags & 1 != 0 { Some(f64::from_bits(self.u64()?)) } else { None };
                let success = (flags & 2 != 0).then_some(flags & 4 != 0);
                let n = usize::try_from(self.varint()?).ok()?;
                // Each metric takes at least nine bytes: no allocation larger than the frame.
                let mut metrics = Vec::with_capacity(n.min(self.bytes.len() / 9));
                for i in 0..n {
                    metrics.push((self.string(3 + i.min(4))?, f64::from_bits(self.u64()?)));
                }
                Record::Metric(MetricRecord { ts, agent, task, stage, duration_s, success, metrics })
            }
            ERROR => {
                let ts = crate::clock::Timestamp::from_micros(self.u64()? as i64);
                let (agent, task, stage) = (self.string(0)?, self.string(1)?, self.string(2)?);
                let (kind, message) = (self.string(3)?, self.string(4)?);
                let severity = *Severity::ALL.get(usize::from(self.u8()?))?;
                let pattern = crate::ids::PatternId(self.u64()?);
                Record::Error(ErrorRecord { ts, agent, task, stage, kind, message, severity, pattern })
            }
            JSON => {
                let record = serde_json::from_slice(&self.bytes[self.at..]).ok()?;
                self.at = self.bytes.len();
                record
            }
            _ => return None,
        };
        (self.at == self.bytes.len()).then_some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::decision::Strategy;
    use crate::ids::{InterventionId, PatternId};
    use crate::record::{InterventionRecord, OutcomeRecord};
    use crate::signal::SignalKind;

    fn metric(i: i64, duration_s: Option<f64>, value: f64) -> Record {
        Record::Metric(MetricRecord {
            ts: Timestamp::from_micros(i),
            agent: Arc::from("agent-1"),
            task: Arc::from(format!("task-{i}")),
            stage: Arc::from("planning"),
            duration_s,
            success: [None, Some(true), Some(false)][i.rem_euclid(3) as usize],
            metrics: vec![(Arc::from("tokens_in"), value), (Arc::from("cost_usd"), 0.0042)],
        })
    }

    fn every_kind() -> Vec<Record> {
        vec![
            metric(-5, Some(0.5), 3.0),
            metric(i64::MAX, None, f64::MIN_POSITIVE),
            metric(i64::MIN, Some(-0.0), -1e308),
            Record::Metric(MetricRecord {
                ts: Timestamp::from_micros(7),
                agent: Arc::from(""),
                task: Arc::from("täsk ✓ \n \"quoted\" \u{0}"),
                stage: Arc::from("s"),
                duration_s: None,
                success: None,
                metrics: Vec::new(),
            }),
            Record::Error(ErrorRecord {
                ts: Timestamp::from_micros(9),
                agent: Arc::from("agent-1"),
                task: Arc::from("task-1"),
                stage: Arc::from("tools"),
                kind: Arc::from("TimeoutError"),
                message: Arc::from("x".repeat(3 << 20)),
                severity: Severity::Critical,
                pattern: PatternId(u64::MAX),
            }),
            Record::Intervention(InterventionRecord {
                ts: Timestamp::from_micros(10),
                id: InterventionId(42),
                agent: Arc::from("agent-1"),
                task: Arc::from("task-1"),
                strategy: Strategy::Replan,
                severity: Severity::High,
                signal_kind: SignalKind::Loop,
                reason: "the same stage failed three times".into(),
                signals_json: "[{\"kind\":\"loop\"}]".into(),
                outcome: Some(false),
            }),
            Record::Outcome(OutcomeRecord { ts: Timestamp::from_micros(11), id: InterventionId(42), success: true }),
        ]
    }

    #[test]
    fn every_kind_of_record_round_trips() {
        let records = every_kind();
        let decoded = decode(&encode(&records).unwrap()).unwrap();
        assert_eq!(decoded.records, records);
        assert_eq!((decoded.missing, decoded.skipped.len()), (0, 0));
    }

    #[test]
    fn non_finite_floats_come_back_bit_for_bit() {
        let odd = [f64::NAN, -f64::NAN, f64::from_bits(0x7ff0_0000_dead_beef), f64::INFINITY, f64::NEG_INFINITY, -0.0];
        let records: Vec<Record> = odd.iter().map(|&v| metric(1, Some(v), v)).collect();
        let decoded = decode(&encode(&records).unwrap()).unwrap().records;
        for (r, v) in decoded.iter().zip(odd) {
            let Record::Metric(m) = r else { panic!("{r:?}") };
            assert_eq!(m.duration_s.map(f64::to_bits), Some(v.to_bits()));
            assert_eq!(m.metrics[0].1.to_bits(), v.to_bits());
        }
    }

    #[test]
    fn consecutive_records_share_their_strings() {
        let decoded = decode(&encode(&[metric(1, None, 1.0), metric(2, None, 2.0)]).unwrap()).unwrap().records;
        let (Record::Metric(a), Record::Metric(b)) = (&decoded[0], &decoded[1]) else { panic!() };
        assert!(Arc::ptr_eq(&a.agent, &b.agent) && Arc::ptr_eq(&a.metrics[1].0, &b.metrics[1].0));
    }

    fn many() -> Vec<Record> {
        (0..50).map(|i| metric(i, Some(i as f64), 1.0)).collect()
    }

    #[test]
    fn a_file_cut_anywhere_gives_the_whole_records_before_the_cut_and_counts_the_rest() {
        let records = many();
        let bytes = encode(&records).unwrap();
        for cut in HEADER..bytes.len() {
            let decoded = decode(&bytes[..cut]).unwrap();
            let n = decoded.records.len();
            assert_eq!(decoded.records, records[..n], "cut at {cut}");
            assert_eq!(decoded.missing, (records.len() - n) as u64, "cut at {cut}");
        }
        for cut in 0..HEADER {
            assert!(decode(&bytes[..cut]).is_err(), "a header cut at {cut}");
        }
    }

    #[test]
    fn a_corrupt_byte_loses_its_record_only_and_says_so() {
        let records = many();
        let clean = encode(&records).unwrap();
        let mut lost = 0;
        for at in (HEADER..clean.len()).step_by(7) {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x5a;
            let decoded = decode(&bytes).unwrap();
            assert_eq!(decoded.missing, 1, "a byte at {at}");
            assert_eq!(decoded.records.len(), records.len() - 1);
            assert!(decoded.records.iter().all(|r| records.contains(r)), "nothing made up");
            assert_eq!(decoded.skipped.len(), 1);
            lost += 1;
        }
        assert!(lost > 100);
    }

    #[test]
    fn a_corrupt_header_is_an_error() {
        let mut bytes = encode(&many()).unwrap();
        bytes[13] ^= 1;
        assert!(decode(&bytes).unwrap_err().contains("checksum"));
        let mut bytes = encode(&many()).unwrap();
        bytes[8] = 9;
        let sum = checksum(0, &bytes[..20]);
        bytes[20..24].copy_from_slice(&sum.to_le_bytes());
        assert!(decode(&bytes).unwrap_err().contains("version 9"));
    }

    #[test]
    fn garbage_never_panics() {
        // A small xorshift: the same garbage on every run.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let clean = encode(&every_kind()[..4]).unwrap();
        for _ in 0..2_000 {
            let mut bytes = clean.clone();
            let n = (next() % 40) as usize;
            for _ in 0..n {
                let at = HEADER + (next() as usize) % (bytes.len() - HEADER);
                bytes[at] = next() as u8;
            }
            bytes.truncate(HEADER + (next() as usize) % (bytes.len() - HEADER + 1));
            if let Ok(d) = decode(&bytes) {
                assert!(d.records.len() <= 4);
            }
        }
    }
}
