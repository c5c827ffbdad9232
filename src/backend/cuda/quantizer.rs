//! Quantizing weights once on the host and activations on every call on the GPU, as each route
//! needs its operands.

use std::sync::Arc;

use cudarc::driver::CudaStream;
use rayon::prelude::*;

use super::arena::Arena;
use super::kernels::{Elem, Fp8Quantize, Kernels, Matrix};
use super::route::MatmulRoute;
use crate::backend::BackendError;
use crate::formats::minifloat::{FP8_E4M3, FP8_E5M2};
use crate::formats::{Format, Overflow};
use crate::precision::Policy;
use crate::quant::{AmaxAlgorithm, Operand, QuantSpec};

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

/// Weights on the device (one or several concatenated), quantized on the host exactly as the
/// CPU backend quantizes them.
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

/// Activations quantized for a matmul: the pointer it reads and where its scales are.
#[derive(Clone, Copy)]
pub(super) struct QuantizedInput {
    /// Device pointer to the values.
    pub(super) data: u64,
    /// FP8: the per-tensor scale; INT8: per-token scales; NVFP4: 1 / tensor scale.
    pub(super) scale: u64,
}

/// Zeroes the f32 at `ptr` (an amax accumulator) on the stream.
pub(super) fn zero(s: &CudaStream, ptr: u64) -> Result<(), BackendError> {
    // SAFETY: `ptr` is a 4-byte allocation of the block's arena.
    unsafe { cudarc::driver::result::memset_d8_async(ptr, 0, 4, s.cu_stream()) }
        .map_err(|e| BackendError::Failed(format!("memset: {e}")))
}

/// Buffers and kernels that quantize one activation tensor `[rows, cols]` every call.
pub(super) struct Quantizer {
    route: MatmulRoute,
    rows: usize,
    cols: usize,
    amax: u64,
    /// Where the quantized input's scales are (see [`QuantizedInput`]).
    pub(super) scale: u64,
    out: u64,
    /// Delayed scaling: the amax history (a ring) and the state `{steps, next amax}`.
    history: Option<(u64, u64)>,
}

impl Quantizer {
    /// Buffers for quantizing `[rows, cols]` on `route`.
    pub(super) fn new(
        arena: &mut Arena,
        stream: &Arc<CudaStream>,
        route: MatmulRoute,
        rows: usize,
        cols: usize,
    ) -> Result<Self, BackendError> {
        let out = match route {
            MatmulRoute::Carrier { .. } | MatmulRoute::WeightOnly => 0,
            _ => arena.alloc(stream, rows * cols * route.operand_bytes())?,
        };
        let history = match route {
            MatmulRoute::Fp8 {
                delayed: Some(delay),
                ..
            } => Some((
                arena.alloc(stream, 4 * delay.history.max(1))?,
                arena.alloc(stream, 8)?,
            )),
            _ => None,
        };
        Ok(Quantizer {
            route,
            rows,
            cols,
            amax: arena.alloc(stream, 4)?,
            scale: arena.alloc(stream, 4 * rows)?,
            out,
            history,
        })
    }

    /// Enqueues the quantization of `x`; `amax_ready` when a previous kernel already wrote amax.
    pub(super) fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        x: u64,
        amax_ready: bool,
    ) -> Result<QuantizedInput, BackendError> {
        let x = Matrix {
            ptr: x,
            elem: self.route.elem(),
            rows: self.rows,
            cols: self.cols,
        };
        let dequantized = x.with(self.out, Elem::Bf16);
        let tensor_amax = |s: &CudaStream| -> Result<(), BackendError> {
            if !amax_ready {
                zero(s, self.amax)?;
                k.amax(s, x, self.amax)?;
            }
            Ok(())
        };
        match self.route {
            // Activations in the tensors' format: the matmul reads them as they are.
            MatmulRoute::Carrier { .. } | MatmulRoute::WeightOnly => {
                return Ok(QuantizedInput {
                    data: x.ptr,
                    scale: 0,
                })
            }
            MatmulRoute::Fp8 {
                activations_e5m2,
                delayed,
                ..
            } => {
                // Delayed scaling needs the amax too: it joins the history after the cast.
                tensor_amax(s)?;
                let how = Fp8Quantize {
                    e5m2: activations_e5m2,
                    bf16_out: self.route.fp8_emulated(),
                    delayed: self.history.map(|(_, state)| state),
                };
                k.quantize_fp8(s, x, self.amax, how, (self.out, self.scale))?;
                if let (Some(delay), Some((history, state))) = (delayed, self.history) {
                    let most_recent = delay.algorithm == AmaxAlgorithm::MostRecent;
                    let ring = (history, delay.history.max(1));
                    k.amax_history_push(s, self.amax, ring, most_recent, state)?;
                }
            }
            MatmulRoute::Int8 => k.quantize_int8_rows(s, x, self.out, self.scale)?,
            MatmulRoute::Mx { element, emax } => {
                k.mx_dequant(s, x, (element, emax), dequantized)?
            }
            MatmulRoute::Nvfp4 => {
                tensor_amax(s)?;
                k.nvfp4_dequant(s, x, self.amax, dequantized, self.scale)?;
            }
        }
        Ok(QuantizedInput {
            data: self.out,
            scale: self.scale,
        })
    }

    /// The buffers a producer that quantizes its own output writes (the fused INT8 activation):
    /// the quantized values and their scales.
    pub(super) fn target(&self) -> QuantizedInput {
        QuantizedInput {
            data: self.out,
            scale: self.scale,
        }
    }

    /// Zeroes amax for a producer kernel that accumulates it (the gated activation).
    pub(super) fn prepare_amax(&self, s: &CudaStream) -> Result<Option<u64>, BackendError> {
        if !matches!(self.route, MatmulRoute::Fp8 { .. } | MatmulRoute::Nvfp4) {
            return Ok(None);
        }
        zero(s, self.amax)?;
        Ok(Some(self.amax))
    }
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
