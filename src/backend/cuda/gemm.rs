//! Matmuls through cuBLASLt, for every operand type precheck runs natively.
//!
//! cuBLASLt is column-major; precheck's tensors are row-major. A row-major `y = x · wᵀ` with `x`
//! `[tokens, k]` and `w` `[n, k]` is the column-major `yᵀ = w · xᵀ`: A is the weight, transposed
//! (`op(A) = T`, leading dimension k), B the activations (`op(B) = N`), D `[n, tokens]`. That "TN"
//! layout is also the one cuBLASLt's FP8 and INT8 kernels require.

use std::ffi::c_void;
use std::mem::size_of_val;

use cudarc::cublaslt::result;
use cudarc::cublaslt::sys::{
    self, cublasComputeType_t, cublasLtMatmulDescAttributes_t as Desc, cudaDataType as Data,
};
use cudarc::driver::CudaStream;

use crate::backend::BackendError;

/// `cublasOperation_t` values (cudarc declares the enum in its cuBLAS bindings, not cuBLASLt's).
const CUBLAS_OP_N: i32 = 0;
const CUBLAS_OP_T: i32 = 1;

/// The types of one matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmTypes {
    /// The weight's type.
    pub a: Data,
    /// The activations' type.
    pub b: Data,
    /// The output's type.
    pub d: Data,
    /// Compute type (accumulation).
    pub compute: cublasComputeType_t,
}

impl GemmTypes {
    /// Every operand and the output in `data`, FP32 accumulation.
    pub fn uniform(data: Data, compute: cublasComputeType_t) -> Self {
        GemmTypes {
            a: data,
            b: data,
            d: data,
            compute,
        }
    }

    fn scale_type(self) -> Data {
        if self.compute == cublasComputeType_t::CUBLAS_COMPUTE_32I {
            Data::CUDA_R_32I
        } else {
            Data::CUDA_R_32F
        }
    }
}

/// One planned matmul: descriptors and the algorithm cuBLASLt's heuristic chose, kept for the
/// variant's life so that every iteration runs the same kernel.
pub struct Gemm {
    handle: sys::cublasLtHandle_t,
    desc: sys::cublasLtMatmulDesc_t,
    layouts: [sys::cublasLtMatrixLayout_t; 3],
    algo: sys::cublasLtMatmulAlgo_t,
    workspace: u64,
    workspace_bytes: usize,
    int_scaling: bool,
}

fn cublas(what: &str) -> impl Fn(result::CublasError) -> BackendError + '_ {
    move |e| BackendError::Failed(format!("cuBLASLt {what}: {e}"))
}

/// The problem: `d[tokens, n] (leading dimension ldd) = x[tokens, k] · w[n, k]ᵀ`.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Rows of x and d.
    pub tokens: usize,
    /// Output features.
    pub n: usize,
    /// Reduction dimension.
    pub k: usize,
    /// Elements between consecutive rows of d (n for a dense output; more to write a slice).
    pub ldd: usize,
}

impl Gemm {
    /// Plans a matmul; `scales` are device pointers to the FP8 per-tensor scales of A and B.
    pub fn new(
        handle: sys::cublasLtHandle_t,
        types: GemmTypes,
        shape: Shape,
        scales: Option<(u64, u64)>,
        workspace: (u64, usize),
    ) -> Result<Self, BackendError> {
        let desc = result::create_matmul_desc(types.compute, types.scale_type())
            .map_err(cublas("descriptor"))?;
        let set = |attr: Desc, value: &dyn AsBytes| unsafe {
            result::set_matmul_desc_attribute(desc, attr, value.ptr(), value.len())
        };
        set(Desc::CUBLASLT_MATMUL_DESC_TRANSA, &CUBLAS_OP_T).map_err(cublas("transa"))?;
        set(Desc::CUBLASLT_MATMUL_DESC_TRANSB, &CUBLAS_OP_N).map_err(cublas("transb"))?;
        if let Some((a_scale, b_scale)) = scales {
            set(Desc::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale).map_err(cublas("A scale"))?;
            set(Desc::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale).map_err(cublas("B scale"))?;
        }
        let (k, n, t) = (shape.k as u64, shape.n as u64, shape.tokens as u64);
        let layouts = [
            result::create_matrix_layout(types.a, k, n, k as i64).map_err(cublas("A layout"))?,
            result::create_matrix_layout(types.b, k, t, k as i64).map_err(cublas("B layout"))?,
            result::create_matrix_layout(types.d, n, t, shape.ldd as i64)
                .map_err(cublas("D layout"))?,
        ];
        let preference = result::create_matmul_pref().map_err(cublas("preference"))?;
        let workspace_bytes = workspace.1 as u64;
        unsafe {
            result::set_matmul_pref_attribute(
                preference,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&workspace_bytes as *const u64).cast(),
                size_of_val(&workspace_bytes),
            )
        }
        .map_err(cublas("workspace preference"))?;
        let heuristic = unsafe {
            result::get_matmul_algo_heuristic(
                handle, desc, layouts[0], layouts[1], layouts[2], layouts[2], preference,
            )
        };
        unsafe { result::destroy_matmul_pref(preference) }.map_err(cublas("preference"))?;
        let heuristic = heuristic.map_err(|e| {
            BackendError::Unsupported(format!(
                "cuBLASLt has no kernel for {types:?} at {shape:?}: {e}"
            ))
        })?;
        Ok(Gemm {
            handle,
            desc,
            layouts,
            algo: heuristic.algo,
            workspace: workspace.0,
            workspace_bytes: workspace.1,
            int_scaling: types.scale_type() == Data::CUDA_R_32I,
        })
    }

    /// Enqueues `d = w · x` on `stream` (device pointers).
    pub fn run(&self, stream: &CudaStream, w: u64, x: u64, d: u64) -> Result<(), BackendError> {
        let (one_f, zero_f) = (1.0f32, 0.0f32);
        let (one_i, zero_i) = (1i32, 0i32);
        let (alpha, beta): (*const c_void, *const c_void) = if self.int_scaling {
            (
                (&one_i as *const i32).cast(),
                (&zero_i as *const i32).cast(),
            )
        } else {
            (
                (&one_f as *const f32).cast(),
                (&zero_f as *const f32).cast(),
            )
        };
        let [a_layout, b_layout, d_layout] = self.layouts;
        unsafe {
            result::matmul(
                self.handle,
                self.desc,
                alpha,
                beta,
                w as *const c_void,
                a_layout,
                x as *const c_void,
                b_layout,
                d as *const c_void,
                d_layout,
                d as *mut c_void,
                d_layout,
                &self.algo,
                self.workspace as *mut c_void,
                self.workspace_bytes,
                stream.cu_stream() as sys::cudaStream_t,
            )
        }
        .map_err(cublas("matmul"))
    }
}

impl Drop for Gemm {
    fn drop(&mut self) {
        // Errors while tearing down cannot be acted on; the descriptors are freed either way.
        unsafe {
            let _ = result::destroy_matmul_desc(self.desc);
            for layout in self.layouts {
                let _ = result::destroy_matrix_layout(layout);
            }
        }
    }
}

/// A value passed to cuBLASLt's attribute setters as bytes.
trait AsBytes {
    fn ptr(&self) -> *const c_void;
    fn len(&self) -> usize;
}

impl<T> AsBytes for T {
    fn ptr(&self) -> *const c_void {
        (self as *const T).cast()
    }

    fn len(&self) -> usize {
        size_of_val(self)
    }
}
