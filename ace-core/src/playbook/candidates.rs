//! Which bullets a new insight is compared with before it is added: the one whose normalised
//! words are the same, the best BM25 matches on its rarest words, and, with a semantic
//! embedder, its nearest bullets by embedding. Each source is cheap on its own; together they
//! find a near-copy (shared rare words) and a paraphrase (shared meaning, different words).

use super::domain::{Domain, fnv64, normalised};
use super::embed;

/// BM25 candidates checked for duplicates per insight.
pub(super) const DUP_CANDIDATES: usize = 32;
/// The insight's rarest terms that pick the BM25 candidates.
pub(super) const RAREST_TERMS: usize = 2;
/// Bullets an insight's embedding is compared with exactly, over the domain's contiguous
/// matrix: all of them up to this many, else the most recently added this many (a documented
/// cap rather than an approximate index: at 384 dimensions that is 19 million multiply-adds per
/// insight, small beside the sentence model's forward pass for the same insight).
pub const SEMANTIC_SCAN_MAX: usize = 50_000;

/// The bullet most like the insight (`key` its normalised words, `v` its unit vector) and their
/// cosine (1.0 for the same words), or `None` in an empty domain.
pub(super) fn best(
    d: &Domain,
    key: &str,
    content: &str,
    v: &[f32],
    dim: usize,
    semantic: bool,
    scratch: &mut Vec<f32>,
) -> Option<(usize, f32)> {
    let exact =
        d.exact.get(&fnv64(key.as_bytes())).copied().filter(|&slot| normalised(&d.state.bullets[slot].content) == key);
    if let Some(slot) = exact {
        return Some((slot, 1.0));
    }
    let cosine = |slot: usize| embed::dot(v, &d.vectors[slot * dim..(slot + 1) * dim]);
    let lexical = d
        .bm25
        .top(content, DUP_CANDIDATES, RAREST_TERMS, scratch)
        .into_iter()
        .map(|(s, _)| (s as usize, cosine(s as usize)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let nearest = if semantic { nearest(&d.vectors, dim, v) } else { None };
    match (lexical, nearest) {
        (Some(a), Some(b)) => Some(if b.1 > a.1 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The nearest of the last [`SEMANTIC_SCAN_MAX`] rows of `matrix` (rows of `dim`) to `v`.
fn nearest(matrix: &[f32], dim: usize, v: &[f32]) -> Option<(usize, f32)> {
    let rows = matrix.len() / dim.max(1);
    let first = rows.saturating_sub(SEMANTIC_SCAN_MAX);
    (first..rows)
        .zip(matrix[first * dim..].chunks_exact(dim))
        .map(|(slot, row)| (slot, embed::dot(v, row)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_the_nearest_row_among_the_newest() {
        let matrix = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        assert_eq!(nearest(&matrix, 2, &[0.0, 1.0]).map(|(s, _)| s), Some(1));
        assert_eq!(nearest(&matrix, 2, &[0.8, 0.6]).map(|(s, _)| s), Some(2));
        assert_eq!(nearest(&[], 2, &[1.0, 0.0]), None);
    }
}
