//! A sentence-embedding model in pure Rust: BERT-style encoders such as all-MiniLM-L6-v2, read
//! from a local Hugging Face directory (`config.json`, `vocab.txt`, `model.safetensors`), mean
//! pooled and L2-normalised as sentence-transformers does. Behind the `minilm` cargo feature.
//!
//! No network, no native library. The weights are read with `safetensors`; the tokenizer is
//! BERT's uncased one as the model's `tokenizer.json` describes it (`tokenize`: accents
//! stripped, Unicode data from ICU4X); the dense layers multiply by weights packed once at load
//! for a SIMD kernel picked at run time (`dense`, on `pulp`), the rest of the forward pass is
//! `encoder`. A call embeds its texts in batches of similar length, one batch
//! a core. The built-in [`super::HashEmbedder`] stays the fast default; this one is for
//! playbooks where meaning matters more than speed.

mod dense;
mod encoder;
mod tokenize;

use std::path::Path;

use super::embed::{Embedder, normalise};
use crate::error::{Error, Result};
use encoder::{Encoder, Shape};
use tokenize::Tokenizer;

/// Texts a batch holds at most (sentence-transformers' default batch size).
const BATCH: usize = 32;

/// Config keys this encoder reads.
#[derive(Debug, serde::Deserialize)]
struct Config {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
    max_position_embeddings: usize,
    #[serde(default)]
    hidden_act: Option<String>,
}

fn default_eps() -> f32 {
    1e-12
}

/// A BERT-style sentence encoder (see the module docs).
pub struct MiniLm {
    tokenizer: Tokenizer,
    encoder: Encoder,
    threads: usize,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").field("hidden", &self.encoder.hidden()).finish_non_exhaustive()
    }
}

impl MiniLm {
    /// Loads the model in `dir` (a sentence-transformers or Hugging Face BERT directory). A
    /// missing or malformed file is a clear error.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = |name: &str| dir.join(name).display().to_string();
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| Error::invalid("model", format!("{}: {e}", path(name))))
        };
        let cfg: Config = serde_json::from_str(&read("config.json")?)
            .map_err(|e| Error::invalid("model", format!("{}: {e}", path("config.json"))))?;
        if cfg.hidden_act.as_deref().is_some_and(|a| a != "gelu")
            || cfg.num_attention_heads == 0
            || cfg.hidden_size == 0
            || cfg.intermediate_size == 0
            || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(Error::invalid(
                "model",
                "only BERT encoders with gelu, hidden and intermediate units and whole attention heads are supported",
            ));
        }
        // sentence-transformers truncates at max_seq_length (256 for all-MiniLM-L6-v2).
        let max_tokens = read("sentence_bert_config.json")
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map_or(cfg.max_position_embeddings, |m| m as usize)
            .min(cfg.max_position_embeddings);
        let tokenizer = Tokenizer::new(&read("vocab.txt")?, max_tokens)?;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| Error::invalid("model", format!("{}: {e}", path("model.safetensors"))))?;
        let shape = Shape {
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            layers: cfg.num_hidden_layers,
            intermediate: cfg.intermediate_size,
            positions: cfg.max_position_embeddings,
            vocab: tokenizer.vocab_len(),
            eps: cfg.layer_norm_eps,
        };
        let encoder = Encoder::read(&weights, &path("model.safetensors"), &shape)?;
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(MiniLm { tokenizer, encoder, threads })
    }

    /// The token ids the model reads for `text`: `[CLS]`, the WordPiece tokens of the
    /// normalised text, `[SEP]`, cut to the model's length (256 for all-MiniLM-L6-v2).
    #[must_use]
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text)
    }

    /// At most `n` threads embed one call's batches (the default: one a core). Returns `self`.
    #[must_use]
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }
}

impl Embedder for MiniLm {
    fn dim(&self) -> usize {
        self.encoder.hidden()
    }

    /// Tokenizes every text, sorts them by length and embeds them in batches of at most
    /// 32 texts, a batch a thread; a single batch splits its products between the
    /// threads instead. The vectors come back in the texts' order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let threads = self.threads.min(order.len()).max(1);
        let size = order.len().div_ceil(threads).clamp(1, BATCH);
        let batches: Vec<&[usize]> = order.chunks(size).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        // One batch: its matrix products are split between the threads.
        let inner = if batches.len() == 1 { self.threads } else { 1 };
        let work = || {
            let mut done = Vec::new();
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(batch) = batches.get(b) else { return done };
                let group: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
                done.extend(batch.iter().copied().zip(self.encoder.pooled(&group, inner)));
            }
        };
        let done: Vec<(usize, Vec<f32>)> = if threads == 1 || batches.len() == 1 {
            work()
        } else {
            std::thread::scope(|s| {
                let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
                let mut all = work();
                for h in helpers {
                    all.extend(h.join().unwrap_or_default());
                }
                all
            })
        };
        let mut out = vec![Vec::new(); texts.len()];
        for (i, mut v) in done {
            normalise(&mut v);
            out[i] = v;
        }
        if out.iter().any(Vec::is_empty) {
            return Err(Error::invalid("embedder", "a batch of the sentence model failed"));
        }
        Ok(out)
    }
}
