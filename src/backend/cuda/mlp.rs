//! MLPs on the GPU.
//!
//! The gated MLP, `down(act(gate(x)) · up(x))`: the gate and up projections as one matmul group,
//! the gated activation as one kernel that also does what the next step needs of it (the amax of
//! FP8's current scaling; INT8's scales and per-token quantization), the down projection.
//!
//! The plain MLP with biases, `fc2(act(fc1(x) + b1)) + b2` (BERT, SigLIP): each projection with
//! its bias (added as the group applies its scales), the activation as one kernel that also
//! takes the amax the next quantization needs.

use cudarc::driver::CudaStream;

use super::block::{Input, Pass};
use super::groups::{Fp8Grouping, MatmulGroup, Planner};
use super::kernels::{activation_id, fused_rows_fit, Kernels, Matrix};
use super::params::Params;
use super::quantizer::Quantizer;
use super::route::MatmulRoute;
use crate::backend::BackendError;
use crate::model::blocks::MlpNames;
use crate::model::{Activation, MlpShape};

/// A gated MLP planned for the GPU.
pub(super) struct MlpProgram {
    route: MatmulRoute,
    tokens: usize,
    inter: usize,
    /// `kernels.cu`'s activation id.
    activation: i32,
    quantize_x: Quantizer,
    gate_up: MatmulGroup,
    /// `[tokens, 2 inter]`, for groups that write their output (0 for those that accumulate).
    gate_up_out: u64,
    /// `act(gate) · up`, `[tokens, inter]`.
    hidden: u64,
    quantize_h: Quantizer,
    down: MatmulGroup,
}

impl MlpProgram {
    /// Plans the gated MLP `shape` with the parameters `names` in `params`.
    pub(super) fn new(
        plan: &mut Planner,
        shape: MlpShape,
        (params, names): (Params, &MlpNames),
    ) -> Result<Self, BackendError> {
        let gate = names
            .gate
            .expect("a gated MLP's names include its gate projection");
        let activation = match shape.activation {
            Activation::Silu | Activation::GeluTanh => activation_id(shape.activation),
            other => {
                return Err(BackendError::Unsupported(format!(
                    "the CUDA backend's gated MLP runs silu and gelu_tanh, not {}",
                    other.name()
                )))
            }
        };
        let (tokens, inter, elem) = (plan.tokens, shape.intermediate, plan.route.elem());
        let quantize_x = plan.quantizer(shape.hidden)?;
        let gate_up = plan.group(
            &[params.weight(gate), params.weight(names.up)],
            &quantize_x,
            Fp8Grouping::PerWeight,
            None,
        )?;
        let gate_up_out = if gate_up.accumulates() {
            0
        } else {
            plan.alloc(tokens * 2 * inter * elem.size())?
        };
        let hidden = plan.alloc(tokens * inter * elem.size())?;
        let quantize_h = plan.quantizer(inter)?;
        let down = plan.group(
            &[params.weight(names.down)],
            &quantize_h,
            Fp8Grouping::PerWeight,
            None,
        )?;
        Ok(MlpProgram {
            route: plan.route,
            tokens,
            inter,
            activation,
            quantize_x,
            gate_up,
            gate_up_out,
            hidden,
            quantize_h,
            down,
        })
    }
}

impl Pass for MlpProgram {
    fn input_amax(&self, s: &CudaStream) -> Result<Option<u64>, BackendError> {
        self.quantize_x.prepare_amax(s)
    }

    fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        input: Input,
        output: u64,
    ) -> Result<(), BackendError> {
        let (tokens, inter, act) = (self.tokens, self.inter, self.activation);
        let x = self.quantize_x.enqueue(k, s, input.ptr, input.amax_ready)?;
        if let Some(format) = self.route.row_format().filter(|_| fused_rows_fit(inter)) {
            // The activation rescales the products, quantizes its row per token and writes
            // INT8 or FP8 for the down projection: the hidden tensor never exists in BF16.
            let acc = self.gate_up.enqueue_products(s, x)?;
            let h = self.quantize_h.target();
            k.gated_act_rows(s, (acc, tokens, inter), act, format, (h.data, h.scale))?;
            return self.down.enqueue(k, s, h, output);
        }
        let amax = self.quantize_h.prepare_amax(s)?.unwrap_or(0);
        if self.gate_up.accumulates() {
            // Row-wise rows too long for one block, NVFP4: the activation applies the scales as
            // it reads the products.
            let acc = self.gate_up.enqueue_products(s, x)?;
            k.gated_act_scaled(s, (acc, tokens, inter), act, self.hidden, amax)?;
        } else {
            self.gate_up.enqueue(k, s, x, self.gate_up_out)?;
            let gu = Matrix {
                ptr: self.gate_up_out,
                elem: self.route.elem(),
                rows: tokens,
                cols: 2 * inter,
            };
            let fused = self.quantize_h.fused_fp8();
            // (Native FP8's tensors are BF16: the kernel takes whole groups of eight of them.)
            if let Some(fused) = fused.filter(|_| inter % 8 == 0) {
                // Delayed FP8: the activation casts h with the history's scale as it produces
                // it; h exists in BF16 only on the first step, before there is a history.
                k.gated_act_fp8(s, gu, act, fused, self.hidden)?;
                let h = self.quantize_h.complete_fused(k, s, self.hidden)?;
                return self.down.enqueue(k, s, h, output);
            }
            k.gated_act(s, gu, act, self.hidden, amax)?;
        }
        let h = self.quantize_h.enqueue(k, s, self.hidden, amax != 0)?;
        self.down.enqueue(k, s, h, output)
    }
}

/// A plain MLP with biases, planned for the GPU.
pub(super) struct PlainMlpProgram {
    route: MatmulRoute,
    tokens: usize,
    inter: usize,
    activation: i32,
    quantize_x: Quantizer,
    up: MatmulGroup,
    /// `act(fc1(x) + b1)`, `[tokens, inter]`.
    inner: u64,
    quantize_inner: Quantizer,
    down: MatmulGroup,
}

impl PlainMlpProgram {
    /// Plans the plain MLP `shape` with the parameters `names` in `params`.
    pub(super) fn new(
        plan: &mut Planner,
        shape: MlpShape,
        (params, names): (Params, &MlpNames),
    ) -> Result<Self, BackendError> {
        let (tokens, inter) = (plan.tokens, shape.intermediate);
        let quantize_x = plan.quantizer(shape.hidden)?;
        let up = plan.group(
            &[params.weight(names.up)],
            &quantize_x,
            Fp8Grouping::PerWeight,
            Some(&params.biases(&[names.up])),
        )?;
        let inner = plan.alloc(tokens * inter * plan.route.elem().size())?;
        let quantize_inner = plan.quantizer(inter)?;
        let down = plan.group(
            &[params.weight(names.down)],
            &quantize_inner,
            Fp8Grouping::PerWeight,
            Some(&params.biases(&[names.down])),
        )?;
        Ok(PlainMlpProgram {
            route: plan.route,
            tokens,
            inter,
            activation: activation_id(shape.activation),
            quantize_x,
            up,
            inner,
            quantize_inner,
            down,
        })
    }
}

impl Pass for PlainMlpProgram {
    fn input_amax(&self, s: &CudaStream) -> Result<Option<u64>, BackendError> {
        self.quantize_x.prepare_amax(s)
    }

    fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        input: Input,
        output: u64,
    ) -> Result<(), BackendError> {
        let elem = self.route.elem();
        let x = self.quantize_x.enqueue(k, s, input.ptr, input.amax_ready)?;
        self.up.enqueue(k, s, x, self.inner)?;
        let inner = Matrix {
            ptr: self.inner,
            elem,
            rows: self.tokens,
            cols: self.inter,
        };
        let amax = self.quantize_inner.prepare_amax(s)?.unwrap_or(0);
        k.activation(s, inner, self.activation, amax)?;
        let h = self.quantize_inner.enqueue(k, s, self.inner, amax != 0)?;
        self.down.enqueue(k, s, h, output)
    }
}
