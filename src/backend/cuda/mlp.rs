//! The gated MLP on the GPU: `down(act(gate(x)) · up(x))`, the gate and up projections as one
//! matmul group, the gated activation as one kernel that also does what the next step needs of
//! it (the amax of FP8's current scaling; INT8's scales and per-token quantization), the down
//! projection.

use cudarc::driver::CudaStream;

use super::groups::{Fp8Grouping, MatmulGroup, Planner};
use super::kernels::{fused_int8_fits, Kernels, Matrix};
use super::quantizer::Quantizer;
use super::route::MatmulRoute;
use crate::backend::BackendError;
use crate::model::Activation;
use crate::model::{MlpShape, Weights};

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
    /// Plans the gated MLP `shape` with `weights`.
    pub(super) fn new(
        plan: &mut Planner,
        shape: MlpShape,
        weights: &Weights,
    ) -> Result<Self, BackendError> {
        let activation = match shape.activation {
            Activation::Silu => 0,
            Activation::GeluTanh => 1,
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
            &[
                weights.get("gate_proj.weight"),
                weights.get("up_proj.weight"),
            ],
            &quantize_x,
            Fp8Grouping::PerWeight,
        )?;
        let gate_up_out = if gate_up.accumulates() {
            0
        } else {
            plan.alloc(tokens * 2 * inter * elem.size())?
        };
        let hidden = plan.alloc(tokens * inter * elem.size())?;
        let quantize_h = plan.quantizer(inter)?;
        let down = plan.group(
            &[weights.get("down_proj.weight")],
            &quantize_h,
            Fp8Grouping::PerWeight,
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

    /// Enqueues one forward pass from `input` `[tokens, hidden]` to `output`.
    pub(super) fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        input: u64,
        output: u64,
    ) -> Result<(), BackendError> {
        let (tokens, inter, act) = (self.tokens, self.inter, self.activation);
        let x = self.quantize_x.enqueue(k, s, input, false)?;
        if self.route == MatmulRoute::Int8 && fused_int8_fits(inter) {
            // The activation rescales the int32 products, quantizes its row per token and
            // writes INT8 for the down projection: the hidden tensor never exists in BF16.
            let acc = self.gate_up.enqueue_products(s, x)?;
            let h = self.quantize_h.target();
            k.gated_act_int8_rows(s, (acc, tokens, inter), act, (h.data, h.scale))?;
            return self.down.enqueue(k, s, h, output);
        }
        let amax = self.quantize_h.prepare_amax(s)?.unwrap_or(0);
        if self.gate_up.accumulates() {
            // INT8 rows too long for one block, NVFP4: the activation applies the scales as it
            // reads the products.
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
            k.gated_act(s, gu, act, self.hidden, amax)?;
        }
        let h = self.quantize_h.enqueue(k, s, self.hidden, amax != 0)?;
        self.down.enqueue(k, s, h, output)
    }
}
