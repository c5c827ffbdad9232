//! Reproducible weights and inputs.
//!
//! Each tensor has its own ChaCha8 stream, seeded with the first 8 bytes (little-endian) of
//! `SHA-256("{seed}/{model}/{tensor}")`, so adding a model or reordering a suite changes no other
//! tensor. Matmul weights are normal with standard deviation `1/sqrt(fan_in)` (the scale that keeps
//! activations of unit variance), biases normal with standard deviation 0.1, norm scales 1 and
//! shifts 0 (PyTorch's initialisation); inputs are standard normal, and where the suite asks for outlier
//! channels, `max(1, ceil(fraction × features))` channels, drawn from the stream
//! `outlier_channels`, are multiplied by `scale` in every token (the same channels in every input
//! of the model, as in real activations). Both are then rounded to the reference precision: a
//! suite's model is defined in that precision, as a BF16 checkpoint is.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::graph::ParamKind;
use super::{Model, Weights};
use crate::formats::Format;
use crate::tensor::Tensor;

/// The measured input's name in seeds.
pub const INPUT: &str = "input";

pub(super) fn stream(seed: u64, model: &str, tensor: &str) -> ChaCha8Rng {
    let digest = Sha256::digest(format!("{seed}/{model}/{tensor}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    ChaCha8Rng::seed_from_u64(u64::from_le_bytes(first))
}

fn normal_tensor(rng: &mut ChaCha8Rng, rows: usize, cols: usize, std: f32) -> Tensor {
    let data: Vec<f32> = (0..rows * cols)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * std)
        .collect();
    Tensor::new(rows, cols, data)
}

/// The model's seeded weights, rounded to `format`. The tensors are drawn in parallel (each has
/// its own stream, so the values are the same), which matters for large blocks: a PaliGemma MLP
/// is 100 M draws.
pub fn weights(model: &Model, seed: u64, format: Format) -> Weights {
    let tensors = model
        .block
        .graph()
        .params
        .into_par_iter()
        .map(|param| {
            let (rows, cols) = param.matrix_shape();
            let random = |std: f32| {
                normal_tensor(
                    &mut stream(seed, model.name.as_str(), &param.name),
                    rows,
                    cols,
                    std,
                )
            };
            let mut tensor = match param.kind {
                ParamKind::MatmulWeight => random(1.0 / (cols as f32).sqrt()),
                ParamKind::Bias => random(0.1),
                ParamKind::NormScale => Tensor::new(rows, cols, vec![1.0; cols]),
                ParamKind::NormShift => Tensor::new(rows, cols, vec![0.0; cols]),
            };
            format.round_slice(&mut tensor.data);
            (param.name, tensor)
        })
        .collect();
    Weights { tensors }
}

/// The model's seeded input called `name` ([`INPUT`], or a calibration input),
/// `[tokens, input_features]`, rounded to `format`.
pub fn input(model: &Model, seed: u64, format: Format, name: &str) -> Tensor {
    let features = model.block.input_features();
    let mut rng = stream(seed, model.name.as_str(), name);
    let mut tensor = normal_tensor(&mut rng, model.tokens, features, 1.0);
    if let Some(outliers) = model.outliers {
        let count = ((outliers.fraction * features as f64).ceil() as usize).clamp(1, features);
        let mut channel_rng = stream(seed, model.name.as_str(), "outlier_channels");
        let channels = sample(&mut channel_rng, features, count);
        for row in tensor.data.chunks_mut(features) {
            for channel in channels.iter() {
                row[channel] *= outliers.scale as f32;
            }
        }
    }
    format.round_slice(&mut tensor.data);
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::Ident;
    use crate::model::Block;
    use crate::model::WeightsSpec;

    fn model(name: &str) -> Model {
        Model {
            name: Ident::try_from(name.to_owned()).unwrap(),
            block: Block::Linear {
                in_features: 256,
                out_features: 64,
            },
            tokens: 32,
            outliers: None,
            input_file: None,
            weights: WeightsSpec::Seeded,
        }
    }

    #[test]
    fn same_seed_same_tensors_other_seed_other_tensors() {
        let a = weights(&model("m"), 7, Format::Fp32);
        assert_eq!(a, weights(&model("m"), 7, Format::Fp32));
        assert_ne!(a, weights(&model("m"), 8, Format::Fp32));
        assert_ne!(a, weights(&model("n"), 7, Format::Fp32));
    }

    #[test]
    fn weights_have_the_documented_scale_and_format() {
        let w = weights(&model("m"), 1, Format::Bf16);
        let data = &w.get("weight").data;
        let var = data.iter().map(|v| (v * v) as f64).sum::<f64>() / data.len() as f64;
        // std 1/16 for fan_in 256: variance 1/256, within sampling error of 16k values.
        assert!((var * 256.0 - 1.0).abs() < 0.05, "variance {var}");
        assert!(data
            .iter()
            .all(|&v| Format::Bf16.round(v, crate::formats::Overflow::Cast) == v));
    }

    #[test]
    fn outlier_channels_are_scaled_in_every_token() {
        let mut m = model("m");
        let plain = input(&m, 3, Format::Fp32, INPUT);
        m.outliers = Some(crate::model::OutlierSpec {
            fraction: 0.01,
            scale: 100.0,
        });
        let spiked = input(&m, 3, Format::Fp32, INPUT);
        // 1% of 256 channels: 3 channels, the same in every row.
        let scaled: Vec<usize> = (0..256)
            .filter(|&c| spiked.data[c] != plain.data[c])
            .collect();
        assert_eq!(scaled.len(), 3);
        for row in 0..32 {
            for &c in &scaled {
                let i = row * 256 + c;
                assert_eq!(spiked.data[i], plain.data[i] * 100.0);
            }
        }
    }
}
