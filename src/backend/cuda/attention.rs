//! Attention on the GPU, as the CPU backend computes it ([`crate::model::forward`]'s notes on
//! precision): the query, key and value projections as one matmul group into `[tokens, (heads +
//! 2 kv_heads) · head_dim]`, rotary embedding in place on the queries and keys, the scores
//! `q·kᵀ / sqrt(head_dim)` as one strided-batched cuBLASLt product per key/value head (its query
//! heads are the batch; the key is shared, batch stride 0), stored in the softmax format; the
//! softmax; `p·v` batched the same way, written straight into the merged-heads context; the
//! output projection. An encoder's attention (BERT) adds each projection's bias as its matmul group applies
//! the scales.
//!
//! The scores and probabilities are materialised (`[heads, tokens, tokens]`): at the lengths
//! precheck measures (a few thousand tokens) they fit the GPU's memory easily, and the products
//! run on tensor cores at full width.

use cudarc::cublaslt::sys::cublasComputeType_t as Compute;
use cudarc::driver::CudaStream;

use super::block::{Input, Pass};
use super::gemm::{data_type, Gemm, GemmTypes, Layout, Problem};
use super::groups::{Fp8Grouping, MatmulGroup, Planner};
use super::kernels::{Elem, Kernels, Matrix};
use super::params::Params;
use super::quantizer::Quantizer;
use super::route::MatmulRoute;
use crate::backend::BackendError;
use crate::model::blocks::AttentionNames;
use crate::model::forward::rotary_tables;
use crate::model::AttentionBlock;
use crate::precision::Policy;

/// An attention block planned for the GPU.
pub(super) struct AttentionProgram {
    heads: HeadGemms,
    causal: bool,
    elem: Elem,
    softmax: Elem,
    quantize_x: Quantizer,
    qkv: MatmulGroup,
    /// `[tokens, (heads + 2 kv_heads) · head_dim]`: queries, keys, values side by side.
    qkv_out: u64,
    /// The rotary embedding's angle tables `[tokens, head_dim / 2]` (cos, sin), if any.
    rotary: Option<(u64, u64)>,
    /// The scores product and the `p·v` product of one key/value head (every one has the same
    /// shapes: they run once per key/value head on its pointers).
    scores_product: Gemm,
    values_product: Gemm,
    /// `[heads · tokens, tokens]` in the softmax format, rows [`padded`].
    scores: u64,
    /// `[heads · tokens, tokens]` in the tensors' format, rows [`padded`].
    probs: u64,
    /// `[tokens, heads · head_dim]`.
    context: u64,
    quantize_context: Quantizer,
    output: MatmulGroup,
}

/// The format the softmax stores its scores and probabilities in, from the policy.
fn softmax_elem(policy: &Policy) -> Result<Elem, BackendError> {
    Elem::carrying(policy.softmax).ok_or_else(|| {
        BackendError::Unsupported(format!(
            "{}: the CUDA softmax stores FP32, BF16 or FP16, not {}",
            policy.name,
            policy.softmax.name()
        ))
    })
}

impl AttentionProgram {
    /// Plans `block` with the parameters `names` in `params`, with biases if `biased`.
    pub(super) fn new(
        plan: &mut Planner,
        block: &AttentionBlock,
        (params, names): (Params, &AttentionNames),
        biased: bool,
    ) -> Result<Self, BackendError> {
        if biased && block.rope_theta.is_some() {
            return Err(BackendError::Unsupported(
                "the CUDA attention adds projection biases only without rotary embedding".into(),
            ));
        }
        let (route, tokens, workspace) = (plan.route, plan.tokens, plan.workspace);
        let lt = plan.device.lt;
        let shape = block.shape;
        let (heads, head_dim) = (shape.heads, shape.head_dim);
        let layout = HeadGemms {
            tokens,
            heads,
            kv_heads: shape.kv_heads,
            head_dim,
        };
        let elem = route.elem();
        let softmax = softmax_elem(plan.policy)?;
        let quantize_x = plan.quantizer(block.hidden)?;
        let projections = [names.q, names.k, names.v];
        let qkv_bias = biased.then(|| params.biases(&projections));
        let qkv = plan.group(
            &projections.map(|p| params.weight(p)),
            &quantize_x,
            Fp8Grouping::Accumulate,
            qkv_bias.as_deref(),
        )?;
        // Rows up to `padded(tokens)`, never written: zero keys and values for the padding.
        let qkv_out = plan.alloc(padded(tokens) * layout.qkv_width() * elem.size())?;
        let rotary = match block.rope_theta {
            Some(theta) => Some(angle_tables(plan, head_dim, theta)?),
            None => None,
        };
        let square = heads * tokens * padded(tokens);
        let scores = plan.alloc(square * softmax.size())?;
        let probs = plan.alloc(square * elem.size())?;
        let context = plan.alloc(tokens * heads * head_dim * elem.size())?;
        let compute = match route {
            MatmulRoute::Carrier { compute, .. } => compute,
            _ => Compute::CUBLAS_COMPUTE_32F,
        };
        let types = GemmTypes::uniform(data_type(elem), compute);
        let scores_types = GemmTypes {
            d: data_type(softmax),
            ..types
        };
        let scores_product = Gemm::new(lt, scores_types, layout.scores(), None, workspace)?;
        let values_product = Gemm::new(lt, types, layout.values(), None, workspace)?;
        let quantize_context = plan.quantizer(heads * head_dim)?;
        let output_bias = biased.then(|| params.biases(&[names.o]));
        let output = plan.group(
            &[params.weight(names.o)],
            &quantize_context,
            Fp8Grouping::PerWeight,
            output_bias.as_deref(),
        )?;
        Ok(AttentionProgram {
            heads: layout,
            causal: shape.causal,
            elem,
            softmax,
            quantize_x,
            qkv,
            qkv_out,
            rotary,
            scores_product,
            values_product,
            scores,
            probs,
            context,
            quantize_context,
            output,
        })
    }
}

impl Pass for AttentionProgram {
    fn input_amax(&self, s: &CudaStream) -> Result<Option<u64>, BackendError> {
        self.quantize_x.prepare_amax(s)
    }

    fn enqueue(
        &self,
        k: &Kernels,
        s: &CudaStream,
        input: Input,
        output: u64,
    ) -> Result<(), BackendError> {
        let (t, d) = (self.heads.tokens, self.heads.head_dim);
        let (heads, kv_heads) = (self.heads.heads, self.heads.kv_heads);
        let group = self.heads.group();
        let x = self.quantize_x.enqueue(k, s, input.ptr, input.amax_ready)?;
        // Queries and keys are the first heads + kv_heads heads of each row.
        let qkv = Matrix {
            ptr: self.qkv_out,
            elem: self.elem,
            rows: t,
            cols: self.heads.qkv_width(),
        };
        match self.rotary {
            Some(tables) if self.qkv.accumulates() => {
                let acc = self.qkv.enqueue_products(s, x)?;
                k.rescale_rotary(s, acc, qkv, (heads + kv_heads, d), tables)?;
            }
            Some(tables) => {
                self.qkv.enqueue(k, s, x, self.qkv_out)?;
                k.rotary(s, qkv, heads + kv_heads, d, tables)?;
            }
            None => self.qkv.enqueue(k, s, x, self.qkv_out)?,
        }
        let at = |base: u64, elements: usize, elem: Elem| base + (elements * elem.size()) as u64;
        for g in 0..kv_heads {
            let first_head = g * group;
            let key = at(self.qkv_out, (heads + g) * d, self.elem);
            let query = at(self.qkv_out, first_head * d, self.elem);
            let scores = at(self.scores, first_head * t * padded(t), self.softmax);
            self.scores_product.run(s, key, query, scores)?;
        }
        let scores = Matrix {
            ptr: self.scores,
            elem: self.softmax,
            rows: heads * t,
            cols: t,
        };
        let probs = scores.with(self.probs, self.elem);
        k.softmax_rows(s, (scores, probs), padded(t), t, self.causal)?;
        for g in 0..kv_heads {
            let first_head = g * group;
            let value = at(self.qkv_out, (heads + kv_heads + g) * d, self.elem);
            let probs = at(self.probs, first_head * t * padded(t), self.elem);
            let context = at(self.context, first_head * d, self.elem);
            self.values_product.run(s, value, probs, context)?;
        }
        let c = self.quantize_context.enqueue(k, s, self.context, false)?;
        self.output.enqueue(k, s, c, output)
    }
}

/// Elements between rows of the scores and probabilities: `tokens` rounded up so that every row
/// starts 64-byte aligned, which cuBLASLt's tensor-core kernels need for full speed (970 BF16
/// scores would put rows 1940 bytes apart).
fn padded(tokens: usize) -> usize {
    tokens.next_multiple_of(16)
}

/// The heads of an attention over `tokens`, and the shapes of its own products for one key/value
/// head, its query heads batched.
struct HeadGemms {
    tokens: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl HeadGemms {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Row stride of the projections' output.
    fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// `scores_h[tq, tk] = q_h · k_gᵀ / sqrt(d)`, column-major `scores_hᵀ = k_g · q_hᵀ`: A is the
    /// key head (shared by the batch), transposed; B the query head (batch stride: one head's
    /// columns); D `[tokens, padded(tokens)]` per head. The keys run to the padded length (zero
    /// rows), so that each row of D is a whole number of 16-byte vectors: cuBLASLt's fast
    /// kernels need that of the output's contiguous dimension.
    fn scores(&self) -> Problem {
        let (t, d) = (self.tokens, self.head_dim);
        let head = |cols, batch_stride| Layout {
            rows: d,
            cols,
            ld: self.qkv_width(),
            batch_stride,
        };
        Problem {
            transpose_a: true,
            a: head(padded(t), 0),
            b: head(t, d),
            d: Layout {
                rows: padded(t),
                cols: t,
                ld: padded(t),
                batch_stride: t * padded(t),
            },
            batch: self.group(),
            alpha: (1.0 / (d as f64).sqrt()) as f32,
        }
    }

    /// `context_h[tq, :] = p_h · v_g`, column-major `context_hᵀ = v_gᵀ · p_hᵀ`: A is the value
    /// head as stored (shared by the batch), B the probabilities, D the head's columns of the
    /// merged context `[tokens, heads · d]`. The reduction runs over the padded keys (zero
    /// probabilities, zero values), so that B's contiguous dimension is aligned too.
    fn values(&self) -> Problem {
        let (t, d) = (self.tokens, self.head_dim);
        Problem {
            transpose_a: false,
            a: Layout {
                rows: d,
                cols: padded(t),
                ld: self.qkv_width(),
                batch_stride: 0,
            },
            b: Layout {
                rows: padded(t),
                cols: t,
                ld: padded(t),
                batch_stride: t * padded(t),
            },
            d: Layout {
                rows: d,
                cols: t,
                ld: self.heads * d,
                batch_stride: d,
            },
            batch: self.group(),
            alpha: 1.0,
        }
    }
}

/// The rotary embedding's cosine and sine tables ([`rotary_tables`]) on the device.
fn angle_tables(
    plan: &mut Planner,
    head_dim: usize,
    theta: f64,
) -> Result<(u64, u64), BackendError> {
    let (cos, sin) = rotary_tables(plan.tokens, head_dim, theta);
    Ok((plan.upload_f32(&cos)?, plan.upload_f32(&sin)?))
}
