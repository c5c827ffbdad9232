//! Quantizing activations on every call on the GPU, as each route needs its operands (weights are
//! quantized once, in `weights`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::CudaStream;

use super::arena::Arena;
use super::kernels::{Elem, Fp8Quantize, FusedFp8, HistoryPush, Kernels, Matrix};
use super::route::MatmulRoute;
use crate::backend::BackendError;
use crate::quant::AmaxAlgorithm;

/// Activations quantized for a matmul: the pointer it reads and where its scales are.
#[derive(Clone, Copy)]
pub(super) struct QuantizedInput {
    /// Device pointer to the values.
    pub(super) data: u64,
    /// FP8: the per-tensor scale; INT8: per-token scales; NVFP4: 1 / tensor scale.
    pub(super) scale: u64,
}

/// Zeroes the f32 at `ptr` (an amax accumulator) on the stream.
pub(super) fn zero(s: &CudaStream, ptr: u64) -> Result<(), BackendError> {
    // SAFETY: `ptr` is a 4-byte allocation of the block's arena.
    unsafe { cudarc::driver::result::memset_d8_async(ptr, 0, 4, s.cu_stream()) }
        .map_err(|e| BackendError::Failed(format!("memset: {e}")))
}

/// What a block's quantizers share under delayed scaling: the forward pass they enqueue for (the
/// first or a later one), and their amax histories, which the block pushes in one launch at the end
/// of each pass ([`Kernels::amax_history_push`]). The first step has no history and scales by the
/// tensor's own amax; later steps read the history, so their graph leaves out the first step's
/// amax pass, its cast and the zeroing of the amax buffers (each history push zeroes its amax for
/// the next step). The block sets the step before it captures each graph.
#[derive(Clone, Default)]
pub(super) struct Delayed(Arc<DelayedShared>);

#[derive(Default)]
struct DelayedShared {
    later: AtomicBool,
    pushes: Mutex<Vec<HistoryPush>>,
}

impl Delayed {
    /// Whether what is enqueued now is for a later step (there is a history).
    fn later(&self) -> bool {
        self.0.later.load(Ordering::Relaxed)
    }

    /// What the next enqueues are for: a later step (`true`) or the first.
    pub(super) fn set_later(&self, later: bool) {
        self.0.later.store(later, Ordering::Relaxed);
    }

    /// The histories of the block's quantizers, for the push at the end of each pass.
    pub(super) fn pushes(&self) -> Vec<HistoryPush> {
        self.0
            .pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn register(&self, push: HistoryPush) {
        self.0
            .pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(push);
    }
}

/// Buffers and kernels that quantize one activation tensor `[rows, cols]` every call.
pub(super) struct Quantizer {
    route: MatmulRoute,
    rows: usize,
    cols: usize,
    amax: u64,
    /// Where the quantized input's scales are (see [`QuantizedInput`]).
    pub(super) scale: u64,
    out: u64,
    /// Delayed scaling: the state `{steps, next amax}` (the ring of amaxes is in the block's
    /// history pushes).
    delayed_state: Option<u64>,
    /// Current FP8 scaling in one launch ([`Kernels::quantize_fp8_current`]): its blocks' partial
    /// maxima and its grid barrier.
    current: Option<(u64, u64)>,
    /// The block's delayed-scaling state (unused by other recipes).
    delayed: Delayed,
}

impl Quantizer {
    /// Buffers for quantizing `[rows, cols]` on `route`; `current_blocks` is
    /// [`Kernels::current_blocks`]; `delayed` is the block's, and gets this quantizer's history.
    pub(super) fn new(
        arena: &mut Arena,
        stream: &Arc<CudaStream>,
        route: MatmulRoute,
        (rows, cols): (usize, usize),
        (current_blocks, delayed): (usize, Delayed),
    ) -> Result<Self, BackendError> {
        let out = match route {
            MatmulRoute::Carrier { .. } | MatmulRoute::WeightOnly => 0,
            _ => arena.alloc(stream, rows * cols * route.operand_bytes())?,
        };
        let amax = arena.alloc(stream, 4)?;
        let delayed_state = match route {
            MatmulRoute::Fp8 {
                delayed: Some(delay),
                ..
            } => {
                let length = delay.history.max(1);
                let (history, state) = (arena.alloc(stream, 4 * length)?, arena.alloc(stream, 8)?);
                delayed.register(HistoryPush {
                    current: amax,
                    history,
                    length,
                    most_recent: delay.algorithm == AmaxAlgorithm::MostRecent,
                    state,
                });
                Some(state)
            }
            _ => None,
        };
        // Native FP8 (E5M2 emulated in BF16 is not) scaled by the tensor's own amax, of whole
        // groups of eight BF16 values.
        let current = match route {
            MatmulRoute::Fp8 { delayed: None, .. }
                if !route.fp8_emulated() && (rows * cols) % 8 == 0 && current_blocks > 0 =>
            {
                Some((
                    arena.alloc(stream, 4 * current_blocks)?,
                    arena.alloc(stream, 8)?,
                ))
            }
            _ => None,
        };
        Ok(Quantizer {
            route,
            rows,
            cols,
            amax,
            scale: arena.alloc(stream, 4 * rows)?,
            out,
            delayed_state,
            current,
            delayed,
        })
    }

    /// Whether this enqueue is for a later step of delayed scaling: the history push left the amax
    /// at zero and the history decides the scale.
    fn with_history(&self) -> bool {
        self.delayed_state.is_some() && self.delayed.later()
    }

    /// Enqueues the quantization of `x`; `amax_ready` when a previous kernel already wrote amax.
    pub(super) fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        x: u64,
        amax_ready: bool,
    ) -> Result<QuantizedInput, BackendError> {
        let x = Matrix {
            ptr: x,
            elem: self.route.elem(),
            rows: self.rows,
            cols: self.cols,
        };
        let dequantized = x.with(self.out, Elem::Bf16);
        let state = self.delayed_state;
        // With delayed scaling and a history there is no amax pass (a later step's graph leaves it
        // out): the cast accumulates the amax as it goes (it joins the history), off the critical
        // path.
        let tensor_amax = |s: &CudaStream| {
            if !amax_ready && !self.with_history() {
                zero(s, self.amax)?;
                k.amax(s, x, self.amax)?;
            }
            Ok::<(), BackendError>(())
        };
        match self.route {
            // Activations in the tensors' format: the matmul reads them as they are.
            MatmulRoute::Carrier { .. } | MatmulRoute::WeightOnly => {
                return Ok(QuantizedInput {
                    data: x.ptr,
                    scale: 0,
                })
            }
            MatmulRoute::Fp8 {
                activations_e5m2, ..
            } => {
                if let Some(buffers) = self.current.filter(|_| !amax_ready) {
                    // The amax, the scale and the cast in one launch instead of three.
                    let target = (self.out, self.scale);
                    k.quantize_fp8_current(s, x, activations_e5m2, buffers, target)?;
                    return Ok(QuantizedInput {
                        data: self.out,
                        scale: self.scale,
                    });
                }
                tensor_amax(s)?;
                let how = Fp8Quantize {
                    e5m2: activations_e5m2,
                    bf16_out: self.route.fp8_emulated(),
                    delayed: state,
                    accumulate_amax: state.is_some() && !amax_ready,
                };
                k.quantize_fp8(s, x, self.amax, how, (self.out, self.scale))?;
            }
            MatmulRoute::Int8 | MatmulRoute::Fp8Rows => {
                let format = self.route.row_format().expect("a row-wise route");
                k.quantize_rows(s, x, format, (self.out, self.scale))?
            }
            MatmulRoute::Mx { element, emax } => {
                k.mx_dequant(s, x, (element, emax), dequantized)?
            }
            MatmulRoute::Nvfp4 => {
                tensor_amax(s)?;
                k.nvfp4_dequant(s, x, self.amax, dequantized, self.scale)?;
            }
        }
        Ok(QuantizedInput {
            data: self.out,
            scale: self.scale,
        })
    }

    /// The buffers a producer that quantizes its own output writes (the fused INT8 activation):
    /// the quantized values and their scales.
    pub(super) fn target(&self) -> QuantizedInput {
        QuantizedInput {
            data: self.out,
            scale: self.scale,
        }
    }

    /// The buffers a producer writes FP8 into under delayed scaling ([`Kernels::gated_act_fp8`]),
    /// if this quantizer casts to native FP8 with a delayed recipe; the producer also accumulates
    /// the amax, which [`Quantizer::prepare_amax`] zeroed.
    pub(super) fn fused_fp8(&self) -> Option<FusedFp8> {
        match (self.route, self.delayed_state) {
            (
                MatmulRoute::Fp8 {
                    activations_e5m2,
                    delayed: Some(_),
                    ..
                },
                Some(state),
            ) if !self.route.fp8_emulated() => Some(FusedFp8 {
                e5m2: activations_e5m2,
                state,
                q: self.out,
                scale: self.scale,
                amax: self.amax,
            }),
            _ => None,
        }
    }

    /// Completes a quantization a producer fused ([`Quantizer::fused_fp8`]): the first step's
    /// cast of the BF16 values `x` it stored (a later step's producer cast them itself); the amax
    /// joins the history at the pass's end.
    pub(super) fn complete_fused(
        &self,
        k: &Kernels,
        s: &CudaStream,
        x: u64,
    ) -> Result<QuantizedInput, BackendError> {
        let fused = self.fused_fp8().expect("a quantizer a producer fused");
        if !self.with_history() {
            let x = Matrix {
                ptr: x,
                elem: Elem::Bf16,
                rows: self.rows,
                cols: self.cols,
            };
            let how = Fp8Quantize {
                e5m2: fused.e5m2,
                bf16_out: false,
                delayed: Some(fused.state),
                accumulate_amax: false,
            };
            k.quantize_fp8(s, x, self.amax, how, (self.out, self.scale))?;
        }
        Ok(self.target())
    }

    /// Zeroes amax for a producer kernel that accumulates it (the gated activation, a norm);
    /// under delayed scaling with a history the last step's history push already did.
    pub(super) fn prepare_amax(&self, s: &CudaStream) -> Result<Option<u64>, BackendError> {
        if !matches!(self.route, MatmulRoute::Fp8 { .. } | MatmulRoute::Nvfp4) {
            return Ok(None);
        }
        if !self.with_history() {
            zero(s, self.amax)?;
        }
        Ok(Some(self.amax))
    }
}
