//! Matmuls through cuBLASLt, for every operand type precheck runs natively.
//!
//! cuBLASLt is column-major; precheck's tensors are row-major. A row-major `y = x · wᵀ` with `x`
//! `[tokens, k]` and `w` `[n, k]` is the column-major `yᵀ = w · xᵀ`: A is the weight, transposed
//! (`op(A) = T`, leading dimension k), B the activations (`op(B) = N`), D `[n, tokens]`. That "TN"
//! layout is also the one cuBLASLt's FP8 and INT8 kernels require. Attention's own products are
//! strided batches over heads ([`Problem`]).

use std::ffi::c_void;
use std::mem::size_of_val;

use cudarc::cublaslt::result;
use cudarc::cublaslt::sys::{
    self, cublasComputeType_t, cublasLtMatmulDescAttributes_t as Desc,
    cublasLtMatrixLayoutAttribute_t as Attr, cudaDataType as Data,
};
use cudarc::driver::CudaStream;

use super::kernels::Elem;
use crate::backend::BackendError;

/// `cublasOperation_t` values (cudarc declares the enum in its cuBLAS bindings, not cuBLASLt's).
const CUBLAS_OP_N: i32 = 0;
const CUBLAS_OP_T: i32 = 1;

/// cuBLASLt's type of a tensor format.
pub fn data_type(elem: Elem) -> Data {
    match elem {
        Elem::F32 => Data::CUDA_R_32F,
        Elem::Bf16 => Data::CUDA_R_16BF,
        Elem::F16 => Data::CUDA_R_16F,
    }
}

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
    /// BF16 operands into an FP32 output: emulated formats, whose scales are applied after.
    pub fn bf16_into_f32() -> Self {
        GemmTypes {
            d: Data::CUDA_R_32F,
            ..GemmTypes::uniform(Data::CUDA_R_16BF, cublasComputeType_t::CUBLAS_COMPUTE_32F)
        }
    }

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
        match self.compute {
            cublasComputeType_t::CUBLAS_COMPUTE_32I => Data::CUDA_R_32I,
            cublasComputeType_t::CUBLAS_COMPUTE_64F
            | cublasComputeType_t::CUBLAS_COMPUTE_64F_PEDANTIC => Data::CUDA_R_64F,
            _ => Data::CUDA_R_32F,
        }
    }
}

/// cuBLASLt workspace for a block's matmuls (they run one at a time) or one product: what its
/// Hopper kernels ask for at these sizes.
pub const WORKSPACE_BYTES: usize = 32 << 20;

/// The scales cuBLASLt applies to A and B, as device pointers to f32: one for each operand, or
/// (`outer_vectors`) one per row of op(A) and one per column of B, which for a linear are the
/// weight's per channel and the activations' per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperandScales {
    /// A's scale or scales.
    pub a: u64,
    /// B's scale or scales.
    pub b: u64,
    /// Vectors of scales instead of one each.
    pub outer_vectors: bool,
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
    /// The type of alpha and beta: i32, f32 or f64.
    scale_type: Data,
    alpha: f32,
}

fn cublas(what: &str) -> impl Fn(result::CublasError) -> BackendError + '_ {
    move |e| BackendError::Failed(format!("cuBLASLt {what}: {e}"))
}

/// A linear's problem: `d[tokens, n] (leading dimension ldd) = x[tokens, k] · w[n, k]ᵀ`.
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

/// A matrix as cuBLASLt stores it: column-major `rows × cols` with `ld` elements between columns
/// (a row-major `[r, c]` tensor is a column-major `c × r` one), and `batch_stride` elements
/// between the matrices of a batch (0: every product of the batch reads the same matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Rows, column-major.
    pub rows: usize,
    /// Columns, column-major.
    pub cols: usize,
    /// Elements between consecutive columns.
    pub ld: usize,
    /// Elements between consecutive matrices of a batch.
    pub batch_stride: usize,
}

/// A general (strided-batched) product `d = alpha · op(a) · b`, column-major, as cuBLASLt takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Problem {
    /// Whether `a` is transposed (`op(a) = aᵀ`).
    pub transpose_a: bool,
    /// The first operand, as stored.
    pub a: Layout,
    /// The second operand, as stored (never transposed).
    pub b: Layout,
    /// The output.
    pub d: Layout,
    /// Products in the batch.
    pub batch: usize,
    /// Applied to the FP32 accumulator before the output is rounded.
    pub alpha: f32,
}

impl From<Shape> for Problem {
    /// The linear `x · wᵀ` is the column-major `yᵀ = w · xᵀ`: A is the weight, transposed
    /// (leading dimension k), B the activations, D `[n, tokens]`.
    fn from(shape: Shape) -> Problem {
        let Shape { tokens, n, k, ldd } = shape;
        let dense = |rows, cols, ld| Layout {
            rows,
            cols,
            ld,
            batch_stride: 0,
        };
        Problem {
            transpose_a: true,
            a: dense(k, n, k),
            b: dense(k, tokens, k),
            d: dense(n, tokens, ldd),
            batch: 1,
            alpha: 1.0,
        }
    }
}

/// Asks cuBLASLt for an algorithm for each of `types` at one mid-sized shape, on a handle of its
/// own, and forgets the answers. cuBLASLt's first question about a type combination in a process
/// costs tens of milliseconds whatever the shape (on the H200: 60–85 ms for BF16, FP16 and FP32,
/// 30 ms for emulated NVFP4's BF16 into f32), which every variant's build paid in a worker; asked
/// on a thread while the device opens and the first model's weights are drawn, it is paid off
/// the builds. A question that fails is no error here: the build asks again and says why.
pub fn prime(types: &[GemmTypes]) {
    let Ok(handle) = result::create_handle() else {
        return;
    };
    let shape = Shape {
        tokens: 1024,
        n: 4096,
        k: 4096,
        ldd: 4096,
    };
    for &types in types {
        // Nothing runs: the workspace's address is never used.
        if let Err(why) = Gemm::new(handle, types, shape, None, (0, WORKSPACE_BYTES)) {
            tracing::debug!("priming cuBLASLt for {types:?}: {why}");
        }
    }
    // SAFETY: created above, used by nothing else (every Gemm planned on it is dropped), destroyed
    // once.
    let _ = unsafe { result::destroy_handle(handle) };
}

impl Gemm {
    /// Plans a matmul; `scales` are those of A and B that cuBLASLt applies (FP8).
    pub fn new(
        handle: sys::cublasLtHandle_t,
        types: GemmTypes,
        problem: impl Into<Problem>,
        scales: Option<OperandScales>,
        workspace: (u64, usize),
    ) -> Result<Self, BackendError> {
        let problem = problem.into();
        let desc = result::create_matmul_desc(types.compute, types.scale_type())
            .map_err(cublas("descriptor"))?;
        // SAFETY: `desc` was created just above and is freed only in `Drop`; each value is the type
        // its attribute expects (TRANSA/TRANSB an i32 `cublasOperation_t`, the scale pointers a u64
        // device address, the scale modes an i32 `cublasLtMatmulMatrixScale_t`) and is passed with
        // its exact size.
        let set = |attr: Desc, value: &dyn AsBytes| unsafe {
            result::set_matmul_desc_attribute(desc, attr, value.ptr(), value.len())
        };
        let transa = if problem.transpose_a {
            CUBLAS_OP_T
        } else {
            CUBLAS_OP_N
        };
        set(Desc::CUBLASLT_MATMUL_DESC_TRANSA, &transa).map_err(cublas("transa"))?;
        set(Desc::CUBLASLT_MATMUL_DESC_TRANSB, &CUBLAS_OP_N).map_err(cublas("transb"))?;
        if let Some(scales) = scales {
            set(Desc::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scales.a)
                .map_err(cublas("A scale"))?;
            set(Desc::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scales.b)
                .map_err(cublas("B scale"))?;
            if scales.outer_vectors {
                let mode =
                    sys::cublasLtMatmulMatrixScale_t::CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
                        as i32;
                set(Desc::CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode).map_err(cublas("A scales"))?;
                set(Desc::CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode).map_err(cublas("B scales"))?;
            }
        }
        let layouts = [
            layout(types.a, problem.a, problem.batch)?,
            layout(types.b, problem.b, problem.batch)?,
            layout(types.d, problem.d, problem.batch)?,
        ];
        let preference = result::create_matmul_pref().map_err(cublas("preference"))?;
        let workspace_bytes = workspace.1 as u64;
        // SAFETY: `preference` is live until destroyed below; MAX_WORKSPACE_BYTES expects a
        // uint64_t, and the pointer is to the u64 `workspace_bytes`, which outlives the call, with
        // its size.
        unsafe {
            result::set_matmul_pref_attribute(
                preference,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&workspace_bytes as *const u64).cast(),
                size_of_val(&workspace_bytes),
            )
        }
        .map_err(cublas("workspace preference"))?;
        // SAFETY: `handle` is the device's live cuBLASLt handle; `desc`, the three layouts and
        // `preference` were created above and none is freed yet (D's layout doubles as C's, as in
        // `run`).
        let heuristic = unsafe {
            result::get_matmul_algo_heuristic(
                handle, desc, layouts[0], layouts[1], layouts[2], layouts[2], preference,
            )
        };
        // SAFETY: `preference` came from `create_matmul_pref` above, is destroyed exactly once here
        // and not used afterwards (the chosen algorithm is copied out of the heuristic result).
        unsafe { result::destroy_matmul_pref(preference) }.map_err(cublas("preference"))?;
        let heuristic = heuristic.map_err(|e| {
            BackendError::Unsupported(format!(
                "cuBLASLt has no kernel for {types:?} at {problem:?}: {e}"
            ))
        })?;
        Ok(Gemm {
            handle,
            desc,
            layouts,
            algo: heuristic.algo,
            workspace: workspace.0,
            workspace_bytes: workspace.1,
            scale_type: types.scale_type(),
            alpha: problem.alpha,
        })
    }

    /// Enqueues `d = alpha · op(a) · b` on `stream` (device pointers; for a linear, `a` is the
    /// weight and `b` the activations).
    pub fn run(&self, stream: &CudaStream, a: u64, b: u64, d: u64) -> Result<(), BackendError> {
        let (alpha_f, zero_f) = (self.alpha, 0.0f32);
        let (alpha_d, zero_d) = (f64::from(self.alpha), 0.0f64);
        let (one_i, zero_i) = (1i32, 0i32);
        let (alpha, beta): (*const c_void, *const c_void) = match self.scale_type {
            Data::CUDA_R_32I => (
                (&one_i as *const i32).cast(),
                (&zero_i as *const i32).cast(),
            ),
            Data::CUDA_R_64F => (
                (&alpha_d as *const f64).cast(),
                (&zero_d as *const f64).cast(),
            ),
            _ => (
                (&alpha_f as *const f32).cast(),
                (&zero_f as *const f32).cast(),
            ),
        };
        let [a_layout, b_layout, d_layout] = self.layouts;
        // SAFETY: the device's handle and `desc`, layouts, `algo` (freed only in `Drop`) are live;
        // alpha/beta point to host scalars of the scale type (i32, f32 or f64), read during the
        // call;
        // `a`, `b`, `d` and the workspace cover their layouts and outlive the stream's work.
        unsafe {
            result::matmul(
                self.handle,
                self.desc,
                alpha,
                beta,
                a as *const c_void,
                a_layout,
                b as *const c_void,
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

/// cuBLASLt's layout of `matrix`, batched when `batch > 1`.
fn layout(
    data: Data,
    matrix: Layout,
    batch: usize,
) -> Result<sys::cublasLtMatrixLayout_t, BackendError> {
    let layout = result::create_matrix_layout(
        data,
        matrix.rows as u64,
        matrix.cols as u64,
        matrix.ld as i64,
    )
    .map_err(cublas("layout"))?;
    if batch > 1 {
        let (count, stride) = (batch as i32, matrix.batch_stride as i64);
        // SAFETY: `layout` was just created and is neither returned nor freed yet; BATCH_COUNT
        // expects an int32 and STRIDED_BATCH_OFFSET an int64, which `count` and `stride` are,
        // passed with their sizes.
        let set = |attr, value: &dyn AsBytes| unsafe {
            result::set_matrix_layout_attribute(layout, attr, value.ptr(), value.len())
        };
        set(Attr::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count).map_err(cublas("batch count"))?;
        set(Attr::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride)
            .map_err(cublas("batch stride"))?;
    }
    Ok(layout)
}

impl Drop for Gemm {
    fn drop(&mut self) {
        // Errors while tearing down cannot be acted on; the descriptors are freed either way.
        // SAFETY: `desc` and the layouts were created by `Gemm::new`, are owned by this `Gemm`
        // alone (it is not `Clone`) and are destroyed once here; cuBLASLt reads them only during
        // `matmul` calls.
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
