//! A sentence-embedding model in pure Rust: BERT-style encoders such as all-MiniLM-L6-v2, read
//! from a local Hugging Face directory (`config.json`, `vocab.txt`, `model.safetensors`), mean
//! pooled and L2-normalised as sentence-transformers does. Behind the `minilm` cargo feature.
//!
//! No network, no native library: the safetensors file is read directly (little-endian f32), the
//! tokenizer is BERT's basic tokenizer (lower-casing, punctuation split, CJK characters apart)
//! followed by greedy longest-match WordPiece, and the forward pass is plain loops written to
//! vectorise. Accented letters are kept as they are (BERT's uncased models strip them; only
//! non-ASCII text differs). About 14 ms per short sentence on one core here: it is for
//! playbooks where meaning matters more than speed; the built-in [`super::HashEmbedder`] is the
//! fast default.

use std::path::Path;

use hashbrown::HashMap;

use super::embed::{Embedder, dot, normalise};
use crate::error::{Error, Result};

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

struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Linear {
    /// `x` is `tokens` rows of `inputs`; returns `tokens` rows of the outputs.
    fn forward(&self, x: &[f32], tokens: usize) -> Vec<f32> {
        let outputs = self.bias.len();
        let mut y = vec![0f32; tokens * outputs];
        // Row-major weight [outputs, inputs]: each weight row is read once for every token.
        for (o, row) in self.weight.chunks_exact(self.inputs).enumerate() {
            for t in 0..tokens {
                y[t * outputs + o] = self.bias[o] + dot(&x[t * self.inputs..(t + 1) * self.inputs], row);
            }
        }
        y
    }
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn apply(&self, x: &mut [f32]) {
        let n = self.weight.len();
        for row in x.chunks_exact_mut(n) {
            let mean = row.iter().sum::<f32>() / n as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for (i, v) in row.iter_mut().enumerate() {
                *v = (*v - mean) * inv * self.weight[i] + self.bias[i];
            }
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// A BERT-style sentence encoder (see the module docs).
pub struct MiniLm {
    vocab: HashMap<String, u32>,
    words: Vec<f32>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    max_tokens: usize,
    cls: u32,
    sep: u32,
    unk: u32,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("hidden", &self.hidden)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

/// The tensors of a safetensors file, as f32.
struct Tensors {
    header: serde_json::Map<String, serde_json::Value>,
    data: Vec<u8>,
    file: String,
}

impl Tensors {
    fn open(path: &Path) -> Result<Self> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::invalid("model", format!("{file}: {e}")))?;
        let bad = |reason: &str| Error::Corrupt { what: file.clone(), reason: reason.to_owned() };
        let len =
            u64::from_le_bytes(bytes.get(..8).ok_or_else(|| bad("too short"))?.try_into().expect("8 bytes")) as usize;
        let header = bytes.get(8..8usize.saturating_add(len)).ok_or_else(|| bad("header past the end"))?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|e| bad(&format!("header: {e}")))?;
        let data = bytes[8 + len..].to_vec();
        Ok(Tensors { header, data, file })
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let bad = |reason: String| Error::Corrupt { what: self.file.clone(), reason };
        let info = self.header.get(name).ok_or_else(|| bad(format!("no tensor {name}")))?;
        if info["dtype"] != "F32" {
            return Err(bad(format!("{name}: dtype {} (only F32 is read)", info["dtype"])));
        }
        let got: Vec<usize> = info["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_u64()).map(|d| d as usize).collect())
            .unwrap_or_default();
        if got != shape {
            return Err(bad(format!("{name}: shape {got:?}, expected {shape:?}")));
        }
        let offsets = info["data_offsets"].as_array().ok_or_else(|| bad(format!("{name}: no offsets")))?;
        let (start, end) = (
            offsets.first().and_then(serde_json::Value::as_u64).unwrap_or(0) as usize,
            offsets.get(1).and_then(serde_json::Value::as_u64).unwrap_or(0) as usize,
        );
        let raw = self.data.get(start..end).ok_or_else(|| bad(format!("{name}: data past the end")))?;
        if raw.len() != shape.iter().product::<usize>() * 4 {
            return Err(bad(format!("{name}: {} bytes for shape {shape:?}", raw.len())));
        }
        Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn linear(&self, prefix: &str, outputs: usize, inputs: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.get(&format!("{prefix}.weight"), &[outputs, inputs])?,
            bias: self.get(&format!("{prefix}.bias"), &[outputs])?,
            inputs,
        })
    }

    fn norm(&self, prefix: &str, n: usize, eps: f32) -> Result<Norm> {
        Ok(Norm {
            weight: self.get(&format!("{prefix}.weight"), &[n])?,
            bias: self.get(&format!("{prefix}.bias"), &[n])?,
            eps,
        })
    }
}

impl MiniLm {
    /// Loads the model in `dir` (a sentence-transformers or Hugging Face BERT directory). A
    /// missing or malformed file is a clear error.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| Error::invalid("model", format!("{}: {e}", dir.join(name).display())))
        };
        let cfg: Config = serde_json::from_str(&read("config.json")?)
            .map_err(|e| Error::invalid("model", format!("{}: {e}", dir.join("config.json").display())))?;
        if cfg.hidden_act.as_deref().is_some_and(|a| a != "gelu")
            || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads.max(1))
        {
            return Err(Error::invalid(
                "model",
                "only BERT encoders with gelu and whole attention heads are supported",
            ));
        }
        let vocab: HashMap<String, u32> =
            read("vocab.txt")?.lines().enumerate().map(|(i, w)| (w.to_owned(), i as u32)).collect();
        let id =
            |t: &str| vocab.get(t).copied().ok_or_else(|| Error::invalid("model", format!("vocab.txt has no {t}")));
        let (cls, sep, unk) = (id("[CLS]")?, id("[SEP]")?, id("[UNK]")?);
        // sentence-transformers truncates at max_seq_length (256 for all-MiniLM-L6-v2).
        let max_tokens = read("sentence_bert_config.json")
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map_or(cfg.max_position_embeddings, |m| m as usize)
            .min(cfg.max_position_embeddings);
        let t = Tensors::open(&dir.join("model.safetensors"))?;
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            layers.push(Layer {
                query: t.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: t.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: t.linear(&format!("{p}.attention.self.value"), h, h)?,
                attention_out: t.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: t.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                intermediate: t.linear(&format!("{p}.intermediate.dense"), cfg.intermediate_size, h)?,
                output: t.linear(&format!("{p}.output.dense"), h, cfg.intermediate_size)?,
                output_norm: t.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(MiniLm {
            words: t.get("embeddings.word_embeddings.weight", &[vocab.len(), h])?,
            positions: t.get("embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?,
            token_type: t.get("embeddings.token_type_embeddings.weight", &[2, h])?,
            embedding_norm: t.norm("embeddings.LayerNorm", h, eps)?,
            vocab,
            layers,
            hidden: h,
            heads: cfg.num_attention_heads,
            max_tokens,
            cls,
            sep,
            unk,
        })
    }

    /// Token ids of `text`: `[CLS]`, WordPiece tokens, `[SEP]`, truncated to the model's length.
    fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.cls];
        let room = self.max_tokens.saturating_sub(2);
        'words: for word in basic_tokens(text) {
            let chars: Vec<char> = word.chars().collect();
            if chars.len() > 100 {
                ids.push(self.unk);
                continue;
            }
            let mut pieces = Vec::new();
            let mut start = 0;
            while start < chars.len() {
                let mut end = chars.len();
                let found = loop {
                    if end == start {
                        break None;
                    }
                    let piece: String = chars[start..end].iter().collect();
                    let piece = if start > 0 { format!("##{piece}") } else { piece };
                    if let Some(&id) = self.vocab.get(&piece) {
                        break Some(id);
                    }
                    end -= 1;
                };
                match found {
                    Some(id) => pieces.push(id),
                    None => {
                        if ids.len() > room {
                            break 'words;
                        }
                        ids.push(self.unk);
                        continue 'words;
                    }
                }
                start = end;
            }
            for id in pieces {
                if ids.len() > room {
                    break 'words;
                }
                ids.push(id);
            }
        }
        ids.push(self.sep);
        ids
    }

    /// The sentence embedding of `text`: mean of the last hidden states, L2-normalised.
    fn encode(&self, text: &str) -> Vec<f32> {
        let ids = self.tokenize(text);
        let (n, h) = (ids.len(), self.hidden);
        let mut x = vec![0f32; n * h];
        for (t, &id) in ids.iter().enumerate() {
            let row = &mut x[t * h..(t + 1) * h];
            let word = &self.words[id as usize * h..(id as usize + 1) * h];
            let pos = &self.positions[t * h..(t + 1) * h];
            for i in 0..h {
                row[i] = word[i] + pos[i] + self.token_type[i];
            }
        }
        self.embedding_norm.apply(&mut x);
        let head = h / self.heads;
        let scale = 1.0 / (head as f32).sqrt();
        for layer in &self.layers {
            let (q, k, v) = (layer.query.forward(&x, n), layer.key.forward(&x, n), layer.value.forward(&x, n));
            let mut context = vec![0f32; n * h];
            let mut scores = vec![0f32; n];
            for hd in 0..self.heads {
                let cols = hd * head..(hd + 1) * head;
                for i in 0..n {
                    let qi = &q[i * h..][cols.clone()];
                    for (j, s) in scores.iter_mut().enumerate() {
                        *s = dot(qi, &k[j * h..][cols.clone()]) * scale;
                    }
                    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for s in &mut scores {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    let out = &mut context[i * h..][cols.clone()];
                    for (j, s) in scores.iter().enumerate() {
                        let p = s / sum;
                        for (o, vj) in out.iter_mut().zip(&v[j * h..][cols.clone()]) {
                            *o += p * vj;
                        }
                    }
                }
            }
            let mut attended = layer.attention_out.forward(&context, n);
            attended.iter_mut().zip(&x).for_each(|(a, r)| *a += r);
            layer.attention_norm.apply(&mut attended);
            let mut inner = layer.intermediate.forward(&attended, n);
            inner.iter_mut().for_each(|v| *v = gelu(*v));
            let mut out = layer.output.forward(&inner, n);
            out.iter_mut().zip(&attended).for_each(|(o, r)| *o += r);
            layer.output_norm.apply(&mut out);
            x = out;
        }
        let mut pooled = vec![0f32; h];
        for row in x.chunks_exact(h) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v / n as f32);
        }
        normalise(&mut pooled);
        pooled
    }
}

impl Embedder for MiniLm {
    fn dim(&self) -> usize {
        self.hidden
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.encode(t)).collect())
    }
}

/// BERT's basic tokenizer: lower-case, drop control characters, split on whitespace, split off
/// punctuation, and set CJK ideographs apart.
fn basic_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    for c in text.chars() {
        if c == '\u{0}' || c == '\u{fffd}' || (c.is_control() && !c.is_whitespace()) {
            continue;
        }
        if c.is_whitespace() {
            flush(&mut word, &mut out);
        } else if is_punctuation(c) || is_cjk(c) {
            flush(&mut word, &mut out);
            out.push(c.to_string());
        } else {
            word.extend(c.to_lowercase());
        }
    }
    flush(&mut word, &mut out);
    out
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace())
}

fn is_cjk(c: char) -> bool {
    matches!(u32::from(c), 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// GELU with erf (the exact form BERT uses); erf to 1.5e-7 (Abramowitz and Stegun 7.1.26).
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

fn erf(x: f32) -> f32 {
    let sign = x.signum();
    let x = f64::from(x.abs());
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_tokens_split_punctuation_and_lower_case() {
        assert_eq!(basic_tokens("It's so SUNNY outside!"), ["it", "'", "s", "so", "sunny", "outside", "!"]);
        assert_eq!(basic_tokens("a\tb\u{7}c 中文"), ["a", "bc", "中", "文"]);
        assert!((erf(0.5) - 0.520_499_9).abs() < 1e-6);
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-5);
    }
}
