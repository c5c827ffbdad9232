//! Encoding 16M BF16 values (a 4096 x 4096 tensor) into low-precision formats on the CPU:
//! the cost of precheck's emulation, per recipe. Throughput counts BF16 input bytes.
//!
//! `cargo bench --bench encode`; results in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::bf16;
use precheck::formats::minifloat::FP8_E4M3;
use precheck::formats::Overflow;
use precheck::quant::{quantize, AmaxHistory, QuantSpec};
use precheck::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const SIDE: usize = 4096;

/// 16M standard-normal values, rounded to BF16.
fn bf16_tensor() -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let data = (0..SIDE * SIDE)
        .map(|_| bf16::from_f32(rng.sample(StandardNormal)).to_f32())
        .collect();
    Tensor::new(SIDE, SIDE, data)
}

fn encode(c: &mut Criterion) {
    let tensor = bf16_tensor();
    let mut group = c.benchmark_group("encode_16M_bf16");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((SIDE * SIDE * 2) as u64));
    // The bare FP8 E4M3 encoder, one thread: value -> code.
    group.bench_function("e4m3_codes_1_thread", |b| {
        b.iter(|| {
            tensor
                .data
                .iter()
                .map(|&v| FP8_E4M3.encode(v, Overflow::Saturate))
                .collect::<Vec<u8>>()
        })
    });
    // Whole recipes as the CPU backend runs them: amax, scales, rounding, over all threads.
    for spec in ["fp8_e4m3/per_tensor", "fp4_e2m1/nvfp4", "fp4_e2m1/mx"] {
        let quant = QuantSpec::try_from(spec.to_owned()).expect("valid spec");
        group.bench_with_input(BenchmarkId::new("quantize", spec), &quant, |b, &quant| {
            b.iter(|| quantize(&tensor, quant, &mut AmaxHistory::default()))
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
