//! The routing table: which GPU route a precision policy's matmuls take (cuBLASLt types, operand
//! bytes, rescaling), or why there is none. Pure logic, tested without a GPU.

use cudarc::cublaslt::sys::{cublasComputeType_t as Compute, cudaDataType as Data};

use super::gemm::{data_type, GemmTypes};
use super::kernels::{Elem, RowFormat};
use crate::backend::BackendError;
use crate::formats::Format;
use crate::precision::{PlantedFault, Policy};
use crate::quant::{AmaxAlgorithm, Recipe};

/// How a policy's matmuls run on the GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MatmulRoute {
    /// Operands and output in one unscaled format.
    Carrier {
        /// Tensors between operations.
        elem: Elem,
        /// Accumulation (FP32, or TF32 for the `tf32` policy).
        compute: Compute,
    },
    /// FP8 operands with per-tensor scaling, BF16 output. E5M2 × E5M2, which cuBLASLt has no
    /// kernel for, is emulated: the FP8 values multiplied in BF16 into FP32, then scaled.
    Fp8 {
        /// Weights in E5M2 rather than E4M3.
        weights_e5m2: bool,
        /// Activations in E5M2 rather than E4M3.
        activations_e5m2: bool,
        /// Activations scaled from an amax history (Transformer Engine's delayed scaling)
        /// rather than from the tensor itself.
        delayed: Option<Delay>,
    },
    /// INT8 per-channel weights, per-token activations, int32 accumulation, BF16 output.
    Int8,
    /// FP8 E4M3 per-channel weights, per-token activations (row-wise scaling), f32 accumulation:
    /// the scales are applied after the GEMM, as INT8's are.
    Fp8Rows,
    /// OCP MX, emulated: element format id and its largest exponent.
    Mx {
        /// Element format id of `kernels.cu` (0 e4m3, 1 e5m2, 2 e2m3, 3 e3m2, 4 e2m1).
        element: i32,
        /// floor(log2(element max)).
        emax: i32,
    },
    /// NVFP4, emulated.
    Nvfp4,
    /// Weight-only group formats (INT4, NF4) with BF16 activations, emulated: the weights
    /// dequantized on the host and multiplied in BF16, as W4A16 kernels do after unpacking, but
    /// read from memory at two bytes a weight rather than half a byte.
    WeightOnly,
}

/// Delayed scaling's amax history: its length and how it becomes one amax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Steps kept.
    pub history: usize,
    /// Largest of the history, or the latest step's.
    pub algorithm: AmaxAlgorithm,
}

impl MatmulRoute {
    /// The GPU route for `policy`, or why there is none.
    pub fn of(policy: &Policy) -> Result<MatmulRoute, BackendError> {
        let route = Self::requested(policy)?;
        if policy.planted_fault == Some(PlantedFault::Fp8GemmAsBf16)
            && matches!(route, MatmulRoute::Fp8 { .. })
        {
            // Testing precheck's detection: run the FP8 policy's matmuls in BF16, unannounced.
            return Ok(MatmulRoute::Carrier {
                elem: Elem::Bf16,
                compute: Compute::CUBLAS_COMPUTE_32F,
            });
        }
        Ok(route)
    }

    /// The route `policy` asks for.
    fn requested(policy: &Policy) -> Result<MatmulRoute, BackendError> {
        let unsupported =
            |why: &str| Err(BackendError::Unsupported(format!("{}: {why}", policy.name)));
        // The softmax's format is the attention's business (its own buffers). Activations, norms,
        // outputs and matmul outputs live in the buffers between operations, in the default
        // format.
        let classes = [
            policy.activation,
            policy.norm,
            policy.output,
            policy.matmul.output,
        ];
        if classes.iter().any(|&f| f != policy.default) {
            return unsupported(
                "per-class formats other than the default are not implemented on CUDA yet",
            );
        }
        let (w, a) = (policy.matmul.weights, policy.matmul.activations);
        let fp8 = |format: Format| match format {
            Format::Fp8E4m3 => Some(false),
            Format::Fp8E5m2 => Some(true),
            _ => None,
        };
        if w.recipe == Recipe::Cast && w == a {
            let elem = Elem::carrying(w.format).expect("cast recipes are carriers");
            if Elem::carrying(policy.default) != Some(elem) {
                return unsupported("tensors between operations must be in the matmul's format");
            }
            let compute = if w.format == Format::Tf32 {
                Compute::CUBLAS_COMPUTE_32F_FAST_TF32
            } else {
                Compute::CUBLAS_COMPUTE_32F
            };
            return Ok(MatmulRoute::Carrier { elem, compute });
        }
        if policy.default != Format::Bf16 {
            return unsupported("scaled formats run with BF16 tensors between operations");
        }
        let delay = |recipe| match recipe {
            Recipe::Delayed { history, algorithm } => Some(Delay { history, algorithm }),
            _ => None,
        };
        match (w.recipe, a.recipe) {
            // Weights are quantized once, before any step: a delayed recipe scales them from
            // their own amax, as the CPU backend does.
            (
                Recipe::PerTensor | Recipe::Delayed { .. },
                Recipe::PerTensor | Recipe::Delayed { .. },
            ) => match (fp8(w.format), fp8(a.format)) {
                (Some(weights_e5m2), Some(activations_e5m2)) => Ok(MatmulRoute::Fp8 {
                    weights_e5m2,
                    activations_e5m2,
                    delayed: delay(a.recipe),
                }),
                _ => unsupported("per-tensor scaling runs on CUDA for FP8 only"),
            },
            (Recipe::PerChannel, Recipe::PerToken) if w.format == a.format => match w.format {
                Format::Int8 => Ok(MatmulRoute::Int8),
                Format::Fp8E4m3 => Ok(MatmulRoute::Fp8Rows),
                _ => unsupported("row-wise scaling runs on CUDA for INT8 and FP8 E4M3"),
            },
            (Recipe::Mx, Recipe::Mx) if w.format == a.format => {
                let element = match w.format {
                    Format::Fp8E4m3 => 0,
                    Format::Fp8E5m2 => 1,
                    Format::Fp6E2m3 => 2,
                    Format::Fp6E3m2 => 3,
                    _ => 4,
                };
                let emax = w.format.max_value().log2().floor() as i32;
                Ok(MatmulRoute::Mx { element, emax })
            }
            (Recipe::Nvfp4, Recipe::Nvfp4) => Ok(MatmulRoute::Nvfp4),
            (Recipe::Group { .. }, Recipe::Cast) if a.format == Format::Bf16 => {
                Ok(MatmulRoute::WeightOnly)
            }
            _ => unsupported("this combination of recipes has no CUDA route yet"),
        }
    }

    /// Whether the matmul is emulated (quantized values multiplied in BF16), not native.
    pub fn emulated(self) -> bool {
        matches!(
            self,
            MatmulRoute::Mx { .. } | MatmulRoute::Nvfp4 | MatmulRoute::WeightOnly
        ) || self.fp8_emulated()
    }

    /// E5M2 × E5M2: FP8 quantization, BF16 matmul.
    pub(super) fn fp8_emulated(self) -> bool {
        matches!(
            self,
            MatmulRoute::Fp8 {
                weights_e5m2: true,
                activations_e5m2: true,
                ..
            }
        )
    }

    /// The format of tensors between operations.
    pub(super) fn elem(self) -> Elem {
        match self {
            MatmulRoute::Carrier { elem, .. } => elem,
            _ => Elem::Bf16,
        }
    }

    /// Bytes per quantized operand element (what the matmul reads).
    pub(super) fn operand_bytes(self) -> usize {
        match self {
            MatmulRoute::Carrier { elem, .. } => elem.size(),
            MatmulRoute::Fp8 { .. } if self.fp8_emulated() => 2,
            MatmulRoute::Fp8 { .. } | MatmulRoute::Int8 | MatmulRoute::Fp8Rows => 1,
            MatmulRoute::Mx { .. } | MatmulRoute::Nvfp4 | MatmulRoute::WeightOnly => 2,
        }
    }

    /// Whether matmul outputs need a rescale pass (int32 or unscaled f32 accumulators).
    pub(super) fn rescales(self) -> bool {
        matches!(
            self,
            MatmulRoute::Int8 | MatmulRoute::Fp8Rows | MatmulRoute::Nvfp4
        ) || self.fp8_emulated()
    }

    /// The byte format of a row-wise route (a scale per token and per channel), if it is one.
    pub(super) fn row_format(self) -> Option<RowFormat> {
        match self {
            MatmulRoute::Int8 => Some(RowFormat::Int8),
            MatmulRoute::Fp8Rows => Some(RowFormat::Fp8E4m3),
            _ => None,
        }
    }

    pub(super) fn types(self) -> GemmTypes {
        let fp8 = |e5m2: bool| {
            if e5m2 {
                Data::CUDA_R_8F_E5M2
            } else {
                Data::CUDA_R_8F_E4M3
            }
        };
        match self {
            MatmulRoute::Carrier { elem, compute } => GemmTypes::uniform(data_type(elem), compute),
            MatmulRoute::Fp8 { .. } if self.fp8_emulated() => GemmTypes::bf16_into_f32(),
            MatmulRoute::Fp8 {
                weights_e5m2,
                activations_e5m2,
                ..
            } => GemmTypes {
                a: fp8(weights_e5m2),
                b: fp8(activations_e5m2),
                d: Data::CUDA_R_16BF,
                compute: Compute::CUBLAS_COMPUTE_32F,
            },
            MatmulRoute::Fp8Rows => GemmTypes {
                a: Data::CUDA_R_8F_E4M3,
                b: Data::CUDA_R_8F_E4M3,
                d: Data::CUDA_R_32F,
                compute: Compute::CUBLAS_COMPUTE_32F,
            },
            MatmulRoute::Int8 => GemmTypes {
                a: Data::CUDA_R_8I,
                b: Data::CUDA_R_8I,
                d: Data::CUDA_R_32I,
                compute: Compute::CUBLAS_COMPUTE_32I,
            },
            MatmulRoute::Mx { .. } | MatmulRoute::WeightOnly => {
                GemmTypes::uniform(Data::CUDA_R_16BF, Compute::CUBLAS_COMPUTE_32F)
            }
            MatmulRoute::Nvfp4 => GemmTypes::bf16_into_f32(),
        }
    }
}

/// The GEMM types of the routes of `policies` (those with one), each also with an f32 output
/// (the groups that apply scales or a bias after the GEMM), in order, each once: what a device
/// asks cuBLASLt about before it builds them ([`super::gemm::prime`]).
pub(super) fn gemm_types(policies: &[Policy]) -> Vec<GemmTypes> {
    let mut all = Vec::new();
    let routes = policies
        .iter()
        .filter_map(|policy| MatmulRoute::of(policy).ok());
    for route in routes {
        let into_f32 = GemmTypes {
            d: Data::CUDA_R_32F,
            ..route.types()
        };
        for types in [route.types(), into_f32] {
            if !all.contains(&types) {
                all.push(types);
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precision::presets;

    #[test]
    fn the_types_a_device_primes_cover_every_route_once() {
        let policies: Vec<Policy> = presets::names()
            .into_iter()
            .filter_map(presets::preset)
            .collect();
        let primed = gemm_types(&policies);
        assert_eq!(primed[0], MatmulRoute::of(&policies[0]).unwrap().types());
        for name in presets::names() {
            let Ok(route) = MatmulRoute::of(&presets::preset(name).unwrap()) else {
                continue;
            };
            assert!(primed.contains(&route.types()), "{name}");
        }
        for (index, types) in primed.iter().enumerate() {
            assert!(!primed[index + 1..].contains(types), "{types:?} twice");
        }
    }

    fn route(name: &str) -> MatmulRoute {
        let policy = presets::preset(name).unwrap();
        MatmulRoute::of(&policy).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_preset_has_a_route() {
        for name in presets::names() {
            route(name);
        }
    }

    #[test]
    fn presets_take_the_routes_their_recipes_name() {
        let carrier = |elem, compute| MatmulRoute::Carrier { elem, compute };
        let f32_math = Compute::CUBLAS_COMPUTE_32F;
        assert_eq!(route("fp32"), carrier(Elem::F32, f32_math));
        assert_eq!(
            route("tf32"),
            carrier(Elem::F32, Compute::CUBLAS_COMPUTE_32F_FAST_TF32)
        );
        assert_eq!(route("bf16"), carrier(Elem::Bf16, f32_math));
        assert_eq!(route("fp16"), carrier(Elem::F16, f32_math));
        let fp8 = |weights_e5m2, activations_e5m2| MatmulRoute::Fp8 {
            weights_e5m2,
            activations_e5m2,
            delayed: None,
        };
        assert_eq!(route("fp8_e4m3"), fp8(false, false));
        assert_eq!(route("fp8_e5m2"), fp8(true, true));
        assert!(matches!(
            route("fp8_e4m3_delayed"),
            MatmulRoute::Fp8 { delayed: Some(Delay { history, .. }), .. } if history > 1
        ));
        assert_eq!(route("int8"), MatmulRoute::Int8);
        assert_eq!(
            route("mxfp8"),
            MatmulRoute::Mx {
                element: 0,
                emax: 8
            }
        );
        assert_eq!(
            route("mxfp4"),
            MatmulRoute::Mx {
                element: 4,
                emax: 2
            }
        );
        assert_eq!(route("nvfp4"), MatmulRoute::Nvfp4);
        assert_eq!(route("int4_w"), MatmulRoute::WeightOnly);
        assert_eq!(route("nf4_w"), MatmulRoute::WeightOnly);
    }

    #[test]
    fn row_wise_scaling_runs_for_int8_and_fp8_e4m3_only() {
        let rows = |format: &str| {
            let mut policy = presets::preset("int8").unwrap();
            policy.matmul.weights = format!("{format}/per_channel").try_into().unwrap();
            policy.matmul.activations = format!("{format}/per_token").try_into().unwrap();
            MatmulRoute::of(&policy)
        };
        assert_eq!(rows("int8").unwrap(), MatmulRoute::Int8);
        assert_eq!(rows("fp8_e4m3").unwrap(), MatmulRoute::Fp8Rows);
        assert_eq!(MatmulRoute::Fp8Rows.row_format(), Some(RowFormat::Fp8E4m3));
        let refused = rows("fp8_e5m2").unwrap_err().to_string();
        assert!(
            refused.contains("row-wise scaling runs on CUDA for INT8 and FP8 E4M3"),
            "{refused}"
        );
    }

    #[test]
    fn emulated_routes_say_so_and_native_ones_do_not() {
        for (name, emulated) in [
            ("bf16", false),
            ("fp8_e4m3", false),
            ("int8", false),
            ("fp8_e5m2", true),
            ("mxfp8", true),
            ("nvfp4", true),
            ("int4_w", true),
        ] {
            assert_eq!(route(name).emulated(), emulated, "{name}");
        }
        // FP8 reads one byte an operand; its E5M2 x E5M2 emulation reads BF16.
        assert_eq!(route("fp8_e4m3").operand_bytes(), 1);
        assert_eq!(route("fp8_e5m2").operand_bytes(), 2);
        assert!(route("int8").rescales() && !route("fp8_e4m3").rescales());
    }

    #[test]
    fn a_planted_fp8_fault_runs_in_bf16_unannounced() {
        let mut policy = presets::preset("fp8_e4m3").unwrap();
        policy.planted_fault = Some(PlantedFault::Fp8GemmAsBf16);
        assert_eq!(
            MatmulRoute::of(&policy).unwrap(),
            MatmulRoute::Carrier {
                elem: Elem::Bf16,
                compute: Compute::CUBLAS_COMPUTE_32F
            }
        );
    }

    #[test]
    fn policies_without_a_route_say_why() {
        let mut fp32_activation = presets::preset("bf16").unwrap();
        fp32_activation.activation = Format::Fp32;
        let error = MatmulRoute::of(&fp32_activation).unwrap_err().to_string();
        assert!(error.contains("per-class formats"), "{error}");
        // Norms store into the tensors between operations too.
        let mut fp32_norm = presets::preset("bf16").unwrap();
        fp32_norm.norm = Format::Fp32;
        let error = MatmulRoute::of(&fp32_norm).unwrap_err().to_string();
        assert!(error.contains("per-class formats"), "{error}");
        let mut fp8_over_fp16 = presets::preset("fp8_e4m3").unwrap();
        for format in [
            &mut fp8_over_fp16.default,
            &mut fp8_over_fp16.activation,
            &mut fp8_over_fp16.norm,
            &mut fp8_over_fp16.output,
            &mut fp8_over_fp16.matmul.output,
        ] {
            *format = Format::Fp16;
        }
        let error = MatmulRoute::of(&fp8_over_fp16).unwrap_err().to_string();
        assert!(error.contains("BF16 tensors between operations"), "{error}");
    }
}
