//! The log: every change to a domain is an operation appended to the store, chained by SHA-256,
//! with a snapshot when the operations since the last one outweigh it. What is logged, the
//! chain, writing it (`commit`) and reading it back verified (`load`, `rollback`) share this
//! file, so that the rules that make tampering visible sit in one place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::domain::Domain;
use super::{Bullet, Feedback, PlaybookStats, Playbooks, Stage};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::store::PlaybookEntry;

/// A snapshot is written once the operations logged since the last one reach its size (at
/// least this many bytes): loading replays at most about a snapshot's worth of operations, and
/// snapshots at most double what is written.
pub const SNAPSHOT_MIN_BYTES: usize = 16 * 1024;

/// One change to a domain, as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Op {
    Add {
        bullet: Bullet,
    },
    Update {
        id: String,
        section: Option<String>,
        content: Option<String>,
        at: Timestamp,
    },
    Remove {
        id: String,
        at: Timestamp,
    },
    Tag {
        id: String,
        feedback: Feedback,
        at: Timestamp,
    },
    Reinforce {
        id: String,
        provenance: Option<String>,
        at: Timestamp,
        /// For an insight merged by similarity (not the same words): how close it was and its
        /// text, so the log keeps what was folded in (absent in logs written before).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Stage {
        id: String,
        stage: Stage,
        at: Timestamp,
    },
    Inject {
        ids: Vec<String>,
        at: Timestamp,
    },
    Restore {
        state: Box<State>,
        reason: String,
    },
}

/// One entry of a domain's log, as [`Playbooks::history`] lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PlaybookVersion {
    /// Its version.
    pub version: u64,
    /// When it was written.
    pub at: Timestamp,
    /// What it did: `add`, `update`, `remove`, `tag`, `reinforce`, `stage`, `inject`, `restore`
    /// (an import or a rollback) or `snapshot`.
    pub op: String,
    /// Why, for a restore: `rollback to version 3`, `trusted import of a JSON export
    /// (unverified; digest absent)`, ...; for a `reinforce` by an insight that was similar but
    /// not the same words: `paraphrase merged at cosine 0.843: <the insight>`.
    pub note: Option<String>,
}

/// A domain's content, as snapshotted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) bullets: Vec<Bullet>,
    pub(super) next_id: BTreeMap<String, u32>,
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn chain(prev: &[u8; 32], version: u64, body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(version.to_be_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

/// Whether a logged operation is a restore (it carries the whole state, like a snapshot).
fn is_restore(body: &str) -> bool {
    body.starts_with(r#"{"op":"restore""#)
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Playbooks {
    /// Rebuilds a domain from its log, up to `upto` (a version) or the end, verifying every hash.
    pub(super) fn load(&self, name: &str, upto: Option<u64>) -> Result<Domain> {
        let entries = self.store.load_playbook(name)?;
        let mut d = Domain::empty(name);
        // Start from the latest snapshot at or before the target, checked against its stored hash
        // and the hash of the entry before it.
        let end = entries.iter().rposition(|e| upto.is_none_or(|u| e.version <= u)).map_or(0, |i| i + 1);
        let entries = &entries[..end];
        let start = entries.iter().rposition(|e| e.snapshot || is_restore(&e.body)).unwrap_or(0);
        let corrupt = |version: u64, reason: &str| Error::Corrupt {
            what: format!("playbook {name:?} version {version}"),
            reason: reason.to_owned(),
        };
        let mut prev = [0u8; 32];
        if start > 0 {
            prev =
                parse_hash(&entries[start - 1].hash).ok_or_else(|| corrupt(entries[start - 1].version, "bad hash"))?;
        }
        for (i, e) in entries[start..].iter().enumerate() {
            let expected = chain(&prev, e.version, &e.body);
            if hex(&expected) != e.hash {
                return Err(corrupt(e.version, "content hash mismatch: the log was altered"));
            }
            if i > 0 && e.version != d.version + 1 {
                return Err(corrupt(e.version, "versions are not consecutive"));
            }
            if e.snapshot {
                let state: State = serde_json::from_str(&e.body).map_err(|err| corrupt(e.version, &err.to_string()))?;
                d.state = state;
                d.reindex(&*self.embedder)?;
                (d.since_snapshot, d.snapshot_bytes) = (0, e.body.len());
            } else {
                let op: Op = serde_json::from_str(&e.body).map_err(|err| corrupt(e.version, &err.to_string()))?;
                d.apply(&op, None, &*self.embedder)?;
                if is_restore(&e.body) {
                    (d.since_snapshot, d.snapshot_bytes) = (0, e.body.len());
                } else {
                    d.since_snapshot += e.body.len();
                }
            }
            d.version = e.version;
            prev = expected;
        }
        d.hash = prev;
        Ok(d)
    }

    /// Logs `ops` (already applied to `d`) and, when due, a snapshot; one store write. A restore
    /// operation carries the whole state and counts as a snapshot.
    pub(super) fn commit(&self, d: &mut Domain, ops: &[Op]) -> Result<()> {
        let now = self.clock.now();
        let mut entries = Vec::with_capacity(ops.len() + 1);
        for op in ops {
            let body = serde_json::to_string(op).map_err(|e| Error::Internal(format!("playbook op to JSON: {e}")))?;
            d.version += 1;
            d.hash = chain(&d.hash, d.version, &body);
            if matches!(op, Op::Restore { .. }) {
                (d.since_snapshot, d.snapshot_bytes) = (0, body.len());
            } else {
                d.since_snapshot += body.len();
            }
            entries.push(PlaybookEntry {
                domain: d.name.clone(),
                version: d.version,
                at: now,
                hash: hex(&d.hash),
                snapshot: false,
                body,
            });
        }
        if d.since_snapshot >= d.snapshot_bytes.max(SNAPSHOT_MIN_BYTES) {
            let body =
                serde_json::to_string(&d.state).map_err(|e| Error::Internal(format!("playbook to JSON: {e}")))?;
            d.version += 1;
            d.hash = chain(&d.hash, d.version, &body);
            (d.since_snapshot, d.snapshot_bytes) = (0, body.len());
            entries.push(PlaybookEntry {
                domain: d.name.clone(),
                version: d.version,
                at: now,
                hash: hex(&d.hash),
                snapshot: true,
                body,
            });
        }
        self.store.append_playbook(&entries)
    }

    /// Every version of the domain's log, oldest first, with the whole chain verified
    /// ([`Error::Corrupt`] if any entry was altered): what each one did, and why for a restore
    /// (an import says whether it was trusted or verified, a rollback its target).
    pub fn history(&self, domain: &str) -> Result<Vec<PlaybookVersion>> {
        #[derive(Deserialize)]
        struct Head {
            op: String,
            reason: Option<String>,
        }
        crate::event::validate_id("domain", domain)?;
        let entries = self.store.load_playbook(domain)?;
        let mut prev = [0u8; 32];
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            let corrupt = |reason: &str| Error::Corrupt {
                what: format!("playbook {domain:?} version {}", e.version),
                reason: reason.to_owned(),
            };
            prev = chain(&prev, e.version, &e.body);
            if hex(&prev) != e.hash {
                return Err(corrupt("content hash mismatch: the log was altered"));
            }
            let (op, note) = if e.snapshot {
                ("snapshot".to_owned(), None)
            } else {
                let head: Head = serde_json::from_str(&e.body).map_err(|err| corrupt(&err.to_string()))?;
                (head.op, head.reason)
            };
            out.push(PlaybookVersion { version: e.version, at: e.at, op, note });
        }
        Ok(out)
    }

    /// Restores the domain's content as it was at `version` (a new version records the
    /// restoration; nothing is erased from the log).
    pub fn rollback(&self, domain: &str, version: u64) -> Result<PlaybookStats> {
        let old = self.load(domain, Some(version))?;
        if old.version != version {
            return Err(Error::invalid("version", format!("playbook {domain:?} has no version {version}")));
        }
        let state = Box::new(old.state);
        self.with(domain, |d| {
            let op = Op::Restore { state, reason: format!("rollback to version {version}") };
            d.apply(&op, None, &*self.embedder)?;
            Ok(((), vec![op]))
        })?;
        self.stats(domain)
    }
}
