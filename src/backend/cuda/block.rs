//! A block built for the GPU: weights on the device, buffers allocated once, and the sequence of
//! kernels and matmuls one forward pass enqueues, captured into a CUDA graph.
//!
//! Which precisions run natively is decided by [`Path::of`]: carriers (FP32, TF32, BF16, FP16),
//! FP8 with per-tensor current or delayed scaling (cuBLASLt scale pointers), and INT8 W8A8 (int32
//! accumulation). Block formats (MX, NVFP4), E5M2 × E5M2 and weight-only INT4/NF4 have no Hopper
//! kernels: they are quantized by precheck and multiplied in BF16, and the record says so
//! ([`Path::emulated`]). The block programs themselves are in [`super::mlp`] and
//! [`super::attention`]; this module holds what they share.

use std::sync::Arc;

use cudarc::cublaslt::sys::{cublasComputeType_t as Compute, cudaDataType as Data};
use cudarc::driver::{CudaGraph, CudaSlice, CudaStream, DevicePtr};

use super::attention::AttentionProgram;
use super::gemm::{data_type, Gemm, GemmTypes, Shape};
use super::kernels::{Accumulator, Elem, Fp8Quantize, Kernels, Matrix, Scales};
use super::mlp::MlpProgram;
use super::Device;
use crate::backend::BackendError;
use crate::formats::minifloat::{FP8_E4M3, FP8_E5M2};
use crate::formats::{Format, Overflow};
use crate::model::{Block, MlpShape, Model, Tensor, Weights};
use crate::precision::{PlantedFault, Policy};
use crate::quant::{self, AmaxAlgorithm, AmaxHistory, Operand, QuantSpec, Recipe};

/// How a policy's matmuls run on the GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Path {
    /// Operands and output in one unscaled format.
    Carrier {
        /// Tensors between operations.
        elem: Elem,
        /// Accumulation (FP32, or TF32 for the `tf32` policy).
        compute: Compute,
    },
    /// FP8 operands with per-tensor scaling, BF16 output. E5M2 × E5M2, which cuBLASLt has no
    /// kernel for, is emulated: the FP8 values multiplied in BF16 into FP32, then scaled.
    Fp8 {
        /// Weights in E5M2 rather than E4M3.
        weights_e5m2: bool,
        /// Activations in E5M2 rather than E4M3.
        activations_e5m2: bool,
        /// Activations scaled from an amax history (Transformer Engine's delayed scaling)
        /// rather than from the tensor itself.
        delayed: Option<Delay>,
    },
    /// INT8 per-channel weights, per-token activations, int32 accumulation, BF16 output.
    Int8,
    /// OCP MX, emulated: element format id and its largest exponent.
    Mx {
        /// Element format id of `kernels.cu` (0 e4m3, 1 e5m2, 2 e2m3, 3 e3m2, 4 e2m1).
        element: i32,
        /// floor(log2(element max)).
        emax: i32,
    },
    /// NVFP4, emulated.
    Nvfp4,
    /// Weight-only group formats (INT4, NF4) with BF16 activations, emulated: the weights
    /// dequantized on the host and multiplied in BF16, as W4A16 kernels do after unpacking, but
    /// read from memory at two bytes a weight rather than half a byte.
    WeightOnly,
}

/// Delayed scaling's amax history: its length and how it becomes one amax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Steps kept.
    pub history: usize,
    /// Largest of the history, or the latest step's.
    pub algorithm: AmaxAlgorithm,
}

impl Path {
    /// The GPU path for `policy`, or why there is none.
    pub fn of(policy: &Policy) -> Result<Path, BackendError> {
        let path = Self::requested(policy)?;
        if policy.planted_fault == Some(PlantedFault::Fp8GemmAsBf16)
            && matches!(path, Path::Fp8 { .. })
        {
            // Testing precheck's detection: run the FP8 policy's matmuls in BF16, unannounced.
            return Ok(Path::Carrier {
                elem: Elem::Bf16,
                compute: Compute::CUBLAS_COMPUTE_32F,
            });
        }
        Ok(path)
    }

    /// The path `policy` asks for.
    fn requested(policy: &Policy) -> Result<Path, BackendError> {
        let unsupported =
            |why: &str| Err(BackendError::Unsupported(format!("{}: {why}", policy.name)));
        // The softmax's format is the attention's business (its own buffers); the blocks this
        // backend runs have no norm, so the norm format changes nothing. Activations, outputs and
        // matmul outputs live in the buffers between operations, in the default format.
        let classes = [policy.activation, policy.output, policy.matmul.output];
        if classes.iter().any(|&f| f != policy.default) {
            return unsupported(
                "per-class formats other than the default are not implemented on CUDA yet",
            );
        }
        let (w, a) = (policy.matmul.weights, policy.matmul.activations);
        let fp8 = |format: Format| match format {
            Format::Fp8E4m3 => Some(false),
            Format::Fp8E5m2 => Some(true),
            _ => None,
        };
        if w.recipe == Recipe::Cast && w == a {
            let elem = Elem::carrying(w.format).expect("cast recipes are carriers");
            if Elem::carrying(policy.default) != Some(elem) {
                return unsupported("tensors between operations must be in the matmul's format");
            }
            let compute = if w.format == Format::Tf32 {
                Compute::CUBLAS_COMPUTE_32F_FAST_TF32
            } else {
                Compute::CUBLAS_COMPUTE_32F
            };
            return Ok(Path::Carrier { elem, compute });
        }
        if policy.default != Format::Bf16 {
            return unsupported("scaled formats run with BF16 tensors between operations");
        }
        let delay = |recipe| match recipe {
            Recipe::Delayed { history, algorithm } => Some(Delay { history, algorithm }),
            _ => None,
        };
        match (w.recipe, a.recipe) {
            // Weights are quantized once, before any step: a delayed recipe scales them from
            // their own amax, as the CPU backend does.
            (
                Recipe::PerTensor | Recipe::Delayed { .. },
                Recipe::PerTensor | Recipe::Delayed { .. },
            ) => match (fp8(w.format), fp8(a.format)) {
                (Some(weights_e5m2), Some(activations_e5m2)) => Ok(Path::Fp8 {
                    weights_e5m2,
                    activations_e5m2,
                    delayed: delay(a.recipe),
                }),
                _ => unsupported("per-tensor scaling runs on CUDA for FP8 only"),
            },
            (Recipe::PerChannel, Recipe::PerToken)
                if w.format == Format::Int8 && a.format == Format::Int8 =>
            {
                Ok(Path::Int8)
            }
            (Recipe::Mx, Recipe::Mx) if w.format == a.format => {
                let element = match w.format {
                    Format::Fp8E4m3 => 0,
                    Format::Fp8E5m2 => 1,
                    Format::Fp6E2m3 => 2,
                    Format::Fp6E3m2 => 3,
                    _ => 4,
                };
                let emax = w.format.max_value().log2().floor() as i32;
                Ok(Path::Mx { element, emax })
            }
            (Recipe::Nvfp4, Recipe::Nvfp4) => Ok(Path::Nvfp4),
            (Recipe::Group { .. }, Recipe::Cast) if a.format == Format::Bf16 => {
                Ok(Path::WeightOnly)
            }
            _ => unsupported("this combination of recipes has no CUDA path yet"),
        }
    }

    /// Whether the matmul is emulated (quantized values multiplied in BF16), not native.
    pub fn emulated(self) -> bool {
        matches!(self, Path::Mx { .. } | Path::Nvfp4 | Path::WeightOnly) || self.fp8_emulated()
    }

    /// E5M2 × E5M2: FP8 quantization, BF16 matmul.
    fn fp8_emulated(self) -> bool {
        matches!(
            self,
            Path::Fp8 {
                weights_e5m2: true,
                activations_e5m2: true,
                ..
            }
        )
    }

    /// The format of tensors between operations.
    pub(super) fn elem(self) -> Elem {
        match self {
            Path::Carrier { elem, .. } => elem,
            _ => Elem::Bf16,
        }
    }

    /// Bytes per quantized operand element (what the matmul reads).
    fn operand_bytes(self) -> usize {
        match self {
            Path::Carrier { elem, .. } => elem.size(),
            Path::Fp8 { .. } if self.fp8_emulated() => 2,
            Path::Fp8 { .. } | Path::Int8 => 1,
            Path::Mx { .. } | Path::Nvfp4 | Path::WeightOnly => 2,
        }
    }

    /// Whether matmul outputs need a rescale pass (int32 or unscaled f32 accumulators).
    fn rescales(self) -> bool {
        matches!(self, Path::Int8 | Path::Nvfp4) || self.fp8_emulated()
    }

    fn types(self) -> GemmTypes {
        let fp8 = |e5m2: bool| {
            if e5m2 {
                Data::CUDA_R_8F_E5M2
            } else {
                Data::CUDA_R_8F_E4M3
            }
        };
        match self {
            Path::Carrier { elem, compute } => GemmTypes::uniform(data_type(elem), compute),
            Path::Fp8 { .. } if self.fp8_emulated() => GemmTypes::bf16_into_f32(),
            Path::Fp8 {
                weights_e5m2,
                activations_e5m2,
                ..
            } => GemmTypes {
                a: fp8(weights_e5m2),
                b: fp8(activations_e5m2),
                d: Data::CUDA_R_16BF,
                compute: Compute::CUBLAS_COMPUTE_32F,
            },
            Path::Int8 => GemmTypes {
                a: Data::CUDA_R_8I,
                b: Data::CUDA_R_8I,
                d: Data::CUDA_R_32I,
                compute: Compute::CUBLAS_COMPUTE_32I,
            },
            Path::Mx { .. } | Path::WeightOnly => {
                GemmTypes::uniform(Data::CUDA_R_16BF, Compute::CUBLAS_COMPUTE_32F)
            }
            Path::Nvfp4 => GemmTypes::bf16_into_f32(),
        }
    }
}

/// Device memory owned by a built block; pointers stay valid while it lives.
#[derive(Default)]
pub(super) struct Arena {
    slices: Vec<CudaSlice<u8>>,
}

impl Arena {
    pub(super) fn alloc(
        &mut self,
        stream: &Arc<CudaStream>,
        bytes: usize,
    ) -> Result<u64, BackendError> {
        let slice = stream
            .alloc_zeros::<u8>(bytes.max(4))
            .map_err(|e| BackendError::Failed(format!("allocating {bytes} bytes: {e}")))?;
        let ptr = slice.device_ptr(stream).0;
        self.slices.push(slice);
        Ok(ptr)
    }

    fn upload(&mut self, stream: &Arc<CudaStream>, bytes: &[u8]) -> Result<u64, BackendError> {
        let slice = stream
            .clone_htod(bytes)
            .map_err(|e| BackendError::Failed(format!("uploading {} bytes: {e}", bytes.len())))?;
        let ptr = slice.device_ptr(stream).0;
        self.slices.push(slice);
        Ok(ptr)
    }

    pub(super) fn upload_f32(
        &mut self,
        stream: &Arc<CudaStream>,
        values: &[f32],
    ) -> Result<u64, BackendError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.upload(stream, &bytes)
    }
}

/// Host bytes of quantized values in the operand type the matmul reads.
fn operand_bytes(path: Path, operand: &Operand) -> Vec<u8> {
    let values = &operand.values.data;
    match path {
        Path::Carrier {
            elem: Elem::F32, ..
        } => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Path::Carrier {
            elem: Elem::F16, ..
        } => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        Path::Fp8 { weights_e5m2, .. } if !path.fp8_emulated() => {
            let format = if weights_e5m2 { FP8_E5M2 } else { FP8_E4M3 };
            values
                .iter()
                .map(|v| format.encode(*v, Overflow::Saturate))
                .collect()
        }
        Path::Int8 => values.iter().map(|v| *v as i8 as u8).collect(),
        // BF16 carriers, and the values of every emulated format, multiplied in BF16.
        Path::Carrier {
            elem: Elem::Bf16, ..
        }
        | Path::Fp8 { .. }
        | Path::Mx { .. }
        | Path::Nvfp4
        | Path::WeightOnly => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

/// Weights on the device (one or several concatenated), quantized on the host exactly as the
/// CPU backend quantizes them.
struct DeviceWeight {
    data: u64,
    rows: usize,
}

/// How the weights of `policy` are quantized on `path`: as the policy says, except that a planted
/// BF16 fallback (testing only) runs the model's BF16 weights unscaled.
fn weight_spec(path: Path, policy: &Policy) -> QuantSpec {
    match path {
        Path::Carrier { .. } if policy.planted_fault.is_some() => QuantSpec::cast(Format::Bf16),
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
fn zero(s: &CudaStream, ptr: u64) -> Result<(), BackendError> {
    // SAFETY: `ptr` is a 4-byte allocation of the block's arena.
    unsafe { cudarc::driver::result::memset_d8_async(ptr, 0, 4, s.cu_stream()) }
        .map_err(|e| BackendError::Failed(format!("memset: {e}")))
}

/// Buffers and kernels that quantize one activation tensor `[rows, cols]` every call.
pub(super) struct Quantizer {
    path: Path,
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
    /// Buffers for quantizing `[rows, cols]` on `path`.
    pub(super) fn new(
        arena: &mut Arena,
        stream: &Arc<CudaStream>,
        path: Path,
        rows: usize,
        cols: usize,
    ) -> Result<Self, BackendError> {
        let out = match path {
            Path::Carrier { .. } | Path::WeightOnly => 0,
            _ => arena.alloc(stream, rows * cols * path.operand_bytes())?,
        };
        let history = match path {
            Path::Fp8 {
                delayed: Some(delay),
                ..
            } => Some((
                arena.alloc(stream, 4 * delay.history.max(1))?,
                arena.alloc(stream, 8)?,
            )),
            _ => None,
        };
        Ok(Quantizer {
            path,
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
            elem: self.path.elem(),
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
        match self.path {
            // Activations in the tensors' format: the matmul reads them as they are.
            Path::Carrier { .. } | Path::WeightOnly => {
                return Ok(QuantizedInput {
                    data: x.ptr,
                    scale: 0,
                })
            }
            Path::Fp8 {
                activations_e5m2,
                delayed,
                ..
            } => {
                // Delayed scaling needs the amax too: it joins the history after the cast.
                tensor_amax(s)?;
                let how = Fp8Quantize {
                    e5m2: activations_e5m2,
                    bf16_out: self.path.fp8_emulated(),
                    delayed: self.history.map(|(_, state)| state),
                };
                k.quantize_fp8(s, x, self.amax, how, (self.out, self.scale))?;
                if let (Some(delay), Some((history, state))) = (delayed, self.history) {
                    let most_recent = delay.algorithm == AmaxAlgorithm::MostRecent;
                    let ring = (history, delay.history.max(1));
                    k.amax_history_push(s, self.amax, ring, most_recent, state)?;
                }
            }
            Path::Int8 => k.quantize_int8_rows(s, x, self.out, self.scale)?,
            Path::Mx { element, emax } => k.mx_dequant(s, x, (element, emax), dequantized)?,
            Path::Nvfp4 => {
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
        if !matches!(self.path, Path::Fp8 { .. } | Path::Nvfp4) {
            return Ok(None);
        }
        zero(s, self.amax)?;
        Ok(Some(self.amax))
    }
}

/// What planning a block for the GPU needs: the device, the block's memory, the policy and its
/// path, the tokens, and the cuBLASLt workspace the block's matmuls share (they run one at a time).
pub(super) struct Planner<'a> {
    pub device: &'a Device,
    pub arena: &'a mut Arena,
    pub path: Path,
    pub policy: &'a Policy,
    pub tokens: usize,
    pub workspace: (u64, usize),
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
            self.path,
            self.tokens,
            cols,
        )
    }

    /// The linears of `weights`, reading the activations `input` quantizes.
    pub fn group(
        &mut self,
        weights: &[&Tensor],
        input: &Quantizer,
        fp8: Fp8Grouping,
    ) -> Result<MatmulGroup, BackendError> {
        MatmulGroup::new(self, weights, input.scale, fp8)
    }
}

/// One or more linears sharing an input and writing side by side into one output `[tokens, cols]`
/// (the MLP's gate and up projections, attention's query, key and value projections: one pass over
/// the input, one buffer for the output).
pub(super) struct MatmulGroup {
    path: Path,
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
    fn new(
        plan: &mut Planner,
        weights: &[&Tensor],
        input_scale: u64,
        fp8: Fp8Grouping,
    ) -> Result<Self, BackendError> {
        let (path, policy, tokens) = (plan.path, plan.policy, plan.tokens);
        let (device, workspace) = (plan.device, plan.workspace);
        let arena = &mut *plan.arena;
        let cols: usize = weights.iter().map(|w| w.rows).sum();
        let k = weights[0].cols;
        let operands: Vec<Operand> = weights
            .iter()
            .map(|w| quant::quantize(w, weight_spec(path, policy), &mut AmaxHistory::default()))
            .collect();
        let is_fp8 = matches!(path, Path::Fp8 { .. });
        let accumulates = path.rescales() || (is_fp8 && fp8 == Fp8Grouping::Accumulate);
        let groups: Vec<Vec<&Operand>> = if is_fp8 && !accumulates {
            operands.iter().map(|o| vec![o]).collect()
        } else {
            vec![operands.iter().collect()]
        };
        let types = if accumulates && is_fp8 {
            GemmTypes {
                d: Data::CUDA_R_32F,
                ..path.types()
            }
        } else {
            path.types()
        };
        let mut parts = Vec::new();
        for group in groups {
            let rows: usize = group.iter().map(|o| o.values.rows).sum();
            let bytes: Vec<u8> = group.iter().flat_map(|o| operand_bytes(path, o)).collect();
            let data = arena.upload(&device.stream, &bytes)?;
            let scales = if is_fp8 && !accumulates {
                Some((
                    arena.upload_f32(&device.stream, &[column_scales(group[0])[0]])?,
                    input_scale,
                ))
            } else {
                None
            };
            let shape = Shape {
                tokens,
                n: rows,
                k,
                ldd: cols,
            };
            let gemm = Gemm::new(device.lt, types, shape, scales, workspace)?;
            parts.push((DeviceWeight { data, rows }, gemm));
        }
        let (accumulator, col_scales) = if accumulates {
            let scales: Vec<f32> = operands.iter().flat_map(column_scales).collect();
            (
                Some(arena.alloc(&device.stream, tokens * cols * 4)?),
                arena.upload_f32(&device.stream, &scales)?,
            )
        } else {
            (None, 0)
        };
        Ok(MatmulGroup {
            path,
            tokens,
            cols,
            parts,
            accumulator,
            col_scales,
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
        if self.accumulates() {
            let acc = self.enqueue_products(s, x)?;
            let out = Matrix {
                ptr: out,
                elem: Elem::Bf16,
                rows: self.tokens,
                cols: self.cols,
            };
            return k.rescale(s, acc, out);
        }
        let bytes = self.path.elem().size();
        let mut column = 0;
        for (weight, gemm) in &self.parts {
            gemm.run(s, weight.data, x.data, out + (column * bytes) as u64)?;
            column += weight.rows;
        }
        Ok(())
    }

    /// Enqueues the GEMM of a group that [accumulates](MatmulGroup::accumulates) and returns its
    /// products with the scales a consumer applies: per token (INT8) or per tensor (FP8, NVFP4)
    /// for the input, per column for the weights.
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
        Ok(Accumulator {
            ptr: acc,
            is_int: self.path == Path::Int8,
            rows: Scales {
                ptr: x.scale,
                stride: i32::from(self.path == Path::Int8),
            },
            cols: Scales {
                ptr: self.col_scales,
                stride: 1,
            },
        })
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

/// The block's forward pass on the device.
enum Program {
    Linear {
        quantize: Quantizer,
        matmul: MatmulGroup,
    },
    Mlp(Box<MlpProgram>),
    Attention(Box<AttentionProgram>),
}

/// A model built for one policy on one GPU.
pub struct CudaBlock {
    device: Arc<Device>,
    pub path: Path,
    block: Block,
    tokens: usize,
    program: Program,
    /// Copies of the input in the tensors' format, at different addresses: timing rotates among
    /// them, so that a block whose input fits in L2 is not timed reading it from there.
    inputs: Vec<u64>,
    /// The output, in the tensors' format.
    output: u64,
    /// f32 staging for uploads and downloads.
    staging: CudaSlice<f32>,
    staging_out: u64,
    /// One captured forward pass per input copy.
    graphs: Vec<Option<CudaGraph>>,
    _arena: Arena,
}

/// Input copies for a block whose input is `bytes` long: enough to span twice the L2 cache, at
/// most [`MAX_INPUT_COPIES`].
fn input_copies(bytes: usize, l2_bytes: usize) -> usize {
    (2 * l2_bytes)
        .div_ceil(bytes.max(1))
        .clamp(1, MAX_INPUT_COPIES)
}

/// At most this many copies of a block's input (and CUDA graphs) for timing to rotate among.
const MAX_INPUT_COPIES: usize = 8;

impl CudaBlock {
    /// Builds `model` with `weights` for `policy`.
    pub fn new(
        device: Arc<Device>,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Self, BackendError> {
        let path = Path::of(policy)?;
        let stream = device.stream.clone();
        let mut arena = Arena::default();
        let tokens = model.tokens;
        let elem = path.elem();
        let workspace = (arena.alloc(&stream, WORKSPACE_BYTES)?, WORKSPACE_BYTES);
        let (in_features, out_features) =
            (model.block.input_features(), model.block.output_features());
        let input_bytes = tokens * in_features * elem.size();
        let inputs = (0..input_copies(input_bytes, device.l2_bytes))
            .map(|_| arena.alloc(&stream, input_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let output = arena.alloc(&stream, tokens * out_features * elem.size())?;
        let mut plan = Planner {
            device: &device,
            arena: &mut arena,
            path,
            policy,
            tokens,
            workspace,
        };
        let program = match &model.block {
            Block::Linear { .. } => {
                let quantize = plan.quantizer(in_features)?;
                let weight = weights.get("weight");
                let matmul = plan.group(&[weight], &quantize, Fp8Grouping::PerWeight)?;
                Program::Linear { quantize, matmul }
            }
            &Block::Mlp(shape) if shape.gated => {
                Program::Mlp(Box::new(MlpProgram::new(&mut plan, shape, weights)?))
            }
            Block::Attention(block) => {
                Program::Attention(Box::new(AttentionProgram::new(&mut plan, block, weights)?))
            }
            other => {
                let runs = "the CUDA backend runs `linear`, gated `mlp` and `attention` blocks";
                let why = format!("{runs} so far, not {}", describe(other));
                return Err(BackendError::Unsupported(why));
            }
        };
        let staging_len = tokens * in_features.max(out_features);
        let staging = stream
            .alloc_zeros::<f32>(staging_len)
            .map_err(|e| BackendError::Failed(format!("staging: {e}")))?;
        let staging_out = arena.alloc(&stream, staging_len * 4)?;
        let mut block = CudaBlock {
            device,
            path,
            block: model.block.clone(),
            tokens,
            program,
            inputs,
            output,
            staging,
            staging_out,
            graphs: Vec::new(),
            _arena: arena,
        };
        block.capture()?;
        Ok(block)
    }

    /// Enqueues one forward pass: input buffer to output buffer.
    fn enqueue(&self, input: u64) -> Result<(), BackendError> {
        let (k, s) = (&self.device.kernels, &self.device.stream);
        match &self.program {
            Program::Linear { quantize, matmul } => {
                let x = quantize.enqueue(k, s, input, false)?;
                matmul.enqueue(k, s, x, self.output)
            }
            Program::Mlp(mlp) => mlp.enqueue(k, s, input, self.output),
            Program::Attention(attention) => attention.enqueue(k, s, input, self.output),
        }
    }

    /// Captures the forward pass from each input copy into a CUDA graph, so that timing sees the
    /// GPU's work rather than the launch overhead of a dozen kernels.
    fn capture(&mut self) -> Result<(), BackendError> {
        let s = &self.device.stream;
        let fail =
            |e: cudarc::driver::DriverError| BackendError::Failed(format!("graph capture: {e}"));
        for &input in &self.inputs {
            s.begin_capture(
                cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            )
            .map_err(fail)?;
            let enqueued = self.enqueue(input);
            let graph = s
                .end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0))
                .map_err(fail)?;
            enqueued?;
            self.graphs.push(graph);
        }
        Ok(())
    }

    /// Launches one forward pass, from input copy `copy` (modulo the number of copies).
    pub fn launch(&self, copy: usize) -> Result<(), BackendError> {
        let copy = copy % self.inputs.len();
        match &self.graphs[copy] {
            Some(graph) => graph
                .launch()
                .map_err(|e| BackendError::Failed(format!("graph launch: {e}"))),
            None => self.enqueue(self.inputs[copy]),
        }
    }

    /// Copies `input` (f32) to the device, into every input copy, in the tensors' format.
    pub fn set_input(&mut self, input: &Tensor) -> Result<(), BackendError> {
        let s = self.device.stream.clone();
        s.memcpy_htod(&input.data, &mut self.staging)
            .map_err(|e| BackendError::Failed(format!("upload: {e}")))?;
        let (staging, _sync) = self.staging.device_ptr(&s);
        let staged = Matrix {
            ptr: staging,
            elem: Elem::F32,
            rows: input.rows,
            cols: input.cols,
        };
        for &copy in &self.inputs {
            let kernels = &self.device.kernels;
            kernels.convert(&s, staged, staged.with(copy, self.path.elem()))?;
        }
        Ok(())
    }

    /// Runs once and returns the output as f32.
    pub fn output(&mut self) -> Result<Tensor, BackendError> {
        let s = self.device.stream.clone();
        let n = self.tokens * self.block.output_features();
        let output = Matrix {
            ptr: self.output,
            elem: self.path.elem(),
            rows: self.tokens,
            cols: self.block.output_features(),
        };
        self.device
            .kernels
            .convert(&s, output, output.with(self.staging_out, Elem::F32))?;
        let mut host = vec![0f32; n];
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(host.as_mut_ptr().cast::<u8>(), n * 4) };
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(bytes, self.staging_out, s.cu_stream())
        }
        .map_err(|e| BackendError::Failed(format!("download: {e}")))?;
        s.synchronize()
            .map_err(|e| BackendError::Failed(format!("synchronize: {e}")))?;
        Ok(Tensor::new(self.tokens, self.block.output_features(), host))
    }
}

/// cuBLASLt workspace per matmul group: what its Hopper kernels ask for at these sizes.
const WORKSPACE_BYTES: usize = 32 << 20;

/// A block as a person names it in an error: `attention`, or `mlp` (plain).
fn describe(block: &Block) -> String {
    match block {
        Block::Mlp(MlpShape { gated: false, .. }) => "a plain `mlp`".to_owned(),
        other => format!("`{}`", other.kind_name()),
    }
}
