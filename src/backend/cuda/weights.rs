//! A block's weights in the operand type its matmuls read, quantized once per build: on the GPU
//! where precheck's kernels round exactly as the CPU definition (`crate::quant`) does, on the host
//! otherwise. On the GPU a gated MLP's 100 M weights take an upload of their f32 values and a few
//! milliseconds; quantized and encoded on the host they took 0.3–0.8 s of every variant's build.
//! `tests/cuda_gpu.rs` checks that both give the same bytes and scales for every preset.

use cudarc::driver::{CudaSlice, DevicePtr};
use rayon::prelude::*;

use super::arena::Arena;
use super::kernels::{Elem, Fp8Quantize, Matrix, RowFormat};
use super::quantizer::zero;
use super::route::MatmulRoute;
use super::{failed, Gpu};
use crate::backend::BackendError;
use crate::formats::minifloat::{FP8_E4M3, FP8_E5M2};
use crate::formats::{Format, Overflow};
use crate::precision::Policy;
use crate::quant::{self, AmaxHistory, Operand, QuantSpec, Recipe};
use crate::tensor::Tensor;

/// Weights on the device (one or several concatenated along their rows) in the matmul's operand
/// type.
pub(super) struct DeviceWeight {
    pub(super) data: u64,
    pub(super) rows: usize,
}

/// How the weights of `policy` are quantized on `route`: as the policy says, except that a planted
/// BF16 fallback (testing only) runs the model's BF16 weights unscaled.
pub(super) fn weight_spec(route: MatmulRoute, policy: &Policy) -> QuantSpec {
    match route {
        MatmulRoute::Carrier { .. } if policy.planted_fault.is_some() => {
            QuantSpec::cast(Format::Bf16)
        }
        _ => policy.matmul.weights,
    }
}

/// Where the weights are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantizing {
    /// On the GPU, where a kernel rounds as the CPU does; else on the host.
    Fastest,
    /// On the host, always (the definition, for tests that compare the two).
    Host,
}

/// `weights` (each `[rows, k]`, all of one `k`) quantized as `spec` says, concatenated along their
/// rows on the device in `route`'s operand type, with one scale per output column (per row of the
/// weights): per-channel scales, a per-tensor scale repeated, or 1.
pub(super) fn upload(
    device: &Gpu,
    arena: &mut Arena,
    (route, spec): (MatmulRoute, QuantSpec),
    weights: &[&Tensor],
    quantizing: Quantizing,
) -> Result<(DeviceWeight, Vec<f32>), BackendError> {
    let rows = weights.iter().map(|w| w.rows).sum();
    match GpuRecipe::of(route, spec).filter(|_| quantizing == Quantizing::Fastest) {
        Some(recipe) => {
            let k = weights[0].cols;
            let data = arena.alloc(&device.stream, rows * k * route.operand_bytes())?;
            let mut scales = Vec::with_capacity(rows);
            let mut offset = 0;
            for weight in weights {
                let out = data + (offset * k * route.operand_bytes()) as u64;
                scales.extend(recipe.quantize(device, weight, out)?);
                offset += weight.rows;
            }
            Ok((DeviceWeight { data, rows }, scales))
        }
        None => {
            let operands: Vec<Operand> = weights
                .iter()
                .map(|w| quant::quantize(w, spec, &mut AmaxHistory::default()))
                .collect();
            let operands: Vec<&Operand> = operands.iter().collect();
            let bytes = operand_bytes(route, &operands);
            let data = arena.upload_staged(&device.stream, &mut device.staging(), &bytes)?;
            let scales = operands.iter().flat_map(|o| column_scales(o)).collect();
            Ok((DeviceWeight { data, rows }, scales))
        }
    }
}

/// The weight quantizations a kernel does as `crate::quant` does, bit for bit. The others
/// (weight-only group formats, a cast to a format other than the carrier's) stay on the host.
#[derive(Debug, Clone, Copy)]
enum GpuRecipe {
    /// A cast to the carrier's own format (round to nearest even).
    Cast(Elem),
    /// TF32 rounding, kept in f32.
    Tf32,
    /// FP8 per tensor (a delayed recipe scales weights from their own amax, as on the host).
    Fp8 { e5m2: bool, bf16_out: bool },
    /// Per channel, INT8 or FP8 E4M3: the weight's rows are the output channels.
    Rows(RowFormat),
    /// OCP MX, its values in BF16.
    Mx { element: i32, emax: i32 },
    /// NVFP4, its values in BF16, the tensor scale's inverse per column.
    Nvfp4,
}

impl GpuRecipe {
    fn of(route: MatmulRoute, spec: QuantSpec) -> Option<GpuRecipe> {
        match (route, spec.recipe) {
            (MatmulRoute::Carrier { elem, .. }, Recipe::Cast)
                if Elem::carrying(spec.format) == Some(elem) =>
            {
                Some(match spec.format {
                    Format::Tf32 => GpuRecipe::Tf32,
                    _ => GpuRecipe::Cast(elem),
                })
            }
            (MatmulRoute::Fp8 { weights_e5m2, .. }, Recipe::PerTensor | Recipe::Delayed { .. }) => {
                Some(GpuRecipe::Fp8 {
                    e5m2: weights_e5m2,
                    bf16_out: route.fp8_emulated(),
                })
            }
            (MatmulRoute::Int8 | MatmulRoute::Fp8Rows, Recipe::PerChannel) => {
                route.row_format().map(GpuRecipe::Rows)
            }
            (MatmulRoute::Mx { element, emax }, Recipe::Mx) => {
                Some(GpuRecipe::Mx { element, emax })
            }
            (MatmulRoute::Nvfp4, Recipe::Nvfp4) => Some(GpuRecipe::Nvfp4),
            _ => None,
        }
    }

    /// Quantizes `weight` into `out` (its rows × cols operands); returns its column scales.
    fn quantize(self, device: &Gpu, weight: &Tensor, out: u64) -> Result<Vec<f32>, BackendError> {
        let s = &device.stream;
        let k = &device.kernels;
        let values: CudaSlice<f32> = device
            .staging()
            .upload(s, &weight.data)
            .map_err(failed("uploading a weight"))?;
        let x = Matrix {
            ptr: values.device_ptr(s).0,
            elem: Elem::F32,
            rows: weight.rows,
            cols: weight.cols,
        };
        // Scales: the amax, then one f32 per row (per tensor, the first only).
        let scratch: CudaSlice<f32> = s
            .alloc_zeros(1 + weight.rows)
            .map_err(failed("allocating scales"))?;
        let amax = scratch.device_ptr(s).0;
        let scale = amax + 4;
        let per_tensor = |scale: f32| vec![scale; weight.rows];
        let downloaded = |n: usize| -> Result<Vec<f32>, BackendError> {
            let all = s.clone_dtoh(&scratch).map_err(failed("reading scales"))?;
            Ok(all[1..=n].to_vec())
        };
        let scales = match self {
            GpuRecipe::Cast(elem) => {
                k.convert(s, x, x.with(out, elem))?;
                Ok(per_tensor(1.0))
            }
            GpuRecipe::Tf32 => {
                k.round_tf32(s, x, out)?;
                Ok(per_tensor(1.0))
            }
            GpuRecipe::Fp8 { e5m2, bf16_out } => {
                zero(s, amax)?;
                k.amax(s, x, amax)?;
                let how = Fp8Quantize {
                    e5m2,
                    bf16_out,
                    delayed: None,
                    accumulate_amax: false,
                };
                k.quantize_fp8(s, x, amax, how, (out, scale))?;
                Ok(per_tensor(downloaded(1)?[0]))
            }
            GpuRecipe::Rows(format) => {
                k.quantize_rows(s, x, format, (out, scale))?;
                downloaded(weight.rows)
            }
            GpuRecipe::Mx { element, emax } => {
                k.mx_dequant(s, x, (element, emax), x.with(out, Elem::Bf16))?;
                Ok(per_tensor(1.0))
            }
            GpuRecipe::Nvfp4 => {
                zero(s, amax)?;
                k.amax(s, x, amax)?;
                k.nvfp4_dequant(s, x, amax, x.with(out, Elem::Bf16), scale)?;
                Ok(per_tensor(downloaded(1)?[0]))
            }
        }?;
        // `values` and `scratch` are freed when this returns: wait for the kernels that read them.
        s.synchronize().map_err(failed("synchronize"))?;
        Ok(scales)
    }
}

/// One scale per output column (row of the weight) of a quantized weight: its per-channel
/// scales, or its per-tensor scale repeated.
fn column_scales(operand: &Operand) -> Vec<f32> {
    match operand.row_scales.as_deref() {
        Some([tensor]) => vec![*tensor; operand.values.rows],
        Some(rows) => rows.to_vec(),
        None => vec![1.0; operand.values.rows],
    }
}

/// Host bytes of quantized values in the operand type the matmul reads, the operands one after
/// another. Encoded in parallel: a gated MLP's weights are 100 M values, and byte by byte on one
/// core they took seconds of each variant's build.
pub(super) fn operand_bytes(route: MatmulRoute, operands: &[&Operand]) -> Vec<u8> {
    let size = route.operand_bytes();
    let encode: fn(f32, &mut [u8]) = match route {
        MatmulRoute::Carrier {
            elem: Elem::F32, ..
        } => |v, out| out.copy_from_slice(&v.to_le_bytes()),
        MatmulRoute::Carrier {
            elem: Elem::F16, ..
        } => |v, out| out.copy_from_slice(&half::f16::from_f32(v).to_le_bytes()),
        MatmulRoute::Fp8 {
            weights_e5m2: true, ..
        } if !route.fp8_emulated() => |v, out| out[0] = FP8_E5M2.encode(v, Overflow::Saturate),
        MatmulRoute::Fp8 { .. } if !route.fp8_emulated() => {
            |v, out| out[0] = FP8_E4M3.encode(v, Overflow::Saturate)
        }
        MatmulRoute::Fp8Rows => |v, out| out[0] = FP8_E4M3.encode(v, Overflow::Saturate),
        MatmulRoute::Int8 => |v, out| out[0] = v as i8 as u8,
        // BF16 carriers, and the values of every emulated format, multiplied in BF16.
        MatmulRoute::Carrier {
            elem: Elem::Bf16, ..
        }
        | MatmulRoute::Fp8 { .. }
        | MatmulRoute::Mx { .. }
        | MatmulRoute::Nvfp4
        | MatmulRoute::WeightOnly => {
            |v, out| out.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes())
        }
    };
    const CHUNK: usize = 1 << 16;
    let len: usize = operands.iter().map(|o| o.values.data.len()).sum();
    let mut bytes = vec![0u8; len * size];
    let mut rest = bytes.as_mut_slice();
    for operand in operands {
        let values = &operand.values.data;
        let (mine, after) = rest.split_at_mut(values.len() * size);
        mine.par_chunks_mut(CHUNK * size)
            .zip(values.par_chunks(CHUNK))
            .for_each(|(out, values)| {
                for (out, v) in out.chunks_exact_mut(size).zip(values) {
                    encode(*v, out);
                }
            });
        rest = after;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precision::presets;
    use crate::tensor::Tensor;

    fn operand(data: Vec<f32>) -> Operand {
        Operand {
            values: Tensor::new(1, data.len(), data),
            row_scales: None,
            integer: false,
        }
    }

    fn route(name: &str) -> MatmulRoute {
        MatmulRoute::of(&presets::preset(name).unwrap()).unwrap()
    }

    /// Each type's bytes as the GPU reads them (little-endian), the operands in order, and the
    /// parallel chunks joined where they meet (the second operand is longer than a chunk).
    #[test]
    fn operands_are_encoded_in_the_matmuls_type_one_after_another() {
        let long: Vec<f32> = (0..70_001).map(|i| (i % 7) as f32 - 3.0).collect();
        let (first, second) = (operand(vec![1.0, -2.0]), operand(long.clone()));
        type Expected = fn(f32) -> Vec<u8>;
        let cases: [(&str, Expected); 5] = [
            ("fp32", |v| v.to_le_bytes().to_vec()),
            ("bf16", |v| half::bf16::from_f32(v).to_le_bytes().to_vec()),
            ("fp16", |v| half::f16::from_f32(v).to_le_bytes().to_vec()),
            ("fp8_e4m3", |v| vec![FP8_E4M3.encode(v, Overflow::Saturate)]),
            ("int8", |v| vec![v as i8 as u8]),
        ];
        for (name, expected) in cases {
            let bytes = operand_bytes(route(name), &[&first, &second]);
            let want: Vec<u8> = [1.0, -2.0]
                .iter()
                .chain(&long)
                .flat_map(|v| expected(*v))
                .collect();
            assert_eq!(bytes, want, "{name}");
        }
        let one = operand_bytes(route("fp8_e4m3"), &[&operand(vec![1.0, -1.0])]);
        assert_eq!(one, [0x38, 0xb8], "E4M3's 1.0 and -1.0");
        let one = operand_bytes(route("bf16"), &[&operand(vec![1.0])]);
        assert_eq!(one, [0x80, 0x3f], "BF16's 1.0");
    }
}
