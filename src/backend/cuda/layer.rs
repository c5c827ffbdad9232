//! Transformer layers on the GPU, as [`crate::model::blocks`] defines them: the attention and
//! MLP programs with the norms and residual adds between them. A residual add and the norm that
//! reads it are one kernel ([`Kernels::add_norm`]), which stores the rounded sum where a later
//! add needs it, as the CPU stores every intermediate.
//!
//! - Decoder (pre-norm): `h = x + attn(rms(x))`, `out = h + mlp(rms(h))`.
//! - Encoder (post-norm): `h = ln(attn(x) + x)`, `out = ln(mlp(h) + h)`.

use cudarc::driver::CudaStream;

use super::attention::AttentionProgram;
use super::block::{Input, Pass};
use super::groups::Planner;
use super::kernels::{Elem, Kernels, Matrix, Norm, NormKind};
use super::mlp::{MlpProgram, PlainMlpProgram};
use super::params::Params;
use crate::backend::BackendError;
use crate::model::blocks::MlpNames;
use crate::model::{AttentionBlock, LayerKind, LayerSpec, MlpShape};

/// The MLP `shape`, gated or plain as it says, planned with the parameters `names` in `params`.
pub(super) fn mlp_pass(
    plan: &mut Planner,
    shape: MlpShape,
    params: Params,
    names: &MlpNames,
) -> Result<Box<dyn Pass>, BackendError> {
    Ok(if shape.gated {
        Box::new(MlpProgram::new(plan, shape, (params, names))?)
    } else {
        Box::new(PlainMlpProgram::new(plan, shape, (params, names))?)
    })
}

/// One transformer layer planned for the GPU.
pub(super) struct LayerProgram {
    kind: LayerKind,
    tokens: usize,
    hidden: usize,
    elem: Elem,
    /// Before (decoder) or after (encoder) the attention, then the MLP.
    norms: [Norm; 2],
    attention: AttentionProgram,
    mlp: Box<dyn Pass>,
    /// A norm's output (decoder).
    normed: u64,
    /// The attention's output.
    attended: u64,
    /// The residual stream between the two halves.
    h: u64,
    /// The MLP's output.
    transformed: u64,
}

impl LayerProgram {
    /// Plans `layer` with its parameters in `params`.
    pub(super) fn new(
        plan: &mut Planner,
        layer: &LayerSpec,
        params: Params,
    ) -> Result<Self, BackendError> {
        let names = layer.kind.names();
        let decoder = layer.kind == LayerKind::Decoder;
        let block = AttentionBlock {
            hidden: layer.hidden,
            shape: layer.attention,
            rope_theta: decoder.then_some(layer.rope_theta),
        };
        let attention = AttentionProgram::new(plan, &block, (params, names.attention), !decoder)?;
        let shape = MlpShape {
            hidden: layer.hidden,
            intermediate: layer.intermediate,
            activation: layer.activation,
            gated: decoder,
        };
        let mlp = mlp_pass(plan, shape, params, names.mlp)?;
        let mut norm = |name: &str| -> Result<Norm, BackendError> {
            Ok(Norm {
                kind: if decoder {
                    NormKind::Rms
                } else {
                    NormKind::Layer
                },
                weight: params.vector(plan, name, "weight")?,
                shift: if decoder {
                    0
                } else {
                    params.vector(plan, name, "bias")?
                },
                eps: layer.norm_eps as f32,
            })
        };
        let norms = [norm(names.norms[0])?, norm(names.norms[1])?];
        let (tokens, elem) = (plan.tokens, plan.route.elem());
        let mut buffer = || plan.alloc(tokens * layer.hidden * elem.size());
        Ok(LayerProgram {
            kind: layer.kind,
            tokens,
            hidden: layer.hidden,
            elem,
            norms,
            attention,
            mlp,
            normed: buffer()?,
            attended: buffer()?,
            h: buffer()?,
            transformed: buffer()?,
        })
    }
}

impl LayerProgram {
    /// A norm's output `buffer` as `next`'s input, and where the norm writes it and its amax:
    /// the norm takes the amax `next` quantizes with, where it needs one, so that the
    /// quantization does not read the tensor a second time for it.
    fn norm_into(
        &self,
        s: &CudaStream,
        next: &dyn Pass,
        buffer: u64,
    ) -> Result<(Input, (u64, u64)), BackendError> {
        let amax = next.input_amax(s)?;
        let input = Input {
            ptr: buffer,
            amax_ready: amax.is_some(),
        };
        Ok((input, (buffer, amax.unwrap_or(0))))
    }
}

impl Pass for LayerProgram {
    /// The layer's first quantization reads its input (an encoder's attention) or the first
    /// norm's output (a decoder's): its amax is not the input's to give.
    fn input_amax(&self, _: &CudaStream) -> Result<Option<u64>, BackendError> {
        Ok(None)
    }

    fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        input: Input,
        output: u64,
    ) -> Result<(), BackendError> {
        let input = input.ptr;
        let at = |ptr: u64| Matrix {
            ptr,
            elem: self.elem,
            rows: self.tokens,
            cols: self.hidden,
        };
        let [first, second] = &self.norms;
        match self.kind {
            LayerKind::Decoder => {
                let normed = self.norm_into(s, &self.attention, self.normed)?;
                k.add_norm(s, (at(input), None), 0, Some(first), normed.1)?;
                self.attention.enqueue(k, s, normed.0, self.attended)?;
                let normed = self.norm_into(s, &*self.mlp, self.normed)?;
                let sum = (at(input), Some(self.attended));
                k.add_norm(s, sum, self.h, Some(second), normed.1)?;
                self.mlp.enqueue(k, s, normed.0, self.transformed)?;
                let sum = (at(self.h), Some(self.transformed));
                k.add_norm(s, sum, output, None, (0, 0))
            }
            LayerKind::Encoder => {
                self.attention.enqueue(k, s, input.into(), self.attended)?;
                let normed = self.norm_into(s, &*self.mlp, self.h)?;
                let sum = (at(self.attended), Some(input));
                k.add_norm(s, sum, 0, Some(first), normed.1)?;
                self.mlp.enqueue(k, s, normed.0, self.transformed)?;
                let sum = (at(self.transformed), Some(self.h));
                k.add_norm(s, sum, 0, Some(second), (output, 0))
            }
        }
    }
}
