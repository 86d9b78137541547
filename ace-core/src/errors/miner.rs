//! Online template mining in the style of Drain (He et al., ICWS 2017).
//!
//! A masked message (see [`mask`](super::mask)) descends a fixed-depth tree: the first level is
//! the error kind and the token count, the next `depth - 2` levels its leading tokens (a token
//! holding a wildcard, or any token once a node has `max_children` children, goes down the
//! wildcard branch). The leaf holds a few patterns; the message joins the most similar one if the
//! share of its tokens equal to the pattern's constant tokens reaches `similarity`, and the
//! pattern's template turns the positions that differ into `<*>`. Otherwise it starts a pattern.
//!
//! Tokens are compared by 64-bit hashes, so matching allocates nothing. A pattern's id is a hash
//! of its kind and template ([`PatternId::of`]): two processes, or one after a restart, agree on
//! it. Memory is bounded: beyond `max_patterns`, the least recently seen tenth is evicted and the
//! tree nodes left empty are freed.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use hashbrown::HashMap;

use super::mask::{Masked, WILDCARD, WILDCARD_HASH, fnv1a, glob_match, is_glob, mask_into};
use super::severity::infer;
use crate::error::{Error, Result};

use crate::event::Severity;
pub use crate::ids::PatternId;
pub use crate::record::PatternRecord;
use tree::route;
use variants::{ValueSeen, similarity};

mod tree;
mod variants;

/// The tunables of the miner. The defaults are the one configuration ace ships; they were chosen
/// on eight Loghub-2k datasets and are not meant to be tuned per log format.
#[derive(Clone, Debug, PartialEq)]
pub struct MinerConfig {
    /// Depth of the parse tree: 2 + the number of leading tokens that route a message.
    pub depth: usize,
    /// Share of a message's tokens that must equal a pattern's constant tokens to join it.
    pub similarity: f64,
    /// Children of a tree node before further tokens share its wildcard branch.
    pub max_children: usize,
    /// Patterns that differ at the same word positions before those positions count as
    /// variables and the patterns merge.
    pub variants_to_merge: usize,
    /// Patterns kept; the least recently seen are evicted beyond this.
    pub max_patterns: usize,
    /// Bytes of a message that are mined; the rest is cut off (and counted).
    pub max_message_bytes: usize,
    /// Tokens of a message that are mined; the rest are dropped (and counted).
    pub max_tokens: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            depth: 4,
            similarity: 0.5,
            max_children: 100,
            variants_to_merge: 5,
            max_patterns: 10_000,
            max_message_bytes: 16 * 1024,
            max_tokens: 256,
        }
    }
}

impl MinerConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.depth < 3 {
            return Err(Error::config("miner depth", &self.depth.to_string(), "must be at least 3"));
        }
        if !(self.similarity > 0.0 && self.similarity <= 1.0) {
            return Err(Error::config("miner similarity", &self.similarity.to_string(), "must be in (0, 1]"));
        }
        if self.max_children < 2
            || self.variants_to_merge < 2
            || self.max_patterns == 0
            || self.max_tokens == 0
            || self.max_message_bytes < 16
        {
            return Err(Error::config(
                "miner limits",
                &format!("{self:?}"),
                "need max_children >= 2, variants_to_merge >= 2, max_patterns >= 1, max_tokens >= 1, max_message_bytes >= 16",
            ));
        }
        Ok(())
    }
}

/// What mining one message found.
#[derive(Clone, Debug)]
pub struct Mined {
    /// Unique for the life of the miner, unlike the id, which changes when the template does.
    pub serial: u64,
    /// The error kind it was mined under.
    pub kind: Arc<str>,
    /// The pattern's id (after this message updated the template).
    pub id: PatternId,
    /// The pattern's template.
    pub template: Arc<str>,
    /// The severity inferred from the kind and the template (see [`super::severity`]).
    pub severity: Severity,
    /// Messages the pattern has grouped, this one included.
    pub count: u64,
    /// A new pattern.
    pub created: bool,
    /// An existing pattern whose template this message generalised.
    pub changed: bool,
    /// The message was cut to `max_message_bytes` or `max_tokens`.
    pub truncated: bool,
}

const NONE: u32 = u32::MAX;
/// Patterns per leaf (one token count and leading tokens); the least recently seen is evicted
/// beyond this, so matching a message costs at most this many comparisons.
const MAX_LEAF_PATTERNS: usize = 256;
/// Patterns of a leaf compared with a new one (the most recent).
const LEAF_SCAN: usize = 64;

struct Node {
    parent: u32,
    /// The token hash under which the parent holds this node (or the root key's hash).
    key: u64,
    root: Option<(u64, u32)>,
    children: HashMap<u64, u32>,
    wildcard: u32,
    clusters: Vec<u32>,
    /// On a root: its most recently created patterns, which a new one is compared with to find
    /// word positions that take many values (see `merge_variants`).
    recent: VecDeque<u32>,
}

struct Cluster {
    serial: u64,
    kind: Arc<str>,
    kind_hash: u64,
    hashes: Vec<u64>,
    tokens: Vec<Box<str>>,
    template: Arc<str>,
    id: PatternId,
    severity: Severity,
    count: u64,
    last_tick: u64,
    leaf: u32,
    /// Changed since the last [`Miner::take_changed`].
    dirty: bool,
}

/// The miner. Not thread-safe by itself; the error organ keeps it behind a lock.
pub struct Miner {
    cfg: MinerConfig,
    masked: Masked,
    roots: HashMap<(u64, u32), u32>,
    nodes: Vec<Node>,
    free_nodes: Vec<u32>,
    clusters: Vec<Option<Cluster>>,
    free_clusters: Vec<u32>,
    live: usize,
    tick: u64,
    serials: u64,
    merged: HashMap<u64, u64>,
    /// Words seen at the differing position of a variant group, by hash (see `merge_variants`).
    values: HashMap<u64, ValueSeen>,
    evicted: u64,
    truncated: u64,
}

impl fmt::Debug for Miner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Miner").field("patterns", &self.live).field("evicted", &self.evicted).finish_non_exhaustive()
    }
}

impl Default for Miner {
    fn default() -> Self {
        Miner::new(MinerConfig::default()).expect("default miner config is valid")
    }
}

impl Miner {
    /// A miner with `cfg` (checked).
    pub fn new(cfg: MinerConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Miner {
            cfg,
            masked: Masked::default(),
            roots: HashMap::new(),
            nodes: Vec::new(),
            free_nodes: Vec::new(),
            clusters: Vec::new(),
            free_clusters: Vec::new(),
            live: 0,
            tick: 0,
            serials: 0,
            merged: HashMap::new(),
            values: HashMap::new(),
            evicted: 0,
            truncated: 0,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &MinerConfig {
        &self.cfg
    }

    /// Patterns held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no pattern is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Patterns evicted so far to keep within `max_patterns`.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Messages cut so far to `max_message_bytes` or `max_tokens`.
    #[must_use]
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Groups `message` (of errors of `kind`) into a pattern.
    pub fn mine(&mut self, kind: &str, message: &str) -> Mined {
        self.mine_counted(kind, message, 1, false)
    }

    /// `loading`: a stored template; a pattern it joins keeps the larger of the two counts (the
    /// store keeps superseded templates as history, whose counts the newer one already holds).
    fn mine_counted(&mut self, kind: &str, message: &str, count: u64, loading: bool) -> Mined {
        self.tick += 1;
        let mut text = message;
        let mut truncated = false;
        if text.len() > self.cfg.max_message_bytes {
            let mut cut = self.cfg.max_message_bytes;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text = &text[..cut];
            truncated = true;
        }
        let mut masked = std::mem::take(&mut self.masked);
        truncated |= mask_into(text, self.cfg.max_tokens, &mut masked);
        if truncated {
            self.truncated += 1;
        }
        let kind_hash = fnv1a(kind.as_bytes());
        let mined = match self.find(kind_hash, kind, &masked) {
            Some(slot) => self.absorb(slot, &masked, count, loading, truncated),
            None => self.create(kind_hash, kind, &masked, count, truncated),
        };
        self.masked = masked;
        if self.live > self.cfg.max_patterns {
            self.evict();
        }
        mined
    }

    /// Restores stored patterns (at start). Returns how many were restored.
    pub fn load(&mut self, patterns: &[PatternRecord]) -> usize {
        let mut n = 0;
        for p in patterns {
            let mined = self.mine_counted(&p.kind, &p.template, p.count.max(1), true);
            if mined.created || mined.changed {
                n += 1;
            }
            if mined.id != p.id {
                tracing::debug!(stored = %p.id, now = %mined.id, "a stored pattern reads differently with this build's masking");
            }
        }
        n
    }

    /// Every pattern held, most frequent first.
    #[must_use]
    pub fn patterns(&self) -> Vec<PatternRecord> {
        let mut out: Vec<PatternRecord> = self
            .clusters
            .iter()
            .flatten()
            .map(|c| PatternRecord {
                id: c.id,
                kind: c.kind.to_string(),
                template: c.template.to_string(),
                count: c.count,
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Patterns created or changed since the last call (to persist them).
    pub fn take_changed(&mut self) -> Vec<PatternRecord> {
        self.clusters
            .iter_mut()
            .flatten()
            .filter_map(|c| {
                std::mem::take(&mut c.dirty).then(|| PatternRecord {
                    id: c.id,
                    kind: c.kind.to_string(),
                    template: c.template.to_string(),
                    count: c.count,
                })
            })
            .collect()
    }

    /// The best pattern for `m`: down the exact path first, then (if that leaf has no fit) down
    /// the wildcard branches, where patterns whose leading tokens became wildcards live.
    fn find(&self, kind_hash: u64, kind: &str, m: &Masked) -> Option<u32> {
        let root = *self.roots.get(&(kind_hash, m.len() as u32))?;
        self.search(root, 0, kind, m)
    }

    fn search(&self, node: u32, level: usize, kind: &str, m: &Masked) -> Option<u32> {
        let n = &self.nodes[node as usize];
        if level == (self.cfg.depth - 2).min(m.len()) {
            return self.best_in_leaf(node, kind, m);
        }
        let h = route(m.hashes[level]);
        let exact = if h == WILDCARD_HASH { None } else { n.children.get(&h).copied() };
        if let Some(found) = exact.and_then(|c| self.search(c, level + 1, kind, m)) {
            return Some(found);
        }
        if n.wildcard == NONE { None } else { self.search(n.wildcard, level + 1, kind, m) }
    }

    fn best_in_leaf(&self, leaf: u32, kind: &str, m: &Masked) -> Option<u32> {
        let mut best: Option<(u32, f64, usize)> = None;
        for &slot in &self.nodes[leaf as usize].clusters {
            let c = self.clusters[slot as usize].as_ref().expect("leaf clusters are live");
            if &*c.kind != kind {
                continue;
            }
            let Some((sim, params)) = similarity(c, m) else { continue };
            if sim >= self.cfg.similarity && best.is_none_or(|(_, s, p)| sim > s || (sim == s && params > p)) {
                best = Some((slot, sim, params));
            }
        }
        best.map(|(slot, _, _)| slot)
    }

    fn absorb(&mut self, slot: u32, m: &Masked, count: u64, loading: bool, truncated: bool) -> Mined {
        let tick = self.tick;
        let c = self.clusters[slot as usize].as_mut().expect("found clusters are live");
        let mut changed = false;
        for (i, (t, &h)) in c.hashes.iter_mut().zip(&m.hashes).enumerate() {
            if *t == WILDCARD_HASH || *t == h || (is_glob(*t) && glob_match(&c.tokens[i], m.token(i))) {
                continue;
            }
            if is_glob(h) && glob_match(m.token(i), &c.tokens[i]) {
                *t = h;
                c.tokens[i] = m.token(i).into();
            } else {
                *t = WILDCARD_HASH;
                c.tokens[i] = WILDCARD.into();
            }
            changed = true;
        }
        if changed {
            c.template = c.tokens.join(" ").into();
            c.id = PatternId::of(&c.kind, &c.template);
            c.severity = infer(&c.kind, &c.template);
        }
        c.count = if loading { c.count.max(count) } else { c.count + count };
        c.last_tick = tick;
        c.dirty = true;
        Mined {
            serial: c.serial,
            kind: c.kind.clone(),
            id: c.id,
            template: c.template.clone(),
            severity: c.severity,
            count: c.count,
            created: false,
            changed,
            truncated,
        }
    }

    fn create(&mut self, kind_hash: u64, kind: &str, m: &Masked, count: u64, truncated: bool) -> Mined {
        let leaf = self.leaf_for(kind_hash, &m.hashes);
        if self.nodes[leaf as usize].clusters.len() >= MAX_LEAF_PATTERNS {
            // Matching scans a leaf: keep it short by evicting its least recently seen pattern.
            let clusters = &self.clusters;
            let leaf_clusters = &mut self.nodes[leaf as usize].clusters;
            let (pos, _) = leaf_clusters
                .iter()
                .enumerate()
                .min_by_key(|&(_, &s)| clusters[s as usize].as_ref().map_or(0, |c| c.last_tick))
                .expect("the leaf is full");
            let slot = leaf_clusters.swap_remove(pos);
            self.clusters[slot as usize] = None;
            self.free_clusters.push(slot);
            self.live -= 1;
            self.evicted += 1;
        }
        let tokens: Vec<Box<str>> = (0..m.len()).map(|i| m.token(i).into()).collect();
        let template: Arc<str> = tokens.join(" ").into();
        self.serials += 1;
        let cluster = Cluster {
            serial: self.serials,
            kind: Arc::from(kind),
            kind_hash,
            hashes: m.hashes.clone(),
            tokens,
            id: PatternId::of(kind, &template),
            severity: infer(kind, &template),
            template,
            count,
            last_tick: self.tick,
            leaf,
            dirty: true,
        };
        let mined = Mined {
            serial: cluster.serial,
            kind: cluster.kind.clone(),
            id: cluster.id,
            template: cluster.template.clone(),
            severity: cluster.severity,
            count,
            created: true,
            changed: false,
            truncated,
        };
        let slot = match self.free_clusters.pop() {
            Some(s) => {
                self.clusters[s as usize] = Some(cluster);
                s
            }
            None => {
                self.clusters.push(Some(cluster));
                (self.clusters.len() - 1) as u32
            }
        };
        self.nodes[leaf as usize].clusters.push(slot);
        self.live += 1;
        let root = self.roots[&(kind_hash, m.len() as u32)];
        let recent = &mut self.nodes[root as usize].recent;
        if recent.len() == LEAF_SCAN {
            recent.pop_front();
        }
        recent.push_back(slot);
        match self.merge_variants(root, slot) {
            Some(survivor) => {
                let c = self.clusters[survivor as usize].as_ref().expect("the survivor is live");
                Mined {
                    serial: c.serial,
                    id: c.id,
                    template: c.template.clone(),
                    severity: c.severity,
                    count: c.count,
                    ..mined
                }
            }
            None => mined,
        }
    }

    /// Takes `slot` off `leaf` and frees the tree nodes left empty.
    fn detach(&mut self, slot: u32, leaf: u32) {
        let clusters = &mut self.nodes[leaf as usize].clusters;
        if let Some(pos) = clusters.iter().position(|&s| s == slot) {
            clusters.swap_remove(pos);
        }
        self.prune(leaf);
    }

    /// The pattern a serial now belongs to: itself, or the pattern it was merged into (merges of
    /// the recent past are remembered, a few times `max_patterns` of them).
    #[must_use]
    pub fn canonical(&self, mut serial: u64) -> u64 {
        while let Some(&next) = self.merged.get(&serial) {
            serial = next;
        }
        serial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_messages_share_a_pattern_and_its_id_is_stable() {
        let mut m = Miner::default();
        let a = m.mine("ConnectionError", "connection to db-7 refused after 3 retries");
        let b = m.mine("ConnectionError", "connection to db-9 refused after 5 retries");
        assert!(a.created && !b.created);
        assert_eq!(a.serial, b.serial);
        assert_eq!(&*b.template, "connection to <*> refused after <*> retries");
        assert_eq!(b.id, PatternId::of("ConnectionError", "connection to <*> refused after <*> retries"));
        let other_kind = m.mine("TimeoutError", "connection to db-7 refused after 3 retries");
        assert!(other_kind.created, "kinds never share a pattern");
        let different = m.mine("ConnectionError", "schema validation failed for field name");
        assert!(different.created);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn a_word_position_with_many_values_becomes_a_variable() {
        let mut m = Miner::default();
        let first = m.mine("E", "session closed for user alice");
        for user in ["bob", "carol", "dave"] {
            let r = m.mine("E", &format!("session closed for user {user}"));
            assert!(r.created, "a few values may be distinct events: kept apart");
        }
        let fifth = m.mine("E", "session closed for user erin");
        assert_eq!(fifth.serial, first.serial, "the oldest pattern survives the merge");
        assert_eq!(&*fifth.template, "session closed for user <*>");
        assert_eq!(fifth.count, 5);
        assert_eq!(m.len(), 1);
        for serial in 1..=5 {
            assert_eq!(m.canonical(serial), first.serial);
        }
        let sixth = m.mine("E", "session closed for user frank");
        assert_eq!((sixth.serial, sixth.created), (first.serial, false));
    }

    #[test]
    fn words_that_vary_in_two_message_shapes_are_variables_sooner() {
        let mut m = Miner::default();
        for user in ["alice", "bob", "carol"] {
            m.mine("E", &format!("session opened for user {user} by uid=0"));
            m.mine("E", &format!("session closed for user {user}"));
        }
        let mut templates: Vec<String> = m.patterns().into_iter().map(|p| p.template).collect();
        templates.sort();
        assert_eq!(templates, ["session closed for user <*>", "session opened for user <*> by uid=<*>"]);
        // Three words varying in one shape only stay apart (below the merge count).
        let mut m = Miner::default();
        for state in ["Started", "Stopped", "Paused"] {
            m.mine("E", &format!("VM {state} (Lifecycle Event)"));
        }
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn a_variable_leading_word_merges_across_leaves_and_later_values_find_it() {
        let mut m = Miner::default();
        let users = ["alice", "bob", "carol", "dave", "erin"];
        let first = m.mine("E", "user alice logged in");
        for u in &users[1..] {
            m.mine("E", &format!("user {u} logged in"));
        }
        assert_eq!(m.len(), 1, "{:?}", m.patterns());
        let later = m.mine("E", "user zed logged in");
        assert_eq!((later.serial, later.created), (first.serial, false));
        assert_eq!(&*later.template, "user <*> logged in");
        assert_eq!(later.count, 6);
    }

    #[test]
    fn masked_parts_generalise_templates_and_globs_match_words() {
        let mut m = Miner::default();
        let a = m.mine("E", "auth failure from rhost=example.org user=root");
        let b = m.mine("E", "auth failure from rhost=10.0.0.1 user=root");
        assert_eq!(a.serial, b.serial);
        assert!(b.changed);
        assert_ne!(a.id, b.id);
        assert_eq!(&*b.template, "auth failure from rhost=<*> user=root");
        let c = m.mine("E", "auth failure from rhost=other.example.org user=root");
        assert_eq!((c.serial, c.changed), (a.serial, false));
        // A glob leading the message routes down the wildcard branch, where words find it too.
        let d = m.mine("E", "rhost=10.0.0.1 refused the connection");
        let e = m.mine("E", "rhost=example.org refused the connection");
        assert_eq!((e.serial, e.created), (d.serial, false));
    }

    #[test]
    fn a_flood_of_unique_messages_stays_bounded() {
        let cfg = MinerConfig { max_patterns: 100, ..MinerConfig::default() };
        let mut m = Miner::new(cfg).unwrap();
        for i in 0..10_000 {
            let words: String = (0..5).map(|j| char::from(b'a' + ((i * 7 + j * 13) % 26) as u8)).collect();
            m.mine(&format!("kind{}", i % 50), &format!("{words} {} {}", words.len(), "x".repeat(i % 9)));
        }
        assert!(m.len() <= 100);
        assert!(m.evicted() > 0);
        assert!(m.nodes.len() - m.free_nodes.len() < 2_000, "empty tree nodes are freed");
    }

    #[test]
    fn hostile_messages_are_handled() {
        let mut m = Miner::default();
        let e = m.mine("E", "");
        assert_eq!(&*e.template, "");
        let huge = "é".repeat(600_000);
        assert!(m.mine("E", &huge).truncated);
        let repeated = "spam ".repeat(100_000);
        let r = m.mine("E", &repeated);
        assert!(r.truncated);
        assert_eq!(r.template.split(' ').count(), m.config().max_tokens);
        assert_eq!(m.truncated(), 2);
    }

    /// What `fuzz/fuzz_targets/miner.rs` checks, on pseudo-random input, in every test run.
    #[test]
    fn random_bytes_keep_the_invariants() {
        let cfg = MinerConfig { max_patterns: 20, max_message_bytes: 256, max_tokens: 16, ..MinerConfig::default() };
        let mut m = Miner::new(cfg).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"ab Z09.:=/-_[]()'\"<*>\xc3\xa9 \t\n\xff";
        for i in 0..20_000 {
            let len = (i * 7) % 300;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let kind = ["", "E", "TimeoutError"][i % 3];
            let mined = m.mine(kind, &String::from_utf8_lossy(&bytes));
            assert_eq!(mined.id, PatternId::of(kind, &mined.template));
            assert!(m.len() <= 20);
            assert_eq!(m.canonical(mined.serial), mined.serial);
        }
    }

    #[test]
    fn pattern_ids_are_hex_in_json() {
        let id = PatternId(0xfedc_ba98_7654_3210);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"fedcba9876543210\"");
        assert_eq!(serde_json::from_str::<PatternId>("\"fedcba9876543210\"").unwrap(), id);
        assert!(serde_json::from_str::<PatternId>("\"xyz\"").is_err());
        assert!("123".parse::<PatternId>().is_err());
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(Miner::new(MinerConfig { similarity: f64::NAN, ..MinerConfig::default() }).is_err());
        assert!(Miner::new(MinerConfig { depth: 2, ..MinerConfig::default() }).is_err());
    }
}
