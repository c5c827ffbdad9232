//! The operations' math, written once for every numeric behaviour, and the interpreter that runs a
//! [`Graph`] with it.
//!
//! An operation computes in the scalar type `S` (f32 on the CPU backend, f64 for the exact
//! reference) and hands its output to [`Ops::store`], which rounds it to the format the policy gives
//! the operation's class: as a framework running a block in a low precision computes each
//! operation in f32 internally and stores each intermediate tensor in the low format (PyTorch in
//! BF16 rounds the gate projection, the activation, the product and the down projection
//! separately). Matmuls are [`Ops::linear`]'s business, since their operands are quantized.
//!
//! Attention follows what fused attention kernels and TensorRT do with a "softmax precision": the
//! scores `q·kᵀ / sqrt(head_dim)` accumulate in f32 and are held in the softmax format, the softmax
//! computes in f32 and stores in the softmax format, and the probabilities are cast to the default
//! format for `p·v`. So an FP16 policy with an FP32 softmax never rounds the scores to FP16, and
//! attention's own two products run on default-format operands whatever the policy's matmul
//! recipe (FP8 recipes quantize the projections, as Transformer Engine does by default).

use rayon::prelude::*;

use super::graph::{Graph, Op};
use super::Weights;
use crate::linalg::{matmul_nt, Scalar};
use crate::model::Activation;
use crate::tensor::Tensor;

/// The class of an operation's output, for the policy's choice of format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// An activation function's output.
    Activation,
    /// Other elementwise results (products, sums, rotary embedding, attention's output).
    Elementwise,
    /// Attention scores and probabilities.
    Softmax,
    /// A normalisation's output.
    Norm,
    /// The block's output.
    Output,
}

/// The numerics a graph runs with.
pub trait Ops<S: Scalar> {
    /// `x · Wᵀ (+ b)` for the graph's parameters `weight` and `bias`, stored as the policy says.
    fn linear(&mut self, x: &Tensor<S>, weight: &str, bias: Option<&str>) -> Tensor<S>;

    /// A parameter that is not a matmul weight (a bias, a norm's scale or shift).
    fn parameter(&self, name: &str) -> &[S];

    /// Stores `values`, just produced by an operation of `class`, in the format the policy gives it.
    fn store(&self, class: OpClass, values: &mut [S]);
}

/// The exact reference: f64 products, no rounding.
pub struct Exact<'a> {
    /// The parameters, converted to f64.
    pub weights: &'a Weights<f64>,
}

impl Ops<f64> for Exact<'_> {
    fn linear(&mut self, x: &Tensor<f64>, weight: &str, bias: Option<&str>) -> Tensor<f64> {
        let mut y = matmul_nt(x, self.weights.get(weight));
        if let Some(bias) = bias {
            add_row(&mut y, &self.weights.get(bias).data);
        }
        y
    }

    fn parameter(&self, name: &str) -> &[f64] {
        &self.weights.get(name).data
    }

    fn store(&self, _: OpClass, _: &mut [f64]) {}
}

/// What a graph computed: its output and its taps.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward<S> {
    /// The output.
    pub output: Tensor<S>,
    /// The graph's taps, by name, in graph order.
    pub taps: Vec<(String, Tensor<S>)>,
}

/// Runs `graph` on `input` with the numerics of `ops`. Values are dropped after their last use.
pub fn forward<S: Scalar>(graph: &Graph, ops: &mut dyn Ops<S>, input: &Tensor<S>) -> Forward<S> {
    let last_uses = graph.last_uses();
    let mut values: Vec<Option<Tensor<S>>> = vec![None; graph.nodes.len()];
    for (index, node) in graph.nodes.iter().enumerate() {
        let arg = |i: usize| {
            values[node.inputs[i].0]
                .as_ref()
                .expect("graph nodes follow their inputs, which live until their last use")
        };
        let output = match &node.op {
            Op::Input => input.clone(),
            Op::Linear { weight, bias } => ops.linear(arg(0), weight, bias.as_deref()),
            Op::Activation(activation) => {
                let mut y = arg(0).map(|v| activate(*activation, v));
                ops.store(OpClass::Activation, &mut y.data);
                y
            }
            Op::Add | Op::Mul => {
                let add = node.op == Op::Add;
                let mut y = arg(0).clone();
                y.data
                    .par_iter_mut()
                    .zip(&arg(1).data)
                    .for_each(|(a, &b)| *a = if add { *a + b } else { *a * b });
                ops.store(OpClass::Elementwise, &mut y.data);
                y
            }
            Op::LayerNorm { weight, bias, eps } => {
                let mut y = arg(0).clone();
                layer_norm(&mut y, ops.parameter(weight), ops.parameter(bias), *eps);
                ops.store(OpClass::Norm, &mut y.data);
                y
            }
            Op::RmsNorm { weight, eps } => {
                let mut y = arg(0).clone();
                rms_norm(&mut y, ops.parameter(weight), *eps);
                ops.store(OpClass::Norm, &mut y.data);
                y
            }
            Op::Rotary { head_dim, theta } => {
                let mut y = arg(0).clone();
                rotary(&mut y, *head_dim, *theta);
                ops.store(OpClass::Elementwise, &mut y.data);
                y
            }
            Op::Attention {
                heads,
                kv_heads,
                head_dim,
                causal,
            } => {
                let heads = HeadLayout {
                    heads: *heads,
                    group: heads / kv_heads,
                    head_dim: *head_dim,
                    causal: *causal,
                };
                attention(&*ops, [arg(0), arg(1), arg(2)], heads)
            }
            Op::External { .. } => {
                unreachable!("ONNX models are run by engines; callers check for Block::Onnx")
            }
        };
        values[index] = Some(output);
        for input in &node.inputs {
            if last_uses[input.0] == index {
                values[input.0] = None;
            }
        }
    }
    let taps = graph
        .taps
        .iter()
        .map(|(name, value)| {
            let tensor = values[value.0].clone().expect("taps live to the end");
            (name.clone(), tensor)
        })
        .collect();
    let mut output = values[graph.output.0]
        .take()
        .expect("the output lives to the end");
    ops.store(OpClass::Output, &mut output.data);
    Forward { output, taps }
}

/// Adds `row` to every row of `y` (a bias).
pub fn add_row<S: Scalar>(y: &mut Tensor<S>, row: &[S]) {
    y.data.par_chunks_mut(y.cols).for_each(|out| {
        for (o, &b) in out.iter_mut().zip(row) {
            *o = *o + b;
        }
    });
}

fn constant<S: Scalar>(value: f64) -> S {
    S::from(value).expect("every f64 constant converts to f32 and f64")
}

/// The activation of one value, computed in `S` (GELU's erf in f64).
pub fn activate<S: Scalar>(activation: Activation, x: S) -> S {
    let one = S::one();
    let half = constant::<S>(0.5);
    match activation {
        Activation::Silu => x / (one + (-x).exp()),
        Activation::GeluTanh => {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch's gelu(approximate="tanh").
            let sqrt_2_over_pi = constant::<S>(0.797_884_560_802_865_4);
            let cubic = constant::<S>(0.044_715);
            half * x * (one + (sqrt_2_over_pi * (x + cubic * x * x * x)).tanh())
        }
        Activation::Gelu => {
            // 0.5 x (1 + erf(x / sqrt 2)), as PyTorch's gelu() and BERT's "gelu".
            let x64 = x.to_f64().expect("a float converts to f64");
            constant(0.5 * x64 * (1.0 + libm::erf(x64 * std::f64::consts::FRAC_1_SQRT_2)))
        }
        Activation::Relu => x.max(S::zero()),
    }
}

/// LayerNorm of each row in place (biased variance, as PyTorch).
fn layer_norm<S: Scalar>(x: &mut Tensor<S>, weight: &[S], bias: &[S], eps: f64) {
    let n = constant::<S>(x.cols as f64);
    let eps = constant::<S>(eps);
    x.data.par_chunks_mut(x.cols).for_each(|row| {
        let mean = row.iter().fold(S::zero(), |acc, &v| acc + v) / n;
        let var = row
            .iter()
            .fold(S::zero(), |acc, &v| acc + (v - mean) * (v - mean))
            / n;
        let inv = (var + eps).sqrt().recip();
        for ((v, &w), &b) in row.iter_mut().zip(weight).zip(bias) {
            *v = (*v - mean) * inv * w + b;
        }
    });
}

/// RMSNorm of each row in place.
fn rms_norm<S: Scalar>(x: &mut Tensor<S>, weight: &[S], eps: f64) {
    let n = constant::<S>(x.cols as f64);
    let eps = constant::<S>(eps);
    x.data.par_chunks_mut(x.cols).for_each(|row| {
        let mean_square = row.iter().fold(S::zero(), |acc, &v| acc + v * v) / n;
        let inv = (mean_square + eps).sqrt().recip();
        for (v, &w) in row.iter_mut().zip(weight) {
            *v = *v * inv * w;
        }
    });
}

/// Rotary embedding of every head of `x` in place, row `i` at position `i`: the pair `(j, j +
/// head_dim/2)` of each head turns by `i · theta^(−2j/head_dim)` (angles in f64).
fn rotary<S: Scalar>(x: &mut Tensor<S>, head_dim: usize, theta: f64) {
    let half = head_dim / 2;
    let frequencies = rotary_frequencies(head_dim, theta);
    x.data
        .par_chunks_mut(x.cols)
        .enumerate()
        .for_each(|(position, row)| {
            let turns: Vec<(S, S)> = frequencies
                .iter()
                .map(|f| {
                    let (sin, cos) = (position as f64 * f).sin_cos();
                    (constant(cos), constant(sin))
                })
                .collect();
            for head in row.chunks_mut(head_dim) {
                let (first, second) = head.split_at_mut(half);
                for ((a, b), &(cos, sin)) in first.iter_mut().zip(second).zip(&turns) {
                    let (x1, x2) = (*a, *b);
                    *a = x1 * cos - x2 * sin;
                    *b = x2 * cos + x1 * sin;
                }
            }
        });
}

/// The rotary embedding's frequency of each pair `(j, j + head_dim/2)`: `theta^(−2j/head_dim)`;
/// position `i` turns pair `j` by `i ×` its frequency.
fn rotary_frequencies(head_dim: usize, theta: f64) -> Vec<f64> {
    (0..head_dim / 2)
        .map(|j| theta.powf(-2.0 * j as f64 / head_dim as f64))
        .collect()
}

/// The rotary embedding's angle tables for positions `0..tokens`: `(cos, sin)`, each `[tokens,
/// head_dim / 2]` row-major, computed in f64 and rounded to f32 as the CPU backend's forward pass
/// rounds them. The ONNX export and the CUDA backend take theirs from here.
pub fn rotary_tables(tokens: usize, head_dim: usize, theta: f64) -> (Vec<f32>, Vec<f32>) {
    let frequencies = rotary_frequencies(head_dim, theta);
    (0..tokens)
        .flat_map(|position| {
            frequencies.iter().map(move |f| {
                let (sin, cos) = (position as f64 * f).sin_cos();
                (cos as f32, sin as f32)
            })
        })
        .unzip()
}

/// An attention's heads.
#[derive(Debug, Clone, Copy)]
struct HeadLayout {
    heads: usize,
    /// Query heads per key/value head.
    group: usize,
    head_dim: usize,
    causal: bool,
}

/// Columns `start .. start + width` of `x`, as a tensor.
fn columns<S: Scalar>(x: &Tensor<S>, start: usize, width: usize) -> Tensor<S> {
    let data = x
        .data
        .chunks(x.cols)
        .flat_map(|row| &row[start..start + width])
        .copied()
        .collect();
    Tensor::new(x.rows, width, data)
}

fn transpose<S: Scalar>(x: &Tensor<S>) -> Tensor<S> {
    let mut data = Vec::with_capacity(x.data.len());
    for c in 0..x.cols {
        data.extend((0..x.rows).map(|r| x.data[r * x.cols + c]));
    }
    Tensor::new(x.cols, x.rows, data)
}

/// Scaled dot-product attention, one head at a time (see the module's notes on precision).
fn attention<S: Scalar>(
    ops: &dyn Ops<S>,
    [q, k, v]: [&Tensor<S>; 3],
    layout: HeadLayout,
) -> Tensor<S> {
    let (tokens, d) = (q.rows, layout.head_dim);
    let scale = constant::<S>(1.0 / (d as f64).sqrt());
    let mut output = Tensor::new(
        tokens,
        layout.heads * d,
        vec![S::zero(); tokens * layout.heads * d],
    );
    for head in 0..layout.heads {
        let kv = head / layout.group;
        let mut scores = matmul_nt(&columns(q, head * d, d), &columns(k, kv * d, d));
        scores.data.par_iter_mut().for_each(|s| *s = *s * scale);
        ops.store(OpClass::Softmax, &mut scores.data);
        softmax_rows(&mut scores, layout.causal);
        ops.store(OpClass::Softmax, &mut scores.data);
        ops.store(OpClass::Elementwise, &mut scores.data);
        let context = matmul_nt(&scores, &transpose(&columns(v, kv * d, d)));
        for (out, row) in output
            .data
            .chunks_mut(output.cols)
            .zip(context.data.chunks(d))
        {
            out[head * d..(head + 1) * d].copy_from_slice(row);
        }
    }
    ops.store(OpClass::Elementwise, &mut output.data);
    output
}

/// Softmax of each row in place; with `causal`, row `i` over columns `≤ i` and zero beyond.
fn softmax_rows<S: Scalar>(scores: &mut Tensor<S>, causal: bool) {
    scores
        .data
        .par_chunks_mut(scores.cols)
        .enumerate()
        .for_each(|(i, row)| {
            let seen = if causal { i + 1 } else { row.len() };
            let (visible, masked) = row.split_at_mut(seen);
            let max = visible.iter().fold(S::neg_infinity(), |m, &v| m.max(v));
            let mut sum = S::zero();
            for v in visible.iter_mut() {
                *v = (*v - max).exp();
                sum = sum + *v;
            }
            for v in visible.iter_mut() {
                *v = *v / sum;
            }
            masked.fill(S::zero());
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::blocks::{Block, MlpShape};

    #[test]
    fn activations_match_known_values() {
        // silu(1) = 1 / (1 + e^-1); gelu_tanh(1) = 0.8411919906 and gelu(1) = 0.8413447461 (PyTorch).
        assert!((activate(Activation::Silu, 1.0f64) - 0.731_058_578_630_004_9).abs() < 1e-15);
        assert!((activate(Activation::GeluTanh, 1.0f64) - 0.841_191_990_607_477_2).abs() < 1e-12);
        assert!((activate(Activation::Gelu, 1.0f64) - 0.841_344_746_068_542_9).abs() < 1e-12);
        assert_eq!(activate(Activation::GeluTanh, 0.0f64), 0.0);
        assert_eq!(activate(Activation::Relu, -2.0f64), 0.0);
    }

    #[test]
    fn mlp_is_down_of_act_gate_times_up() {
        // hidden 1, intermediate 2: every product is a scalar, checkable by hand.
        let block = Block::Mlp(MlpShape {
            hidden: 1,
            intermediate: 2,
            activation: Activation::Silu,
            gated: true,
        });
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
        let y = forward(&block.graph(), &mut Exact { weights: &weights }, &x).output;
        assert!((y.data[0] - expect).abs() < 1e-12);
    }

    #[test]
    fn causal_softmax_rows_sum_to_one_and_see_only_the_past() {
        let mut scores = Tensor::new(3, 3, vec![1.0f64, 9.0, 9.0, 0.0, 0.0, 9.0, 1.0, 2.0, 3.0]);
        softmax_rows(&mut scores, true);
        assert_eq!(&scores.data[..3], &[1.0, 0.0, 0.0]);
        assert_eq!(&scores.data[3..6], &[0.5, 0.5, 0.0]);
        let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
        let sum: f64 = e.iter().sum();
        for (got, want) in scores.data[6..].iter().zip(e) {
            assert!((got - want / sum).abs() < 1e-15);
        }
    }

    #[test]
    fn rotary_turns_each_pair_and_keeps_norms() {
        // head_dim 4: pairs (0, 2) at frequency 1 and (1, 3) at frequency theta^(-1/2) = 0.01.
        let mut x = Tensor::new(2, 4, vec![1.0f64, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        rotary(&mut x, 4, 10_000.0);
        assert_eq!(
            &x.data[..4],
            &[1.0, 1.0, 0.0, 0.0],
            "position 0 does not turn"
        );
        let expect = [1f64.cos(), 0.01f64.cos(), 1f64.sin(), 0.01f64.sin()];
        for (got, want) in x.data[4..].iter().zip(expect) {
            assert!((got - want).abs() < 1e-15);
        }
    }

    #[test]
    fn norms_match_their_definitions() {
        let mut x = Tensor::new(1, 2, vec![1.0f64, 3.0]);
        layer_norm(&mut x, &[2.0, 1.0], &[0.5, 0.0], 0.0);
        assert_eq!(x.data, [-1.5, 1.0]);
        let mut x = Tensor::new(1, 2, vec![3.0f64, 4.0]);
        rms_norm(&mut x, &[1.0, 2.0], 0.0);
        let rms = 12.5f64.sqrt();
        assert_eq!(x.data, [3.0 / rms, 8.0 / rms]);
    }

    #[test]
    fn gqa_attention_with_identical_tokens_returns_their_value() {
        // Two query heads share one key/value head; equal keys give uniform probabilities, so each
        // output row is the mean of the value rows.
        let q = Tensor::new(2, 4, vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let k = Tensor::new(2, 2, vec![1.0, 1.0, 1.0, 1.0]);
        let v = Tensor::new(2, 2, vec![1.0, 10.0, 3.0, 20.0]);
        let weights = Weights::<f64> { tensors: vec![] };
        let layout = HeadLayout {
            heads: 2,
            group: 2,
            head_dim: 2,
            causal: false,
        };
        let y = attention(&Exact { weights: &weights }, [&q, &k, &v], layout);
        assert_eq!(y.data, [2.0, 15.0, 2.0, 15.0, 2.0, 15.0, 2.0, 15.0]);
    }
}
