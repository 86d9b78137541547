//! BM25 over a domain's bullets, maintained incrementally (add and remove one bullet at a time).

use hashbrown::HashMap;

use super::embed::words;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// Postings per term: (slot, term frequency).
#[derive(Default)]
pub(crate) struct Bm25 {
    postings: HashMap<String, Vec<(u32, u16)>>,
    lengths: Vec<u32>,
    total: u64,
    docs: u32,
}

impl Bm25 {
    /// Indexes `text` as the bullet in `slot` (slots are dense and only grow).
    pub fn add(&mut self, slot: u32, text: &str) {
        let mut tf: HashMap<String, u16> = HashMap::new();
        let mut len = 0u32;
        for w in words(text) {
            let n = tf.entry(w).or_insert(0);
            *n = n.saturating_add(1);
            len += 1;
        }
        for (term, n) in tf {
            self.postings.entry(term).or_default().push((slot, n));
        }
        if self.lengths.len() <= slot as usize {
            self.lengths.resize(slot as usize + 1, 0);
        }
        self.lengths[slot as usize] = len;
        self.total += u64::from(len);
        self.docs += 1;
    }

    /// Removes the bullet in `slot`, indexed with `text`.
    pub fn remove(&mut self, slot: u32, text: &str) {
        let mut seen: Vec<String> = words(text).collect();
        seen.sort_unstable();
        seen.dedup();
        for term in seen {
            if let Some(list) = self.postings.get_mut(&term) {
                list.retain(|(s, _)| *s != slot);
                if list.is_empty() {
                    self.postings.remove(&term);
                }
            }
        }
        if let Some(len) = self.lengths.get_mut(slot as usize) {
            self.total -= u64::from(*len);
            *len = 0;
        }
        self.docs = self.docs.saturating_sub(1);
    }

    /// The `k` best-scoring slots for `query` by its `rarest` rarest terms only (a near-copy of
    /// a text shares its rarest words, and common words would visit most of the playbook), using
    /// `scratch` (resized to the slots) for the sums.
    pub fn top(&self, query: &str, k: usize, rarest: usize, scratch: &mut Vec<f32>) -> Vec<(u32, f32)> {
        scratch.clear();
        scratch.resize(self.lengths.len(), 0.0);
        let mut terms: Vec<String> = words(query).collect();
        terms.sort_unstable();
        terms.dedup();
        terms.sort_by_key(|t| self.postings.get(t).map_or(usize::MAX, Vec::len));
        terms.truncate(rarest);
        let mut touched: Vec<u32> = Vec::new();
        self.each_term(&terms, |slot, s| {
            let cell = &mut scratch[slot as usize];
            if *cell == 0.0 {
                touched.push(slot);
            }
            *cell += s;
        });
        let mut out: Vec<(u32, f32)> = touched.into_iter().map(|slot| (slot, scratch[slot as usize])).collect();
        if out.len() > k {
            out.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1));
            out.truncate(k);
        }
        out
    }

    /// Adds each slot's BM25 score for `query` into `scores` (indexed by slot).
    pub fn score(&self, query: &str, scores: &mut [f32]) {
        self.each(query, |slot, s| {
            if let Some(cell) = scores.get_mut(slot as usize) {
                *cell += s;
            }
        });
    }

    fn each(&self, query: &str, f: impl FnMut(u32, f32)) {
        let mut terms: Vec<String> = words(query).collect();
        terms.sort_unstable();
        terms.dedup();
        self.each_term(&terms, f);
    }

    fn each_term(&self, terms: &[String], mut f: impl FnMut(u32, f32)) {
        if self.docs == 0 {
            return;
        }
        let avg = self.total as f32 / self.docs as f32;
        for term in terms {
            let Some(list) = self.postings.get(term) else { continue };
            let df = list.len() as f32;
            let idf = (1.0 + (self.docs as f32 - df + 0.5) / (df + 0.5)).ln();
            for &(slot, tf) in list {
                let tf = f32::from(tf);
                let len = self.lengths[slot as usize] as f32;
                f(slot, idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg.max(1.0))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_terms_weigh_more_and_removal_is_complete() {
        let mut idx = Bm25::default();
        idx.add(0, "verify the booking total");
        idx.add(1, "the the the search api");
        idx.add(2, "retry the search api with backoff");
        let mut s = vec![0.0; 3];
        idx.score("booking", &mut s);
        assert!(s[0] > 0.0 && s[1] == 0.0 && s[2] == 0.0);
        let mut s = vec![0.0; 3];
        idx.score("search backoff", &mut s);
        assert!(s[2] > s[1] && s[1] > 0.0);
        idx.remove(2, "retry the search api with backoff");
        let mut s = vec![0.0; 3];
        idx.score("backoff", &mut s);
        assert_eq!(s, vec![0.0; 3]);
    }
}
