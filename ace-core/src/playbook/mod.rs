//! The playbook: bullets of advice that worked, per domain (tenant), curated at write time.
//!
//! A bullet (`[str-00042] helpful=5 harmful=0 :: Verify the total before charging`) has a stable
//! id, a section, its content, helpful/harmful/neutral counters that only explicit feedback moves,
//! how often it was injected into a prompt, a stage (shadow → staging → prod, or quarantined) and
//! its provenance. Every change is an operation appended to the domain's log in the store, chained
//! by SHA-256 (each entry's hash covers the previous hash, its version and its body), with a
//! snapshot whenever the operations since the last one outweigh it ([`SNAPSHOT_MIN_BYTES`]):
//! loading verifies the chain and refuses tampered
//! data ([`Error::Corrupt`]); any version can be restored ([`Playbooks::rollback`]).
//!
//! Write-time de-dup ([`Playbooks::merge`]): an insight whose normalised text matches a bullet,
//! or whose embedding is at cosine ≥ `dup_threshold` (0.92) from one, strengthens that bullet
//! instead of adding one; pairs between `near_threshold` (0.80) and that are reported (and an
//! optional hook decides them). Candidates come from the lexical index (the exact map, and the
//! 32 best BM25 matches on the insight's 4 rarest words), so a merge does not compare an insight
//! with every bullet. With the built-in (lexical) embedder a near-copy always shares those
//! words; a semantic embedder's paraphrases that share none of them are not found.
//!
//! Retrieval ([`Playbooks::retrieve`]) scores every live bullet from a chosen stage up by half
//! BM25 (normalised to the best match) and half cosine similarity, over one contiguous matrix of
//! vectors per domain.

pub mod bm25;
pub mod embed;
#[cfg(feature = "minilm")]
pub mod minilm;
mod parse;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use embed::{Embedder, HashEmbedder};
#[cfg(feature = "minilm")]
pub use minilm::MiniLm;

use crate::clock::{Clock, Timestamp};
use crate::error::{Error, Result};
use crate::store::{PlaybookEntry, Store};

/// A snapshot is written once the operations logged since the last one reach its size (at
/// least this many bytes): loading replays at most about a snapshot's worth of operations, and
/// snapshots at most double what is written.
pub const SNAPSHOT_MIN_BYTES: usize = 16 * 1024;
/// Insights embedded and merged together; larger batches are chunked.
pub const MAX_BATCH_SIZE: usize = 100;
/// The longest bullet, in bytes.
pub const MAX_CONTENT_BYTES: usize = 8 * 1024;
/// BM25 candidates checked for duplicates per insight.
const DUP_CANDIDATES: usize = 32;
/// The insight's rarest terms that pick the candidates.
const RAREST_TERMS: usize = 2;

/// Where a bullet is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// New: retrievable only when asked for shadow bullets.
    Shadow,
    /// Some evidence it helps.
    Staging,
    /// Proven.
    Prod,
    /// Did more harm than good: never retrieved or rendered.
    Quarantined,
}

impl Stage {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Shadow => "shadow",
            Stage::Staging => "staging",
            Stage::Prod => "prod",
            Stage::Quarantined => "quarantined",
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "shadow" => Ok(Stage::Shadow),
            "staging" => Ok(Stage::Staging),
            "prod" => Ok(Stage::Prod),
            "quarantined" => Ok(Stage::Quarantined),
            _ => Err(Error::invalid(
                "stage",
                format!("unknown playbook stage {s:?}; one of shadow, staging, prod, quarantined"),
            )),
        }
    }
}

/// Feedback on a bullet after it was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feedback {
    /// It helped.
    Helpful,
    /// It hurt.
    Harmful,
    /// Neither.
    Neutral,
}

/// One piece of advice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bullet {
    /// Stable id, `sec-00042` (rendered `[sec-00042]`).
    pub id: String,
    /// Its section (`strategies`, `pitfalls`, ...).
    pub section: String,
    /// The advice.
    pub content: String,
    /// Explicit helpful feedback.
    pub helpful: u32,
    /// Explicit harmful feedback.
    pub harmful: u32,
    /// Explicit neutral feedback.
    pub neutral: u32,
    /// Times rendered into a prompt.
    pub injected: u64,
    /// Times a duplicate insight strengthened it instead of adding a bullet.
    pub reinforced: u32,
    /// Its stage.
    pub stage: Stage,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Which task or insight produced it.
    pub provenance: Option<String>,
}

/// An insight to merge into a playbook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insight {
    /// The section it belongs to.
    pub section: String,
    /// The advice.
    pub content: String,
    /// Which task or reflection produced it.
    pub provenance: Option<String>,
}

impl Insight {
    /// An insight for `section` with `content`.
    pub fn new(section: &str, content: &str) -> Self {
        Insight { section: section.to_owned(), content: content.to_owned(), provenance: None }
    }
}

/// A pair close enough to be reported, not close enough to merge by itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NearDuplicate {
    /// The insight's position in the batch.
    pub insight: usize,
    /// The existing bullet.
    pub bullet: String,
    /// Their cosine similarity.
    pub similarity: f32,
    /// Whether the hook merged them.
    pub merged: bool,
}

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MergeReport {
    /// Ids of the bullets added.
    pub added: Vec<String>,
    /// (insight position, bullet id) of insights that strengthened an existing bullet.
    pub merged: Vec<(usize, String)>,
    /// Pairs between the near and the duplicate thresholds.
    pub near_duplicates: Vec<NearDuplicate>,
    /// (insight position, reason) of insights not used.
    pub skipped: Vec<(usize, String)>,
}

/// What retrieval returns for one bullet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scored {
    /// The bullet.
    pub bullet: Bullet,
    /// Its combined score in [0, 1].
    pub score: f32,
}

/// A rendering of bullets into prompt text.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rendered {
    /// The text, grouped by section (`## section` headers).
    pub text: String,
    /// The ids rendered (their injection counts went up).
    pub ids: Vec<String>,
    /// Estimated tokens used (4 bytes a token).
    pub tokens: usize,
}

/// Thresholds and gates of the playbooks.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PlaybookConfig {
    /// Cosine at or above which an insight is a duplicate (0.92).
    pub dup_threshold: f32,
    /// Cosine at or above which a pair is reported as a near-duplicate (0.80).
    pub near_threshold: f32,
    /// Helpful feedback and helpful:harmful ratio to move shadow → staging (3, 3.0).
    pub staging_gate: (u32, f64),
    /// ... and staging → prod (5, 5.0).
    pub prod_gate: (u32, f64),
    /// Feedback (helpful + harmful) before a bullet can be quarantined (3).
    pub quarantine_after: u32,
    /// Domains unused this long are unloaded from memory (they stay in the store) (1 h).
    pub idle_unload: Duration,
}

impl Default for PlaybookConfig {
    fn default() -> Self {
        PlaybookConfig {
            dup_threshold: 0.92,
            near_threshold: 0.80,
            staging_gate: (3, 3.0),
            prod_gate: (5, 5.0),
            quarantine_after: 3,
            idle_unload: Duration::from_secs(3600),
        }
    }
}

impl PlaybookConfig {
    /// Checks the thresholds: `0 < near <= dup <= 1`, gates at least 1 and finite.
    pub fn validate(&self) -> Result<()> {
        if !(self.near_threshold > 0.0 && self.near_threshold <= self.dup_threshold && self.dup_threshold <= 1.0) {
            return Err(Error::config(
                "dup_threshold",
                &format!("{} / {}", self.dup_threshold, self.near_threshold),
                "need 0 < near_threshold <= dup_threshold <= 1",
            ));
        }
        for (name, (n, r)) in [("staging_gate", self.staging_gate), ("prod_gate", self.prod_gate)] {
            if n == 0 || !r.is_finite() || r < 1.0 {
                return Err(Error::config(
                    name,
                    &format!("{n} / {r}"),
                    "needs at least 1 helpful and a finite ratio >= 1",
                ));
            }
        }
        Ok(())
    }
}

/// One change to a domain, as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Add { bullet: Bullet },
    Update { id: String, section: Option<String>, content: Option<String>, at: Timestamp },
    Remove { id: String, at: Timestamp },
    Tag { id: String, feedback: Feedback, at: Timestamp },
    Reinforce { id: String, provenance: Option<String>, at: Timestamp },
    Stage { id: String, stage: Stage, at: Timestamp },
    Inject { ids: Vec<String>, at: Timestamp },
    Restore { state: Box<State>, reason: String },
}

/// A domain's content, as snapshotted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    bullets: Vec<Bullet>,
    next_id: BTreeMap<String, u32>,
}

/// A domain loaded in memory: its state, indexes and log position.
struct Domain {
    name: String,
    state: State,
    /// Slot per bullet in `state.bullets` order (removed bullets are compacted away at once).
    by_id: HashMap<String, usize>,
    /// Hash of the normalised content -> slot (confirmed against the content on a hit).
    exact: HashMap<u64, usize>,
    vectors: Vec<f32>,
    bm25: bm25::Bm25,
    version: u64,
    hash: [u8; 32],
    /// Bytes of operations logged since the last snapshot, and that snapshot's size.
    since_snapshot: usize,
    snapshot_bytes: usize,
    used: Instant,
    /// Operations applied since loading (a failed call that applied some is rolled back).
    applied: u64,
}

fn normalised(text: &str) -> String {
    embed::words(text).collect::<Vec<_>>().join(" ")
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The exact-match key of a bullet's content: a hash of its normalised words.
fn content_key(content: &str) -> u64 {
    fnv64(normalised(content).as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn chain(prev: &[u8; 32], version: u64, body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(version.to_be_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

fn prefix(section: &str) -> String {
    let p: String =
        section.chars().filter(char::is_ascii_alphanumeric).take(3).collect::<String>().to_ascii_lowercase();
    if p.is_empty() { "gen".to_owned() } else { p }
}

fn check_content(content: &str) -> Result<()> {
    if content.trim().is_empty() {
        return Err(Error::invalid("content", "a bullet's content must not be empty"));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(Error::invalid("content", format!("{} bytes; at most {MAX_CONTENT_BYTES}", content.len())));
    }
    Ok(())
}

fn check_section(section: &str) -> Result<()> {
    crate::event::validate_id("section", section)
}

impl Domain {
    fn empty(name: &str) -> Self {
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
    fn reindex(&mut self, embedder: &dyn Embedder) -> Result<()> {
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

    fn slot(&self, id: &str) -> Result<usize> {
        let id = id.trim_start_matches('[').trim_end_matches(']');
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| Error::invalid("bullet id", format!("no bullet {id:?} in domain {:?}", self.name)))
    }

    /// Applies `op` to the state and indexes (vectors of added content come in `vector`).
    fn apply(&mut self, op: &Op, vector: Option<&[f32]>, embedder: &dyn Embedder) -> Result<()> {
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
                let n: u32 = bullet.id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let next = self.state.next_id.entry(p).or_insert(0);
                *next = (*next).max(n);
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
            Op::Reinforce { id, provenance, at } => {
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

/// The gates' verdict for a bullet: the stage it should move to, if any (one step at a time).
fn evaluate(b: &Bullet, cfg: &PlaybookConfig) -> Option<Stage> {
    if b.stage == Stage::Quarantined {
        return None;
    }
    let (h, x) = (b.helpful, b.harmful);
    if h + x >= cfg.quarantine_after && x >= h {
        return Some(Stage::Quarantined);
    }
    let ratio = if x == 0 { f64::INFINITY } else { f64::from(h) / f64::from(x) };
    let passes = |(n, r): (u32, f64)| h >= n && ratio >= r;
    match b.stage {
        Stage::Shadow if passes(cfg.staging_gate) => Some(Stage::Staging),
        Stage::Staging if passes(cfg.prod_gate) => Some(Stage::Prod),
        Stage::Staging if !passes(cfg.staging_gate) => Some(Stage::Shadow),
        Stage::Prod if !passes(cfg.prod_gate) => Some(Stage::Staging),
        _ => None,
    }
}

/// The playbook metrics, registered in the engine's registry.
#[derive(Clone, Debug)]
pub struct PlaybookMetrics {
    pub(crate) retrieval: Histogram,
    pub(crate) added: Counter,
    pub(crate) promoted: Counter,
    pub(crate) insights: Counter,
}

impl Default for PlaybookMetrics {
    fn default() -> Self {
        PlaybookMetrics {
            // 10 µs .. ~2.6 s
            retrieval: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(1e-5, 2.0, 18)),
            added: Counter::default(),
            promoted: Counter::default(),
            insights: Counter::default(),
        }
    }
}

impl PlaybookMetrics {
    pub(crate) fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "playbook_retrieval_latency_seconds",
            "Time to retrieve the best bullets for a query",
            self.retrieval.clone(),
        );
        registry.register("bullets_added", "Bullets added to playbooks", self.added.clone());
        registry.register(
            "bullets_promoted",
            "Bullets promoted a stage (shadow to staging, staging to prod)",
            self.promoted.clone(),
        );
        registry.register(
            "insights_processed",
            "Insights merged into playbooks (added, merged or skipped)",
            self.insights.clone(),
        );
    }
}

type NearHook = Arc<dyn Fn(&Insight, &Bullet, f32) -> bool + Send + Sync>;

/// Every domain's playbook, loaded from the store on first use.
pub struct Playbooks {
    cfg: PlaybookConfig,
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: PlaybookMetrics,
    domains: Mutex<HashMap<String, Arc<Mutex<Domain>>>>,
    near_hook: Mutex<Option<NearHook>>,
}

impl std::fmt::Debug for Playbooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playbooks").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Counts of one domain.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PlaybookStats {
    /// The domain.
    pub domain: String,
    /// Its version (operations applied).
    pub version: u64,
    /// Its content hash (hex).
    pub hash: String,
    /// Bullets by stage.
    pub stages: BTreeMap<String, usize>,
    /// Bullets by section.
    pub sections: BTreeMap<String, usize>,
}

impl Playbooks {
    /// Playbooks persisted in `store`, embedding with `embedder`.
    pub fn new(
        cfg: PlaybookConfig,
        embedder: Arc<dyn Embedder>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: PlaybookMetrics,
    ) -> Result<Self> {
        cfg.validate()?;
        Ok(Playbooks {
            cfg,
            embedder,
            store,
            clock,
            metrics,
            domains: Mutex::new(HashMap::new()),
            near_hook: Mutex::new(None),
        })
    }

    /// Sets the hook that decides near-duplicates (`true`: merge into the existing bullet).
    pub fn set_near_duplicate_hook(&self, f: impl Fn(&Insight, &Bullet, f32) -> bool + Send + Sync + 'static) {
        *self.near_hook.lock() = Some(Arc::new(f));
    }

    /// The domain, loaded (and verified) from the store when not in memory; idle domains are
    /// unloaded on the way.
    fn domain(&self, name: &str) -> Result<Arc<Mutex<Domain>>> {
        crate::event::validate_id("domain", name)?;
        let mut domains = self.domains.lock();
        if let Some(d) = domains.get(name) {
            return Ok(d.clone());
        }
        let idle = self.cfg.idle_unload;
        domains.retain(|_, d| d.try_lock().is_none_or(|d| d.used.elapsed() < idle));
        let d = Arc::new(Mutex::new(self.load(name, None)?));
        domains.insert(name.to_owned(), d.clone());
        Ok(d)
    }

    /// Rebuilds a domain from its log, up to `upto` (a version) or the end, verifying every hash.
    fn load(&self, name: &str, upto: Option<u64>) -> Result<Domain> {
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
    fn commit(&self, d: &mut Domain, ops: &[Op]) -> Result<()> {
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

    /// Runs `f` on the domain and logs the operations it applied. When it fails after changing
    /// anything (or the store refuses the log), the domain is reloaded from the store, so a
    /// failed call leaves it as it was.
    fn with<T>(&self, domain: &str, f: impl FnOnce(&mut Domain) -> Result<(T, Vec<Op>)>) -> Result<T> {
        let handle = self.domain(domain)?;
        let mut d = handle.lock();
        d.used = Instant::now();
        let before = d.applied;
        let result = f(&mut d).and_then(|(value, ops)| {
            if !ops.is_empty() {
                self.commit(&mut d, &ops)?;
            }
            Ok(value)
        });
        if result.is_err() && d.applied != before {
            match self.load(domain, None) {
                Ok(fresh) => *d = fresh,
                Err(_) => {
                    // Not reloadable now: forget it, the next call loads it again.
                    drop(d);
                    self.domains.lock().remove(domain);
                }
            }
        }
        result
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Adds one bullet; returns its id.
    pub fn add(&self, domain: &str, section: &str, content: &str, provenance: Option<&str>) -> Result<String> {
        check_section(section)?;
        check_content(content)?;
        let vector = embed::checked(&*self.embedder, &[content])?.remove(0);
        let now = self.now();
        let id = self.with(domain, |d| {
            let bullet = new_bullet(d, section, content, provenance.map(str::to_owned), now);
            let id = bullet.id.clone();
            let op = Op::Add { bullet };
            d.apply(&op, Some(&vector), &*self.embedder)?;
            Ok((id, vec![op]))
        })?;
        self.metrics.added.inc();
        Ok(id)
    }

    /// Changes a bullet's content or section.
    pub fn update(&self, domain: &str, id: &str, section: Option<&str>, content: Option<&str>) -> Result<()> {
        if let Some(s) = section {
            check_section(s)?;
        }
        if let Some(c) = content {
            check_content(c)?;
        }
        let at = self.now();
        self.with(domain, |d| {
            let id = d.state.bullets[d.slot(id)?].id.clone();
            let op = Op::Update { id, section: section.map(str::to_owned), content: content.map(str::to_owned), at };
            d.apply(&op, None, &*self.embedder)?;
            Ok(((), vec![op]))
        })
    }

    /// Removes a bullet.
    pub fn remove(&self, domain: &str, id: &str) -> Result<()> {
        let at = self.now();
        self.with(domain, |d| {
            let id = d.state.bullets[d.slot(id)?].id.clone();
            let op = Op::Remove { id, at };
            d.apply(&op, None, &*self.embedder)?;
            Ok(((), vec![op]))
        })
    }

    /// Records feedback on a bullet, then moves it one stage if the gates say so. Returns its
    /// stage afterwards.
    pub fn feedback(&self, domain: &str, id: &str, feedback: Feedback) -> Result<Stage> {
        let at = self.now();
        let (stage, promoted) = self.with(domain, |d| {
            let slot = d.slot(id)?;
            let id = d.state.bullets[slot].id.clone();
            let mut ops = vec![Op::Tag { id: id.clone(), feedback, at }];
            d.apply(&ops[0], None, &*self.embedder)?;
            let before = d.state.bullets[slot].stage;
            if let Some(stage) = evaluate(&d.state.bullets[slot], &self.cfg) {
                let op = Op::Stage { id, stage, at };
                d.apply(&op, None, &*self.embedder)?;
                ops.push(op);
            }
            let after = d.state.bullets[slot].stage;
            let promoted = after > before && after != Stage::Quarantined;
            Ok(((after, promoted), ops))
        })?;
        if promoted {
            self.metrics.promoted.inc();
        }
        Ok(stage)
    }

    /// Merges a batch of insights with write-time de-dup (see the module docs).
    pub fn merge(&self, domain: &str, insights: &[Insight]) -> Result<MergeReport> {
        let mut report = MergeReport::default();
        for (chunk_index, chunk) in insights.chunks(MAX_BATCH_SIZE).enumerate() {
            let base = chunk_index * MAX_BATCH_SIZE;
            self.merge_chunk(domain, chunk, base, &mut report)?;
        }
        self.metrics.insights.inc_by(insights.len() as u64);
        self.metrics.added.inc_by(report.added.len() as u64);
        Ok(report)
    }

    fn merge_chunk(&self, domain: &str, chunk: &[Insight], base: usize, report: &mut MergeReport) -> Result<()> {
        let mut usable = Vec::new();
        for (i, insight) in chunk.iter().enumerate() {
            match check_section(&insight.section).and_then(|()| check_content(&insight.content)) {
                Ok(()) => usable.push(i),
                Err(e) => report.skipped.push((base + i, e.to_string())),
            }
        }
        let texts: Vec<&str> = usable.iter().map(|&i| chunk[i].content.as_str()).collect();
        // Embedded before anything changes: an embedder failure leaves the playbook as it was.
        let vectors = embed::checked(&*self.embedder, &texts)?;
        let hook = self.near_hook.lock().clone();
        let now = self.now();
        let dim = self.embedder.dim();
        self.with(domain, |d| {
            let mut ops = Vec::new();
            let mut scratch: Vec<f32> = Vec::new();
            for (&i, v) in usable.iter().zip(&vectors) {
                let insight = &chunk[i];
                let key = normalised(&insight.content);
                let exact = d
                    .exact
                    .get(&fnv64(key.as_bytes()))
                    .copied()
                    .filter(|&slot| normalised(&d.state.bullets[slot].content) == key);
                let best = exact.map(|s| (s, 1.0f32)).or_else(|| {
                    d.bm25
                        .top(&insight.content, DUP_CANDIDATES, RAREST_TERMS, &mut scratch)
                        .into_iter()
                        .map(|(s, _)| (s as usize, embed::dot(v, &d.vectors[s as usize * dim..(s as usize + 1) * dim])))
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                });
                let merge_into = match best {
                    Some((slot, sim)) if sim >= self.cfg.dup_threshold => Some(slot),
                    Some((slot, sim)) if sim >= self.cfg.near_threshold => {
                        let existing = &d.state.bullets[slot];
                        let merged = hook.as_ref().is_some_and(|h| h(insight, existing, sim));
                        report.near_duplicates.push(NearDuplicate {
                            insight: base + i,
                            bullet: existing.id.clone(),
                            similarity: sim,
                            merged,
                        });
                        merged.then_some(slot)
                    }
                    _ => None,
                };
                let op = match merge_into {
                    Some(slot) => {
                        let id = d.state.bullets[slot].id.clone();
                        report.merged.push((base + i, id.clone()));
                        Op::Reinforce { id, provenance: insight.provenance.clone(), at: now }
                    }
                    None => {
                        let bullet = new_bullet(d, &insight.section, &insight.content, insight.provenance.clone(), now);
                        report.added.push(bullet.id.clone());
                        Op::Add { bullet }
                    }
                };
                d.apply(&op, Some(v), &*self.embedder)?;
                ops.push(op);
            }
            Ok(((), ops))
        })
    }

    /// The `k` best bullets for `query` at `min_stage` or later (quarantined ones never).
    pub fn retrieve(&self, domain: &str, query: &str, k: usize, min_stage: Stage) -> Result<Vec<Scored>> {
        let started = Instant::now();
        let q = embed::checked(&*self.embedder, &[query])?.remove(0);
        let d = self.domain(domain)?;
        let mut d = d.lock();
        d.used = Instant::now();
        let n = d.state.bullets.len();
        let mut lexical = vec![0f32; n];
        d.bm25.score(query, &mut lexical);
        let top_lexical = lexical.iter().copied().fold(0f32, f32::max);
        let dim = self.embedder.dim();
        let mut scored: Vec<(usize, f32)> = Vec::with_capacity(n);
        for (slot, b) in d.state.bullets.iter().enumerate() {
            if b.stage < min_stage || b.stage == Stage::Quarantined {
                continue;
            }
            let cosine = embed::dot(&q, &d.vectors[slot * dim..(slot + 1) * dim]).max(0.0);
            let lex = if top_lexical > 0.0 { lexical[slot] / top_lexical } else { 0.0 };
            scored.push((slot, 0.5 * lex + 0.5 * cosine));
        }
        if scored.len() > k {
            scored.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1));
            scored.truncate(k);
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let out =
            scored.into_iter().map(|(slot, score)| Scored { bullet: d.state.bullets[slot].clone(), score }).collect();
        drop(d);
        self.metrics.retrieval.observe(started.elapsed().as_secs_f64());
        Ok(out)
    }

    /// Renders bullets (the `k` best for `query` from `min_stage` up, or all of them when `query`
    /// is `None`) as prompt text within `token_budget` (4 bytes a token), grouped by section;
    /// their injection counts go up.
    pub fn render(
        &self,
        domain: &str,
        query: Option<&str>,
        k: usize,
        min_stage: Stage,
        token_budget: usize,
    ) -> Result<Rendered> {
        let bullets: Vec<Bullet> = match query {
            Some(q) => self.retrieve(domain, q, k, min_stage)?.into_iter().map(|s| s.bullet).collect(),
            None => self
                .bullets(domain)?
                .into_iter()
                .filter(|b| b.stage >= min_stage && b.stage != Stage::Quarantined)
                .take(k)
                .collect(),
        };
        let line = |b: &Bullet| format!("[{}] helpful={} harmful={} :: {}\n", b.id, b.helpful, b.harmful, b.content);
        let mut by_section: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut used = 0usize;
        let mut ids = Vec::new();
        for b in &bullets {
            let text = line(b);
            let header = if by_section.contains_key(b.section.as_str()) { 0 } else { b.section.len() + 4 };
            if (used + text.len() + header).div_ceil(4) > token_budget {
                continue;
            }
            used += text.len() + header;
            by_section.entry(&b.section).or_default().push(text);
            ids.push(b.id.clone());
        }
        let mut text = String::with_capacity(used);
        for (section, lines) in &by_section {
            text.push_str("## ");
            text.push_str(section);
            text.push('\n');
            lines.iter().for_each(|l| text.push_str(l));
        }
        if !ids.is_empty() {
            let at = self.now();
            let ids = ids.clone();
            self.with(domain, |d| {
                let op = Op::Inject { ids, at };
                d.apply(&op, None, &*self.embedder)?;
                Ok(((), vec![op]))
            })?;
        }
        Ok(Rendered { tokens: text.len().div_ceil(4), text, ids })
    }

    /// Every bullet of the domain, in the order they were added.
    pub fn bullets(&self, domain: &str) -> Result<Vec<Bullet>> {
        Ok(self.domain(domain)?.lock().state.bullets.clone())
    }

    /// One bullet.
    pub fn bullet(&self, domain: &str, id: &str) -> Result<Bullet> {
        let d = self.domain(domain)?;
        let d = d.lock();
        Ok(d.state.bullets[d.slot(id)?].clone())
    }

    /// The domain's version, hash and counts.
    pub fn stats(&self, domain: &str) -> Result<PlaybookStats> {
        let d = self.domain(domain)?;
        let d = d.lock();
        let mut s = PlaybookStats {
            domain: d.name.clone(),
            version: d.version,
            hash: hex(&d.hash),
            ..PlaybookStats::default()
        };
        for b in &d.state.bullets {
            *s.stages.entry(b.stage.as_str().to_owned()).or_default() += 1;
            *s.sections.entry(b.section.clone()).or_default() += 1;
        }
        Ok(s)
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

    /// Every bullet (quarantined ones too) in the ACE text format, grouped by section, without
    /// counting an injection: an export, not a prompt.
    pub fn export_text(&self, domain: &str) -> Result<String> {
        let mut by_section: BTreeMap<String, String> = BTreeMap::new();
        for b in self.bullets(domain)? {
            let lines = by_section.entry(b.section.clone()).or_default();
            lines.push_str(&format!("[{}] helpful={} harmful={} :: {}\n", b.id, b.helpful, b.harmful, b.content));
        }
        Ok(by_section.into_iter().map(|(section, lines)| format!("## {section}\n{lines}")).collect())
    }

    /// The domain as JSON: `{domain, version, hash, bullets}`.
    pub fn export_json(&self, domain: &str) -> Result<String> {
        let d = self.domain(domain)?;
        let d = d.lock();
        let v = serde_json::json!({ "domain": d.name, "version": d.version, "hash": hex(&d.hash), "bullets": d.state.bullets });
        serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Replaces the domain's content with an export of [`Playbooks::export_json`] (recorded as a
    /// new version). Returns the bullets imported.
    pub fn import_json(&self, domain: &str, json: &str) -> Result<usize> {
        #[derive(Deserialize)]
        struct Export {
            bullets: Vec<Bullet>,
        }
        let export: Export = serde_json::from_str(json)
            .map_err(|e| Error::invalid("playbook", format!("not a playbook export: {e}")))?;
        self.restore(domain, export.bullets, "import of a JSON export")
    }

    /// Replaces the domain's content with bullets in the ACE text format: `## section` headers
    /// and `[id] helpful=X harmful=Y :: content` lines (bullets without counters are accepted;
    /// other lines are ignored). Returns the bullets imported.
    pub fn import_text(&self, domain: &str, text: &str) -> Result<usize> {
        let now = self.now();
        let mut section = "general".to_owned();
        let mut bullets = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(h) = line.strip_prefix("## ") {
                section = h.trim().to_owned();
                continue;
            }
            let Some(rest) = line.strip_prefix('[') else { continue };
            let Some((id, rest)) = rest.split_once(']') else { continue };
            let (meta, content) = rest.split_once("::").unwrap_or(("", rest));
            let count = |key: &str| {
                meta.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key))
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            };
            let content = content.trim();
            check_content(content).map_err(|e| Error::invalid("playbook", format!("line {}: {e}", n + 1)))?;
            let mut b = Bullet {
                id: id.trim().to_owned(),
                section: section.clone(),
                content: content.to_owned(),
                helpful: count("helpful="),
                harmful: count("harmful="),
                neutral: 0,
                injected: 0,
                reinforced: 0,
                stage: Stage::Shadow,
                created_at: now,
                updated_at: now,
                provenance: Some("import".to_owned()),
            };
            while let Some(stage) = evaluate(&b, &self.cfg) {
                if stage == b.stage || (stage < b.stage && stage != Stage::Quarantined) {
                    break;
                }
                b.stage = stage;
            }
            bullets.push(b);
        }
        self.restore(domain, bullets, "import of ACE text")
    }

    fn restore(&self, domain: &str, bullets: Vec<Bullet>, reason: &str) -> Result<usize> {
        let mut seen = hashbrown::HashSet::new();
        let mut next_id: BTreeMap<String, u32> = BTreeMap::new();
        for b in &bullets {
            check_section(&b.section)?;
            check_content(&b.content)?;
            if !seen.insert(b.id.clone()) {
                return Err(Error::invalid("playbook", format!("bullet id {:?} appears twice", b.id)));
            }
            let n: u32 = b.id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let next = next_id.entry(prefix(&b.section)).or_insert(0);
            *next = (*next).max(n);
        }
        let n = bullets.len();
        let state = Box::new(State { bullets, next_id });
        self.with(domain, |d| {
            let op = Op::Restore { state, reason: reason.to_owned() };
            d.apply(&op, None, &*self.embedder)?;
            Ok(((), vec![op]))
        })?;
        Ok(n)
    }

    /// Domains held in memory now.
    #[must_use]
    pub fn loaded(&self) -> usize {
        self.domains.lock().len()
    }
}

fn new_bullet(d: &mut Domain, section: &str, content: &str, provenance: Option<String>, now: Timestamp) -> Bullet {
    let p = prefix(section);
    let next = d.state.next_id.entry(p.clone()).or_insert(0);
    *next += 1;
    Bullet {
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
    }
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
