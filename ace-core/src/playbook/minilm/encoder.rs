//! The BERT encoder's forward pass over a batch of texts: every text's tokens are rows of one
//! matrix (no padding), so the dense layers are single matrix products (see `dense`) and
//! attention runs text by text, head by head.

use ndarray::{Array2, ArrayView2, Axis, Slice};
use pulp::Arch;
use safetensors::{Dtype, SafeTensors};

use super::dense::Linear;
use crate::error::{Error, Result};
use crate::playbook::embed::dot;

/// Layer normalisation over each row.
pub(super) struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn apply(&self, x: &mut Array2<f32>) {
        let n = self.weight.len() as f32;
        for mut row in x.rows_mut() {
            let mean = row.sum() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = (*v - mean) * inv * w + b;
            }
        }
    }
}

/// One transformer layer.
pub(super) struct Layer {
    /// The query, key and value projections as one product: their outputs side by side.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The encoder's shapes, from `config.json`.
pub(super) struct Shape {
    pub(super) hidden: usize,
    pub(super) heads: usize,
    pub(super) layers: usize,
    pub(super) intermediate: usize,
    pub(super) positions: usize,
    pub(super) vocab: usize,
    pub(super) eps: f32,
}

/// The encoder's weights.
pub(super) struct Encoder {
    words: Array2<f32>,
    positions: Array2<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
}

/// Reads the tensors of a `model.safetensors` file by name, checked for dtype and shape.
struct Tensors<'a> {
    file: SafeTensors<'a>,
    path: &'a str,
    arch: Arch,
}

impl Tensors<'_> {
    fn bad(&self, reason: String) -> Error {
        Error::Corrupt { what: self.path.to_owned(), reason }
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.file.tensor(name).map_err(|e| self.bad(format!("{name}: {e}")))?;
        if t.dtype() != Dtype::F32 {
            return Err(self.bad(format!("{name}: dtype {:?} (only F32 is read)", t.dtype())));
        }
        if t.shape() != shape {
            return Err(self.bad(format!("{name}: shape {:?}, expected {shape:?}", t.shape())));
        }
        Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>> {
        let data = self.get(name, &[rows, cols])?;
        Array2::from_shape_vec((rows, cols), data).map_err(|e| self.bad(format!("{name}: {e}")))
    }

    /// A dense layer's weight (`[outputs, inputs]`) and bias.
    fn dense(&self, prefix: &str, outputs: usize, inputs: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((
            self.get(&format!("{prefix}.weight"), &[outputs, inputs])?,
            self.get(&format!("{prefix}.bias"), &[outputs])?,
        ))
    }

    fn linear(&self, prefix: &str, outputs: usize, inputs: usize) -> Result<Linear> {
        Ok(Linear::new(&[self.dense(prefix, outputs, inputs)?], inputs, self.arch))
    }

    fn norm(&self, prefix: &str, n: usize, eps: f32) -> Result<Norm> {
        Ok(Norm {
            weight: self.get(&format!("{prefix}.weight"), &[n])?,
            bias: self.get(&format!("{prefix}.bias"), &[n])?,
            eps,
        })
    }
}

impl Encoder {
    /// Reads the weights of a BERT encoder from the bytes of `model.safetensors` (`path` names
    /// the file in errors).
    pub(super) fn read(bytes: &[u8], path: &str, shape: &Shape) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Corrupt { what: path.to_owned(), reason: e.to_string() })?;
        let t = Tensors { file, path, arch: Arch::new() };
        let (h, eps) = (shape.hidden, shape.eps);
        let mut layers = Vec::with_capacity(shape.layers);
        for l in 0..shape.layers {
            let p = format!("encoder.layer.{l}");
            let part = |name: &str| t.dense(&format!("{p}.attention.self.{name}"), h, h);
            layers.push(Layer {
                qkv: Linear::new(&[part("query")?, part("key")?, part("value")?], h, t.arch),
                attention_out: t.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: t.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                intermediate: t.linear(&format!("{p}.intermediate.dense"), shape.intermediate, h)?,
                output: t.linear(&format!("{p}.output.dense"), h, shape.intermediate)?,
                output_norm: t.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Encoder {
            words: t.matrix("embeddings.word_embeddings.weight", shape.vocab, h)?,
            positions: t.matrix("embeddings.position_embeddings.weight", shape.positions, h)?,
            token_type: t.get("embeddings.token_type_embeddings.weight", &[2, h])?,
            embedding_norm: t.norm("embeddings.LayerNorm", h, eps)?,
            layers,
            heads: shape.heads,
        })
    }

    pub(super) fn hidden(&self) -> usize {
        self.words.ncols()
    }

    /// The mean-pooled last hidden state of each text (`texts` are token ids, each at most the
    /// model's positions long), not yet normalised. The dense layers' outputs are split between
    /// `threads` threads.
    pub(super) fn pooled(&self, texts: &[&[u32]], threads: usize) -> Vec<Vec<f32>> {
        let h = self.hidden();
        let rows: usize = texts.iter().map(|ids| ids.len()).sum();
        let mut x = Array2::<f32>::zeros((rows, h));
        let mut r = 0;
        for ids in texts {
            for (p, &id) in ids.iter().enumerate() {
                let (word, pos) = (self.words.row(id as usize), self.positions.row(p));
                for (i, v) in x.row_mut(r).iter_mut().enumerate() {
                    *v = word[i] + pos[i] + self.token_type[i];
                }
                r += 1;
            }
        }
        self.embedding_norm.apply(&mut x);
        for layer in &self.layers {
            x = self.layer(layer, x.view(), texts, threads);
        }
        let mut start = 0;
        texts
            .iter()
            .map(|ids| {
                let rows = x.slice_axis(Axis(0), Slice::from(start..start + ids.len()));
                start += ids.len();
                rows.mean_axis(Axis(0)).map_or_else(|| vec![0.0; h], |m| m.to_vec())
            })
            .collect()
    }

    fn layer(&self, layer: &Layer, x: ArrayView2<'_, f32>, texts: &[&[u32]], threads: usize) -> Array2<f32> {
        let forward = |l: &Linear, x: ArrayView2<'_, f32>| {
            let x = x.as_standard_layout();
            let y = l.forward(x.as_slice().expect("a standard layout is one slice"), threads);
            Array2::from_shape_vec((x.nrows(), l.outputs()), y).expect("a product has a row of outputs a row")
        };
        let qkv = forward(&layer.qkv, x);
        let h = x.ncols();
        let mut context = Array2::<f32>::zeros((x.nrows(), h));
        let contiguous = "a new array is contiguous";
        let (qkv, out) = (qkv.as_slice().expect(contiguous), context.as_slice_mut().expect(contiguous));
        let head = h / self.heads;
        let scale = 1.0 / (head as f32).sqrt();
        let (mut start, mut scores) = (0, Vec::new());
        for ids in texts {
            let (rows, n) = (start..start + ids.len(), ids.len());
            start += n;
            let text = &qkv[rows.start * 3 * h..rows.end * 3 * h];
            for c in (0..h).step_by(head) {
                let t = Head { qkv: text, width: 3 * h, q: c, k: h + c, v: 2 * h + c, len: head };
                attend(&t, scale, &mut out[rows.start * h..rows.end * h], h, c, &mut scores);
            }
        }
        let mut attended = forward(&layer.attention_out, context.view());
        attended += &x;
        layer.attention_norm.apply(&mut attended);
        let mut inner = forward(&layer.intermediate, attended.view());
        inner.mapv_inplace(gelu);
        let mut out = forward(&layer.output, inner.view());
        out += &attended;
        layer.output_norm.apply(&mut out);
        out
    }
}

/// One text's query, key and value rows side by side (rows of `width`), and where one head's
/// columns start in each.
struct Head<'a> {
    qkv: &'a [f32],
    width: usize,
    q: usize,
    k: usize,
    v: usize,
    len: usize,
}

impl Head<'_> {
    fn at(&self, row: usize, col: usize) -> &[f32] {
        &self.qkv[row * self.width + col..][..self.len]
    }
}

/// One head's scaled dot-product attention for one text, `softmax(q k^T * scale) v`, into the
/// columns from `col` of `out` (rows of `out_width`). Plain loops: a head is 32 wide and a text
/// a few dozen tokens, too small for a packed matrix product to pay.
fn attend(t: &Head<'_>, scale: f32, out: &mut [f32], out_width: usize, col: usize, scores: &mut Vec<f32>) {
    let n = t.qkv.len() / t.width;
    for i in 0..n {
        let qi = t.at(i, t.q);
        scores.clear();
        scores.extend((0..n).map(|j| dot(qi, t.at(j, t.k)) * scale));
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        let oi = &mut out[i * out_width + col..][..t.len];
        for (j, s) in scores.iter().enumerate() {
            let p = s / sum;
            for (o, vj) in oi.iter_mut().zip(t.at(j, t.v)) {
                *o += p * vj;
            }
        }
    }
}

/// GELU with erf (the exact form BERT uses); erf to 1.5e-7 (Abramowitz and Stegun 7.1.26).
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

fn erf(x: f32) -> f32 {
    let (sign, x) = (x.signum(), x.abs());
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    sign * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_and_erf_match_their_reference_values() {
        assert!((erf(0.5) - 0.520_499_9).abs() < 1e-6);
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-5);
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn attention_weights_the_values_by_the_softmax_of_the_scores() {
        // One text of two tokens; q, k and v side by side, a head of two columns each.
        let qkv = [1.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 4.0];
        let t = Head { qkv: &qkv, width: 6, q: 0, k: 2, v: 4, len: 2 };
        let mut out = [0.0f32; 6];
        attend(&t, 1.0, &mut out, 3, 1, &mut Vec::new());
        let p = 1.0 / (1.0 + (-1.0f32).exp());
        let want = [0.0, 2.0 * p, 4.0 * (1.0 - p), 0.0, 2.0 * (1.0 - p), 4.0 * p];
        assert!(out.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{out:?}");
    }
}
