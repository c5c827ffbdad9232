//! The CUDA backend: cudarc (driver, cuBLASLt, NVRTC), with CUDA loaded at run time, so that
//! precheck builds and runs everywhere and says clearly where no GPU can be used.
//!
//! Every precision policy with a native route runs through cuBLASLt with precheck's own NVRTC
//! kernels around it ([`block`]); tensors stay on the device for the whole block; a forward pass is
//! one CUDA graph, timed with CUDA events.

mod arena;
mod attention;
mod block;
mod clocks;
mod gemm;
mod groups;
pub mod kernels;
mod layer;
mod mlp;
mod params;
mod products;
mod quantizer;
mod route;
mod staging;
mod trace;
mod weights;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cudarc::cublaslt::{result as lt, sys as lt_sys};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr};

use super::{Backend, BackendError, BackendKind, Executable, Timing};
use crate::linalg::ProductDevice;
use crate::measure::CacheMode;
use crate::measure::{KernelLaunches, SmClock};
use crate::model::{Model, Weights};
use crate::precision::Policy;
use crate::tensor::Tensor;
use block::CudaBlock;
use clocks::ClockReader;
use kernels::Kernels;
pub use weights::Quantizing;

/// Why no CUDA device can be used here, if none can: checked before anything touches cudarc,
/// which panics when it cannot load the driver library.
pub fn unavailable() -> Option<String> {
    // SAFETY: only tries to load the library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Some("no CUDA driver found (libcuda could not be loaded)".into());
    }
    match CudaContext::device_count() {
        Ok(0) => Some("the CUDA driver reports no device".into()),
        Ok(_) => None,
        Err(e) => Some(format!("the CUDA driver failed: {e}")),
    }
}

/// One line per CUDA device: name, compute capability, memory, driver, CUDA and cuBLASLt versions.
pub fn describe() -> Result<Vec<String>, String> {
    if let Some(why) = unavailable() {
        return Err(why);
    }
    let count = CudaContext::device_count().map_err(|e| e.to_string())?;
    let mut driver = 0;
    // SAFETY: writes one int.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver) };
    let cublaslt = if unsafe { lt_sys::is_culib_present() } {
        format!("cuBLASLt {}", unsafe { lt_sys::cublasLtGetVersion() })
    } else {
        "no cuBLASLt".into()
    };
    (0..count as usize)
        .map(|ordinal| {
            let ctx = CudaContext::new(ordinal).map_err(|e| e.to_string())?;
            let (major, minor) = ctx.compute_capability().map_err(|e| e.to_string())?;
            let memory = ctx.total_mem().map_err(|e| e.to_string())? as f64 / (1u64 << 30) as f64;
            Ok(format!(
                "cuda:{ordinal} {} (sm_{major}{minor}, {memory:.0} GiB; driver CUDA {}.{}; {cublaslt})",
                ctx.name().map_err(|e| e.to_string())?,
                driver / 1000,
                (driver % 1000) / 10
            ))
        })
        .collect()
}

/// What a built block needs of its GPU: context, stream, kernels and the cuBLASLt handle.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    lt: lt_sys::cublasLtHandle_t,
    /// NVML's SM clock of this device, where NVML loads.
    clocks: Option<ClockReader>,
    /// The L2 cache's size.
    l2_bytes: usize,
    /// Twice the L2 cache: writing it evicts whatever a timed iteration would find there.
    flush: CudaSlice<u8>,
    /// The pinned buffer weights are uploaded through.
    staging: std::sync::Mutex<staging::Staging>,
}

/// A driver error as the backend's, saying what failed.
fn failed(what: &str) -> impl Fn(cudarc::driver::DriverError) -> BackendError + '_ {
    move |e| BackendError::Failed(format!("{what}: {e}"))
}

impl Gpu {
    /// The pinned buffer uploads and downloads go through. A thread that panicked while holding
    /// it left no state that a later copy depends on (each copy fills what it reads), so a
    /// poisoned lock is taken as it is.
    fn staging(&self) -> std::sync::MutexGuard<'_, staging::Staging> {
        self.staging.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens device `ordinal`: compiles the kernels, creates the stream and cuBLASLt handle.
    fn open(ordinal: usize) -> Result<Self, BackendError> {
        let ctx = CudaContext::new(ordinal).map_err(failed("creating its context"))?;
        // One stream, one variant at a time: cudarc's cross-stream event tracking is not needed.
        // SAFETY: every buffer of this context is used on the one stream created below, so no
        // access needs the events cudarc would record to order streams.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(failed("creating a stream"))?;
        if ctx.has_async_alloc() {
            keep_freed_memory(&ctx).map_err(failed("the device's memory pool"))?;
        }
        // SAFETY: only tries to load libcublasLt; nothing is called through it yet.
        if !unsafe { lt_sys::is_culib_present() } {
            return Err(BackendError::Unavailable(
                "cuBLASLt (libcublasLt) could not be loaded".into(),
            ));
        }
        let lt = lt::create_handle()
            .map_err(|e| BackendError::Failed(format!("cuBLASLt handle: {e}")))?;
        let kernels = Kernels::load(&ctx)?;
        let l2_bytes = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
            .map_err(failed("L2 size"))? as usize;
        let flush = stream
            .alloc_zeros::<u8>(2 * l2_bytes.max(1))
            .map_err(failed("L2 flush buffer"))?;
        let clocks = match ClockReader::open(&ctx) {
            Ok(reader) => Some(reader),
            Err(why) => {
                tracing::warn!("SM clocks will not be recorded: {why}");
                None
            }
        };
        Ok(Gpu {
            ctx,
            stream,
            kernels,
            lt,
            clocks,
            l2_bytes,
            flush,
            staging: Default::default(),
        })
    }

    /// Evicts the L2 cache by writing a buffer twice its size (enqueued on the stream; the
    /// written byte changes so that no write is a no-op).
    fn flush_l2(&self, round: usize) -> Result<(), BackendError> {
        let (ptr, _sync) = self.flush.device_ptr(&self.stream);
        // SAFETY: `ptr` is the device's own allocation of `self.flush.len()` bytes.
        unsafe {
            cudarc::driver::result::memset_d8_async(
                ptr,
                (round % 251) as u8,
                self.flush.len(),
                self.stream.cu_stream(),
            )
        }
        .map_err(|e| BackendError::Failed(format!("flushing L2: {e}")))
    }
}

/// Keeps memory freed on `ctx`'s device in its memory pool instead of giving it back to the
/// driver at each synchronization (the pool's default): a worker builds variant after variant of
/// the same model, each allocating and freeing the same hundreds of megabytes, which the driver
/// would unmap and map again every time.
fn keep_freed_memory(ctx: &CudaContext) -> Result<(), cudarc::driver::DriverError> {
    use cudarc::driver::sys;
    let mut pool = std::mem::MaybeUninit::<sys::CUmemoryPool>::uninit();
    // SAFETY: `pool` has room for the pool handle cuDeviceGetDefaultMemPool writes on success;
    // the device is the live context's.
    let pool = unsafe {
        sys::cuDeviceGetDefaultMemPool(pool.as_mut_ptr(), ctx.cu_device()).result()?;
        pool.assume_init()
    };
    let mut threshold = u64::MAX;
    // SAFETY: the default pool is valid while its device is; RELEASE_THRESHOLD takes a cuuint64_t,
    // which `threshold` is, alive for the call.
    unsafe {
        cudarc::driver::result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
    }
}

// SAFETY: the cuBLASLt handle is used from one thread at a time (one variant runs at a time per
// device), which is what cuBLASLt requires of a handle.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

/// CUDA GPUs, one at a time.
pub struct CudaBackend {
    ordinal: usize,
    /// The device's name and compute capability, read without opening it.
    name: String,
    /// The device, opened when first needed: a run's own process only names its devices (its
    /// workers build and time), and a context with precheck's kernels takes a third of a second
    /// and some memory of the GPU.
    device: OnceLock<Result<Arc<Gpu>, BackendError>>,
    /// The host's products on this GPU, made when first asked for (None: they could not be).
    products: OnceLock<Option<Arc<products::GpuProducts>>>,
}

impl CudaBackend {
    /// Device `ordinal`, named; it opens (kernels compiled, stream and cuBLASLt handle created)
    /// when first needed.
    pub fn new(ordinal: usize) -> Result<Self, BackendError> {
        if let Some(why) = unavailable() {
            return Err(BackendError::Unavailable(why));
        }
        Ok(CudaBackend {
            ordinal,
            name: device_label(ordinal).map_err(failed("naming the device"))?,
            device: OnceLock::new(),
            products: OnceLock::new(),
        })
    }

    /// The device, opened on first use; the error of a failed opening, every time.
    fn gpu(&self) -> Result<Arc<Gpu>, BackendError> {
        let opened = self
            .device
            .get_or_init(|| Gpu::open(self.ordinal).map(Arc::new));
        match opened {
            Ok(gpu) => Ok(gpu.clone()),
            Err(BackendError::Unavailable(why)) => Err(BackendError::Unavailable(why.clone())),
            Err(other) => Err(BackendError::Failed(format!("opening the device: {other}"))),
        }
    }

    /// `weights` (each `[rows, k]`) quantized for `policy` as its matmuls read them, where
    /// `quantizing` says, and read back: their operand bytes, concatenated, and one scale per
    /// output column. What a build uploads; for the GPU test that holds the GPU's quantization to
    /// the host's bytes.
    pub fn quantized_weights(
        &self,
        policy: &Policy,
        weights: &[&Tensor],
        quantizing: Quantizing,
    ) -> Result<(Vec<u8>, Vec<f32>), BackendError> {
        let route = route::MatmulRoute::of(policy)?;
        let gpu = self.gpu()?;
        let mut arena = arena::Arena::default();
        let spec = weights::weight_spec(route, policy);
        let (weight, scales) =
            weights::upload(&gpu, &mut arena, (route, spec), weights, quantizing)?;
        let mut bytes = vec![0u8; weight.rows * weights[0].cols * route.operand_bytes()];
        gpu.stream
            .synchronize()
            .map_err(|e| BackendError::Failed(format!("synchronize: {e}")))?;
        // SAFETY: `weight.data` is an allocation of `arena` (alive here) holding `bytes.len()`
        // bytes, written by work the stream has finished.
        unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut bytes, weight.data) }
            .map_err(|e| BackendError::Failed(format!("reading weights: {e}")))?;
        Ok((bytes, scales))
    }
}

/// `NAME (sm_XY)` of device `ordinal`, from the driver without a context.
fn device_label(ordinal: usize) -> Result<String, cudarc::driver::DriverError> {
    use cudarc::driver::result::{self as driver, device};
    use cudarc::driver::sys::CUdevice_attribute as Attribute;
    driver::init()?;
    let dev = device::get(ordinal as i32)?;
    // SAFETY: `dev` is a device the driver just returned; both attributes are ints.
    let (major, minor) = unsafe {
        (
            device::get_attribute(dev, Attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            device::get_attribute(dev, Attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        )
    };
    Ok(format!("{} (sm_{major}{minor})", device::get_name(dev)?))
}

impl Backend for CudaBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cuda
    }

    fn device_name(&self) -> String {
        self.name.clone()
    }

    fn product_device(&self) -> Option<Arc<dyn ProductDevice>> {
        let products = self.products.get_or_init(|| {
            let gpu = self.gpu().map_err(|e| e.to_string());
            gpu.and_then(|gpu| products::GpuProducts::new(&gpu.ctx, self.name.clone()))
                .map(Arc::new)
                .map_err(|why| tracing::warn!("the host's products stay on the host: {why}"))
                .ok()
        });
        products.clone().map(|p| p as Arc<dyn ProductDevice>)
    }

    /// Opens the device now, and asks cuBLASLt about the policies' GEMM types on a thread of its
    /// own (see [`gemm::prime`]). A device that does not open says why at the first build.
    fn anticipate(&self, policies: &[Policy]) {
        let Ok(gpu) = self.gpu() else {
            return;
        };
        let types = route::gemm_types(policies);
        let ctx = gpu.ctx.clone();
        std::thread::spawn(move || {
            if ctx.bind_to_thread().is_ok() {
                gemm::prime(&types);
            }
        });
    }

    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        policy: &Policy,
    ) -> Result<Box<dyn Executable>, BackendError> {
        let gpu = self.gpu()?;
        let block = CudaBlock::new(gpu.clone(), model, weights, policy)?;
        Ok(Box::new(CudaExecutable {
            block,
            device: gpu,
            taps: Vec::new(),
            warmup_s: None,
        }))
    }
}

struct CudaExecutable {
    block: CudaBlock,
    device: Arc<Gpu>,
    /// The last run's layer outputs (a stack's).
    taps: Vec<(String, Tensor)>,
    /// Seconds the last timing's warm-up took on the device.
    warmup_s: Option<f64>,
}

impl Executable for CudaExecutable {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        self.block.set_input(input)?;
        self.block.launch(0)?;
        self.taps = self.block.taps()?;
        self.block.output()
    }

    fn taps(&mut self) -> Vec<(String, Tensor)> {
        std::mem::take(&mut self.taps)
    }

    /// CUDA events around each graph launch on the block's stream, rotating among the block's
    /// input copies; with a cold cache, the L2 flush runs before each iteration's first event.
    /// Two more around the warm-up say how long the device spent on it.
    fn time(&mut self, input: &Tensor, timing: Timing) -> Result<Vec<Duration>, BackendError> {
        let timing_failed = failed("timing");
        self.block.set_input(input)?;
        let stream = &self.device.stream;
        let ctx = stream.context();
        let event = || ctx.new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT));
        let warmup = (
            event().map_err(&timing_failed)?,
            event().map_err(&timing_failed)?,
        );
        warmup.0.record(stream).map_err(&timing_failed)?;
        for round in 0..timing.warmup as usize {
            self.block.launch(round)?;
        }
        warmup.1.record(stream).map_err(&timing_failed)?;
        let events: Vec<_> = (0..timing.iterations)
            .map(|_| Ok((event()?, event()?)))
            .collect::<Result<_, _>>()
            .map_err(&timing_failed)?;
        for (round, (start, end)) in events.iter().enumerate() {
            if timing.cache == CacheMode::Cold {
                self.device.flush_l2(round)?;
            }
            start.record(stream).map_err(&timing_failed)?;
            self.block.launch(round)?;
            end.record(stream).map_err(&timing_failed)?;
        }
        stream.synchronize().map_err(&timing_failed)?;
        let warmup_ms = warmup.0.elapsed_ms(&warmup.1).map_err(&timing_failed)?;
        self.warmup_s = Some(f64::from(warmup_ms) / 1e3);
        events
            .iter()
            .map(|(start, end)| {
                let ms = start.elapsed_ms(end).map_err(&timing_failed)?;
                Ok(Duration::from_secs_f64(f64::from(ms) / 1e3))
            })
            .collect()
    }

    fn flushes_cache(&self) -> bool {
        true
    }

    fn warmup_device_s(&self) -> Option<f64> {
        self.warmup_s
    }

    fn emulated(&self) -> bool {
        self.block.route.emulated()
    }

    fn sm_clock(&self) -> Option<SmClock> {
        let reader = self.device.clocks.as_ref()?;
        reader
            .read()
            .map_err(|why| tracing::warn!("reading the SM clock: {why}"))
            .ok()
    }

    /// One forward pass (the captured graph) under CUPTI.
    fn kernel_trace(&mut self) -> Result<Option<Vec<KernelLaunches>>, BackendError> {
        let stream = self.device.stream.clone();
        trace::trace(|| {
            self.block.launch(0)?;
            stream.synchronize().map_err(failed("synchronize"))
        })
    }
}
