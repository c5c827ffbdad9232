//! The host's products on the GPU ([`ProductDevice`]): the exact reference's f64 products and the
//! CPU emulations' f32 products, through cuBLASLt with pedantic compute types (f32 accumulates in
//! f32, never TF32; f64 in f64). A stream, cuBLASLt handle, workspace and staging buffer of their
//! own keep them apart from the blocks a backend builds and times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys::{cublasComputeType_t, cublasLtHandle_t, cudaDataType as Data};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DeviceRepr, DriverError};

use super::gemm::{Gemm, GemmTypes, Shape, WORKSPACE_BYTES};
use super::staging::Staging;
use crate::linalg::ProductDevice;
use crate::tensor::Tensor;

/// A GPU computing the host's products, one at a time.
pub struct GpuProducts {
    /// The stream, handle and workspace, used by one product at a time.
    state: Mutex<State>,
    /// Nanoseconds spent in the products' kernels (CUDA events), copies excluded.
    busy_ns: AtomicU64,
    name: String,
}

struct State {
    stream: Arc<CudaStream>,
    lt: cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    staging: Staging,
}

// SAFETY: the cuBLASLt handle is used only under `state`'s lock, one thread at a time, which is
// what cuBLASLt requires of a handle; the stream and workspace are cudarc's thread-safe types.
unsafe impl Send for State {}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `GpuProducts::new`, is owned by this state alone and
        // destroyed once here; no product is running (they hold the state's lock, and it is
        // being dropped).
        let _ = unsafe { lt::destroy_handle(self.lt) };
    }
}

impl GpuProducts {
    /// Products on `ctx`'s device (`name` for people), on a new stream and cuBLASLt handle.
    pub fn new(ctx: &Arc<CudaContext>, name: String) -> Result<Self, String> {
        let failed = |what: &'static str| move |e: DriverError| format!("{what}: {e}");
        let stream = ctx.new_stream().map_err(failed("creating a stream"))?;
        let workspace = stream
            .alloc_zeros::<u8>(WORKSPACE_BYTES)
            .map_err(failed("cuBLASLt workspace"))?;
        let lt = lt::create_handle().map_err(|e| format!("cuBLASLt handle: {e}"))?;
        Ok(GpuProducts {
            state: Mutex::new(State {
                stream,
                lt,
                workspace,
                staging: Staging::default(),
            }),
            busy_ns: AtomicU64::new(0),
            name,
        })
    }

    /// `x · wᵀ` with `compute`'s accumulation: both operands copied in, the product copied out.
    fn product<T: DeviceRepr + Copy + Send + Sync>(
        &self,
        x: &Tensor<T>,
        w: &Tensor<T>,
        data: Data,
        compute: cublasComputeType_t,
    ) -> Result<Tensor<T>, String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let failed = |what: &'static str| move |e: DriverError| format!("{what}: {e}");
        let (tokens, k, n) = (x.rows, x.cols, w.rows);
        let stream = state.stream.clone();
        let x_dev = state
            .staging
            .upload(&stream, &x.data)
            .map_err(failed("copying x"))?;
        let w_dev = state
            .staging
            .upload(&stream, &w.data)
            .map_err(failed("copying w"))?;
        // SAFETY: written whole by the GEMM before it is read (beta = 0: the GEMM reads no C).
        let y_dev = unsafe { stream.alloc::<T>(tokens * n) }.map_err(failed("allocating"))?;
        let gemm = Gemm::new(
            state.lt,
            GemmTypes::uniform(data, compute),
            Shape {
                tokens,
                n,
                k,
                ldd: n,
            },
            None,
            (state.workspace.device_ptr(&stream).0, WORKSPACE_BYTES),
        )
        .map_err(|e| e.to_string())?;
        let ctx = stream.context();
        let event = || ctx.new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT));
        let (start, end) = (
            event().map_err(failed("event"))?,
            event().map_err(failed("event"))?,
        );
        start.record(&stream).map_err(failed("event"))?;
        gemm.run(
            &stream,
            w_dev.device_ptr(&stream).0,
            x_dev.device_ptr(&stream).0,
            y_dev.device_ptr(&stream).0,
        )
        .map_err(|e| e.to_string())?;
        end.record(&stream).map_err(failed("event"))?;
        let data = state
            .staging
            .download(&stream, &y_dev)
            .map_err(failed("copying the product"))?;
        let ms = start.elapsed_ms(&end).map_err(failed("event"))?;
        self.busy_ns
            .fetch_add((f64::from(ms) * 1e6) as u64, Ordering::Relaxed);
        Ok(Tensor::new(tokens, n, data))
    }
}

impl ProductDevice for GpuProducts {
    fn matmul_nt_f32(&self, x: &Tensor<f32>, w: &Tensor<f32>) -> Result<Tensor<f32>, String> {
        self.product(
            x,
            w,
            Data::CUDA_R_32F,
            cublasComputeType_t::CUBLAS_COMPUTE_32F_PEDANTIC,
        )
    }

    fn matmul_nt_f64(&self, x: &Tensor<f64>, w: &Tensor<f64>) -> Result<Tensor<f64>, String> {
        self.product(
            x,
            w,
            Data::CUDA_R_64F,
            cublasComputeType_t::CUBLAS_COMPUTE_64F_PEDANTIC,
        )
    }

    fn busy_s(&self) -> f64 {
        self.busy_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
