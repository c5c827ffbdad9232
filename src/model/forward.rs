//! The blocks' math, written once for every scalar type and rounding.
//!
//! `round` is applied to every operation's output, as a framework running the block in a low
//! precision stores each intermediate tensor in it: PyTorch in BF16 rounds the gate projection, the
//! activation, the product and the down projection separately. The exact reference passes a `round`
//! that does nothing.

use rayon::prelude::*;

use super::{Block, Tensor, Weights};
use crate::linalg::{matmul_nt, Scalar};
use crate::suite::Activation;

/// Runs `block` on `input` with `weights`, calling `round` on every intermediate and the output.
pub fn forward<S: Scalar>(
    block: &Block,
    weights: &Weights<S>,
    input: &Tensor<S>,
    round: &(dyn Fn(&mut [S]) + Sync),
) -> Tensor<S> {
    let linear = |x: &Tensor<S>, name: &str| {
        let mut y = matmul_nt(x, weights.get(name));
        round(&mut y.data);
        y
    };
    match *block {
        Block::Linear { .. } => linear(input, "weight"),
        Block::Mlp { activation, .. } => {
            let mut hidden = linear(input, "gate_proj.weight");
            hidden
                .data
                .par_iter_mut()
                .for_each(|v| *v = activate(activation, *v));
            round(&mut hidden.data);
            let up = linear(input, "up_proj.weight");
            hidden
                .data
                .par_iter_mut()
                .zip(&up.data)
                .for_each(|(h, u)| *h = *h * *u);
            round(&mut hidden.data);
            linear(&hidden, "down_proj.weight")
        }
    }
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
        let y = forward(&block, &weights, &x, &|_| {});
        assert!((y.data[0] - expect).abs() < 1e-12);
    }
}
