//! Comparing a message with a pattern, and merging patterns that differ at the same word
//! positions (the variant merge of [`Miner`]).

use super::{Cluster, Miner, PatternId, WILDCARD, WILDCARD_HASH, glob_match, infer, is_glob};
use crate::errors::mask::{Masked, fnv1a, is_delimiter};

/// Values of one differing position that must each also vary in another message shape before
/// the position counts as a variable without `variants_to_merge` patterns (see
/// [`Miner::merge_variants`]). Two would take alternations such as `opened`/`closed`, which
/// recur across events (`session opened`, `connection opened`) without being variables.
const RECURRING_VALUES: usize = 3;

/// Where a word was first seen as the differing value of a variant group.
pub(super) struct ValueSeen {
    /// A hash of the group's message shape: its tokens but the differing one.
    shape: u64,
    /// The root and pattern it was seen in then (the pattern's serial tells a reused slot).
    root: u32,
    slot: u32,
    serial: u64,
    /// Also seen as such a value in another shape.
    elsewhere: bool,
}

impl Miner {
    /// Where a new pattern differs from others of its leaf at the same one or two word positions,
    /// those positions may be variables, and the patterns merge into the oldest of them when
    /// either
    /// - `variants_to_merge` patterns (the new one included) differ there, or
    /// - the position is one word, and at least [`RECURRING_VALUES`] of its values have also been
    ///   the differing word of a variant group of another message shape: user names recur
    ///   across the events that name a user (`Failed password for root ...`,
    ///   `... rhost=<*> user=root`), while the words that tell events apart do not
    ///   (`VM Started`, `VM Paused`, ...), and a position with a few such values keeps its
    ///   patterns apart.
    ///
    /// The words are remembered by hash in a map bounded by a few times `max_patterns`, so the
    /// cost stays constant per new pattern (messages that match a pattern never come here).
    pub(super) fn merge_variants(&mut self, root: u32, new: u32) -> Option<u32> {
        let mut elsewhere = Vec::new();
        let survivor = self.merge_variants_once(root, new, &mut elsewhere);
        // The values that recurred were first seen in another shape, whose patterns may now have
        // the evidence too (and no new pattern there to ask).
        if survivor.is_some() {
            for (root, slot, serial) in elsewhere {
                let live = self.clusters.get(slot as usize).and_then(Option::as_ref).is_some_and(|c| {
                    c.serial == serial && self.roots.get(&(c.kind_hash, c.hashes.len() as u32)) == Some(&root)
                });
                if live {
                    self.merge_variants_once(root, slot, &mut Vec::new());
                }
            }
        }
        survivor
    }

    fn merge_variants_once(&mut self, root: u32, new: u32, elsewhere: &mut Vec<(u32, u32, u64)>) -> Option<u32> {
        let n = self.clusters[new as usize].as_ref().expect("new cluster is live");
        let mut groups: Vec<(Differences, Vec<u32>)> = Vec::new();
        for &slot in self.nodes[root as usize].recent.iter().rev() {
            if slot == new {
                continue;
            }
            // The list may hold slots freed (and reused) since: only live patterns of this root.
            let Some(c) = self.clusters[slot as usize].as_ref() else { continue };
            if c.kind_hash != n.kind_hash || c.hashes.len() != n.hashes.len() || c.kind != n.kind {
                continue;
            }
            if groups.iter().any(|(_, m)| m.contains(&slot)) {
                continue;
            }
            if let Some(d) = word_differences(n, c) {
                match groups.iter_mut().find(|(k, _)| *k == d) {
                    Some((_, members)) => members.push(slot),
                    None => groups.push((d, vec![slot])),
                }
            }
        }
        let mut chosen = groups.iter().position(|(_, m)| m.len() + 1 >= self.cfg.variants_to_merge);
        if chosen.is_none() {
            for (g, ((diff, len), members)) in groups.iter().enumerate() {
                if *len == 1 && self.recurring(root, new, diff[0] as usize, members, elsewhere) >= RECURRING_VALUES {
                    chosen = Some(g);
                    break;
                }
            }
        }
        let ((diff, len), mut members) = groups.swap_remove(chosen?);
        members.push(new);
        members.sort_by_key(|&s| self.clusters[s as usize].as_ref().map_or(u64::MAX, |c| c.serial));
        let survivor = members[0];
        let mut absorbed_count = 0;
        let mut wild: Vec<bool> = self.clusters[survivor as usize]
            .as_ref()
            .expect("live")
            .hashes
            .iter()
            .map(|&h| h == WILDCARD_HASH)
            .collect();
        for &p in &diff[..len] {
            wild[p as usize] = true;
        }
        for &slot in &members[1..] {
            let c = self.clusters[slot as usize].take().expect("members are live");
            for (w, &h) in wild.iter_mut().zip(&c.hashes) {
                *w |= h == WILDCARD_HASH;
            }
            absorbed_count += c.count;
            self.merged.insert(c.serial, self.clusters[survivor as usize].as_ref().expect("live").serial);
            self.free_clusters.push(slot);
            self.live -= 1;
            self.detach(slot, c.leaf);
        }
        if self.merged.len() > 4 * self.cfg.max_patterns {
            self.merged.clear();
        }
        let tick = self.tick;
        let c = self.clusters[survivor as usize].as_mut().expect("live");
        for (i, &w) in wild.iter().enumerate() {
            if w && c.hashes[i] != WILDCARD_HASH {
                c.hashes[i] = WILDCARD_HASH;
                c.tokens[i] = WILDCARD.into();
            }
        }
        c.template = c.tokens.join(" ").into();
        c.id = PatternId::of(&c.kind, &c.template);
        c.severity = infer(&c.kind, &c.template);
        c.count += absorbed_count;
        c.last_tick = tick;
        c.dirty = true;
        // A leading token that became a wildcard moves the pattern down the wildcard branch,
        // where messages with other values at that position will look for it.
        let (kind_hash, hashes, old_leaf) = (c.kind_hash, c.hashes.clone(), c.leaf);
        let leaf = self.leaf_for(kind_hash, &hashes);
        if leaf != old_leaf {
            self.nodes[leaf as usize].clusters.push(survivor);
            self.clusters[survivor as usize].as_mut().expect("live").leaf = leaf;
            self.detach(survivor, old_leaf);
        }
        Some(survivor)
    }

    /// Notes the words of a variant group (`new` and `members`, differing at `pos`) and returns
    /// how many of them have also been the differing word of a group of another shape. The
    /// patterns where those were first seen go to `elsewhere`.
    fn recurring(
        &mut self,
        root: u32,
        new: u32,
        pos: usize,
        members: &[u32],
        elsewhere: &mut Vec<(u32, u32, u64)>,
    ) -> usize {
        let n = self.clusters[new as usize].as_ref().expect("new cluster is live");
        let mut shape = n.kind_hash;
        for (i, &h) in n.hashes.iter().enumerate() {
            shape = shape.rotate_left(5) ^ if i == pos { u64::MAX } else { h };
            shape = shape.wrapping_mul(0x0000_0100_0000_01b3);
        }
        if self.values.len() >= 4 * self.cfg.max_patterns {
            self.values.clear();
        }
        let mut seen: Vec<u64> = Vec::with_capacity(members.len() + 1);
        let mut count = 0;
        for &slot in std::iter::once(&new).chain(members) {
            let c = self.clusters[slot as usize].as_ref().expect("members are live");
            let Some(value) = value_of(&c.tokens[pos]) else { continue };
            let value = fnv1a(value.as_bytes());
            if seen.contains(&value) {
                continue;
            }
            seen.push(value);
            let entry =
                self.values.entry(value).or_insert(ValueSeen { shape, root, slot, serial: c.serial, elsewhere: false });
            if entry.shape != shape {
                if !entry.elsewhere {
                    elsewhere.push((entry.root, entry.slot, entry.serial));
                }
                entry.elsewhere = true;
            }
            count += usize::from(entry.elsewhere);
        }
        count
    }
}

/// The value part of a token: after its last punctuation (`user=root` reads `root`), none for a
/// token with a wildcard or nothing but punctuation.
fn value_of(token: &str) -> Option<&str> {
    let word = token.trim_end_matches(|c: char| c.is_ascii() && is_delimiter(c as u8));
    let value = word.rsplit(|c: char| c.is_ascii() && is_delimiter(c as u8)).next().unwrap_or(word);
    (!value.is_empty() && !value.contains(WILDCARD)).then_some(value)
}

/// Whether template token `t` (text `ts`) and message token `m` (text `ms`) can be one: equal,
/// the message's is masked, or one is a glob (`rhost=<*>`) the other matches.
fn compatible(t: u64, ts: &str, m: u64, ms: &str) -> bool {
    t == m
        || t == WILDCARD_HASH
        || m == WILDCARD_HASH
        || (is_glob(t) && glob_match(ts, ms))
        || (is_glob(m) && glob_match(ms, ts))
}

/// How well a message fits a pattern: `None` when a constant token of the template meets a
/// different word (only the variant merge of [`Miner`] turns such a position into a wildcard),
/// else the share of the template's constant tokens the message repeats exactly (the rest meet
/// a masked part of the message) and the template's wildcard count (ties go to more of them).
pub(super) fn similarity(c: &Cluster, m: &Masked) -> Option<(f64, usize)> {
    let mut same = 0usize;
    let mut params = 0usize;
    for (i, (&t, &h)) in c.hashes.iter().zip(&m.hashes).enumerate() {
        if t == WILDCARD_HASH {
            params += 1;
        } else if t == h {
            same += 1;
        } else if !compatible(t, &c.tokens[i], h, m.token(i)) {
            return None;
        }
    }
    let constants = c.hashes.len() - params;
    if constants == 0 {
        // A template of wildcards only takes messages of wildcards only: it would take anything.
        return m.hashes.iter().all(|&h| h == WILDCARD_HASH).then_some((1.0, params));
    }
    Some((same as f64 / constants as f64, params))
}

/// Up to two token positions, and how many are used.
pub(super) type Differences = ([u16; 2], usize);

/// Positions where two patterns hold incompatible constant tokens, if there are at most two and
/// they are at most half the constants.
fn word_differences(a: &Cluster, b: &Cluster) -> Option<Differences> {
    let mut diff = [u16::MAX; 2];
    let mut n = 0;
    let mut constants = 0;
    for (i, (&x, &y)) in a.hashes.iter().zip(&b.hashes).enumerate() {
        if x == WILDCARD_HASH || y == WILDCARD_HASH {
            continue;
        }
        constants += 1;
        if !compatible(x, &a.tokens[i], y, &b.tokens[i]) {
            if n == 2 {
                return None;
            }
            diff[n] = i as u16;
            n += 1;
        }
    }
    (n > 0 && n * 2 <= constants).then_some((diff, n))
}
