//! The playbook: bullets of advice that worked, per domain (tenant), curated at write time.
//!
//! A bullet (`[str-00042] helpful=5 harmful=0 :: Verify the total before charging`) has a stable
//! id, a section, its content, helpful/harmful/neutral counters that only explicit feedback moves,
//! how often it was injected into a prompt, a stage (shadow → staging → prod, or quarantined) and
//! its provenance. Every change is an operation appended to the domain's log in the store, chained
//! by SHA-256 (each entry's hash covers the previous hash, its version and its body), with a
//! snapshot whenever the operations since the last one outweigh it ([`SNAPSHOT_MIN_BYTES`]):
//! loading verifies the chain and refuses tampered data
//! ([`Error::Corrupt`](crate::error::Error::Corrupt)); any version can be restored
//! ([`Playbooks::rollback`]).
//!
//! Write-time de-dup ([`Playbooks::merge`]): an insight whose normalised text matches a bullet,
//! or whose embedding is close enough to one, strengthens that bullet instead of adding one
//! (the log's `reinforce` entry keeps the insight's provenance, and, when the words differ, its
//! text and similarity). Candidates (`candidates.rs`): the exact map, the 32 best BM25 matches
//! on the insight's 2 rarest words, and, with a [semantic](Embedder::semantic) embedder, the
//! nearest bullet by cosine over the contiguous matrix (exact, over the newest
//! [`SEMANTIC_SCAN_MAX`] bullets). A semantic embedder merges at `semantic_dup_threshold` (0.60)
//! and reports the band from `semantic_near_threshold` (0.50); the lexical [`HashEmbedder`]
//! merges at `dup_threshold` (0.92) and reports from `near_threshold` (0.80): its vectors are
//! hashed words, so it catches near-copies, never paraphrases in other words. A reported pair
//! goes to the near-duplicate hook when one is set.
//!
//! Retrieval ([`Playbooks::retrieve`]) scores every live bullet from a chosen stage up by half
//! BM25 (normalised to the best match) and half cosine similarity, over one contiguous matrix of
//! vectors per domain.
//!
//! Where things live: [`Playbooks`], the handle, and the writes that merge, add and change
//! bullets here; `types.rs` the data (bullets, insights, reports, [`PlaybookConfig`]); `log.rs`
//! the hash-chained log, snapshots and rollback; `domain.rs` a loaded domain, its indexes and how
//! operations apply to it; `gates.rs` the stage gates and feedback; `retrieve.rs` retrieval and
//! rendering; `io.rs` import and export; `metrics.rs` the series; `bm25.rs`, `embed.rs` and
//! `minilm.rs` the lexical index and the embedders.

mod candidates;
mod domain;
mod gates;
mod io;
mod log;
mod metrics;
mod retrieve;
mod types;

pub mod bm25;
pub mod embed;
#[cfg(feature = "minilm")]
pub mod minilm;
mod parse;

use std::sync::Arc;
use std::time::Instant;

use hashbrown::HashMap;
use parking_lot::Mutex;

pub use candidates::SEMANTIC_SCAN_MAX;
pub use domain::MAX_BATCH_SIZE;
pub use embed::{Embedder, HashEmbedder};
pub use io::Trust;
pub use log::{PlaybookVersion, SNAPSHOT_MIN_BYTES};
pub use metrics::PlaybookMetrics;
#[cfg(feature = "minilm")]
pub use minilm::MiniLm;
pub use types::{
    Bullet, Feedback, Insight, MAX_BULLET_ID_BYTES, MAX_CONTENT_BYTES, MAX_PROVENANCE_BYTES, MergeReport,
    NearDuplicate, PlaybookConfig, PlaybookStats, Rendered, Scored, Stage, check_bullet_id,
};

use crate::clock::{Clock, Timestamp};
use crate::error::Result;
use crate::store::Store;
use domain::{Domain, new_bullet, normalised};
use log::{Op, hex};
use types::{check_content, check_provenance, check_section};

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
        check_provenance(provenance)?;
        let vector = embed::checked(&*self.embedder, &[content])?.remove(0);
        let now = self.now();
        let id = self.with(domain, |d| {
            let bullet = new_bullet(d, section, content, provenance.map(str::to_owned), now)?;
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
            let checked = check_section(&insight.section)
                .and_then(|()| check_content(&insight.content))
                .and_then(|()| check_provenance(insight.provenance.as_deref()));
            match checked {
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
        let semantic = self.embedder.semantic();
        let (dup, near) = if semantic {
            (self.cfg.semantic_dup_threshold, self.cfg.semantic_near_threshold)
        } else {
            (self.cfg.dup_threshold, self.cfg.near_threshold)
        };
        self.with(domain, |d| {
            let mut ops = Vec::new();
            let mut scratch: Vec<f32> = Vec::new();
            for (&i, v) in usable.iter().zip(&vectors) {
                let insight = &chunk[i];
                let key = normalised(&insight.content);
                let best = candidates::best(d, &key, &insight.content, v, dim, semantic, &mut scratch);
                let merge_into = match best {
                    Some((slot, sim)) if sim >= dup => {
                        Some((slot, sim, if semantic { "paraphrase" } else { "duplicate" }))
                    }
                    Some((slot, sim)) if sim >= near => {
                        let existing = &d.state.bullets[slot];
                        let merged = hook.as_ref().is_some_and(|h| h(insight, existing, sim));
                        report.near_duplicates.push(NearDuplicate {
                            insight: base + i,
                            bullet: existing.id.clone(),
                            similarity: sim,
                            merged,
                        });
                        merged.then_some((slot, sim, "near-duplicate (by the hook)"))
                    }
                    _ => None,
                };
                let op = match merge_into {
                    Some((slot, sim, kind)) => {
                        let id = d.state.bullets[slot].id.clone();
                        report.merged.push((base + i, id.clone()));
                        let reason =
                            (sim < 1.0).then(|| format!("{kind} merged at cosine {sim:.3}: {}", insight.content));
                        Op::Reinforce { id, provenance: insight.provenance.clone(), at: now, reason }
                    }
                    None => {
                        let bullet =
                            new_bullet(d, &insight.section, &insight.content, insight.provenance.clone(), now)?;
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

    /// Domains held in memory now.
    #[must_use]
    pub fn loaded(&self) -> usize {
        self.domains.lock().len()
    }
}
