//! Embeddings: the [`Embedder`] trait and a built-in embedder that needs no model.

use crate::error::{Error, Result};

/// Turns texts into vectors of one dimension. Implementations: [`HashEmbedder`] (built in, no
/// model), a sentence-embedding model, or a Python or JS callable passed through a binding.
pub trait Embedder: Send + Sync + 'static {
    /// The vectors' dimension.
    fn dim(&self) -> usize;

    /// One vector per text, in order. The playbook L2-normalises them and refuses a wrong
    /// dimension or a non-finite value with an error (nothing is changed).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;

    /// Whether the vectors carry meaning (a sentence model) rather than shared words (true by
    /// default: a model plugged in is taken to be one). A semantic embedder makes de-dup scan the
    /// nearest bullets by embedding and merge paraphrases at the `semantic_*` thresholds of
    /// [`PlaybookConfig`](super::PlaybookConfig); a lexical one ([`HashEmbedder`]) finds nothing
    /// that the lexical index does not, so it keeps to that index and the stricter thresholds.
    fn semantic(&self) -> bool {
        true
    }
}

/// Hashed word unigrams and bigrams and character trigrams of the lower-cased words, L2
/// normalised: texts sharing words and word pieces are close. No model, about a microsecond per
/// short text.
#[derive(Clone, Copy, Debug)]
pub struct HashEmbedder {
    dim: usize,
}

impl Default for HashEmbedder {
    fn default() -> Self {
        HashEmbedder { dim: 256 }
    }
}

impl HashEmbedder {
    /// An embedder of `dim` dimensions (8 to 4096).
    pub fn new(dim: usize) -> Result<Self> {
        if !(8..=4096).contains(&dim) {
            return Err(Error::config("dim", &dim.to_string(), "must be between 8 and 4096"));
        }
        Ok(HashEmbedder { dim })
    }

    fn one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        let words: Vec<String> = words(text).collect();
        let mut add = |h: u64, w: f32| {
            let i = (h % self.dim as u64) as usize;
            // The sign spreads collisions around zero instead of piling them up.
            v[i] += if h & (1 << 63) != 0 { -w } else { w };
        };
        for (i, word) in words.iter().enumerate() {
            add(fnv(word.as_bytes(), 1), 1.0);
            // A crude stem (the first five letters): `charge` and `charging` share it.
            if word.len() > 5 {
                add(fnv(&word.as_bytes()[..5], 4), 0.7);
            }
            if let Some(next) = words.get(i + 1) {
                add(fnv(next.as_bytes(), fnv(word.as_bytes(), 2)), 0.5);
            }
            let padded: Vec<u8> = [b" ".as_slice(), word.as_bytes(), b" "].concat();
            for gram in padded.windows(3) {
                add(fnv(gram, 3), 0.5);
            }
        }
        normalise(&mut v);
        v
    }
}

impl Embedder for HashEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.one(t)).collect())
    }

    /// Hashed words: close vectors share words, not meaning.
    fn semantic(&self) -> bool {
        false
    }
}

/// Lower-cased alphanumeric words.
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ (h >> 29)
}

/// Scales `v` to unit length (a zero vector stays zero).
pub(crate) fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dot product (cosine for unit vectors), in eight independent lanes so the compiler can use
/// vector instructions (a plain float sum must be evaluated in order).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Calls `embedder` and checks what it returned: one vector per text, of its dimension, finite;
/// then normalises them.
pub(crate) fn checked(embedder: &dyn Embedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let dim = embedder.dim();
    let mut vectors = embedder.embed(texts)?;
    if vectors.len() != texts.len() {
        return Err(Error::invalid(
            "embedder",
            format!("returned {} vectors for {} texts", vectors.len(), texts.len()),
        ));
    }
    for v in &mut vectors {
        if v.len() != dim {
            return Err(Error::invalid(
                "embedder",
                format!("returned a vector of dimension {}, expected {dim}", v.len()),
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid("embedder", "returned a vector with NaN or infinite values"));
        }
        normalise(v);
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_texts_are_close_and_different_ones_are_not() {
        let e = HashEmbedder::default();
        let v = e
            .embed(&[
                "Always verify the booking total before charging the card",
                "always verify the booking total before charging the card.",
                "Always verify the booking total before you charge the card",
                "Use exponential backoff when the search API rate limits",
            ])
            .unwrap();
        assert!(dot(&v[0], &v[1]) > 0.999);
        assert!(dot(&v[0], &v[2]) > 0.8, "{}", dot(&v[0], &v[2]));
        assert!(dot(&v[0], &v[3]) < 0.4, "{}", dot(&v[0], &v[3]));
        assert!((dot(&v[3], &v[3]) - 1.0).abs() < 1e-5);
        assert_eq!(HashEmbedder::new(4).unwrap_err().code(), "config");
    }
}
