//! Quantizing matmul operands with a recipe, and multiplying them as the hardware does.
//!
//! Both operands of `x · wᵀ` are row-major with the reduction dimension K contiguous, so every
//! recipe works on rows: per-token (rows of `x`) and per-channel (rows of `w`) are the same
//! operation, and blocks and groups run along each row. A quantized [`Operand`] keeps the values
//! with any block scale folded in (exact in f32: block scales are powers of two or short E4M3
//! values) and, separately, a scale per row, which [`matmul`] applies after accumulation, as
//! cuBLASLt applies per-tensor and outer-vector scales.

pub mod recipe;

use std::collections::VecDeque;

use rayon::prelude::*;

pub use recipe::{AmaxAlgorithm, QuantSpec, Recipe, MX_BLOCK, NVFP4_BLOCK};

use crate::formats::minifloat::{FP4_E2M1, FP8_E4M3};
use crate::formats::scale::E8m0;
use crate::formats::{Format, Overflow};
use crate::linalg::matmul_nt;
use crate::tensor::Tensor;

/// A quantized matmul operand.
#[derive(Debug, Clone, PartialEq)]
pub struct Operand {
    /// Values in the format, block scales folded in.
    pub values: Tensor,
    /// A scale per row, applied to the product after accumulation; `None`: all 1.
    pub row_scales: Option<Vec<f32>>,
    /// Whether the values are integers, so that products accumulate exactly (as in int32).
    pub integer: bool,
}

/// The amax of earlier steps, for delayed scaling.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AmaxHistory {
    amaxes: VecDeque<f32>,
}

impl AmaxHistory {
    /// The amax to scale with now: from the history, or `current` while the history is empty.
    /// Then `current` joins the history, the oldest leaving beyond `length` steps.
    fn next(&mut self, current: f32, length: usize, algorithm: AmaxAlgorithm) -> f32 {
        let amax = match algorithm {
            AmaxAlgorithm::Max => self.amaxes.iter().copied().reduce(f32::max),
            AmaxAlgorithm::MostRecent => self.amaxes.back().copied(),
        }
        .unwrap_or(current);
        self.amaxes.push_back(current);
        while self.amaxes.len() > length {
            self.amaxes.pop_front();
        }
        amax
    }
}

/// Largest magnitude of `values`; NaN if any is NaN (so that the scale, and the output, are NaN).
pub fn amax(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, &v| amax_step(m, v))
}

/// One step of [`amax`]: `f32::max` alone would drop a NaN.
fn amax_step(m: f32, v: f32) -> f32 {
    if v.is_nan() || m.is_nan() {
        f32::NAN
    } else {
        m.max(v.abs())
    }
}

/// [`amax`] of a whole tensor, over rayon's threads.
fn amax_parallel(values: &[f32]) -> f32 {
    values
        .par_chunks(PARALLEL_CHUNK)
        .map(amax)
        .reduce(|| 0.0, amax_step)
}

/// Elements per parallel task in whole-tensor passes.
const PARALLEL_CHUNK: usize = 1 << 14;

/// The scale that maps `amax` onto the format's largest value; 1 for an all-zero tensor.
pub fn scale_for(amax: f32, format: Format) -> f32 {
    if amax == 0.0 {
        1.0
    } else {
        amax / format.max_value()
    }
}

/// Rounds `values / scale` to `format`, saturating, in place.
fn scale_round(values: &mut [f32], scale: f32, format: Format) {
    values
        .iter_mut()
        .for_each(|v| *v = format.round(*v / scale, Overflow::Saturate));
}

/// Quantizes `tensor` as `spec` says; `history` is the amax history of this tensor's site, used
/// and updated by delayed scaling.
pub fn quantize(tensor: &Tensor, spec: QuantSpec, history: &mut AmaxHistory) -> Operand {
    let format = spec.format;
    // A parallel copy: a weight is hundreds of megabytes.
    let mut values = tensor.map(|v| v);
    let cols = tensor.cols.max(1);
    let row_scales = match spec.recipe {
        Recipe::Cast => {
            values
                .data
                .par_chunks_mut(PARALLEL_CHUNK)
                .for_each(|chunk| format.round_slice(chunk));
            None
        }
        Recipe::PerTensor | Recipe::Delayed { .. } => {
            let current = amax_parallel(&values.data);
            let amax = match spec.recipe {
                Recipe::Delayed {
                    history: length,
                    algorithm,
                } => history.next(current, length, algorithm),
                _ => current,
            };
            let scale = scale_for(amax, format);
            values
                .data
                .par_chunks_mut(PARALLEL_CHUNK)
                .for_each(|chunk| scale_round(chunk, scale, format));
            Some(vec![scale; tensor.rows])
        }
        Recipe::PerChannel | Recipe::PerToken => Some(
            values
                .data
                .par_chunks_mut(cols)
                .map(|row| {
                    let scale = scale_for(amax(row), format);
                    scale_round(row, scale, format);
                    scale
                })
                .collect(),
        ),
        Recipe::Mx => {
            values.data.par_chunks_mut(cols).for_each(|row| {
                row.chunks_mut(MX_BLOCK)
                    .for_each(|block| mx_block(block, format))
            });
            None
        }
        Recipe::Nvfp4 => {
            let tensor_scale = nvfp4_tensor_scale(amax_parallel(&values.data));
            values.data.par_chunks_mut(cols).for_each(|row| {
                row.chunks_mut(NVFP4_BLOCK)
                    .for_each(|block| nvfp4_block(block, tensor_scale))
            });
            Some(vec![1.0 / tensor_scale; tensor.rows])
        }
        Recipe::Group { size } => {
            values.data.par_chunks_mut(cols).for_each(|row| {
                row.chunks_mut(size).for_each(|group| {
                    let scale = scale_for(amax(group), format);
                    group
                        .iter_mut()
                        .for_each(|v| *v = format.round(*v / scale, Overflow::Saturate) * scale);
                })
            });
            None
        }
    };
    Operand {
        values,
        row_scales,
        integer: format.is_integer() && !matches!(spec.recipe, Recipe::Group { .. }),
    }
}

/// One OCP MX block: the shared scale is 2^(floor(log2 amax) − emax of the element format),
/// elements are rounded with saturation (MX spec v1.0, section 6.3), then multiplied back.
fn mx_block(block: &mut [f32], format: Format) {
    let amax = amax(block);
    if amax == 0.0 || !amax.is_finite() {
        block
            .iter_mut()
            .for_each(|v| *v = if amax == 0.0 { 0.0 } else { f32::NAN });
        return;
    }
    let element_emax = format.max_value().log2().floor() as i32;
    let shared = E8m0::decode(E8m0::from_exponent(
        amax.log2().floor() as i32 - element_emax,
    ));
    block
        .iter_mut()
        .for_each(|v| *v = format.round(*v / shared, Overflow::Saturate) * shared);
}

/// NVFP4's per-tensor encode scale: maps the tensor's amax onto E4M3 max × E2M1 max.
fn nvfp4_tensor_scale(amax: f32) -> f32 {
    if amax == 0.0 {
        1.0
    } else {
        FP8_E4M3.max_value() * FP4_E2M1.max_value() / amax
    }
}

/// One NVFP4 block: its E4M3 scale holds `amax / 6` in the tensor-scaled domain; elements are
/// E2M1 values of `x / block scale`. The values kept are `e2m1 × block scale` (exact in f32); the
/// tensor scale is applied after the matmul.
fn nvfp4_block(block: &mut [f32], tensor_scale: f32) {
    let block_scale = FP8_E4M3.round(
        amax(block) / FP4_E2M1.max_value() * tensor_scale,
        Overflow::Saturate,
    );
    block.iter_mut().for_each(|v| {
        *v = if block_scale == 0.0 {
            0.0
        } else {
            FP4_E2M1.round(*v * tensor_scale / block_scale, Overflow::Saturate) * block_scale
        }
    });
}

/// `x · wᵀ` of two quantized operands: integer operands accumulate exactly (as int32 does, done in
/// f64, exact below 2^53), others in f32; then row scales of `x` and `w` scale rows and columns.
pub fn matmul(x: &Operand, w: &Operand) -> Tensor {
    let mut product = if x.integer && w.integer {
        matmul_nt(&x.values.map(f64::from), &w.values.map(f64::from)).map(|v| v as f32)
    } else {
        matmul_nt(&x.values, &w.values)
    };
    let cols = product.cols.max(1);
    product
        .data
        .par_chunks_mut(cols)
        .enumerate()
        .for_each(|(i, row)| {
            let row_scale = x.row_scales.as_ref().map_or(1.0, |s| s[i]);
            for (j, v) in row.iter_mut().enumerate() {
                let col_scale = w.row_scales.as_ref().map_or(1.0, |s| s[j]);
                *v *= row_scale * col_scale;
            }
        });
    product
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> QuantSpec {
        QuantSpec::try_from(text.to_owned()).unwrap()
    }

    fn row(values: &[f32]) -> Tensor {
        Tensor::new(1, values.len(), values.to_vec())
    }

    #[test]
    fn per_tensor_maps_amax_onto_the_format_max() {
        let q = quantize(
            &row(&[896.0, -448.0, 1.0]),
            spec("fp8_e4m3"),
            &mut AmaxHistory::default(),
        );
        assert_eq!(q.values.data, [448.0, -224.0, 0.5]);
        assert_eq!(q.row_scales, Some(vec![2.0]));
    }

    #[test]
    fn int8_is_integer_and_accumulates_exactly() {
        // 3000 products of 127 x 127 = 48 387 000: beyond f32's 2^24 exact integers.
        let n = 3000;
        let x = Tensor::new(1, n, vec![1.0; n]);
        let q = quantize(&x, spec("int8/per_token"), &mut AmaxHistory::default());
        assert!(q.integer);
        assert_eq!(q.values.data[0], 127.0);
        let product = matmul(&q, &q);
        assert_eq!(
            product.data[0],
            (127.0 * 127.0 * n as f32) * (1.0 / 127.0) * (1.0 / 127.0)
        );
    }

    #[test]
    fn mx_blocks_share_a_power_of_two_scale() {
        // amax 10: floor(log2 10) = 3, E4M3 emax 8: scale 2^-5. 10 * 32 = 320 -> 320 (exact).
        let mut values = vec![0.0f32; MX_BLOCK];
        values[0] = 10.0;
        values[1] = 0.01;
        let q = quantize(
            &row(&values),
            spec("fp8_e4m3/mx"),
            &mut AmaxHistory::default(),
        );
        assert_eq!(q.values.data[0], 10.0);
        // 0.01 * 32 = 0.32 -> E4M3 0.3125 -> 0.009765625.
        assert_eq!(q.values.data[1], 0.3125 / 32.0);
        assert_eq!(q.row_scales, None);
    }

    #[test]
    fn nvfp4_uses_block_and_tensor_scales() {
        let values: Vec<f32> = (0..NVFP4_BLOCK).map(|i| i as f32).collect();
        let q = quantize(
            &row(&values),
            spec("fp4_e2m1/nvfp4"),
            &mut AmaxHistory::default(),
        );
        let tensor_scale = 448.0 * 6.0 / 15.0;
        assert_eq!(q.row_scales, Some(vec![1.0 / tensor_scale]));
        // The block's amax maps exactly onto E2M1's 6 and back.
        assert!((q.values.data[15] / tensor_scale - 15.0).abs() < 1e-4);
        // The block scale maps E2M1's 6 onto 15, so one E2M1 unit is 2.5 here: the grid
        // 0, 1.25, 2.5, 3.75, 5, 7.5, 10, 15, whose widest half-gap is 2.5.
        for (v, x) in q.values.data.iter().zip(&values) {
            let dequantized = v / tensor_scale;
            assert!(
                (dequantized - x).abs() <= 2.5 + 1e-4,
                "{dequantized} vs {x}"
            );
        }
        assert!((q.values.data[12] / tensor_scale - 10.0).abs() < 1e-4);
    }

    #[test]
    fn groups_scale_by_their_own_absmax() {
        let values = [7.0, -3.5, 1.0, 0.0, 0.07, 0.035, 0.0, 0.0];
        let q = quantize(
            &row(&values),
            spec("int4/group4"),
            &mut AmaxHistory::default(),
        );
        assert_eq!(&q.values.data[..2], [7.0, -4.0]);
        assert!((q.values.data[4] - 0.07).abs() < 1e-7);
        assert!(!q.integer, "group-dequantized values are not integers");
    }

    #[test]
    fn delayed_scaling_uses_the_history_and_saturates_beyond_it() {
        let fp8 = spec("fp8_e4m3/delayed:2:max");
        let mut history = AmaxHistory::default();
        quantize(&row(&[1.0]), fp8, &mut history);
        quantize(&row(&[448.0]), fp8, &mut history);
        // History holds 1 and 448: scale 1; 1000 saturates to 448.
        let q = quantize(&row(&[1000.0]), fp8, &mut history);
        assert_eq!((q.values.data[0], q.row_scales.unwrap()[0]), (448.0, 1.0));
        // History now 448 and 1000 (length 2): the scale follows the largest.
        let q = quantize(&row(&[1.0]), fp8, &mut history);
        assert_eq!(q.row_scales.unwrap()[0], 1000.0 / 448.0);
    }

    #[test]
    fn nan_propagates_through_every_recipe() {
        for text in [
            "fp8_e4m3",
            "int8/per_token",
            "fp4_e2m1/mx",
            "fp4_e2m1/nvfp4",
            "nf4",
            "bf16",
        ] {
            let q = quantize(
                &row(&[1.0, f32::NAN, 2.0]),
                spec(text),
                &mut AmaxHistory::default(),
            );
            let product = matmul(&q, &q);
            assert!(product.data[0].is_nan(), "{text}");
        }
    }
}
