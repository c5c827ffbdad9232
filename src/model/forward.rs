//! The blocks' math, written once for every numeric behaviour.
//!
//! A block calls [`Ops`] for each matmul and after each elementwise operation; the implementation
//! decides the numerics. The exact reference ([`Exact`]) multiplies in f64 and rounds nothing; the
//! CPU backend quantizes and rounds as a precision policy says, as a framework running the block in
//! a low precision stores each intermediate tensor in it (PyTorch in BF16 rounds the gate
//! projection, the activation, the product and the down projection separately).

use rayon::prelude::*;

use super::{Block, Tensor, Weights};
use crate::linalg::{matmul_nt, Scalar};
use crate::suite::Activation;

/// The class of an elementwise operation, for the policy's choice of format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// An activation function's output.
    Activation,
    /// Other elementwise results (products, sums).
    Elementwise,
    /// The block's output.
    Output,
}

/// The numerics a block runs with.
pub trait Ops<S: Scalar> {
    /// `x · Wᵀ` for the block's weight `weight`, with its output stored as the policy says.
    fn linear(&mut self, x: &Tensor<S>, weight: &str) -> Tensor<S>;

    /// Stores `values`, just produced by an operation of `class`, in the format the policy gives it.
    fn store(&self, class: OpClass, values: &mut [S]);
}

/// The exact reference: f64 products, no rounding.
pub struct Exact<'a> {
    /// The weights, converted to f64.
    pub weights: &'a Weights<f64>,
}

impl Ops<f64> for Exact<'_> {
    fn linear(&mut self, x: &Tensor<f64>, weight: &str) -> Tensor<f64> {
        matmul_nt(x, self.weights.get(weight))
    }

    fn store(&self, _: OpClass, _: &mut [f64]) {}
}

/// Runs `block` on `input` with the numerics of `ops`.
pub fn forward<S: Scalar>(block: &Block, ops: &mut dyn Ops<S>, input: &Tensor<S>) -> Tensor<S> {
    let mut output = match *block {
        Block::Linear { .. } => ops.linear(input, "weight"),
        Block::Mlp { activation, .. } => {
            let mut hidden = ops.linear(input, "gate_proj.weight");
            hidden
                .data
                .par_iter_mut()
                .for_each(|v| *v = activate(activation, *v));
            ops.store(OpClass::Activation, &mut hidden.data);
            let up = ops.linear(input, "up_proj.weight");
            hidden
                .data
                .par_iter_mut()
                .zip(&up.data)
                .for_each(|(h, u)| *h = *h * *u);
            ops.store(OpClass::Elementwise, &mut hidden.data);
            ops.linear(&hidden, "down_proj.weight")
        }
    };
    ops.store(OpClass::Output, &mut output.data);
    output
}

/// The activation of one value, computed in `S`.
pub fn activate<S: Scalar>(activation: Activation, x: S) -> S {
    let one = S::one();
    let half = S::from(0.5).expect("0.5 is representable");
    match activation {
        Activation::Silu => x / (one + (-x).exp()),
        Activation::GeluTanh => {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch's gelu(approximate="tanh").
            let sqrt_2_over_pi = S::from(0.797_884_560_802_865_4).expect("representable");
            let cubic = S::from(0.044_715).expect("representable");
            half * x * (one + (sqrt_2_over_pi * (x + cubic * x * x * x)).tanh())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_known_values() {
        // silu(1) = 1 / (1 + e^-1); gelu_tanh(1) = 0.8411919906 (PyTorch).
        assert!((activate(Activation::Silu, 1.0f64) - 0.731_058_578_630_004_9).abs() < 1e-15);
        assert!((activate(Activation::GeluTanh, 1.0f64) - 0.841_191_990_607_477_2).abs() < 1e-12);
        assert_eq!(activate(Activation::GeluTanh, 0.0f64), 0.0);
    }

    #[test]
    fn mlp_is_down_of_act_gate_times_up() {
        // hidden 1, intermediate 2: every product is a scalar, checkable by hand.
        let block = Block::Mlp {
            hidden: 1,
            intermediate: 2,
            activation: Activation::Silu,
        };
        let weights = Weights {
            tensors: vec![
                (
                    "gate_proj.weight".into(),
                    Tensor::new(2, 1, vec![1.0, -2.0]),
                ),
                ("up_proj.weight".into(), Tensor::new(2, 1, vec![3.0, 0.5])),
                ("down_proj.weight".into(), Tensor::new(1, 2, vec![1.0, 4.0])),
            ],
        };
        let x = Tensor::new(1, 1, vec![2.0f64]);
        let silu = |v: f64| v / (1.0 + (-v).exp());
        let expect = silu(2.0) * 6.0 + 4.0 * silu(-4.0) * 1.0;
        let y = forward(&block, &mut Exact { weights: &weights }, &x);
        assert!((y.data[0] - expect).abs() < 1e-12);
    }
}
