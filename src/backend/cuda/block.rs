//! A block built for the GPU: weights on the device, buffers allocated once, and the sequence of
//! kernels and matmuls one forward pass enqueues, captured into a CUDA graph.
//!
//! Which precisions run natively is decided by [`MatmulRoute::of`]: carriers (FP32, TF32, BF16, FP16),
//! FP8 with per-tensor current or delayed scaling (cuBLASLt scale pointers), and INT8 W8A8 (int32
//! accumulation). Block formats (MX, NVFP4), E5M2 × E5M2 and weight-only INT4/NF4 have no Hopper
//! kernels: they are quantized by precheck and multiplied in BF16, and the record says so
//! ([`MatmulRoute::emulated`]). The block programs themselves are in [`super::mlp`] and
//! [`super::attention`]; this module holds what they share.

use std::sync::Arc;

use cudarc::driver::{CudaGraph, CudaStream, DevicePtr};

use super::arena::Arena;
use super::attention::AttentionProgram;
use super::gemm::WORKSPACE_BYTES;
use super::groups::{Fp8Grouping, MatmulGroup, Planner};
use super::kernels::{Elem, HistoryPush, Kernels, Matrix};
use super::layer::{mlp_pass, LayerProgram};
use super::params::Params;
use super::quantizer::{Delayed, Quantizer};
use super::route::MatmulRoute;
use super::{failed, Gpu};
use crate::backend::{onnx_unsupported, BackendError, BackendKind};
use crate::model::blocks::{layer_prefix, GATED_MLP, PLAIN_MLP, STANDALONE_ATTENTION};
use crate::model::{Block, Model, Weights};
use crate::precision::Policy;
use crate::tensor::Tensor;

/// A planned program: the kernels and matmuls of one forward pass over `[tokens, features]`.
pub(super) trait Pass {
    /// Enqueues one forward pass on `s`, from the device tensor `input` to `output`.
    fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        input: Input,
        output: u64,
    ) -> Result<(), BackendError>;

    /// Zeroes, on `s`, the buffer that the kernel producing this pass's input may fill with the
    /// input's amax, and returns it (`None` where the pass's first quantization needs no amax):
    /// the quantization then skips a pass over its input ([`Input::amax_ready`]).
    fn input_amax(&self, s: &CudaStream) -> Result<Option<u64>, BackendError>;
}

/// A pass's input on the device.
#[derive(Debug, Clone, Copy)]
pub(super) struct Input {
    /// Where it is.
    pub ptr: u64,
    /// Whether its producer wrote its amax into the pass's [`Pass::input_amax`] buffer.
    pub amax_ready: bool,
}

impl From<u64> for Input {
    /// An input whose amax no one has taken.
    fn from(ptr: u64) -> Self {
        Input {
            ptr,
            amax_ready: false,
        }
    }
}

/// The block's forward pass on the device.
enum Program {
    Linear {
        quantize: Quantizer,
        matmul: MatmulGroup,
    },
    /// An MLP, an attention or a transformer layer.
    Block(Box<dyn Pass>),
    /// Layer `i` reads layer `i − 1`'s output (the block's input for the first) and writes
    /// `outputs[i]`; the last writes the block's output.
    Stack {
        layers: Vec<LayerProgram>,
        outputs: Vec<u64>,
    },
}

/// A model built for one policy on one GPU.
pub struct CudaBlock {
    device: Arc<Gpu>,
    pub route: MatmulRoute,
    block: Block,
    tokens: usize,
    program: Program,
    /// Copies of the input in the tensors' format, at different addresses: timing rotates among
    /// them, so that a block whose input fits in L2 is not timed reading it from there.
    inputs: Vec<u64>,
    /// The output, in the tensors' format.
    output: u64,
    /// The quantizers' delayed-scaling state: the step is set before each capture.
    delayed: Delayed,
    /// Delayed scaling: the quantizers' history descriptors on the device and their count,
    /// pushed in one launch at the end of each pass.
    history_pushes: Option<(u64, usize)>,
    /// One captured forward pass per input copy, for the first step and, under delayed scaling,
    /// for later steps, which leave out the first step's amax passes.
    graphs: Vec<StepGraphs>,
    /// Forward passes launched so far: the first uses the first step's graph.
    launches: u64,
    _arena: Arena,
}

/// A block's first forward pass and, where later ones differ, a later one, captured (`None`
/// where a capture gave no graph: the pass is then enqueued on each launch).
struct StepGraphs {
    first: Option<CudaGraph>,
    later: Option<CudaGraph>,
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
        device: Arc<Gpu>,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Self, BackendError> {
        let route = MatmulRoute::of(policy)?;
        let stream = device.stream.clone();
        let mut arena = Arena::default();
        let tokens = model.tokens;
        let elem = route.elem();
        let workspace = (arena.alloc(&stream, WORKSPACE_BYTES)?, WORKSPACE_BYTES);
        let (in_features, out_features) =
            (model.block.input_features(), model.block.output_features());
        let input_bytes = tokens * in_features * elem.size();
        let inputs = (0..input_copies(input_bytes, device.l2_bytes))
            .map(|_| arena.alloc(&stream, input_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let output = arena.alloc(&stream, tokens * out_features * elem.size())?;
        let delayed = Delayed::default();
        let mut plan = Planner {
            device: &device,
            arena: &mut arena,
            route,
            policy,
            tokens,
            workspace,
            delayed: delayed.clone(),
        };
        let program = match &model.block {
            Block::Linear { .. } => {
                let quantize = plan.quantizer(in_features)?;
                let weight = weights.get("weight");
                let matmul = plan.group(&[weight], &quantize, Fp8Grouping::PerWeight, None)?;
                Program::Linear { quantize, matmul }
            }
            &Block::Mlp(shape) => {
                let names = if shape.gated { &GATED_MLP } else { &PLAIN_MLP };
                Program::Block(mlp_pass(&mut plan, shape, Params::of(weights), names)?)
            }
            Block::Attention(block) => {
                let params = (Params::of(weights), &STANDALONE_ATTENTION);
                let program = AttentionProgram::new(&mut plan, block, params, false)?;
                Program::Block(Box::new(program))
            }
            Block::Layer(layer) => {
                let program = LayerProgram::new(&mut plan, layer, Params::of(weights))?;
                Program::Block(Box::new(program))
            }
            Block::Stack { layer, layers } => {
                let mut programs = Vec::with_capacity(*layers);
                let mut outputs = Vec::with_capacity(*layers);
                for index in 0..*layers {
                    let prefix = layer_prefix(index);
                    let params = Params::under(weights, &prefix);
                    programs.push(LayerProgram::new(&mut plan, layer, params)?);
                    outputs.push(if index + 1 == *layers {
                        output
                    } else {
                        plan.alloc(tokens * out_features * elem.size())?
                    });
                }
                Program::Stack {
                    layers: programs,
                    outputs,
                }
            }
            Block::Onnx(_) => return Err(onnx_unsupported(BackendKind::Cuda)),
        };
        let pushes = delayed.pushes();
        let history_pushes = if pushes.is_empty() {
            None
        } else {
            let descriptors = arena.upload(&stream, &HistoryPush::encode(&pushes))?;
            Some((descriptors, pushes.len()))
        };
        let mut block = CudaBlock {
            device,
            route,
            block: model.block.clone(),
            tokens,
            program,
            inputs,
            output,
            delayed,
            history_pushes,
            graphs: Vec::new(),
            launches: 0,
            _arena: arena,
        };
        block.capture()?;
        Ok(block)
    }

    /// Enqueues one forward pass: input buffer to output buffer, then, under delayed scaling,
    /// every quantizer's amax joins its history.
    fn enqueue(&self, input: u64) -> Result<(), BackendError> {
        let (k, s) = (&self.device.kernels, &self.device.stream);
        match &self.program {
            Program::Linear { quantize, matmul } => {
                let x = quantize.enqueue(k, s, input, false)?;
                matmul.enqueue(k, s, x, self.output)?;
            }
            Program::Block(pass) => pass.enqueue(k, s, input.into(), self.output)?,
            Program::Stack { layers, outputs } => {
                let mut x = input;
                for (layer, &output) in layers.iter().zip(outputs) {
                    layer.enqueue(k, s, x.into(), output)?;
                    x = output;
                }
            }
        }
        match self.history_pushes {
            Some(pushes) => k.amax_history_push(s, pushes),
            None => Ok(()),
        }
    }

    /// Whether later forward passes enqueue other work than the first: delayed scaling's first
    /// step has no history to scale by.
    fn later_steps_differ(&self) -> bool {
        matches!(
            self.route,
            MatmulRoute::Fp8 {
                delayed: Some(_),
                ..
            }
        )
    }

    /// Captures the forward pass from each input copy into a CUDA graph (one for the first step
    /// and, where they differ, one for later steps), so that timing sees the GPU's work rather
    /// than the launch overhead of a dozen kernels.
    fn capture(&mut self) -> Result<(), BackendError> {
        let mut graphs = Vec::with_capacity(self.inputs.len());
        for &input in &self.inputs {
            self.delayed.set_later(false);
            let first = self.capture_one(input)?;
            let later = if self.later_steps_differ() {
                self.delayed.set_later(true);
                self.capture_one(input)?
            } else {
                None
            };
            graphs.push(StepGraphs { first, later });
        }
        self.graphs = graphs;
        Ok(())
    }

    /// The forward pass from `input`, as the quantizers' step has it, captured into a graph.
    fn capture_one(&self, input: u64) -> Result<Option<CudaGraph>, BackendError> {
        let s = &self.device.stream;
        s.begin_capture(
            cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
        )
        .map_err(failed("graph capture"))?;
        let enqueued = self.enqueue(input);
        // The capture ends either way, so that the stream is usable; an enqueue's error says more
        // than the capture's.
        let graph = s.end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0));
        enqueued?;
        graph.map_err(failed("graph capture"))
    }

    /// Launches one forward pass, from input copy `copy` (modulo the number of copies).
    pub fn launch(&mut self, copy: usize) -> Result<(), BackendError> {
        let copy = copy % self.inputs.len();
        let later = self.launches > 0 && self.later_steps_differ();
        self.launches += 1;
        let graphs = &self.graphs[copy];
        let graph = if later { &graphs.later } else { &graphs.first };
        match graph {
            Some(graph) => graph.launch().map_err(failed("graph launch")),
            None => {
                self.delayed.set_later(later);
                self.enqueue(self.inputs[copy])
            }
        }
    }

    /// Copies `input` (f32) to the device through the pinned buffer, into every input copy, in
    /// the tensors' format.
    pub fn set_input(&mut self, input: &Tensor) -> Result<(), BackendError> {
        let s = self.device.stream.clone();
        let values = self
            .device
            .staging()
            .upload(&s, &input.data)
            .map_err(|e| BackendError::Failed(format!("upload: {e}")))?;
        let staged = Matrix {
            ptr: values.device_ptr(&s).0,
            elem: Elem::F32,
            rows: input.rows,
            cols: input.cols,
        };
        for &copy in &self.inputs {
            let kernels = &self.device.kernels;
            kernels.convert(&s, staged, staged.with(copy, self.route.elem()))?;
        }
        // `values` is freed in stream order, after the conversions that read it.
        Ok(())
    }

    /// The last forward pass's output, as f32.
    pub fn output(&mut self) -> Result<Tensor, BackendError> {
        self.download(self.output)
    }

    /// The last forward pass's layer outputs (`layer.N`) of a stack; none for other blocks.
    pub fn taps(&mut self) -> Result<Vec<(String, Tensor)>, BackendError> {
        let outputs = match &self.program {
            Program::Stack { outputs, .. } => outputs.clone(),
            _ => return Ok(Vec::new()),
        };
        outputs
            .into_iter()
            .enumerate()
            .map(|(index, ptr)| Ok((format!("layer.{index}"), self.download(ptr)?)))
            .collect()
    }

    /// A `[tokens, output features]` tensor of the block in the tensors' format, as f32, read
    /// back through the pinned buffer.
    fn download(&mut self, ptr: u64) -> Result<Tensor, BackendError> {
        let s = self.device.stream.clone();
        let (rows, cols) = (self.tokens, self.block.output_features());
        // SAFETY: written whole by the conversion below before it is read.
        let values = unsafe { s.alloc::<f32>(rows * cols) }.map_err(failed("download"))?;
        let output = Matrix {
            ptr,
            elem: self.route.elem(),
            rows,
            cols,
        };
        self.device
            .kernels
            .convert(&s, output, output.with(values.device_ptr(&s).0, Elem::F32))?;
        let host = self
            .device
            .staging()
            .download(&s, &values)
            .map_err(failed("download"))?;
        Ok(Tensor::new(rows, cols, host))
    }
}
