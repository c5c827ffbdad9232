//! Matmul groups: products that share an input, planned once per block and run as one GEMM (or
//! one per member), with their scales and rescale passes.

use cudarc::cublaslt::sys::cudaDataType as Data;
use cudarc::driver::CudaStream;

use super::arena::Arena;
use super::gemm::{Gemm, GemmTypes, OperandScales, Shape};
use super::kernels::{Accumulator, Kernels, Matrix, Scales};
use super::quantizer::{Delayed, QuantizedInput, Quantizer};
use super::route::MatmulRoute;
use super::weights::{self, weight_spec, DeviceWeight, Quantizing};
use super::Gpu;
use crate::backend::BackendError;
use crate::precision::Policy;
use crate::tensor::Tensor;

/// What planning a block for the GPU needs: the device, the block's memory, the policy and its
/// route, the tokens, and the cuBLASLt workspace the block's matmuls share (they run one at a time).
pub(super) struct Planner<'a> {
    pub device: &'a Gpu,
    pub arena: &'a mut Arena,
    pub route: MatmulRoute,
    pub policy: &'a Policy,
    pub tokens: usize,
    pub workspace: (u64, usize),
    /// The block's delayed-scaling state, which its quantizers share.
    pub delayed: Delayed,
}

impl Planner<'_> {
    /// `bytes` of device memory for the block.
    pub fn alloc(&mut self, bytes: usize) -> Result<u64, BackendError> {
        self.arena.alloc(&self.device.stream, bytes)
    }

    /// `values` on the device, for the block.
    pub fn upload_f32(&mut self, values: &[f32]) -> Result<u64, BackendError> {
        self.arena.upload_f32(&self.device.stream, values)
    }

    /// Buffers for quantizing a `[tokens, cols]` activation every call.
    pub fn quantizer(&mut self, cols: usize) -> Result<Quantizer, BackendError> {
        Quantizer::new(
            self.arena,
            &self.device.stream,
            self.route,
            (self.tokens, cols),
            (self.device.kernels.current_blocks(), self.delayed.clone()),
        )
    }

    /// The linears of `weights`, reading the activations `input` quantizes, with their `bias`
    /// (the linears' biases side by side) if they have one.
    pub fn group(
        &mut self,
        weights: &[&Tensor],
        input: &Quantizer,
        fp8: Fp8Grouping,
        bias: Option<&[f32]>,
    ) -> Result<MatmulGroup, BackendError> {
        MatmulGroup::new(self, weights, (input.scale, fp8), bias)
    }
}

/// One or more linears sharing an input and writing side by side into one output `[tokens, cols]`
/// (the MLP's gate and up projections, attention's query, key and value projections: one pass over
/// the input, one buffer for the output).
pub(super) struct MatmulGroup {
    route: MatmulRoute,
    tokens: usize,
    cols: usize,
    /// Weights and their matmul: one for the whole group, or one per linear (FP8 with scale
    /// pointers).
    parts: Vec<(DeviceWeight, Gemm)>,
    /// Where the products land when their scales are applied after the GEMM (INT8 int32,
    /// NVFP4 f32, FP8 fused across weights f32), `[tokens, cols]`.
    accumulator: Option<u64>,
    /// Per-column weight scales, for groups with an accumulator.
    col_scales: u64,
    /// The linears' f32 biases side by side (0: none), added with the scales.
    bias: u64,
    /// Row-wise FP8 without a bias: the group's GEMM writing its output in BF16 with cuBLASLt's
    /// outer-vector scales (per token and per channel, applied to the f32 accumulator before the
    /// one rounding, as the CPU applies them), for [`MatmulGroup::enqueue`]; the accumulator
    /// stays for consumers that apply the scales as they read the products. None where cuBLASLt
    /// has no such kernel.
    direct: Option<Box<Gemm>>,
}

/// Whether a group of FP8 linears runs as one GEMM into an f32 accumulator (each weight keeps
/// its per-tensor scale, applied by the consumer of the accumulator), or as one GEMM per weight
/// with cuBLASLt's scale pointers and a BF16 output. One GEMM pays where the linears are small
/// (attention's projections: the key and value ones alone would be too narrow to fill the GPU);
/// for wide ones (the MLP's) the f32 accumulator's traffic costs more than it saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fp8Grouping {
    /// One GEMM per weight, scales applied by cuBLASLt.
    PerWeight,
    /// One GEMM for the group into an f32 accumulator.
    Accumulate,
}

impl MatmulGroup {
    /// Plans the linears of `weights`, which share an input. Their weights are quantized one by
    /// one (each is its own tensor to the policy), then concatenated into one matmul unless FP8
    /// runs `PerWeight`: the gate and up projections become one GEMM of twice the width, which
    /// reads the input once.
    ///
    /// A group with biases keeps its products in f32 (or int32) and adds the bias as it applies
    /// the scales, rounding once, as the CPU rounds a linear's output after its bias: adding the
    /// bias to an output already rounded to BF16 would round twice, and FP8 amplifies such
    /// last-bit differences through the next quantization.
    pub(super) fn new(
        plan: &mut Planner,
        weights: &[&Tensor],
        (input_scale, fp8): (u64, Fp8Grouping),
        bias: Option<&[f32]>,
    ) -> Result<Self, BackendError> {
        let (route, policy, tokens) = (plan.route, plan.policy, plan.tokens);
        let (device, workspace) = (plan.device, plan.workspace);
        let arena = &mut *plan.arena;
        let cols: usize = weights.iter().map(|w| w.rows).sum();
        let k = weights[0].cols;
        let spec = weight_spec(route, policy);
        let is_fp8 = matches!(route, MatmulRoute::Fp8 { .. });
        let accumulates =
            route.rescales() || (is_fp8 && fp8 == Fp8Grouping::Accumulate) || bias.is_some();
        let per_weight = is_fp8 && !accumulates;
        let groups: Vec<&[&Tensor]> = if per_weight {
            weights.chunks(1).collect()
        } else {
            vec![weights]
        };
        let types = if accumulates && !route.rescales() {
            GemmTypes {
                d: Data::CUDA_R_32F,
                ..route.types()
            }
        } else {
            route.types()
        };
        // Every GEMM of the group writes its `n` columns into the `[tokens, cols]` output.
        let shape = |n| Shape {
            tokens,
            n,
            k,
            ldd: cols,
        };
        let mut parts = Vec::new();
        let mut all_scales = Vec::with_capacity(cols);
        for group in groups {
            let (weight, scales) =
                weights::upload(device, arena, (route, spec), group, Quantizing::Fastest)?;
            let gemm_scales = if per_weight {
                Some(OperandScales {
                    a: arena.upload_f32(&device.stream, &scales[..1])?,
                    b: input_scale,
                    outer_vectors: false,
                })
            } else {
                None
            };
            let gemm = Gemm::new(device.lt, types, shape(weight.rows), gemm_scales, workspace)?;
            parts.push((weight, gemm));
            all_scales.extend(scales);
        }
        let (accumulator, col_scales) = if accumulates {
            (
                Some(arena.alloc(&device.stream, tokens * cols * 4)?),
                arena.upload_f32(&device.stream, &all_scales)?,
            )
        } else {
            (None, 0)
        };
        let direct = match (route, bias, parts.as_slice()) {
            (MatmulRoute::Fp8Rows, None, [_]) => {
                let types = GemmTypes {
                    d: Data::CUDA_R_16BF,
                    ..route.types()
                };
                let scales = OperandScales {
                    a: col_scales,
                    b: input_scale,
                    outer_vectors: true,
                };
                Gemm::new(device.lt, types, shape(cols), Some(scales), workspace)
                    .map(Box::new)
                    .map_err(|why| tracing::debug!("row-wise FP8 rescales after the GEMM: {why}"))
                    .ok()
            }
            _ => None,
        };
        let bias = match bias {
            Some(bias) => arena.upload_f32(&device.stream, bias)?,
            None => 0,
        };
        Ok(MatmulGroup {
            route,
            tokens,
            cols,
            parts,
            accumulator,
            col_scales,
            bias,
            direct,
        })
    }

    /// Whether the group's products need their scales applied after the GEMM
    /// ([`MatmulGroup::enqueue_products`]).
    pub(super) fn accumulates(&self) -> bool {
        self.accumulator.is_some()
    }

    /// Enqueues the group: `out[tokens, cols]` from the quantized input.
    pub(super) fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        x: QuantizedInput,
        out: u64,
    ) -> Result<(), BackendError> {
        if let (Some(direct), [(weight, _)]) = (&self.direct, self.parts.as_slice()) {
            return direct.run(s, weight.data, x.data, out);
        }
        if self.accumulates() {
            let acc = self.enqueue_products(s, x)?;
            let out = Matrix {
                ptr: out,
                elem: self.route.elem(),
                rows: self.tokens,
                cols: self.cols,
            };
            return k.rescale(s, acc, self.bias, out);
        }
        let bytes = self.route.elem().size();
        let mut column = 0;
        for (weight, gemm) in &self.parts {
            gemm.run(s, weight.data, x.data, out + (column * bytes) as u64)?;
            column += weight.rows;
        }
        Ok(())
    }

    /// Enqueues the GEMM of a group that [accumulates](MatmulGroup::accumulates) and returns its
    /// products with the scales a consumer applies: per token (row-wise INT8 and FP8) or per
    /// tensor (FP8, NVFP4) for the input, per column for the weights.
    pub(super) fn enqueue_products(
        &self,
        s: &CudaStream,
        x: QuantizedInput,
    ) -> Result<Accumulator, BackendError> {
        let acc = self
            .accumulator
            .expect("only groups with an accumulator enqueue bare products");
        for (weight, gemm) in &self.parts {
            gemm.run(s, weight.data, x.data, acc)?;
        }
        // Scales of the input applied after the GEMM: row-wise routes' per token, FP8's and
        // NVFP4's per tensor. Other inputs are in the tensors' format (carriers, weight-only) or
        // have their block scales folded in (MX): a null scale is 1.
        let per_token = self.route.row_format().is_some();
        let input_scaled =
            per_token || matches!(self.route, MatmulRoute::Fp8 { .. } | MatmulRoute::Nvfp4);
        Ok(Accumulator {
            ptr: acc,
            is_int: self.route == MatmulRoute::Int8,
            rows: Scales {
                ptr: if input_scaled { x.scale } else { 0 },
                stride: i32::from(per_token),
            },
            cols: Scales {
                ptr: self.col_scales,
                stride: 1,
            },
        })
    }
}
