//! A domain loaded in memory: its bullets with the indexes built on them (ids, exact content,
//! BM25, the matrix of vectors), and the one place operations are applied to them, so that
//! loading, writing and rolling back all change a domain the same way.

use std::time::Instant;

use hashbrown::HashMap;

use super::log::{Op, State};
use super::{Bullet, Embedder, Feedback, Stage, bm25, embed};
use crate::clock::Timestamp;
use crate::error::{Error, Result};

/// Insights embedded and merged together; larger batches are chunked.
pub const MAX_BATCH_SIZE: usize = 100;

/// A domain loaded in memory: its state, indexes and log position.
pub(super) struct Domain {
    pub(super) name: String,
    pub(super) state: State,
    /// Slot per bullet in `state.bullets` order (removed bullets are compacted away at once).
    pub(super) by_id: HashMap<String, usize>,
    /// Hash of the normalised content -> slot (confirmed against the content on a hit).
    pub(super) exact: HashMap<u64, usize>,
    pub(super) vectors: Vec<f32>,
    pub(super) bm25: bm25::Bm25,
    pub(super) version: u64,
    pub(super) hash: [u8; 32],
    /// Bytes of operations logged since the last snapshot, and that snapshot's size.
    pub(super) since_snapshot: usize,
    pub(super) snapshot_bytes: usize,
    pub(super) used: Instant,
    /// Operations applied since loading (a failed call that applied some is rolled back).
    pub(super) applied: u64,
}

pub(super) fn normalised(text: &str) -> String {
    embed::words(text).collect::<Vec<_>>().join(" ")
}

pub(super) fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The exact-match key of a bullet's content: a hash of its normalised words.
fn content_key(content: &str) -> u64 {
    fnv64(normalised(content).as_bytes())
}

pub(super) fn prefix(section: &str) -> String {
    let p: String =
        section.chars().filter(char::is_ascii_alphanumeric).take(3).collect::<String>().to_ascii_lowercase();
    if p.is_empty() { "gen".to_owned() } else { p }
}

impl Domain {
    pub(super) fn empty(name: &str) -> Self {
        Domain {
            name: name.to_owned(),
            state: State::default(),
            by_id: HashMap::new(),
            exact: HashMap::new(),
            vectors: Vec::new(),
            bm25: bm25::Bm25::default(),
            version: 0,
            hash: [0; 32],
            since_snapshot: 0,
            snapshot_bytes: 0,
            used: Instant::now(),
            applied: 0,
        }
    }

    /// Rebuilds the indexes from `state.bullets`.
    pub(super) fn reindex(&mut self, embedder: &dyn Embedder) -> Result<()> {
        let texts: Vec<&str> = self.state.bullets.iter().map(|b| b.content.as_str()).collect();
        let mut vectors = Vec::with_capacity(texts.len() * embedder.dim());
        for chunk in texts.chunks(MAX_BATCH_SIZE) {
            for v in embed::checked(embedder, chunk)? {
                vectors.extend_from_slice(&v);
            }
        }
        self.vectors = vectors;
        self.relink();
        Ok(())
    }

    /// Rebuilds the id map and the lexical indexes from `state.bullets` (slots shifted).
    fn relink(&mut self) {
        self.by_id.clear();
        self.exact.clear();
        self.bm25 = bm25::Bm25::default();
        for (slot, b) in self.state.bullets.iter().enumerate() {
            self.by_id.insert(b.id.clone(), slot);
            self.exact.insert(content_key(&b.content), slot);
            self.bm25.add(slot as u32, &b.content);
        }
    }

    pub(super) fn slot(&self, id: &str) -> Result<usize> {
        let id = id.trim_start_matches('[').trim_end_matches(']');
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| Error::invalid("bullet id", format!("no bullet {id:?} in domain {:?}", self.name)))
    }

    /// Applies `op` to the state and indexes (vectors of added content come in `vector`).
    pub(super) fn apply(&mut self, op: &Op, vector: Option<&[f32]>, embedder: &dyn Embedder) -> Result<()> {
        self.applied += 1;
        match op {
            Op::Add { bullet } => {
                let slot = self.state.bullets.len();
                let owned;
                let v = match vector {
                    Some(v) => v,
                    None => {
                        owned = embed::checked(embedder, &[&bullet.content])?.remove(0);
                        &owned
                    }
                };
                self.vectors.extend_from_slice(v);
                self.by_id.insert(bullet.id.clone(), slot);
                self.exact.insert(content_key(&bullet.content), slot);
                self.bm25.add(slot as u32, &bullet.content);
                let p = prefix(&bullet.section);
                let next = self.state.next_id.entry(p).or_insert(0);
                *next = (*next).max(super::io::id_number(&bullet.id));
                self.state.bullets.push(bullet.clone());
            }
            Op::Update { id, section, content, at } => {
                let slot = self.slot(id)?;
                if let Some(content) = content {
                    let v = embed::checked(embedder, &[content])?.remove(0);
                    let old = std::mem::replace(&mut self.state.bullets[slot].content, content.clone());
                    self.exact.remove(&content_key(&old));
                    self.exact.insert(content_key(content), slot);
                    self.bm25.remove(slot as u32, &old);
                    self.bm25.add(slot as u32, content);
                    let dim = embedder.dim();
                    self.vectors[slot * dim..(slot + 1) * dim].copy_from_slice(&v);
                }
                let b = &mut self.state.bullets[slot];
                if let Some(section) = section {
                    b.section = section.clone();
                }
                b.updated_at = *at;
            }
            Op::Remove { id, .. } => {
                let slot = self.slot(id)?;
                self.state.bullets.remove(slot);
                // Slots shift: the vectors move down, the lexical indexes are rebuilt.
                let dim = embedder.dim();
                self.vectors.drain(slot * dim..(slot + 1) * dim);
                self.relink();
            }
            Op::Tag { id, feedback, at } => {
                let slot = self.slot(id)?;
                let b = &mut self.state.bullets[slot];
                match feedback {
                    Feedback::Helpful => b.helpful += 1,
                    Feedback::Harmful => b.harmful += 1,
                    Feedback::Neutral => b.neutral += 1,
                }
                b.updated_at = *at;
            }
            Op::Reinforce { id, provenance, at, .. } => {
                let slot = self.slot(id)?;
                let b = &mut self.state.bullets[slot];
                b.reinforced += 1;
                if b.provenance.is_none() {
                    b.provenance.clone_from(provenance);
                }
                b.updated_at = *at;
            }
            Op::Stage { id, stage, at } => {
                let slot = self.slot(id)?;
                let b = &mut self.state.bullets[slot];
                b.stage = *stage;
                b.updated_at = *at;
            }
            Op::Inject { ids, .. } => {
                for id in ids {
                    if let Ok(slot) = self.slot(id) {
                        self.state.bullets[slot].injected += 1;
                    }
                }
            }
            Op::Restore { state, .. } => {
                self.state = (**state).clone();
                self.reindex(embedder)?;
            }
        }
        Ok(())
    }
}

pub(super) fn new_bullet(
    d: &mut Domain,
    section: &str,
    content: &str,
    provenance: Option<String>,
    now: Timestamp,
) -> Result<Bullet> {
    let p = prefix(section);
    let next = d.state.next_id.entry(p.clone()).or_insert(0);
    // An imported id may carry any number up to u32::MAX: the next one must not wrap around.
    *next = next.checked_add(1).ok_or_else(|| {
        Error::invalid("section", format!("bullet ids of prefix {p:?} are exhausted (the last is {p}-{})", u32::MAX))
    })?;
    Ok(Bullet {
        id: format!("{p}-{:05}", *next),
        section: section.to_owned(),
        content: content.to_owned(),
        helpful: 0,
        harmful: 0,
        neutral: 0,
        injected: 0,
        reinforced: 0,
        stage: Stage::Shadow,
        created_at: now,
        updated_at: now,
        provenance,
    })
}
