//! The encoder's dense layers, `y = x W^T + b`, for the short inputs a sentence gives (a few
//! dozen rows). A general matrix product copies the weights into cache-sized panels on every
//! call, which a sentence alone cannot amortise; here the weights are packed into those panels
//! once, when the model loads, and each call only reorders its own small input.
//!
//! The kernel is written once against `pulp`'s portable vectors and compiled for the widest
//! instruction set the processor offers (AVX2 with FMA or AVX-512 on x86-64, NEON on aarch64,
//! plain scalar code elsewhere), chosen at run time, so the shipped builds need no target flags.

use std::ops::Range;

use pulp::{Arch, Simd, WithSimd};

/// Rows of the input a kernel call multiplies at once: with two vectors of outputs a row, six
/// rows keep 12 accumulators, the two weight vectors and a broadcast in AVX2's 16 registers.
const ROWS: usize = 6;

/// A dense layer with its weight packed for the kernel. The outputs are cut into panels of
/// `width` columns (two of the processor's vectors); a panel holds, for each input, its
/// `width` weights side by side, so a call streams every weight once, in order. The last panel
/// is padded with zero weights.
pub(super) struct Linear {
    arch: Arch,
    width: usize,
    inputs: usize,
    packed: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    /// Packs layers given as PyTorch stores them (`weight` row-major `[outputs, inputs]`, then
    /// `bias`); with several, their outputs come side by side (they read the same input: the
    /// query, key and value projections).
    pub(super) fn new(parts: &[(Vec<f32>, Vec<f32>)], inputs: usize, arch: Arch) -> Linear {
        let weight: Vec<f32> = parts.iter().flat_map(|(w, _)| w.iter().copied()).collect();
        let bias: Vec<f32> = parts.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        let width = 2 * arch.dispatch(Lanes);
        let outputs = bias.len();
        debug_assert_eq!(weight.len(), outputs * inputs, "weights and bias agree (checked on read)");
        let mut packed = Vec::with_capacity(outputs.div_ceil(width) * width * inputs);
        for first in (0..outputs).step_by(width) {
            for k in 0..inputs {
                packed.extend((first..first + width).map(|o| if o < outputs { weight[o * inputs + k] } else { 0.0 }));
            }
        }
        Linear { arch, width, inputs, packed, bias }
    }

    pub(super) fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `x` holds `x.len() / inputs` rows of `inputs` values; returns as many rows of outputs.
    /// With `threads` > 1 the panels are shared between that many threads. A layer has inputs
    /// (`MiniLm::load` refuses a model with no hidden or intermediate units).
    pub(super) fn forward(&self, x: &[f32], threads: usize) -> Vec<f32> {
        let (n, rows) = (self.inputs, x.len() / self.inputs);
        // The input reordered for the kernel: blocks of `ROWS` rows, each input's values for
        // the block's rows side by side.
        let mut blocks = vec![0.0f32; x.len()];
        for (block, out) in x.chunks(ROWS * n).zip(blocks.chunks_mut(ROWS * n)) {
            let r = block.len() / n;
            for (i, row) in block.chunks_exact(n).enumerate() {
                for (to, v) in out[i..].iter_mut().step_by(r).zip(row) {
                    *to = *v;
                }
            }
        }
        let (outputs, width) = (self.outputs(), self.width);
        let panels = outputs.div_ceil(width);
        let threads = threads.clamp(1, panels.max(1));
        if threads == 1 && outputs % width == 0 {
            // One thread and no padded panel: straight into the rows, from the bias.
            let mut y: Vec<f32> = (0..rows).flat_map(|_| self.bias.iter().copied()).collect();
            let job = Panels {
                layer: self,
                blocks: &blocks,
                rows,
                panels: 0..panels,
                out: &mut y,
                step: width,
                stride: outputs,
            };
            self.arch.dispatch(job);
            return y;
        }
        // Each thread fills its own panels (a panel's rows one after another), then they are
        // put back in rows, with the bias.
        let per = panels.div_ceil(threads);
        let mut out = vec![0.0f32; panels * rows * width];
        let chunks = out.chunks_mut((per * rows * width).max(1));
        std::thread::scope(|s| {
            let mut jobs = chunks.enumerate().map(|(t, out)| Panels {
                layer: self,
                blocks: &blocks,
                rows,
                panels: t * per..((t + 1) * per).min(panels),
                out,
                step: rows * width,
                stride: width,
            });
            let first = jobs.next();
            for job in jobs {
                s.spawn(move || self.arch.dispatch(job));
            }
            if let Some(job) = first {
                self.arch.dispatch(job);
            }
        });
        let mut y = vec![0.0f32; rows * outputs];
        for (r, y) in y.chunks_exact_mut(outputs.max(1)).enumerate() {
            for ((y, bias), panel) in
                y.chunks_mut(width).zip(self.bias.chunks(width)).zip(out.chunks_exact(rows * width))
            {
                for ((y, b), v) in y.iter_mut().zip(bias).zip(&panel[r * width..]) {
                    *y = v + b;
                }
            }
        }
        y
    }
}

/// How many `f32` a vector of the chosen instruction set holds.
struct Lanes;

impl WithSimd for Lanes {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> usize {
        S::F32_LANES
    }
}

/// One thread's share of a product: `panels` of the layer against every block of the input,
/// added to `out`, where the panel `panels.start + i`'s outputs for row `r` start at
/// `i * step + r * stride`.
struct Panels<'a> {
    layer: &'a Linear,
    blocks: &'a [f32],
    rows: usize,
    panels: Range<usize>,
    out: &'a mut [f32],
    step: usize,
    stride: usize,
}

impl WithSimd for Panels<'_> {
    type Output = ();

    /// Panel by panel, every block of rows against the panel's weights: a panel (24-96 KiB
    /// for this model at AVX2's width) is read from memory once and stays in the core's cache
    /// for the blocks after the first. Blocking over the inputs and rows as a general product
    /// does (a 16 KiB slice of a panel for 48 rows at a time) measured slower on every batch
    /// size here, one sentence or 32.
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Panels { layer, blocks, rows, panels, out, step, stride } = self;
        let (n, width) = (layer.inputs, layer.width);
        for (i, p) in panels.enumerate() {
            let panel = &layer.packed[p * n * width..(p + 1) * n * width];
            let (weights, _) = S::as_simd_f32s(panel).0.as_chunks::<2>();
            for (first, block) in (0..rows).step_by(ROWS).zip(blocks.chunks(ROWS * n)) {
                let out = Rows { out: &mut out[i * step + first * stride..], stride, width };
                match block.len() / n {
                    6 => kernel::<S, 6>(simd, weights, block, out),
                    5 => kernel::<S, 5>(simd, weights, block, out),
                    4 => kernel::<S, 4>(simd, weights, block, out),
                    3 => kernel::<S, 3>(simd, weights, block, out),
                    2 => kernel::<S, 2>(simd, weights, block, out),
                    _ => kernel::<S, 1>(simd, weights, block, out),
                }
            }
        }
    }
}

/// Where a kernel call's rows of outputs are: row `r`'s `width` outputs from `r * stride`.
struct Rows<'a> {
    out: &'a mut [f32],
    stride: usize,
    width: usize,
}

/// `R` rows of one block times a slice of one panel, added to `out`: for each input, the
/// rows' values broadcast and multiplied into the panel's two vectors of weights, summed in
/// `2 R` accumulators.
#[inline(always)]
fn kernel<S: Simd, const R: usize>(simd: S, weights: &[[S::f32s; 2]], block: &[f32], out: Rows<'_>) {
    let Rows { out, stride, width } = out;
    let mut acc = [[simd.splat_f32s(0.0); 2]; R];
    for (r, acc) in acc.iter_mut().enumerate() {
        let (row, _) = S::as_simd_f32s(&out[r * stride..r * stride + width]);
        *acc = [row[0], row[1]];
    }
    let (values, _) = block.as_chunks::<R>();
    for ([w0, w1], x) in weights.iter().zip(values) {
        for r in 0..R {
            let v = simd.splat_f32s(x[r]);
            acc[r][0] = simd.mul_add_e_f32s(v, *w0, acc[r][0]);
            acc[r][1] = simd.mul_add_e_f32s(v, *w1, acc[r][1]);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let (row, _) = S::as_mut_simd_f32s(&mut out[r * stride..r * stride + width]);
        row[..2].copy_from_slice(acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product computed the plain way, for comparison.
    fn plain(parts: &[(Vec<f32>, Vec<f32>)], inputs: usize, x: &[f32]) -> Vec<f32> {
        let mut y = Vec::new();
        for row in x.chunks_exact(inputs) {
            for (w, b) in parts {
                for (o, bias) in b.iter().enumerate() {
                    y.push(bias + row.iter().zip(&w[o * inputs..]).map(|(a, w)| a * w).sum::<f32>());
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn products_match_the_plain_sum_for_every_row_count_panel_tail_and_thread_count() {
        for (inputs, arch) in [(37, Arch::new()), (300, Arch::new()), (37, Arch::Scalar), (300, Arch::Scalar)] {
            // Outputs that fill no panel evenly (13 + 30), as two layers side by side.
            let uneven = vec![(values(13 * inputs, 1), values(13, 2)), (values(30 * inputs, 3), values(30, 4))];
            // And outputs every vector width divides: one thread writes straight into the rows.
            let even = vec![(values(64 * inputs, 6), values(64, 7))];
            for parts in [uneven, even] {
                let layer = Linear::new(&parts, inputs, arch);
                // Every size of a last block of rows, and several blocks.
                for rows in [0, 1, 2, 3, 4, 5, 6, 7, 13, 25, 55] {
                    let x = values(rows * inputs, 5);
                    let want = plain(&parts, inputs, &x);
                    for threads in [1, 2, 3, 64] {
                        let got = layer.forward(&x, threads);
                        assert_eq!(got.len(), want.len());
                        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                        assert!(worst < 1e-4, "rows {rows}, threads {threads}: off by {worst}");
                    }
                }
            }
        }
    }
}
