//! The NVRTC-compiled kernels of `kernels.cu`, compiled once per backend, and their launches.

use std::path::Path;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

use sha2::{Digest, Sha256};

use super::failed;
use crate::backend::BackendError;
use crate::formats::minifloat::{FP8_E4M3, FP8_E5M2};
use crate::formats::Format;
use crate::model::Activation;

/// The kernel source, also compiled by CI through NVRTC without a GPU.
pub const SOURCE: &str = include_str!("kernels.cu");

/// Element formats of tensors between operations, as the kernels number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Elem {
    /// f32.
    F32 = 0,
    /// bf16.
    Bf16 = 1,
    /// f16.
    F16 = 2,
}

impl Elem {
    /// The element format that holds `format`'s values unscaled: FP32 (and TF32, whose rounding
    /// happens in the matmul), BF16, FP16; `None` for a format that needs a scale.
    pub fn carrying(format: Format) -> Option<Elem> {
        match format {
            Format::Fp32 | Format::Tf32 => Some(Elem::F32),
            Format::Bf16 => Some(Elem::Bf16),
            Format::Fp16 => Some(Elem::F16),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::Bf16 | Elem::F16 => 2,
        }
    }
}

/// Compiles [`SOURCE`] to PTX for compute capability `major.minor` (at least 8.9: the FP8
/// conversions need it).
pub fn compile(major: i32, minor: i32) -> Result<Ptx, String> {
    let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
    compile_ptx_with_opts(SOURCE, options(arch))
        .map_err(|e| format!("NVRTC could not compile precheck's kernels: {e}"))
}

fn options(arch: &'static str) -> CompileOptions {
    CompileOptions {
        arch: Some(arch),
        // IEEE division and square root: the kernels must round as the CPU emulation does.
        prec_div: Some(true),
        prec_sqrt: Some(true),
        fmad: Some(false),
        name: Some("precheck_kernels.cu".into()),
        ..Default::default()
    }
}

/// [`compile`], kept in the folder `cache` (`~/.cache/precheck/kernels`) under the SHA-256 of the
/// source and the options: each variant's worker after the first loads the PTX instead of
/// running NVRTC again (a second or more per worker). A cache entry that cannot be read or
/// written is passed over.
pub fn compile_cached(major: i32, minor: i32, cache: &Path) -> Result<Ptx, String> {
    let mut hasher = Sha256::new();
    hasher.update(SOURCE.as_bytes());
    hasher.update(format!("{:?}", options("")).as_bytes());
    hasher.update(format!("compute_{major}{minor}").as_bytes());
    let path = cache.join(format!("{:x}.ptx", hasher.finalize()));
    if let Ok(text) = std::fs::read_to_string(&path) {
        if text.contains(".entry") {
            return Ok(Ptx::from_src(text));
        }
    }
    let ptx = compile(major, minor)?;
    let kept = std::fs::create_dir_all(cache).and_then(|()| {
        let mut file = tempfile::NamedTempFile::new_in(cache)?;
        std::io::Write::write_all(&mut file, ptx.to_src().as_bytes())?;
        file.persist(&path).map(drop).map_err(|e| e.error)
    });
    if let Err(e) = kept {
        tracing::debug!("kernel cache {}: {e}", cache.display());
    }
    Ok(ptx)
}

/// The loaded kernels.
pub struct Kernels {
    _module: Arc<CudaModule>,
    convert: CudaFunction,
    round_tf32: CudaFunction,
    amax: CudaFunction,
    quantize_fp8: CudaFunction,
    amax_history_push: CudaFunction,
    quantize_fp8_current: CudaFunction,
    /// Blocks of a `quantize_fp8_current` launch, one per SM (0 where a block of
    /// `CURRENT_THREADS` cannot be resident: then it is never launched).
    current_blocks: u32,
    gated_act: CudaFunction,
    gated_act_scaled: CudaFunction,
    gated_act_fp8: CudaFunction,
    gated_act_rows: CudaFunction,
    quantize_rows: CudaFunction,
    rescale: CudaFunction,
    rescale_rotary: CudaFunction,
    mx_dequant: CudaFunction,
    nvfp4_dequant: CudaFunction,
    rotary: CudaFunction,
    softmax_rows: CudaFunction,
    activation: CudaFunction,
    add_norm: CudaFunction,
    /// Blocks for grid-stride loops: enough to fill every SM several times.
    grid: u32,
}

const THREADS: u32 = 256;

/// `kernels.cu`'s id of an activation function (`activate`; the gated kernels take the first two).
pub fn activation_id(activation: Activation) -> i32 {
    match activation {
        Activation::Silu => 0,
        Activation::GeluTanh => 1,
        Activation::Gelu => 2,
        Activation::Relu => 3,
    }
}

/// Whether [`Kernels::gated_act_rows`] takes rows of `inter` columns.
pub fn fused_rows_fit(inter: usize) -> bool {
    inter % 4 == 0 && inter <= FUSED_ROWS_MAX_COLUMNS
}

/// The byte format of a row-wise quantization (a scale per row: per-token activations,
/// per-channel weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// INT8, scale = row amax / 127.
    Int8,
    /// FP8 E4M3, scale = row amax / 448.
    Fp8E4m3,
}

impl RowFormat {
    /// `kernels.cu`'s `fp8` flag.
    fn fp8_flag(self) -> i32 {
        i32::from(self == RowFormat::Fp8E4m3)
    }
}

/// A launch of `x × y` blocks of `threads` threads, without dynamic shared memory.
fn grid((x, y): (u32, u32), threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (x, y, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads of a `gated_act_rows` block, which holds one row.
const ROW_THREADS: u32 = 512;

/// Threads of a `quantize_fp8_current` block: one block per SM, so that few blocks meet at its
/// grid barrier.
const CURRENT_THREADS: u32 = 1024;

/// `kernels.cu`'s NORM_CHUNKS: groups of eight values each thread of `add_norm` holds.
const NORM_CHUNKS: usize = 4;

/// The widest row `gated_act_rows` holds in shared memory (`FUSED_ROWS_MAX_COLUMNS` of
/// `kernels.cu`).
const FUSED_ROWS_MAX_COLUMNS: usize = 16384;

impl Kernels {
    /// Compiles and loads the kernels on `ctx`.
    pub fn load(ctx: &Arc<CudaContext>) -> Result<Self, BackendError> {
        let (major, minor) = ctx
            .compute_capability()
            .map_err(failed("compute capability"))?;
        let cache = crate::host::cache_home().join("kernels");
        let ptx = compile_cached(major, minor, &cache).map_err(BackendError::Failed)?;
        let module = ctx.load_module(ptx).map_err(failed("loading kernels"))?;
        let function = |name: &str| module.load_function(name).map_err(failed(name));
        let sms = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(failed("SM count"))?;
        let quantize_fp8_current = function("quantize_fp8_current")?;
        // Every block of a cooperative launch must be resident at once.
        let resident = quantize_fp8_current
            .occupancy_max_active_blocks_per_multiprocessor(CURRENT_THREADS, 0, None)
            .map_err(failed("occupancy of quantize_fp8_current"))?;
        Ok(Kernels {
            convert: function("convert")?,
            round_tf32: function("round_tf32")?,
            amax: function("amax")?,
            quantize_fp8: function("quantize_fp8")?,
            quantize_fp8_current,
            current_blocks: if resident == 0 { 0 } else { sms.max(1) as u32 },
            amax_history_push: function("amax_history_push")?,
            gated_act: function("gated_act")?,
            gated_act_scaled: function("gated_act_scaled")?,
            gated_act_rows: function("gated_act_rows")?,
            gated_act_fp8: function("gated_act_fp8")?,
            quantize_rows: function("quantize_rows")?,
            rescale: function("rescale")?,
            rescale_rotary: function("rescale_rotary")?,
            mx_dequant: function("mx_dequant")?,
            nvfp4_dequant: function("nvfp4_dequant")?,
            rotary: function("rotary")?,
            softmax_rows: function("softmax_rows")?,
            activation: function("activation")?,
            add_norm: function("add_norm")?,
            _module: module,
            grid: (sms.max(1) as u32) * 8,
        })
    }

    fn strided(&self, n: usize) -> LaunchConfig {
        grid(
            ((n as u32).div_ceil(THREADS).clamp(1, self.grid), 1),
            THREADS,
        )
    }

    /// `dst = src` converted between element formats (same shape).
    pub fn convert(&self, s: &CudaStream, src: Matrix, dst: Matrix) -> Result<(), BackendError> {
        let (from, to, n) = (src.elem as i32, dst.elem as i32, src.elements() as i64);
        let mut launch = s.launch_builder(&self.convert);
        launch
            .arg(&src.ptr)
            .arg(&from)
            .arg(&dst.ptr)
            .arg(&to)
            .arg(&n);
        // SAFETY: args match `convert(const void*, int, void*, int, long n)` in kernels.cu;
        // `src.ptr` holds `src.elements()` values of `src.elem`, `dst.ptr` as many of `dst.elem`;
        // both arena buffers live until the stream syncs (cudarc tracks no raw pointers).
        unsafe { launch.launch(self.strided(src.elements())) }
            .map(drop)
            .map_err(failed("convert"))
    }

    /// `dst = src` (f32) rounded to TF32 as the host's `Format::Tf32` rounds, into f32 at `dst`.
    pub fn round_tf32(&self, s: &CudaStream, src: Matrix, dst: u64) -> Result<(), BackendError> {
        assert_eq!(src.elem, Elem::F32, "TF32 rounds f32 values");
        let n = src.elements() as i64;
        let mut launch = s.launch_builder(&self.round_tf32);
        launch.arg(&src.ptr).arg(&dst).arg(&n);
        // SAFETY: args match `round_tf32(const float*, float*, long n)` in kernels.cu; `src.ptr`
        // and `dst` each hold `n` f32 values in buffers that live until the stream syncs.
        unsafe { launch.launch(self.strided(src.elements())) }
            .map(drop)
            .map_err(failed("round_tf32"))
    }

    /// `*out = max(*out, max |x|)`; the caller zeroes `out` first.
    pub fn amax(&self, s: &CudaStream, x: Matrix, out: u64) -> Result<(), BackendError> {
        let (elem, n) = (x.elem as i32, x.elements() as i64);
        let mut launch = s.launch_builder(&self.amax);
        launch.arg(&x.ptr).arg(&elem).arg(&n).arg(&out);
        // SAFETY: args match `amax(const void* x, int fmt, long n, float* out)`; `x.ptr` holds
        // `x.elements()` values (16-byte aligned for the BF16 uint4 path), `out` one f32; all
        // live until the stream syncs.
        unsafe { launch.launch(self.strided(x.elements())) }
            .map(drop)
            .map_err(failed("amax"))
    }

    /// FP8 per-tensor quantization of `x` into `q`, with the scale from `amax` (or, once it has
    /// one, from the delayed-scaling state `how.delayed`) written to `scale`.
    pub fn quantize_fp8(
        &self,
        s: &CudaStream,
        x: Matrix,
        amax: u64,
        how: Fp8Quantize,
        (q, scale): (u64, u64),
    ) -> Result<(), BackendError> {
        let format_max = if how.e5m2 { FP8_E5M2 } else { FP8_E4M3 }.max_value();
        let (elem, n) = (x.elem as i32, x.elements() as i64);
        let (e5m2, bf16_out) = (i32::from(how.e5m2), i32::from(how.bf16_out));
        let delayed = how.delayed.unwrap_or(0);
        // `kernels.cu`'s FP8_ACCUMULATE_AMAX.
        let flags = i32::from(how.accumulate_amax);
        let mut launch = s.launch_builder(&self.quantize_fp8);
        launch
            .arg(&x.ptr)
            .arg(&elem)
            .arg(&n)
            .arg(&amax)
            .arg(&format_max)
            .arg(&e5m2)
            .arg(&bf16_out)
            .arg(&delayed)
            .arg(&flags)
            .arg(&q)
            .arg(&scale);
        // SAFETY: the eleven args match `quantize_fp8` in kernels.cu (`format_max` f32, `delayed`
        // 0 = null); `x.ptr` holds `x.elements()` values, `q` as many bytes (2 each with
        // `bf16_out`), `amax` and `scale` one f32, `delayed` two; all live until the stream syncs.
        unsafe { launch.launch(self.strided(x.elements())) }
            .map(drop)
            .map_err(failed("quantize_fp8"))
    }

    /// Blocks of a [`Kernels::quantize_fp8_current`] launch: the f32 partial maxima it needs
    /// (0: the kernel cannot run on this device).
    pub fn current_blocks(&self) -> usize {
        self.current_blocks as usize
    }

    /// Per-tensor FP8 current scaling of the BF16 tensor `x` (whole groups of eight values) in
    /// one cooperative launch: the amax (each block's into `partials`, [`Kernels::current_blocks`]
    /// f32), a barrier across the grid (`barrier`: two u32, zeroed once when allocated), the scale
    /// and the cast, as [`Kernels::quantize_fp8`] computes them after [`Kernels::amax`].
    pub fn quantize_fp8_current(
        &self,
        s: &CudaStream,
        x: Matrix,
        e5m2: bool,
        (partials, barrier): (u64, u64),
        (q, scale): (u64, u64),
    ) -> Result<(), BackendError> {
        assert!(
            x.elem == Elem::Bf16 && x.elements() % 8 == 0,
            "whole groups of eight BF16 values"
        );
        let format_max = if e5m2 { FP8_E5M2 } else { FP8_E4M3 }.max_value();
        let (n, e5m2) = (x.elements() as i64, i32::from(e5m2));
        let mut launch = s.launch_builder(&self.quantize_fp8_current);
        launch
            .arg(&x.ptr)
            .arg(&n)
            .arg(&partials)
            .arg(&barrier)
            .arg(&format_max)
            .arg(&e5m2)
            .arg(&q)
            .arg(&scale);
        // SAFETY: the eight args match `quantize_fp8_current` in kernels.cu; `x.ptr` holds `n`
        // BF16 values (n a multiple of 8), `q` `n` bytes, `partials` one f32 per block of the
        // launch, `barrier` two u32 that only this kernel touches, `scale` one f32; all live
        // until the stream syncs. Cooperative, with no more blocks than the
        // occupancy query says fit at once, so the grid barrier cannot wait on a block that
        // never starts.
        unsafe { launch.launch_cooperative(grid((self.current_blocks, 1), CURRENT_THREADS)) }
            .map(drop)
            .map_err(failed("quantize_fp8_current"))
    }

    /// Delayed scaling after a step, every history of a block in one launch: `pushes` points to
    /// `count` [`HistoryPush::encode`]d descriptors. Each step's amax joins its history ring, its
    /// state gets the step count and the amax the next step scales with, and the amax is zeroed
    /// for the next step to accumulate into.
    pub fn amax_history_push(
        &self,
        s: &CudaStream,
        (pushes, count): (u64, usize),
    ) -> Result<(), BackendError> {
        let mut launch = s.launch_builder(&self.amax_history_push);
        launch.arg(&pushes);
        // SAFETY: args match `amax_history_push(const HistoryPush*)`, one 256-thread block per
        // descriptor; each descriptor's pointers are arena buffers of the sizes it states (`current`
        // one f32, `history` `length` >= 1 f32, `state` two f32), alive until the stream syncs.
        unsafe { launch.launch(grid((count as u32, 1), THREADS)) }
            .map(drop)
            .map_err(failed("amax_history_push"))
    }

    /// A launch over `rows` rows of `cols` columns: a row per grid row, columns strided.
    /// Blocks that each take whole rows, striding over them (`row = block, block + grid, ...`):
    /// as many as fill the GPU, at most one per row.
    fn whole_rows(&self, rows: usize) -> LaunchConfig {
        grid(((rows as u32).clamp(1, self.grid), 1), THREADS)
    }

    fn rows(&self, rows: usize, cols: usize) -> LaunchConfig {
        grid(
            ((cols as u32).div_ceil(THREADS).clamp(1, 16), rows as u32),
            THREADS,
        )
    }

    /// The gated activation of a fused gate|up product `gu` `[rows, 2 inter]` into `h`
    /// `[rows, inter]` of the same format; `amax` (0: none) accumulates max |h|.
    pub fn gated_act(
        &self,
        s: &CudaStream,
        gu: Matrix,
        act: i32,
        h: u64,
        amax: u64,
    ) -> Result<(), BackendError> {
        let inter = gu.cols / 2;
        let (elem, rows, inter_i) = (gu.elem as i32, gu.rows as i32, inter as i32);
        let mut launch = s.launch_builder(&self.gated_act);
        launch
            .arg(&gu.ptr)
            .arg(&elem)
            .arg(&rows)
            .arg(&inter_i)
            .arg(&act)
            .arg(&h)
            .arg(&amax);
        // SAFETY: args match `gated_act(gu, fmt, rows, inter, act, h, amax_out)`; blocks take whole
        // rows, `gu.ptr` holds `gu.rows * 2 * inter` values and `h` `gu.rows * inter` in the same
        // format (16-byte aligned for BF16), `amax` one f32 or 0; all live until sync.
        unsafe { launch.launch(self.whole_rows(gu.rows)) }
            .map(drop)
            .map_err(failed("gated_act"))
    }

    /// The BF16 gated activation of `gu` for a next matmul with delayed FP8 scaling (`fused`):
    /// with a history, h goes straight to FP8 with the history's scale and is never stored in
    /// BF16; on the first step it is stored in `h` (BF16) for [`Kernels::quantize_fp8`] to cast.
    /// max |h| accumulates into `fused.amax` either way.
    pub fn gated_act_fp8(
        &self,
        s: &CudaStream,
        gu: Matrix,
        act: i32,
        fused: FusedFp8,
        h: u64,
    ) -> Result<(), BackendError> {
        let inter = gu.cols / 2;
        assert!(gu.elem == Elem::Bf16 && inter % 8 == 0);
        let format_max = if fused.e5m2 { FP8_E5M2 } else { FP8_E4M3 }.max_value();
        let (rows, inter_i, e5m2) = (gu.rows as i32, inter as i32, i32::from(fused.e5m2));
        let mut launch = s.launch_builder(&self.gated_act_fp8);
        launch
            .arg(&gu.ptr)
            .arg(&rows)
            .arg(&inter_i)
            .arg(&act)
            .arg(&fused.state)
            .arg(&format_max)
            .arg(&e5m2)
            .arg(&h)
            .arg(&fused.q)
            .arg(&fused.scale)
            .arg(&fused.amax);
        // SAFETY: args match `gated_act_fp8` in kernels.cu; the assert keeps whole 8-value
        // vectors of BF16 rows. Blocks take whole rows: `gu.ptr` holds `gu.rows * 2 * inter` bf16,
        // `h` `gu.rows * inter` bf16, `fused.q` as many bytes, `fused.state` two f32, `scale` and
        // `amax` one; all live until the stream syncs.
        unsafe { launch.launch(self.whole_rows(gu.rows)) }
            .map(drop)
            .map_err(failed("gated_act_fp8"))
    }

    /// Row-wise quantization of `x` into `q` (a byte per value in `format`), a scale per row into
    /// `row_scale`.
    pub fn quantize_rows(
        &self,
        s: &CudaStream,
        x: Matrix,
        format: RowFormat,
        (q, row_scale): (u64, u64),
    ) -> Result<(), BackendError> {
        let (elem, cols, fp8) = (x.elem as i32, x.cols as i64, format.fp8_flag());
        let mut launch = s.launch_builder(&self.quantize_rows);
        launch
            .arg(&x.ptr)
            .arg(&elem)
            .arg(&cols)
            .arg(&q)
            .arg(&row_scale)
            .arg(&fp8);
        // SAFETY: args match `quantize_rows(x, fmt, long cols, q, row_scale, fp8)`, a block per
        // row of `x`; `x.ptr` holds `x.elements()` values, `q` as many bytes and `row_scale`
        // `x.rows` f32, all live until the stream is synchronised.
        unsafe { launch.launch(grid((x.rows as u32, 1), THREADS)) }
            .map(drop)
            .map_err(failed("quantize_rows"))
    }

    /// `out = acc * row scale * column scale (+ bias)`, rounded once to `out`'s format (`out` has
    /// the accumulator's shape); `bias` (0: none) is `out.cols` f32.
    pub fn rescale(
        &self,
        s: &CudaStream,
        acc: Accumulator,
        bias: u64,
        out: Matrix,
    ) -> Result<(), BackendError> {
        let (acc_is_int, n_cols, out_elem) =
            (i32::from(acc.is_int), out.cols as i32, out.elem as i32);
        let mut launch = s.launch_builder(&self.rescale);
        launch
            .arg(&acc.ptr)
            .arg(&acc_is_int)
            .arg(&n_cols)
            .arg(&acc.rows.ptr)
            .arg(&acc.rows.stride)
            .arg(&acc.cols.ptr)
            .arg(&acc.cols.stride)
            .arg(&bias)
            .arg(&out.ptr)
            .arg(&out_elem);
        // SAFETY: the ten args match `rescale` in kernels.cu (int strides); a grid row per `out`
        // row; `acc.ptr` and `out.ptr` hold `out.elements()` values, the row/column scales
        // `out.rows`/`out.cols` f32 (one at stride 0) or are 0, `bias` `out.cols` f32 or 0; all
        // live until the stream syncs.
        unsafe { launch.launch(self.rows(out.rows, out.cols)) }
            .map(drop)
            .map_err(failed("rescale"))
    }

    /// [`Kernels::rescale`] of attention's query|key|value accumulator into `out` (column scales
    /// per column), with the rotary embedding of the first `heads` heads of `head_dim` columns
    /// applied on the way, angle tables `(cos, sin)` as for [`Kernels::rotary`].
    pub fn rescale_rotary(
        &self,
        s: &CudaStream,
        acc: Accumulator,
        out: Matrix,
        (heads, head_dim): (usize, usize),
        (cos, sin): (u64, u64),
    ) -> Result<(), BackendError> {
        let quads = quads_fit(
            head_dim,
            out.cols,
            &[acc.ptr, out.ptr, acc.cols.ptr, cos, sin],
        );
        let config = if quads {
            // Four pairs of a rotated head, or four columns past them, a thread.
            let rotated = heads * head_dim;
            let items = rotated / 8 + (out.cols - rotated) / 4;
            grid(((items as u32).div_ceil(THREADS), out.rows as u32), THREADS)
        } else {
            self.rows(out.rows, out.cols)
        };
        let (acc_is_int, n_cols, out_elem, heads, head_dim, quads) = (
            i32::from(acc.is_int),
            out.cols as i32,
            out.elem as i32,
            heads as i32,
            head_dim as i32,
            i32::from(quads),
        );
        let mut launch = s.launch_builder(&self.rescale_rotary);
        launch
            .arg(&acc.ptr)
            .arg(&acc_is_int)
            .arg(&n_cols)
            .arg(&acc.rows.ptr)
            .arg(&acc.rows.stride)
            .arg(&acc.cols.ptr)
            .arg(&out.ptr)
            .arg(&out_elem)
            .arg(&heads)
            .arg(&head_dim)
            .arg(&cos)
            .arg(&sin)
            .arg(&quads);
        // SAFETY: args match `rescale_rotary` (no column stride: `acc.cols` holds `out.cols` f32);
        // `acc.ptr`/`out.ptr` hold `out.elements()` values, `heads * head_dim <= out.cols`,
        // `cos`/`sin` `out.rows * head_dim / 2` f32; with `quads`, the alignment and whole groups
        // of four that `rescale_rotary_quads` needs (`quads_fit`); all live until the stream syncs.
        unsafe { launch.launch(config) }
            .map(drop)
            .map_err(failed("rescale_rotary"))
    }

    /// [`Kernels::gated_act`] (BF16) of a gate|up accumulator `[rows, 2 inter]` (column scales
    /// per column), rescaled on the fly: the rescaled product is never stored.
    pub fn gated_act_scaled(
        &self,
        s: &CudaStream,
        (acc, rows, inter): (Accumulator, usize, usize),
        act: i32,
        h: u64,
        amax: u64,
    ) -> Result<(), BackendError> {
        let (acc_is_int, inter_i) = (i32::from(acc.is_int), inter as i32);
        let mut launch = s.launch_builder(&self.gated_act_scaled);
        launch
            .arg(&acc.ptr)
            .arg(&acc_is_int)
            .arg(&inter_i)
            .arg(&act)
            .arg(&acc.rows.ptr)
            .arg(&acc.rows.stride)
            .arg(&acc.cols.ptr)
            .arg(&h)
            .arg(&amax);
        // SAFETY: args match `gated_act_scaled` in kernels.cu; a grid row per product row;
        // `acc.ptr` holds `rows * 2 * inter` 4-byte values, `acc.cols` `2 * inter` f32, `h`
        // `rows * inter` bf16, `amax` one f32 or 0; all stay allocated until the stream syncs.
        unsafe { launch.launch(self.rows(rows, inter)) }
            .map(drop)
            .map_err(failed("gated_act_scaled"))
    }

    /// The row-wise gated activation fused with the rescale before it and the per-token
    /// quantization after it: `acc` is the gate|up accumulator `[rows, 2 inter]` (int32 or f32,
    /// scaled per row; inter a multiple of 4, at most [`FUSED_ROWS_MAX_COLUMNS`]); `q` receives
    /// h's rows in `format` and their scales.
    pub fn gated_act_rows(
        &self,
        s: &CudaStream,
        (acc, rows, inter): (Accumulator, usize, usize),
        act: i32,
        format: RowFormat,
        (q, q_scale): (u64, u64),
    ) -> Result<(), BackendError> {
        assert!(acc.rows.stride == 1 && fused_rows_fit(inter));
        let (acc_is_int, inter_i, fp8) = (i32::from(acc.is_int), inter as i32, format.fp8_flag());
        let mut launch = s.launch_builder(&self.gated_act_rows);
        launch
            .arg(&acc.ptr)
            .arg(&acc_is_int)
            .arg(&inter_i)
            .arg(&act)
            .arg(&acc.rows.ptr)
            .arg(&acc.cols.ptr)
            .arg(&q)
            .arg(&q_scale)
            .arg(&fp8);
        // SAFETY: args match `gated_act_rows`; the assert keeps `inter` a multiple of 4 within
        // its 16384-column shared row. `acc.ptr` holds `rows * 2 * inter` 4-byte values,
        // `acc.cols` `2 * inter` f32, `q` `rows * inter` bytes, `acc.rows` and `q_scale` `rows`
        // f32.
        unsafe { launch.launch(grid((rows as u32, 1), ROW_THREADS)) }
            .map(drop)
            .map_err(failed("gated_act_rows"))
    }

    /// OCP MX emulation of `x` into `out`: blocks of 32 along each row, element format `element`
    /// (a `kernels.cu` id) whose largest exponent is `emax`.
    pub fn mx_dequant(
        &self,
        s: &CudaStream,
        x: Matrix,
        (element, emax): (i32, i32),
        out: Matrix,
    ) -> Result<(), BackendError> {
        let (elem, rows, cols, out_elem) =
            (x.elem as i32, x.rows as i64, x.cols as i64, out.elem as i32);
        let threads = x.rows * x.cols.div_ceil(32) * 32;
        let mut launch = s.launch_builder(&self.mx_dequant);
        launch
            .arg(&x.ptr)
            .arg(&elem)
            .arg(&rows)
            .arg(&cols)
            .arg(&element)
            .arg(&emax)
            .arg(&out.ptr)
            .arg(&out_elem);
        // SAFETY: args match `mx_dequant` in kernels.cu; a warp per 32-column block of a row,
        // columns past `cols` masked, so `x.ptr` and `out.ptr` (same shape) each need
        // `x.elements()` values, live until the stream syncs.
        unsafe { launch.launch(Self::blocks_of(threads)) }
            .map(drop)
            .map_err(failed("mx_dequant"))
    }

    /// NVFP4 emulation of `x` into `out` (values in the tensor-scaled domain), with the tensor
    /// scale from `amax`; `inv_ts` receives 1 / tensor scale.
    pub fn nvfp4_dequant(
        &self,
        s: &CudaStream,
        x: Matrix,
        amax: u64,
        out: Matrix,
        inv_ts: u64,
    ) -> Result<(), BackendError> {
        let (elem, rows, cols, out_elem) =
            (x.elem as i32, x.rows as i64, x.cols as i64, out.elem as i32);
        let threads = x.rows * x.cols.div_ceil(16) * 16;
        let mut launch = s.launch_builder(&self.nvfp4_dequant);
        launch
            .arg(&x.ptr)
            .arg(&elem)
            .arg(&rows)
            .arg(&cols)
            .arg(&amax)
            .arg(&out.ptr)
            .arg(&out_elem)
            .arg(&inv_ts);
        // SAFETY: args match `nvfp4_dequant` in kernels.cu; a half-warp per 16-column block, masked
        // past `cols`, so `x.ptr` and `out.ptr` each need `x.elements()` values; `amax` and
        // `inv_ts` are one f32 each; all arena-owned until the stream syncs.
        unsafe { launch.launch(Self::blocks_of(threads)) }
            .map(drop)
            .map_err(failed("nvfp4_dequant"))
    }

    /// Rotary embedding in place of the first `heads` heads of `head_dim` columns of each row of
    /// `x`, row `r` at position `r`, with the angle tables `[rows, head_dim / 2]` (f32) `cos` and
    /// `sin`.
    pub fn rotary(
        &self,
        s: &CudaStream,
        x: Matrix,
        heads: usize,
        head_dim: usize,
        (cos, sin): (u64, u64),
    ) -> Result<(), BackendError> {
        let quads = quads_fit(head_dim, x.cols, &[x.ptr, cos, sin]);
        let pairs_per_thread = if quads { 4 } else { 1 };
        let blocks = ((heads * head_dim / 2) as u32).div_ceil(pairs_per_thread * THREADS);
        let (elem, ld_i, heads_i, head_dim_i, quads) = (
            x.elem as i32,
            x.cols as i64,
            heads as i32,
            head_dim as i32,
            i32::from(quads),
        );
        let mut launch = s.launch_builder(&self.rotary);
        launch
            .arg(&x.ptr)
            .arg(&elem)
            .arg(&ld_i)
            .arg(&heads_i)
            .arg(&head_dim_i)
            .arg(&cos)
            .arg(&sin)
            .arg(&quads);
        // SAFETY: args match `rotary(x, fmt, long ld, heads, head_dim, cos, sin, quads)`; a grid
        // row per row of `x`, threads past the `heads * head_dim / 2` pairs (four a thread with
        // `quads`, whose alignment `quads_fit` checked) return; callers keep `heads * head_dim <=
        // x.cols` and `cos`/`sin` hold `x.rows * head_dim / 2` f32.
        unsafe { launch.launch(grid((blocks, x.rows as u32), THREADS)) }
            .map(drop)
            .map_err(failed("rotary"))
    }

    /// Softmax of every row of `scores` into `probs` (same shape, rows `ld` elements apart in
    /// both, the padding zeroed in `probs`): f32 math, each probability rounded to the scores'
    /// format, then stored in `probs`' format. Rows are the query tokens of consecutive heads
    /// (`tokens` each); `causal` masks the columns after a row's token. One warp per row.
    pub fn softmax_rows(
        &self,
        s: &CudaStream,
        (scores, probs): (Matrix, Matrix),
        ld: usize,
        tokens: usize,
        causal: bool,
    ) -> Result<(), BackendError> {
        let (s_elem, cols, ld, tokens, causal, p_elem, rows) = (
            scores.elem as i32,
            scores.cols as i32,
            ld as i32,
            tokens as i32,
            i32::from(causal),
            probs.elem as i32,
            scores.rows as i64,
        );
        let mut launch = s.launch_builder(&self.softmax_rows);
        launch
            .arg(&scores.ptr)
            .arg(&s_elem)
            .arg(&cols)
            .arg(&ld)
            .arg(&tokens)
            .arg(&causal)
            .arg(&probs.ptr)
            .arg(&p_elem)
            .arg(&rows);
        let rows_per_block = THREADS / 32;
        let blocks = (scores.rows as u32).div_ceil(rows_per_block);
        // SAFETY: args match `softmax_rows` in kernels.cu; a warp per row, surplus warps return;
        // `scores` and `probs` each hold `scores.rows * ld` values, `ld` a multiple of 8 (16-byte
        // vector accesses), `tokens >= 1`; both live until the stream syncs.
        unsafe { launch.launch(grid((blocks, 1), THREADS)) }
            .map(drop)
            .map_err(failed("softmax_rows"))
    }

    /// The activation `act` (`kernels.cu`'s id) of `y` in place, rounded to its format; `amax`
    /// (0: none) accumulates max |y|.
    pub fn activation(
        &self,
        s: &CudaStream,
        y: Matrix,
        act: i32,
        amax: u64,
    ) -> Result<(), BackendError> {
        let (elem, n) = (y.elem as i32, y.elements() as i64);
        let mut launch = s.launch_builder(&self.activation);
        launch.arg(&y.ptr).arg(&elem).arg(&n).arg(&act).arg(&amax);
        // SAFETY: args match `activation(y, fmt, n, act, amax_out)` in kernels.cu; `y` holds `n`
        // values of its format, `amax` one f32 or 0; grid-stride loop; both live until the
        // stream syncs.
        unsafe { launch.launch(self.strided(y.elements())) }
            .map(drop)
            .map_err(failed("activation"))
    }

    /// The residual sum `a (+ b)` of `[rows, cols]` tensors in `a.elem`, stored into `sum` (0:
    /// not kept), and its normalisation `norm` into `out` with `amax` (0: none) accumulating
    /// max |out|.
    pub fn add_norm(
        &self,
        s: &CudaStream,
        (a, b): (Matrix, Option<u64>),
        sum: u64,
        norm: Option<&Norm>,
        (out, amax): (u64, u64),
    ) -> Result<(), BackendError> {
        let (elem, cols) = (a.elem as i32, a.cols as i32);
        let b = b.unwrap_or(0);
        let (kind, weight, shift, eps) = match norm {
            None => (0i32, 0u64, 0u64, 0f32),
            Some(n) => (n.kind as i32, n.weight, n.shift, n.eps),
        };
        let mut launch = s.launch_builder(&self.add_norm);
        launch
            .arg(&a.ptr)
            .arg(&b)
            .arg(&elem)
            .arg(&cols)
            .arg(&sum)
            .arg(&kind)
            .arg(&weight)
            .arg(&shift)
            .arg(&eps)
            .arg(&out)
            .arg(&amax);
        // A thread per group of eight values where the kernel holds the row in registers (rows
        // of whole groups, at most NORM_CHUNKS groups a thread), else a thread per value.
        let groups = a.cols / 8;
        let per_thread = if a.cols % 8 == 0 && groups <= NORM_CHUNKS * ROW_THREADS as usize {
            groups
        } else {
            a.cols
        };
        let threads = (per_thread as u32)
            .next_multiple_of(32)
            .clamp(32, ROW_THREADS);
        // SAFETY: args match `add_norm(a, b, fmt, cols, sum_out, norm, weight, shift, eps,
        // norm_out, amax_out)` in kernels.cu; a block per row of `a`, its threads a multiple of
        // 32 (the reductions use whole warps); `a`, `b`, `sum` and `out` hold `a.rows * cols`
        // values of `a.elem` or are 0 where the kernel reads them only when non-null, `weight`
        // and `shift` `cols` f32 (`shift` for LayerNorm only); all live until the stream syncs.
        unsafe { launch.launch(grid((a.rows as u32, 1), threads)) }
            .map(drop)
            .map_err(failed("add_norm"))
    }

    /// One thread per item, in blocks of [`THREADS`].
    fn blocks_of(threads: usize) -> LaunchConfig {
        grid(((threads as u32).div_ceil(THREADS), 1), THREADS)
    }
}

/// Whether the rotary kernels may turn four pairs a thread (`rotary_quads`): a half head of whole
/// groups of four, rows of whole groups of four, and every pointer 16-byte aligned.
fn quads_fit(head_dim: usize, row: usize, pointers: &[u64]) -> bool {
    head_dim % 8 == 0 && row % 4 == 0 && pointers.iter().all(|p| p % 16 == 0)
}

/// A row-major matrix on the device.
#[derive(Debug, Clone, Copy)]
pub struct Matrix {
    /// Device pointer.
    pub ptr: u64,
    /// Element format.
    pub elem: Elem,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Matrix {
    /// Elements.
    pub fn elements(&self) -> usize {
        self.rows * self.cols
    }

    /// The same memory seen in another format (for a converted copy of the same shape).
    pub fn with(self, ptr: u64, elem: Elem) -> Matrix {
        Matrix { ptr, elem, ..self }
    }
}

/// Which normalisation [`Kernels::add_norm`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// `(x − mean) / sqrt(var + eps) · weight + shift`.
    Layer = 1,
    /// `x / sqrt(mean(x²) + eps) · weight`.
    Rms = 2,
}

/// A normalisation's parameters on the device.
#[derive(Debug, Clone, Copy)]
pub struct Norm {
    /// LayerNorm or RMSNorm.
    pub kind: NormKind,
    /// `[cols]` f32 scale.
    pub weight: u64,
    /// `[cols]` f32 shift (LayerNorm), else 0.
    pub shift: u64,
    /// Added to the variance or mean square.
    pub eps: f32,
}

/// How [`Kernels::quantize_fp8`] quantizes.
#[derive(Debug, Clone, Copy)]
pub struct Fp8Quantize {
    /// E5M2 rather than E4M3.
    pub e5m2: bool,
    /// Write each FP8 number as its BF16 value (for a matmul emulated in BF16).
    pub bf16_out: bool,
    /// Delayed scaling's state `{steps, amax}` (device pointer to two f32), if the recipe is
    /// delayed.
    pub delayed: Option<u64>,
    /// Accumulate max |x| into the amax while casting: delayed scaling's amax joins the history,
    /// and with a history no amax pass runs before the cast.
    pub accumulate_amax: bool,
}

/// One amax history of delayed scaling, as `kernels.cu`'s `HistoryPush` reads it (device
/// pointers).
#[derive(Debug, Clone, Copy)]
pub struct HistoryPush {
    /// The step's amax (one f32), zeroed by the push.
    pub current: u64,
    /// The ring of `length` amaxes.
    pub history: u64,
    /// The ring's length (at least 1).
    pub length: usize,
    /// Whether the next step scales by the most recent amax alone, not the ring's largest.
    pub most_recent: bool,
    /// `{steps so far, amax the next step scales by}` (two f32).
    pub state: u64,
}

impl HistoryPush {
    /// The descriptors' bytes as the kernel's `struct HistoryPush { float* current; float*
    /// history; int length; int most_recent; float* state; }` lays them out (32 bytes, little
    /// endian).
    pub fn encode(pushes: &[HistoryPush]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(32 * pushes.len());
        for push in pushes {
            bytes.extend(push.current.to_le_bytes());
            bytes.extend(push.history.to_le_bytes());
            bytes.extend((push.length as i32).to_le_bytes());
            bytes.extend(i32::from(push.most_recent).to_le_bytes());
            bytes.extend(push.state.to_le_bytes());
        }
        bytes
    }
}

/// What a producer kernel needs to write FP8 under delayed scaling itself (see
/// [`Kernels::gated_act_fp8`]): the next quantizer's buffers.
#[derive(Debug, Clone, Copy)]
pub struct FusedFp8 {
    /// E5M2 rather than E4M3.
    pub e5m2: bool,
    /// Delayed scaling's state `{steps, amax}` (two f32).
    pub state: u64,
    /// The FP8 values.
    pub q: u64,
    /// The scale the matmul reads.
    pub scale: u64,
    /// The amax accumulator (zeroed by the caller).
    pub amax: u64,
}

/// A matmul's products before their scales: `value[r, c] = acc[r, c] · rows[r] · cols[c]`.
#[derive(Debug, Clone, Copy)]
pub struct Accumulator {
    /// Device pointer to `[rows, cols]` int32 or f32 values.
    pub ptr: u64,
    /// int32 (INT8 products) rather than f32.
    pub is_int: bool,
    /// Per-row scales (a stride of 0: one for all).
    pub rows: Scales,
    /// Per-column scales.
    pub cols: Scales,
}

/// Scales applied along one axis: `ptr[i * stride]` (a stride of 0: one scale for all).
#[derive(Debug, Clone, Copy)]
pub struct Scales {
    /// Device pointer to f32 scales.
    pub ptr: u64,
    /// 1 for a scale per row or column, 0 for one per tensor.
    pub stride: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The descriptors are laid out as `kernels.cu`'s `struct HistoryPush` (pointers at 0, 8 and
    /// 24, the two ints at 16 and 20), one after another.
    #[test]
    fn history_pushes_are_encoded_as_the_kernels_struct() {
        assert!(SOURCE.contains(
            "struct HistoryPush {\n    float* current;\n    float* history;\n    int length;\n    int most_recent;\n    float* state;\n};"
        ));
        let push = |base: u64| HistoryPush {
            current: base,
            history: base + 1,
            length: 16,
            most_recent: true,
            state: base + 2,
        };
        let bytes = HistoryPush::encode(&[push(0x1000), push(0x2000)]);
        assert_eq!(bytes.len(), 64);
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let int = |at: usize| i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(
            (word(0), word(8), int(16), int(20), word(24)),
            (0x1000, 0x1001, 16, 1, 0x1002)
        );
        assert_eq!(word(32 + 24), 0x2002);
    }

    /// The value of `#define name value` in `kernels.cu`.
    fn defined(name: &str) -> usize {
        let line = SOURCE
            .lines()
            .find_map(|line| line.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("kernels.cu defines no {name}"));
        line.trim().parse().unwrap()
    }

    #[test]
    fn the_host_mirrors_the_kernels_limits() {
        assert_eq!(defined("NORM_CHUNKS"), NORM_CHUNKS);
        assert_eq!(defined("FUSED_ROWS_MAX_COLUMNS"), FUSED_ROWS_MAX_COLUMNS);
        // The gated activations are launched with THREADS a block, which their launch bounds
        // must allow.
        let bounds = format!("#define GATED_LAUNCH_BOUNDS __launch_bounds__({THREADS}, 8)");
        assert!(SOURCE.contains(&bounds), "kernels.cu lacks `{bounds}`");
    }

    #[test]
    fn rotary_quads_need_whole_groups_and_aligned_pointers() {
        assert!(quads_fit(256, 2560, &[0x1000, 0x2000]));
        // A half head of 6 pairs is not whole groups of four.
        assert!(!quads_fit(12, 2560, &[0x1000]));
        // Rows 2562 values apart put row 1 off a group of four.
        assert!(!quads_fit(256, 2562, &[0x1000]));
        // A pointer 8 bytes past a 16-byte boundary.
        assert!(!quads_fit(256, 2560, &[0x1000, 0x2008]));
    }
}
