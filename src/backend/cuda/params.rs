//! Where a block program finds its parameters: the block's weights under a prefix (a stack's
//! layer reads `layers.3.self_attn.q_proj.weight` as `self_attn.q_proj.weight`).

use super::groups::Planner;
use crate::backend::BackendError;
use crate::model::Weights;
use crate::tensor::Tensor;

/// The weights of one program: the block's, seen under `prefix`.
#[derive(Clone, Copy)]
pub(super) struct Params<'a> {
    weights: &'a Weights,
    prefix: &'a str,
}

impl<'a> Params<'a> {
    /// The whole block's weights, unprefixed.
    pub(super) fn of(weights: &'a Weights) -> Self {
        Params {
            weights,
            prefix: "",
        }
    }

    /// The weights of a stack's layer: names under `prefix`.
    pub(super) fn under(weights: &'a Weights, prefix: &'a str) -> Self {
        Params { weights, prefix }
    }

    /// The matmul weight of the linear `name` (`{name}.weight`).
    pub(super) fn weight(&self, name: &str) -> &'a Tensor {
        self.weights.get(&format!("{}{name}.weight", self.prefix))
    }

    /// The f32 vector `{name}.{what}` (a norm's scale or shift), on the device: engines keep
    /// them in f32, as the CPU backend does.
    pub(super) fn vector(
        &self,
        plan: &mut Planner,
        name: &str,
        what: &str,
    ) -> Result<u64, BackendError> {
        let tensor = self.weights.get(&format!("{}{name}.{what}", self.prefix));
        plan.upload_f32(&tensor.data)
    }

    /// The biases of the linears `names`, side by side (a matmul group's output columns).
    pub(super) fn biases(&self, names: &[&str]) -> Vec<f32> {
        names
            .iter()
            .flat_map(|name| {
                let bias = self.weights.get(&format!("{}{name}.bias", self.prefix));
                bias.data.iter().copied()
            })
            .collect()
    }
}
