//! The host's products on the GPU ([`ProductDevice`]): the exact reference's f64 products and the
//! CPU emulations' f32 products, through cuBLASLt with pedantic compute types (f32 accumulates in
//! f32, never TF32; f64 in f64). A stream, cuBLASLt handle and workspace of their own keep them
//! apart from the blocks a backend builds and times. Operands and products pass through a pinned
//! staging buffer, filled and emptied over rayon's threads: copies from pageable memory ran at
//! 3 GB/s and took sixty times the product's own time.

use std::mem::size_of_val;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys::{cublasComputeType_t, cublasLtHandle_t, cudaDataType as Data};
use cudarc::driver::{
    result as driver, CudaContext, CudaSlice, CudaStream, DevicePtr, DeviceRepr, DriverError,
    PinnedHostSlice,
};

use super::gemm::{Gemm, GemmTypes, Shape};
use crate::linalg::ProductDevice;
use crate::tensor::Tensor;

/// cuBLASLt workspace for one product.
const WORKSPACE_BYTES: usize = 32 << 20;

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
    /// Page-locked host memory the copies go through, grown to the largest product so far.
    staging: Option<PinnedHostSlice<u8>>,
}

impl State {
    /// The staging buffer, at least `bytes` long.
    fn staging(&mut self, bytes: usize) -> Result<&mut [u8], DriverError> {
        if self.staging.as_ref().is_none_or(|s| s.len() < bytes) {
            // The old buffer goes first: two need not fit at once.
            self.staging = None;
            // SAFETY: the buffer's bytes are unset; every product writes the bytes it copies
            // before the copy reads them. Flags 0: cached memory, since the host reads products
            // back from it (write-combined memory is slow to read).
            let pinned = unsafe { self.stream.context().alloc_pinned_with_flags(bytes, 0) }?;
            self.staging = Some(pinned);
        }
        self.staging
            .as_mut()
            .expect("allocated above")
            .as_mut_slice()
    }
}

/// Bytes copied per parallel task between pageable and pinned memory.
const COPY_CHUNK: usize = 1 << 20;

/// `to.copy_from_slice(from)` over rayon's threads.
fn copy_parallel(to: &mut [u8], from: &[u8]) {
    to.par_chunks_mut(COPY_CHUNK)
        .zip(from.par_chunks(COPY_CHUNK))
        .for_each(|(to, from)| to.copy_from_slice(from));
}

/// The bytes of a slice of plain numbers.
fn bytes_of<T: DeviceRepr>(values: &[T]) -> &[u8] {
    // SAFETY: `T` is a plain number (f32, f64: `DeviceRepr`, no padding, every byte initialised);
    // the byte slice covers exactly the values' memory and borrows it for as long.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), size_of_val(values)) }
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
                staging: None,
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
        let (x_bytes, w_bytes) = (bytes_of(&x.data), bytes_of(&w.data));
        let y_len = tokens * n;
        let y_bytes = y_len * std::mem::size_of::<T>();
        let stream = state.stream.clone();
        // SAFETY (the three allocations): each is written whole before it is read, the operands
        // by the copies below and the product by the GEMM (beta = 0: it reads no C).
        let (x_dev, w_dev, y_dev) = unsafe {
            (
                stream.alloc::<T>(x.data.len()),
                stream.alloc::<T>(w.data.len()),
                stream.alloc::<T>(y_len),
            )
        };
        let (x_dev, w_dev, y_dev) = (
            x_dev.map_err(failed("allocating x"))?,
            w_dev.map_err(failed("allocating w"))?,
            y_dev.map_err(failed("allocating the product"))?,
        );
        let staging = state
            .staging((x_bytes.len() + w_bytes.len()).max(y_bytes))
            .map_err(failed("pinned staging memory"))?;
        let (x_staged, rest) = staging.split_at_mut(x_bytes.len());
        copy_parallel(x_staged, x_bytes);
        copy_parallel(&mut rest[..w_bytes.len()], w_bytes);
        // SAFETY: each device buffer was allocated above with exactly as many bytes as its staged
        // copy; the staging buffer is not touched again before the stream has synchronized.
        unsafe {
            driver::memcpy_htod_async(x_dev.device_ptr(&stream).0, x_staged, stream.cu_stream())
                .map_err(failed("copying x"))?;
            driver::memcpy_htod_async(
                w_dev.device_ptr(&stream).0,
                &rest[..w_bytes.len()],
                stream.cu_stream(),
            )
            .map_err(failed("copying w"))?;
        }
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
        let staging = state
            .staging(y_bytes)
            .map_err(failed("pinned staging memory"))?;
        // SAFETY: `y_dev` holds `y_bytes` bytes, written by the GEMM enqueued before this copy
        // on the same stream; the staging buffer is read only after the stream synchronizes.
        unsafe {
            driver::memcpy_dtoh_async(
                &mut staging[..y_bytes],
                y_dev.device_ptr(&stream).0,
                stream.cu_stream(),
            )
        }
        .map_err(failed("copying the product"))?;
        stream.synchronize().map_err(failed("synchronize"))?;
        // SAFETY: pinned memory is page-aligned, and the bytes are `y_len` values of `T` that
        // the device wrote; `align_to` reports any misalignment in its prefix, checked below.
        let (prefix, values, _) = unsafe { staging[..y_bytes].align_to::<T>() };
        assert!(prefix.is_empty(), "pinned memory is page-aligned");
        let data: Vec<T> = values
            .par_iter()
            .with_min_len(COPY_CHUNK)
            .copied()
            .collect();
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
