//! The parse tree of [`Miner`]: building a new pattern's path, freeing emptied nodes, and
//! evicting the least recently seen patterns.

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::{Miner, NONE, Node, WILDCARD_HASH, is_glob};

impl Miner {
    pub(super) fn new_node(&mut self, parent: u32, key: u64, root: Option<(u64, u32)>) -> u32 {
        let node = Node {
            parent,
            key,
            root,
            children: HashMap::new(),
            wildcard: NONE,
            clusters: Vec::new(),
            recent: VecDeque::new(),
        };
        match self.free_nodes.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// The leaf a new pattern for `m` goes to, creating the path (Drain's insertion rule).
    pub(super) fn leaf_for(&mut self, kind_hash: u64, hashes: &[u64]) -> u32 {
        let root_key = (kind_hash, hashes.len() as u32);
        let mut node = match self.roots.get(&root_key) {
            Some(&n) => n,
            None => {
                let n = self.new_node(NONE, kind_hash, Some(root_key));
                self.roots.insert(root_key, n);
                n
            }
        };
        for &h in hashes.iter().take(self.cfg.depth - 2) {
            let h = route(h);
            let (existing, wildcard, children) = {
                let n = &self.nodes[node as usize];
                (n.children.get(&h).copied(), n.wildcard, n.children.len())
            };
            node = if let Some(c) = existing {
                c
            } else if h == WILDCARD_HASH || children + 1 >= self.cfg.max_children {
                if wildcard == NONE {
                    let w = self.new_node(node, WILDCARD_HASH, None);
                    self.nodes[node as usize].wildcard = w;
                    w
                } else {
                    wildcard
                }
            } else {
                let c = self.new_node(node, h, None);
                self.nodes[node as usize].children.insert(h, c);
                c
            };
        }
        node
    }

    /// Drops the least recently seen tenth of the patterns, and the tree nodes left empty.
    pub(super) fn evict(&mut self) {
        let target = self.cfg.max_patterns - self.cfg.max_patterns / 10;
        let mut ticks: Vec<(u64, u32)> =
            self.clusters.iter().enumerate().filter_map(|(i, c)| c.as_ref().map(|c| (c.last_tick, i as u32))).collect();
        let n = ticks.len().saturating_sub(target);
        if n == 0 {
            return;
        }
        ticks.select_nth_unstable(n - 1);
        for &(_, slot) in &ticks[..n] {
            let c = self.clusters[slot as usize].take().expect("listed clusters are live");
            self.free_clusters.push(slot);
            self.live -= 1;
            self.evicted += 1;
            let leaf = &mut self.nodes[c.leaf as usize].clusters;
            if let Some(pos) = leaf.iter().position(|&s| s == slot) {
                leaf.swap_remove(pos);
            }
            self.prune(c.leaf);
        }
    }

    pub(super) fn prune(&mut self, mut node: u32) {
        loop {
            let n = &self.nodes[node as usize];
            if !n.clusters.is_empty() || !n.children.is_empty() || n.wildcard != NONE {
                return;
            }
            let (parent, key, root) = (n.parent, n.key, n.root);
            self.free_nodes.push(node);
            if let Some(root) = root {
                self.roots.remove(&root);
                return;
            }
            let p = &mut self.nodes[parent as usize];
            if p.wildcard == node {
                p.wildcard = NONE;
            } else {
                p.children.remove(&key);
            }
            node = parent;
        }
    }
}

/// The tree key of a token: a glob (`rhost=<*>`) goes down the wildcard branch with the
/// wildcard, since the words it matches cannot be known in advance.
pub(super) fn route(h: u64) -> u64 {
    if is_glob(h) { WILDCARD_HASH } else { h }
}
