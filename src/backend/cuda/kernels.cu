// precheck's CUDA kernels: everything of a block that is not a matmul.
//
// Compiled at run time by NVRTC (and in CI, without a GPU, to check that it compiles). No headers:
// NVRTC ships none, so bf16, f16 and fp8 conversions are written with bit operations and PTX
// `cvt`, which round to nearest even exactly as precheck's CPU emulation does. Element formats of
// tensors between operations are passed at run time: 0 = f32, 1 = bf16, 2 = f16.

#define FMT_F32 0
#define FMT_BF16 1
#define FMT_F16 2

// -infinity (NVRTC has no math.h): the neutral element of max.
#define NEG_INF __int_as_float(0xff800000)

typedef unsigned short u16;
typedef unsigned char u8;

__device__ __forceinline__ float bf16_to_f32(u16 h) { return __uint_as_float(((unsigned)h) << 16); }

// Round to nearest even in one instruction (sm_80+): the same bits as rounding the f32's bits by
// hand (subnormals kept, overflow to infinity), except that every NaN becomes the canonical one.
// The hand-written rounding took six integer operations and a NaN test per value, which made the
// BF16 kernels instruction-bound where their FP16 twins (one `cvt`) ran at memory speed.
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u16 h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// Two values rounded to BF16 in one instruction, `lo` in the low half.
__device__ __forceinline__ unsigned f32x2_to_bf16x2(float lo, float hi) {
    unsigned pair;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(pair) : "f"(hi), "f"(lo));
    return pair;
}

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float load(const void* p, long i, int fmt) {
    if (fmt == FMT_BF16) return bf16_to_f32(((const u16*)p)[i]);
    if (fmt == FMT_F16) return f16_to_f32(((const u16*)p)[i]);
    return ((const float*)p)[i];
}

__device__ __forceinline__ void store(void* p, long i, float v, int fmt) {
    if (fmt == FMT_BF16) ((u16*)p)[i] = f32_to_bf16(v);
    else if (fmt == FMT_F16) ((u16*)p)[i] = f32_to_f16(v);
    else ((float*)p)[i] = v;
}

// Rounds to the format and back, as storing and reloading would.
__device__ __forceinline__ float round_to(float v, int fmt) {
    if (fmt == FMT_BF16) return bf16_to_f32(f32_to_bf16(v));
    if (fmt == FMT_F16) return f16_to_f32(f32_to_f16(v));
    return v;
}

// Two values to FP8 (E4M3, or E5M2 with `e5m2`) in one instruction, saturating, round to nearest
// even (sm_89+): `lo` in the low byte.
__device__ __forceinline__ unsigned fp8x2(float lo, float hi, int e5m2) {
    u16 pair;
    if (e5m2) asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(hi), "f"(lo));
    else asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(hi), "f"(lo));
    return pair;
}

__device__ __forceinline__ u8 f32_to_e4m3(float v) { return (u8)(fp8x2(v, 0.0f, 0) & 0xff); }

__device__ __forceinline__ u8 f32_to_e5m2(float v) { return (u8)(fp8x2(v, 0.0f, 1) & 0xff); }

// Eight values divided by `scale`, cast to FP8 and packed as the eight bytes a matmul reads.
__device__ __forceinline__ uint2 fp8x8(const float* f, float scale, int e5m2) {
    unsigned w[2];
    for (int k = 0; k < 2; ++k)
        w[k] = fp8x2(f[4 * k] / scale, f[4 * k + 1] / scale, e5m2) |
               (fp8x2(f[4 * k + 2] / scale, f[4 * k + 3] / scale, e5m2) << 16);
    return make_uint2(w[0], w[1]);
}

// Max of non-negative floats through their bits (ordered like unsigned integers); NaN (any
// payload above infinity's bits) wins, so that a NaN input gives a NaN scale.
__device__ __forceinline__ void atomic_amax(float* out, float v) {
    atomicMax((unsigned*)out, __float_as_uint(fabsf(v)));
}

// A narrow float format, for emulated block formats: rounds to nearest even, saturating, as
// precheck's CPU `MiniFloat::round(_, Saturate)` (NaN stays NaN).
struct MiniFloat { int man_bits; int emin; float max_value; };

__device__ float minifloat_round(float x, MiniFloat f) {
    if (isnan(x)) return x;
    float a = fabsf(x);
    if (a >= f.max_value) return copysignf(f.max_value, x);
    int e;
    frexpf(a, &e);                         // a = m * 2^e, m in [0.5, 1)
    int exp = max(e - 1, f.emin);          // binade of a, at least the smallest normal
    float quantum = ldexpf(1.0f, exp - f.man_bits);
    float r = rintf(a / quantum) * quantum;  // exact: division by a power of two
    return copysignf(fminf(r, f.max_value), x);
}

__device__ MiniFloat minifloat(int id) {
    // ids: 0 fp8_e4m3, 1 fp8_e5m2, 2 fp6_e2m3, 3 fp6_e3m2, 4 fp4_e2m1
    switch (id) {
        case 0: { MiniFloat f = {3, -6, 448.0f}; return f; }
        case 1: { MiniFloat f = {2, -14, 57344.0f}; return f; }
        case 2: { MiniFloat f = {3, 0, 7.5f}; return f; }
        case 3: { MiniFloat f = {2, -2, 28.0f}; return f; }
        default: { MiniFloat f = {1, 0, 6.0f}; return f; }
    }
}

// Eight bf16 values in 16 bytes, for the memory-bound kernels' wide loads and stores.
__device__ __forceinline__ void unpack_bf16x8(uint4 v, float* f) {
    unsigned w[4] = {v.x, v.y, v.z, v.w};
    for (int k = 0; k < 4; ++k) {
        f[2 * k] = __uint_as_float(w[k] << 16);
        f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
}

__device__ __forceinline__ uint4 pack_bf16x8(const float* f) {
    unsigned w[4];
    for (int k = 0; k < 4; ++k) w[k] = f32x2_to_bf16x2(f[2 * k], f[2 * k + 1]);
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// Eight values of FMT from the 16 bytes (32 for f32) of group i8, as f32; and back, rounded to
// FMT. For the memory-bound kernels of every tensor format.
template <int FMT>
__device__ __forceinline__ void load8(const void* p, long i8, float* f) {
    if (FMT == FMT_BF16) {
        unpack_bf16x8(((const uint4*)p)[i8], f);
    } else if (FMT == FMT_F16) {
        const uint4 v = ((const uint4*)p)[i8];
        const unsigned w[4] = {v.x, v.y, v.z, v.w};
        for (int k = 0; k < 4; ++k) {
            f[2 * k] = f16_to_f32((u16)(w[k] & 0xffffu));
            f[2 * k + 1] = f16_to_f32((u16)(w[k] >> 16));
        }
    } else {
        const float4 a = ((const float4*)p)[2 * i8], b = ((const float4*)p)[2 * i8 + 1];
        f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
        f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
    }
}

template <int FMT>
__device__ __forceinline__ void store8(void* p, long i8, const float* f) {
    if (FMT == FMT_BF16) {
        ((uint4*)p)[i8] = pack_bf16x8(f);
    } else if (FMT == FMT_F16) {
        unsigned w[4];
        for (int k = 0; k < 4; ++k) w[k] = (unsigned)f32_to_f16(f[2 * k]) | ((unsigned)f32_to_f16(f[2 * k + 1]) << 16);
        ((uint4*)p)[i8] = make_uint4(w[0], w[1], w[2], w[3]);
    } else {
        ((float4*)p)[2 * i8] = make_float4(f[0], f[1], f[2], f[3]);
        ((float4*)p)[2 * i8 + 1] = make_float4(f[4], f[5], f[6], f[7]);
    }
}

// max(m, v), NaN if either is NaN: one instruction (sm_80+) where testing both for NaN took four.
__device__ __forceinline__ float nan_max(float m, float v) {
    float r;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(m), "f"(v));
    return r;
}

// The maximum of v over the block (NaN if any is NaN), for every thread of the block.
__device__ float block_max(float v) {
    __shared__ float warp_max[32];
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_max[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    v = threadIdx.x < warps ? warp_max[threadIdx.x] : NEG_INF;
    if (warp == 0) {
        for (int offset = 16; offset > 0; offset >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, offset));
        if (lane == 0) warp_max[0] = v;
    }
    __syncthreads();
    // Every thread of the block gets the maximum (not only warp 0).
    v = warp_max[0];
    __syncthreads();
    return v;
}

// dst[i] = src[i] converted between formats (round to nearest even).
extern "C" __global__ void convert(const void* src, int src_fmt, void* dst, int dst_fmt, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        store(dst, i, load(src, i, src_fmt), dst_fmt);
}

// dst = src rounded to TF32 (10 mantissa bits), to nearest even, NaN kept: the host's
// `round_tf32` bit for bit (TF32 weights are rounded before the matmul, as the CPU defines them).
extern "C" __global__ void round_tf32(const float* src, float* dst, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const unsigned u = __float_as_uint(src[i]);
        if ((u & 0x7fffffffu) > 0x7f800000u) {
            dst[i] = src[i];
        } else {
            const unsigned lsb = (u >> 13) & 1u;
            dst[i] = __uint_as_float((u + 0xfffu + lsb) & ~0x1fffu);
        }
    }
}

// *amax = max |x|, *amax zeroed by the caller. Grid-stride.
extern "C" __global__ void amax(const void* x, int fmt, long n, float* out) {
    float m = 0.0f;
    if (fmt == FMT_BF16 && n % 8 == 0) {
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n / 8; i += (long)gridDim.x * blockDim.x) {
            float f[8];
            unpack_bf16x8(((const uint4*)x)[i], f);
            for (int k = 0; k < 8; ++k) m = nan_max(m, fabsf(f[k]));
        }
    } else {
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
            m = nan_max(m, fabsf(load(x, i, fmt)));
    }
    m = block_max(m);
    if (threadIdx.x == 0) atomic_amax(out, m);
}

// quantize_fp8's flags: accumulate max |x| into *amax while casting (delayed scaling, whose amax
// joins the history: with a history, no amax pass runs before the cast).
#define FP8_ACCUMULATE_AMAX 1

// Per-tensor FP8: scale = amax / format max (1 for an all-zero tensor), q = fp8(x / scale)
// saturating; the scale is written for the matmul's scale pointer. The amax is the tensor's own
// (current scaling), or, with `delayed` = {steps so far, amax of the history} non-null, the
// history's once there is one (delayed scaling; the first step has none and scales currently).
// With `bf16_out`, q is written as the BF16 value of the FP8 number (emulated matmuls).
extern "C" __global__ void quantize_fp8(const void* x, int fmt, long n, float* amax, float format_max, int e5m2,
                                        int bf16_out, const float* delayed, int flags, u8* q, float* scale_out) {
    const bool history = delayed != 0 && delayed[0] > 0.0f;
    // Without a history *amax is complete before this kernel (accumulating the same values into
    // it again changes nothing); with one it is not read.
    const float a = history ? delayed[1] : *amax;
    float scale = a == 0.0f ? 1.0f : a / format_max;
    if (blockIdx.x == 0 && threadIdx.x == 0) *scale_out = scale;
    float m = 0.0f;
    if (bf16_out) {
        const MiniFloat f = minifloat(e5m2 ? 1 : 0);
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
            const float v = load(x, i, fmt);
            m = nan_max(m, fabsf(v));
            ((u16*)q)[i] = f32_to_bf16(minifloat_round(v / scale, f));
        }
    } else if (fmt == FMT_BF16 && n % 8 == 0 && !e5m2) {
        // Eight values per thread: one 16-byte load, four paired conversions, one 8-byte store.
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n / 8; i += (long)gridDim.x * blockDim.x) {
            float f[8];
            unpack_bf16x8(((const uint4*)x)[i], f);
            for (int k = 0; k < 8; ++k) m = nan_max(m, fabsf(f[k]));
            ((uint2*)q)[i] = fp8x8(f, scale, 0);
        }
    } else {
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
            const float v = load(x, i, fmt);
            m = nan_max(m, fabsf(v));
            q[i] = e5m2 ? f32_to_e5m2(v / scale) : f32_to_e4m3(v / scale);
        }
    }
    if (flags & FP8_ACCUMULATE_AMAX) {
        m = block_max(m);
        if (threadIdx.x == 0) atomic_amax(amax, m);
    }
}

// A barrier across the whole grid of a cooperative launch (every block resident): bar[0] counts
// the blocks arrived, bar[1] is the generation, which the last block to arrive advances after
// resetting the count, so the barrier is ready for the next launch without a memset.
__device__ void grid_barrier(unsigned* bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        volatile unsigned* generation = bar + 1;
        const unsigned seen = *generation;
        __threadfence();
        if (atomicAdd(bar, 1u) == gridDim.x - 1) {
            bar[0] = 0;
            __threadfence();
            atomicAdd(bar + 1, 1u);
        } else {
            while (*generation == seen) __nanosleep(32);
        }
        __threadfence();
    }
    __syncthreads();
}

// Per-tensor FP8 current scaling in one launch, for a BF16 tensor of n values (n a multiple of
// 8), launched cooperatively: each block writes the largest |x| it saw to partials[block], the grid
// waits at the barrier, every block reduces the partials to the tensor's amax, and casts as
// quantize_fp8 does (scale = amax / format max, 1 for an all-zero tensor). Replaces zeroing the
// amax, the amax pass and the cast: three launches in a row, each too short to fill the GPU.
extern "C" __global__ void quantize_fp8_current(const void* x, long n, float* partials, unsigned* barrier,
                                                float format_max, int e5m2, u8* q, float* scale_out) {
    const long stride = (long)gridDim.x * blockDim.x, groups = n / 8;
    float m = 0.0f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < groups; i += stride) {
        float f[8];
        unpack_bf16x8(((const uint4*)x)[i], f);
        for (int k = 0; k < 8; ++k) m = nan_max(m, fabsf(f[k]));
    }
    m = block_max(m);
    if (threadIdx.x == 0) partials[blockIdx.x] = m;
    grid_barrier(barrier);
    // The partials of other blocks, past L1 (which is not coherent across SMs).
    const volatile float* seen = partials;
    float a = 0.0f;
    for (int b = threadIdx.x; b < gridDim.x; b += blockDim.x) a = nan_max(a, seen[b]);
    a = block_max(a);
    const float scale = a == 0.0f ? 1.0f : a / format_max;
    if (blockIdx.x == 0 && threadIdx.x == 0) *scale_out = scale;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < groups; i += stride) {
        float f[8];
        unpack_bf16x8(((const uint4*)x)[i], f);
        ((uint2*)q)[i] = fp8x8(f, scale, e5m2);
    }
}

// An activation function in f32. act: 0 = SiLU, 1 = GELU (tanh), 2 = GELU (erf), 3 = ReLU.
__device__ __forceinline__ float activate(float x, int act) {
    if (act == 0) return x / (1.0f + expf(-x));
    if (act == 1) return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    if (act == 2) return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    return fmaxf(x, 0.0f);
}

// The activation of the gate `g`, rounded to act_fmt, times `up`, rounded to h_fmt: PyTorch's
// `act(gate) * up` with each intermediate stored. act: 0 = SiLU, 1 = GELU (tanh).
__device__ __forceinline__ float gated_value(float g, float up, int act, int act_fmt, int h_fmt) {
    return round_to(round_to(activate(g, act), act_fmt) * up, h_fmt);
}

// Where a gated activation may write h as FP8 for the next matmul's delayed scaling, instead of
// storing it: delayed scaling's state {steps, amax} (null: never), the format's largest value,
// E5M2 rather than E4M3, the FP8 values and the scale the matmul reads.
struct Fp8Out {
    const float* delayed;
    float format_max;
    int e5m2;
    u8* q;
    float* scale_out;
};

// Gated activation of a fused gate|up product: gu is [rows, 2*inter] with the gate in the first
// `inter` columns. h = round(round(act(gate)) * up), as PyTorch stores each intermediate. With
// `amax` non-null, also accumulates max |h| (for the next matmul's current scaling).
// With `fp8.delayed` non-null and a history there (delayed[0] > 0), each value of h is cast to FP8
// with the history's scale as it is produced, exactly as quantize_fp8 would cast the stored h, and
// h is not stored; the scale goes to fp8.scale_out. Only the eight-value path casts: the caller
// gives an FP8 output only with whole groups of eight (BF16, inter a multiple of 8).
// Each block takes whole rows (row = block, block + grid, ...), its threads striding along the
// row: every thread has work when a row has at least a block's worth of values, and the amax
// takes one atomic per block, not one per (row, column block) (15 520 of them on the seed's MLP,
// which serialised on the one address). The element format is a template parameter so that the
// inner loop has no format branches.
template <int FMT, int ACT_FMT, int H_FMT>
__device__ void gated_act_rows_of(const void* gu, int rows, int inter, int act, void* h, float* amax_out,
                                  Fp8Out fp8) {
    const bool cast = fp8.delayed != 0 && fp8.delayed[0] > 0.0f;
    const float history_amax = cast ? fp8.delayed[1] : 0.0f;
    const float scale = history_amax == 0.0f ? 1.0f : history_amax / fp8.format_max;
    if (cast && blockIdx.x == 0 && threadIdx.x == 0) *fp8.scale_out = scale;
    float m = 0.0f;
    for (long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long in_base = row * 2 * inter, out_base = row * inter;
        if (ACT_FMT == FMT && H_FMT == FMT && inter % 8 == 0) {
            // Eight values per load and store: the gate's group, the up's, h's.
            const long gate8 = in_base / 8, up8 = (in_base + inter) / 8, h8 = out_base / 8;
            for (int c = threadIdx.x; c < inter / 8; c += blockDim.x) {
                float g[8], u[8], v[8];
                load8<FMT>(gu, gate8 + c, g);
                load8<FMT>(gu, up8 + c, u);
                for (int k = 0; k < 8; ++k) {
                    v[k] = gated_value(g[k], u[k], act, FMT, FMT);
                    m = nan_max(m, fabsf(v[k]));
                }
                if (cast) {
                    ((uint2*)fp8.q)[h8 + c] = fp8x8(v, scale, fp8.e5m2);
                } else {
                    store8<FMT>(h, h8 + c, v);
                }
            }
        } else {
            for (int c = threadIdx.x; c < inter; c += blockDim.x) {
                const float v = gated_value(load(gu, in_base + c, FMT), load(gu, in_base + inter + c, FMT), act,
                                            ACT_FMT, H_FMT);
                store(h, out_base + c, v, H_FMT);
                m = nan_max(m, fabsf(v));
            }
        }
    }
    if (amax_out != 0) {
        m = block_max(m);
        if (threadIdx.x == 0) atomic_amax(amax_out, m);
    }
}

// At most 32 registers a thread, so that eight 256-thread blocks fit on an SM: with the
// compiler's own choice (more registers, half as many blocks) the seed MLP's activation took
// 33 us in BF16 and 43.5 under delayed FP8, with this 31 and 42 (H200).
#define GATED_LAUNCH_BOUNDS __launch_bounds__(256, 8)

// The same format throughout (what every CUDA path uses); other combinations are not launched.
extern "C" __global__ void GATED_LAUNCH_BOUNDS gated_act(const void* gu, int fmt, int rows, int inter, int act, void* h, float* amax_out) {
    const Fp8Out stored = {0, 0.0f, 0, 0, 0};
    if (fmt == FMT_BF16) gated_act_rows_of<FMT_BF16, FMT_BF16, FMT_BF16>(gu, rows, inter, act, h, amax_out, stored);
    else if (fmt == FMT_F16) gated_act_rows_of<FMT_F16, FMT_F16, FMT_F16>(gu, rows, inter, act, h, amax_out, stored);
    else gated_act_rows_of<FMT_F32, FMT_F32, FMT_F32>(gu, rows, inter, act, h, amax_out, stored);
}

// The BF16 gated activation producing the next matmul's input under delayed FP8 scaling: with a
// history, h goes straight to FP8 (see gated_act_rows_of); without one (the first step) h is stored
// in BF16 for quantize_fp8 to cast with its own amax. Either way max |h|
// accumulates into amax_out, to join the history. inter a multiple of 8.
extern "C" __global__ void GATED_LAUNCH_BOUNDS gated_act_fp8(const void* gu, int rows, int inter, int act, const float* delayed,
                                         float format_max, int e5m2, void* h, u8* q, float* scale_out,
                                         float* amax_out) {
    const Fp8Out fp8 = {delayed, format_max, e5m2, q, scale_out};
    gated_act_rows_of<FMT_BF16, FMT_BF16, FMT_BF16>(gu, rows, inter, act, h, amax_out, fp8);
}

// An accumulated product `a` scaled as `rescale` stores it: a * (row scale * column scale),
// rounded to fmt.
__device__ __forceinline__ float scaled(float a, float row_scale, float col_scale, int fmt) {
    return round_to(a * (row_scale * col_scale), fmt);
}

// Element i of a matmul accumulator, scaled: acc is int32 (acc_is_int) or f32.
__device__ __forceinline__ float rescaled(const void* acc, int acc_is_int, long i, float row_scale, float col_scale,
                                          int fmt) {
    const float a = acc_is_int ? (float)((const int*)acc)[i] : ((const float*)acc)[i];
    return scaled(a, row_scale, col_scale, fmt);
}

// Row-wise formats (per-token activations, per-channel weights): INT8 or FP8 E4M3.
// The largest magnitude of the format: a row's scale is its amax over it.
__device__ __forceinline__ float row_format_max(int fp8) { return fp8 ? 448.0f : 127.0f; }

// v quantized with its row's scale, as the byte the matmul reads: INT8 clamp(rint(v / scale)) to
// [-127, 127], or FP8 E4M3 of v / scale (round to nearest even, saturating).
__device__ __forceinline__ unsigned quantize_row_value(float v, float scale, int fp8) {
    if (fp8) return f32_to_e4m3(v / scale);
    return (unsigned)((int)fminf(fmaxf(rintf(v / scale), -127.0f), 127.0f) & 0xff);
}

// `gated_act` (BF16) reading the gate|up accumulator [rows, 2*inter] of a group whose scales are
// applied after the GEMM (INT8, NVFP4), rescaled on the fly exactly as `rescale` would: the
// rescaled product is never stored, which saves a write and a read of it. Grid: (column blocks,
// rows).
extern "C" __global__ void gated_act_scaled(const void* acc, int acc_is_int, int inter, int act,
                                            const float* row_scale, int row_stride, const float* col_scale,
                                            void* h, float* amax_out) {
    const long row = blockIdx.y;
    const long in_base = row * 2 * inter, out_base = row * inter;
    const float rs = row_scale[row * row_stride];
    float m = 0.0f;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < inter; c += gridDim.x * blockDim.x) {
        const float g = rescaled(acc, acc_is_int, in_base + c, rs, col_scale[c], FMT_BF16);
        const float u = rescaled(acc, acc_is_int, in_base + inter + c, rs, col_scale[inter + c], FMT_BF16);
        const float v = gated_value(g, u, act, FMT_BF16, FMT_BF16);
        ((u16*)h)[out_base + c] = f32_to_bf16(v);
        m = nan_max(m, fabsf(v));
    }
    if (amax_out != 0) {
        m = block_max(m);
        if (threadIdx.x == 0) atomic_amax(amax_out, m);
    }
}

// The widest row gated_act_rows holds in shared memory (BF16: 32 KB).
#define FUSED_ROWS_MAX_COLUMNS 16384

// The row-wise gated activation, fused: one block per row reads the gate|up products
// [rows, 2*inter] (int32, or f32 when !acc_is_int) four at a time, rescales them (as `rescale`,
// to BF16), applies the activation (as `gated_act`) into a BF16 row in shared memory, then
// quantizes the row for the down projection (as `quantize_rows`): scale = row amax / format max
// into q_scale[row], q as quantize_row_value. inter a multiple of 4, at most
// FUSED_ROWS_MAX_COLUMNS.
extern "C" __global__ void gated_act_rows(const void* acc, int acc_is_int, int inter, int act,
                                          const float* row_scale, const float* col_scale, u8* q,
                                          float* q_scale, int fp8) {
    __shared__ u16 h_row[FUSED_ROWS_MAX_COLUMNS];
    const long row = blockIdx.x;
    // int32 and f32 products are both 4 bytes: loaded as int4, read as their type.
    const int4* gate = (const int4*)((const int*)acc + row * 2 * inter);
    const int4* up = (const int4*)((const int*)acc + row * 2 * inter + inter);
    const float4* gate_scale = (const float4*)col_scale;
    const float4* up_scale = (const float4*)(col_scale + inter);
    const float rs = row_scale[row];
    float m = 0.0f;
    for (int v = threadIdx.x; v < inter / 4; v += blockDim.x) {
        const int4 g4 = gate[v], u4 = up[v];
        const float4 gs4 = gate_scale[v], us4 = up_scale[v];
        const int g[4] = {g4.x, g4.y, g4.z, g4.w}, u[4] = {u4.x, u4.y, u4.z, u4.w};
        const float gs[4] = {gs4.x, gs4.y, gs4.z, gs4.w}, us[4] = {us4.x, us4.y, us4.z, us4.w};
        for (int k = 0; k < 4; ++k) {
            const float ga = acc_is_int ? (float)g[k] : __int_as_float(g[k]);
            const float ua = acc_is_int ? (float)u[k] : __int_as_float(u[k]);
            const float gv = scaled(ga, rs, gs[k], FMT_BF16);
            const float uv = scaled(ua, rs, us[k], FMT_BF16);
            const float h = gated_value(gv, uv, act, FMT_BF16, FMT_BF16);
            m = nan_max(m, fabsf(h));
            h_row[4 * v + k] = f32_to_bf16(h);
        }
    }
    m = block_max(m);  // its barriers also publish h_row to the whole block
    const float scale = m == 0.0f ? 1.0f : m / row_format_max(fp8);
    if (threadIdx.x == 0) q_scale[row] = scale;
    unsigned* out = (unsigned*)(q + row * inter);
    for (int v = threadIdx.x; v < inter / 4; v += blockDim.x) {
        unsigned packed = 0;
        for (int k = 0; k < 4; ++k) packed |= quantize_row_value(bf16_to_f32(h_row[4 * v + k]), scale, fp8) << (8 * k);
        out[v] = packed;
    }
}

// Row-wise quantization (per-token activations, per-channel weights): one block per row;
// scale = row amax / format max (1 for an all-zero row), q as quantize_row_value.
extern "C" __global__ void quantize_rows(const void* x, int fmt, long cols, u8* q, float* row_scale, int fp8) {
    const long row = blockIdx.x;
    const long base = row * cols;
    // BF16 rows of whole 16-byte vectors: eight values per load, eight bytes per store.
    const bool vectors = fmt == FMT_BF16 && cols % 8 == 0;
    const uint4* x8 = (const uint4*)((const u16*)x + base);
    float m = 0.0f;
    if (vectors) {
        for (long v = threadIdx.x; v < cols / 8; v += blockDim.x) {
            float f[8];
            unpack_bf16x8(x8[v], f);
            for (int k = 0; k < 8; ++k) m = nan_max(m, fabsf(f[k]));
        }
    } else {
        for (long c = threadIdx.x; c < cols; c += blockDim.x) m = nan_max(m, fabsf(load(x, base + c, fmt)));
    }
    m = block_max(m);
    const float scale = m == 0.0f ? 1.0f : m / row_format_max(fp8);
    if (threadIdx.x == 0) row_scale[row] = scale;
    if (vectors) {
        uint2* q8 = (uint2*)(q + base);
        for (long v = threadIdx.x; v < cols / 8; v += blockDim.x) {
            float f[8];
            unpack_bf16x8(x8[v], f);
            unsigned w[2] = {0, 0};
            for (int k = 0; k < 8; ++k) w[k / 4] |= quantize_row_value(f[k], scale, fp8) << (8 * (k % 4));
            q8[v] = make_uint2(w[0], w[1]);
        }
        return;
    }
    for (long c = threadIdx.x; c < cols; c += blockDim.x) {
        q[base + c] = (u8)quantize_row_value(load(x, base + c, fmt), scale, fp8);
    }
}

// out[r, c] = acc[r, c] * (row_scale[r * row_stride] * col_scale[c * col_stride]) (+ bias[c]),
// rounded once to out_fmt, as the CPU rounds a linear's output after its bias; acc is int32
// (acc_is_int) or f32. A stride of 0 makes a scale per tensor; a null scale is 1 (an unscaled
// product kept in f32 for its bias), a null bias none. Grid: (column blocks, rows).
extern "C" __global__ void rescale(const void* acc, int acc_is_int, int cols, const float* row_scale,
                                   int row_stride, const float* col_scale, int col_stride, const float* bias,
                                   void* out, int out_fmt) {
    const long r = blockIdx.y;
    const float rs = row_scale != 0 ? row_scale[r * row_stride] : 1.0f;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        const long i = r * cols + c;
        const float cs = col_scale != 0 ? col_scale[(long)c * col_stride] : 1.0f;
        const float a = acc_is_int ? (float)((const int*)acc)[i] : ((const float*)acc)[i];
        const float v = bias != 0 ? a * (rs * cs) + bias[c] : a * (rs * cs);
        store(out, i, v, out_fmt);
    }
}

// OCP MX emulation, one warp per block of 32 along each row: shared scale
// 2^(floor(log2 amax) - emax of the element format) in E8M0's range; elements rounded, saturating,
// multiplied back (exact) and stored in out_fmt.
extern "C" __global__ void mx_dequant(const void* x, int fmt, long rows, long cols, int element,
                                      int element_emax, void* out, int out_fmt) {
    long blocks_per_row = (cols + 31) / 32;
    long warp = (blockIdx.x * (long)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (warp >= rows * blocks_per_row) return;
    long r = warp / blocks_per_row, b = warp - r * blocks_per_row;
    long c = b * 32 + lane;
    long i = r * cols + c;
    float v = c < cols ? load(x, i, fmt) : 0.0f;
    float m = fabsf(v);
    for (int offset = 16; offset > 0; offset >>= 1) m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, offset));
    float result;
    if (m == 0.0f) result = 0.0f;
    else if (isnan(m) || isinf(m)) result = __int_as_float(0x7fc00000);
    else {
        int e;
        frexpf(m, &e);
        int shared_exp = min(max(e - 1 - element_emax, -127), 127);
        float shared = ldexpf(1.0f, shared_exp);
        result = minifloat_round(v / shared, minifloat(element)) * shared;
    }
    if (c < cols) store(out, i, result, out_fmt);
}

// NVFP4 emulation, a half-warp per block of 16 along each row: tensor scale ts = 448 * 6 / amax,
// block scale bs = e4m3(block amax / 6 * ts), elements e2m1(x * ts / bs) * bs (exact), stored in
// out_fmt; the matmul's output is scaled by 1 / (ts_x ts_w) afterwards. inv_ts_out = 1 / ts.
extern "C" __global__ void nvfp4_dequant(const void* x, int fmt, long rows, long cols,
                                         const float* tensor_amax, void* out, int out_fmt,
                                         float* inv_ts_out) {
    float ts = *tensor_amax == 0.0f ? 1.0f : 448.0f * 6.0f / *tensor_amax;
    if (blockIdx.x == 0 && threadIdx.x == 0) *inv_ts_out = 1.0f / ts;
    long blocks_per_row = (cols + 15) / 16;
    long group = (blockIdx.x * (long)blockDim.x + threadIdx.x) / 16;
    int lane = threadIdx.x & 15;
    bool active = group < rows * blocks_per_row;
    long r = active ? group / blocks_per_row : 0, b = active ? group - r * blocks_per_row : 0;
    long c = b * 16 + lane;
    long i = r * cols + c;
    float v = (active && c < cols) ? load(x, i, fmt) : 0.0f;
    float m = fabsf(v);
    for (int offset = 8; offset > 0; offset >>= 1) m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, offset));
    if (!active || c >= cols) return;
    float bs = minifloat_round(m / 6.0f * ts, minifloat(0));
    float result = bs == 0.0f ? 0.0f : minifloat_round(v * ts / bs, minifloat(4)) * bs;
    store(out, i, result, out_fmt);
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// VEC consecutive values at element i of a FMT tensor, as one 16-byte load (i a multiple of VEC:
// 8 for 16-bit formats, 4 for f32).
template <int FMT, int VEC>
__device__ __forceinline__ void load_vec(const void* p, long i, float* out) {
    const uint4 raw = *(const uint4*)((const char*)p + i * (FMT == FMT_F32 ? 4 : 2));
    if constexpr (FMT == FMT_F32) {
        out[0] = __uint_as_float(raw.x); out[1] = __uint_as_float(raw.y);
        out[2] = __uint_as_float(raw.z); out[3] = __uint_as_float(raw.w);
    } else if constexpr (FMT == FMT_BF16) {
        unpack_bf16x8(raw, out);
    } else {
        const unsigned w[4] = {raw.x, raw.y, raw.z, raw.w};
        for (int k = 0; k < 4; ++k) {
            out[2 * k] = f16_to_f32((u16)(w[k] & 0xffffu));
            out[2 * k + 1] = f16_to_f32((u16)(w[k] >> 16));
        }
    }
}

// Stores N values (4 or 8) at element i of a FMT tensor with 8- or 16-byte stores.
template <int FMT, int N>
__device__ __forceinline__ void store_vec(void* p, long i, const float* v) {
    if constexpr (FMT == FMT_F32) {
        float4* q = (float4*)((float*)p + i);
        for (int k = 0; k < N / 4; ++k) q[k] = make_float4(v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]);
    } else {
        unsigned w[N / 2];
        for (int k = 0; k < N / 2; ++k) {
            w[k] = FMT == FMT_BF16 ? f32x2_to_bf16x2(v[2 * k], v[2 * k + 1])
                                   : (unsigned)f32_to_f16(v[2 * k]) | ((unsigned)f32_to_f16(v[2 * k + 1]) << 16);
        }
        if constexpr (N == 8) *(uint4*)((u16*)p + i) = make_uint4(w[0], w[1], w[2], w[3]);
        else *(uint2*)((u16*)p + i) = make_uint2(w[0], w[1]);
    }
}

// Four consecutive values of a FMT tensor at element i (i a multiple of 4): one 8-byte load for
// 16-bit formats, 16 bytes for f32.
template <int FMT>
__device__ __forceinline__ void load4(const void* p, long i, float* out) {
    if constexpr (FMT == FMT_F32) {
        const float4 v = *(const float4*)((const float*)p + i);
        out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
    } else {
        const uint2 raw = *(const uint2*)((const u16*)p + i);
        const unsigned w[2] = {raw.x, raw.y};
        for (int k = 0; k < 2; ++k) {
            const u16 lo = (u16)(w[k] & 0xffffu), hi = (u16)(w[k] >> 16);
            out[2 * k] = FMT == FMT_BF16 ? bf16_to_f32(lo) : f16_to_f32(lo);
            out[2 * k + 1] = FMT == FMT_BF16 ? bf16_to_f32(hi) : f16_to_f32(hi);
        }
    }
}

// The pair (x1, x2) of a head turned by the angle (c, s): the rotary embedding's "rotate half".
__device__ __forceinline__ void turn(float& x1, float& x2, float c, float s) {
    const float a = x1 * c - x2 * s, b = x2 * c + x1 * s;
    x1 = a;
    x2 = b;
}

// Four values of a matmul accumulator (int32 or f32) at element i, a multiple of 4: one 16-byte load.
__device__ __forceinline__ void load_acc4(const void* acc, int acc_is_int, long i, float* out) {
    const int4 raw = *(const int4*)((const int*)acc + i);
    const int w[4] = {raw.x, raw.y, raw.z, raw.w};
    for (int k = 0; k < 4; ++k) out[k] = acc_is_int ? (float)w[k] : __int_as_float(w[k]);
}

// `rotary` with each thread turning four consecutive pairs: 8-byte (16-bit formats) or 16-byte
// (f32) loads and stores of x, 16-byte loads of the tables. The host launches it for heads whose
// half is a multiple of 4, rows a multiple of 4 apart and 16-byte aligned tensors and tables.
template <int FMT>
__device__ void rotary_quads(void* x, long ld, int heads, int head_dim, const float* cos_t, const float* sin_t) {
    const int half = head_dim / 2;
    const long r = blockIdx.y;
    const int p = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
    if (p >= heads * half) return;
    const int h = p / half, j = p - h * half;
    const long a = r * ld + (long)h * head_dim + j, b = a + half;
    float x1[4], x2[4], c[4], s[4];
    load4<FMT>(x, a, x1);
    load4<FMT>(x, b, x2);
    load4<FMT_F32>(cos_t, r * half + j, c);
    load4<FMT_F32>(sin_t, r * half + j, s);
    for (int k = 0; k < 4; ++k) turn(x1[k], x2[k], c[k], s[k]);
    store_vec<FMT, 4>(x, a, x1);
    store_vec<FMT, 4>(x, b, x2);
}

// `rescale_rotary` four values a thread: a thread takes four pairs of a rotated head (items
// below rotated / 8) or four columns past the rotated heads. Same conditions as rotary_quads, and
// columns a multiple of 4.
template <int OUT_FMT>
__device__ void rescale_rotary_quads(const void* acc, int acc_is_int, int cols, const float* row_scale,
                                     int row_stride, const float* col_scale, void* out, int rot_heads,
                                     int head_dim, const float* cos_t, const float* sin_t) {
    const long r = blockIdx.y;
    const float rs = row_scale[r * row_stride];
    const int half = head_dim / 2, rotated = rot_heads * head_dim, pair_quads = rotated / 8;
    const int items = pair_quads + (cols - rotated) / 4;
    for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < items; q += gridDim.x * blockDim.x) {
        float x1[4], cs1[4];
        if (q >= pair_quads) {
            const int c = rotated + 4 * (q - pair_quads);
            load_acc4(acc, acc_is_int, r * cols + c, x1);
            load4<FMT_F32>(col_scale, c, cs1);
            for (int k = 0; k < 4; ++k) x1[k] = scaled(x1[k], rs, cs1[k], OUT_FMT);
            store_vec<OUT_FMT, 4>(out, r * cols + c, x1);
            continue;
        }
        const int p = 4 * q, h = p / half, j = p - h * half, c = h * head_dim + j;
        float x2[4], cs2[4], co[4], si[4];
        load_acc4(acc, acc_is_int, r * cols + c, x1);
        load_acc4(acc, acc_is_int, r * cols + c + half, x2);
        load4<FMT_F32>(col_scale, c, cs1);
        load4<FMT_F32>(col_scale, c + half, cs2);
        load4<FMT_F32>(cos_t, r * half + j, co);
        load4<FMT_F32>(sin_t, r * half + j, si);
        for (int k = 0; k < 4; ++k) {
            x1[k] = scaled(x1[k], rs, cs1[k], OUT_FMT);
            x2[k] = scaled(x2[k], rs, cs2[k], OUT_FMT);
            turn(x1[k], x2[k], co[k], si[k]);
        }
        store_vec<OUT_FMT, 4>(out, r * cols + c, x1);
        store_vec<OUT_FMT, 4>(out, r * cols + c + half, x2);
    }
}

// Rotary embedding ("rotate half") in place, of the first `heads` heads of `head_dim` columns of
// each row of x (row stride ld): row r, at position r, turns the pair (j, j + head_dim/2) of each
// head by the angle whose cosine and sine are cos_t[r * half + j] and sin_t[...], tables the host
// computes in f64 and rounds to f32 as the CPU backend does. Grid: (pair blocks, rows); with `quads`,
// four pairs a thread (rotary_quads).
extern "C" __global__ void rotary(void* x, int fmt, long ld, int heads, int head_dim,
                                  const float* cos_t, const float* sin_t, int quads) {
    if (quads) {
        if (fmt == FMT_BF16) rotary_quads<FMT_BF16>(x, ld, heads, head_dim, cos_t, sin_t);
        else if (fmt == FMT_F16) rotary_quads<FMT_F16>(x, ld, heads, head_dim, cos_t, sin_t);
        else rotary_quads<FMT_F32>(x, ld, heads, head_dim, cos_t, sin_t);
        return;
    }
    const int half = head_dim / 2;
    const long r = blockIdx.y;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= heads * half) return;
    const int h = p / half, j = p - h * half;
    const long a = r * ld + (long)h * head_dim + j, b = a + half;
    float x1 = load(x, a, fmt), x2 = load(x, b, fmt);
    turn(x1, x2, cos_t[r * half + j], sin_t[r * half + j]);
    store(x, a, x1, fmt);
    store(x, b, x2, fmt);
}

// `rescale` of the attention's query|key|value accumulator [rows, cols] (column scales per
// column) with the rotary embedding of its first `rot_heads` heads applied on the way, as `rotary`
// would apply it to the rescaled tensor: one pass instead of two. Grid: (column blocks, rows); with
// `quads`, four values a thread (rescale_rotary_quads).
extern "C" __global__ void rescale_rotary(const void* acc, int acc_is_int, int cols, const float* row_scale,
                                          int row_stride, const float* col_scale, void* out, int out_fmt,
                                          int rot_heads, int head_dim, const float* cos_t, const float* sin_t,
                                          int quads) {
    if (quads) {
        if (out_fmt == FMT_BF16)
            rescale_rotary_quads<FMT_BF16>(acc, acc_is_int, cols, row_scale, row_stride, col_scale, out, rot_heads, head_dim, cos_t, sin_t);
        else if (out_fmt == FMT_F16)
            rescale_rotary_quads<FMT_F16>(acc, acc_is_int, cols, row_scale, row_stride, col_scale, out, rot_heads, head_dim, cos_t, sin_t);
        else
            rescale_rotary_quads<FMT_F32>(acc, acc_is_int, cols, row_scale, row_stride, col_scale, out, rot_heads, head_dim, cos_t, sin_t);
        return;
    }
    const long r = blockIdx.y;
    const float rs = row_scale[r * row_stride];
    const int half = head_dim / 2, rotated = rot_heads * head_dim;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        const long i = r * cols + c;
        if (c >= rotated) {
            store(out, i, rescaled(acc, acc_is_int, i, rs, col_scale[c], out_fmt), out_fmt);
            continue;
        }
        const int j = c % head_dim;
        if (j >= half) continue;  // the second of a pair: written with the first
        float x1 = rescaled(acc, acc_is_int, i, rs, col_scale[c], out_fmt);
        float x2 = rescaled(acc, acc_is_int, i + half, rs, col_scale[c + half], out_fmt);
        turn(x1, x2, cos_t[r * half + j], sin_t[r * half + j]);
        store(out, i, x1, out_fmt);
        store(out, i + half, x2, out_fmt);
    }
}

// Rows of up to SOFTMAX_MAX_LD columns are held in registers: one read, one write.
#define SOFTMAX_MAX_LD 1024

// The softmax of one row held in registers: lane `lane` holds the 16-byte chunks lane, lane + 32,
// ... (VEC values each). Scores in S_FMT, probabilities stored in P_FMT.
template <int S_FMT, int P_FMT>
__device__ void softmax_row_registers(const void* scores, void* probs, long base, int seen, int ld, int lane) {
    constexpr int VEC = S_FMT == FMT_F32 ? 4 : 8;
    constexpr int CHUNKS = SOFTMAX_MAX_LD / 32 / VEC;
    float v[CHUNKS * VEC];
    float m = NEG_INF;
#pragma unroll
    for (int ch = 0; ch < CHUNKS; ++ch) {
        const int c0 = (lane + 32 * ch) * VEC;
        if (c0 < ld) load_vec<S_FMT, VEC>(scores, base + c0, v + ch * VEC);
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
            if (c0 + e >= seen) v[ch * VEC + e] = NEG_INF;
            m = nan_max(m, v[ch * VEC + e]);
        }
    }
    m = warp_max(m);
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < CHUNKS * VEC; ++i) {
        const int c = (lane + 32 * (i / VEC)) * VEC + i % VEC;
        v[i] = c < seen ? expf(v[i] - m) : 0.0f;
        sum += v[i];
    }
    sum = warp_sum(sum);
#pragma unroll
    for (int ch = 0; ch < CHUNKS; ++ch) {
        const int c0 = (lane + 32 * ch) * VEC;
        if (c0 >= ld) continue;
        float p[VEC];
#pragma unroll
        // Stored in the softmax's own format (P_FMT == S_FMT), rounding once gives what rounding
        // twice would.
        for (int e = 0; e < VEC; ++e) p[e] = S_FMT == P_FMT ? v[ch * VEC + e] / sum : round_to(v[ch * VEC + e] / sum, S_FMT);
        store_vec<P_FMT, VEC>(probs, base + c0, p);
    }
}

// The same for rows too long for registers: three passes over memory.
__device__ void softmax_row_memory(const void* scores, int s_fmt, void* probs, int p_fmt, long base, int seen,
                                   int ld, int lane) {
    float m = NEG_INF;
    for (int c = lane; c < seen; c += 32) m = nan_max(m, load(scores, base + c, s_fmt));
    m = warp_max(m);
    float sum = 0.0f;
    for (int c = lane; c < seen; c += 32) sum += expf(load(scores, base + c, s_fmt) - m);
    sum = warp_sum(sum);
    for (int c = lane; c < ld; c += 32) {
        const float p = c < seen ? expf(load(scores, base + c, s_fmt) - m) / sum : 0.0f;
        store(probs, base + c, round_to(p, s_fmt), p_fmt);
    }
}

// Softmax of each row of the scores (`cols` columns, `ld` apart, a multiple of 8, format s_fmt),
// one warp per row, computed in f32; each probability is rounded to the softmax format, then
// stored in p_fmt (the operand of p·v), and the padding columns up to `ld` are zeroed. Rows are
// the query tokens of consecutive heads, so row r is token r % tokens; with `causal`, token i sees
// columns <= i and the rest are zero.
extern "C" __global__ void softmax_rows(const void* scores, int s_fmt, int cols, int ld, int tokens,
                                        int causal, void* probs, int p_fmt, long rows) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const long base = row * ld;
    const int seen = causal ? (int)(row % tokens) + 1 : cols;
    if (ld > SOFTMAX_MAX_LD) {
        softmax_row_memory(scores, s_fmt, probs, p_fmt, base, seen, ld, lane);
        return;
    }
#define SOFTMAX_CASE(S, P) \
    if (s_fmt == S && p_fmt == P) { softmax_row_registers<S, P>(scores, probs, base, seen, ld, lane); return; }
    SOFTMAX_CASE(FMT_F32, FMT_F32) SOFTMAX_CASE(FMT_F32, FMT_BF16) SOFTMAX_CASE(FMT_F32, FMT_F16)
    SOFTMAX_CASE(FMT_BF16, FMT_F32) SOFTMAX_CASE(FMT_BF16, FMT_BF16) SOFTMAX_CASE(FMT_BF16, FMT_F16)
    SOFTMAX_CASE(FMT_F16, FMT_F32) SOFTMAX_CASE(FMT_F16, FMT_BF16) SOFTMAX_CASE(FMT_F16, FMT_F16)
#undef SOFTMAX_CASE
}

// One amax history of delayed scaling (the host's `HistoryPush::encode` writes these): the step's
// amax, the ring of `length` amaxes, whether the next step scales by the most recent amax alone,
// and the state {steps so far, amax of the history for the next step}.
struct HistoryPush {
    float* current;
    float* history;
    int length;
    int most_recent;
    float* state;
};

// Delayed scaling's bookkeeping after a step, every history of a block in one launch, a block per
// history: the step's amax joins the ring, state = {steps + 1, the ring's largest amax
// (`most_recent` 0) or this step's (1)}; NaN stays NaN. *current is zeroed for the next step's
// kernels to accumulate into, so a later step's graph needs no memset of it.
extern "C" __global__ void amax_history_push(const HistoryPush* pushes) {
    const HistoryPush p = pushes[blockIdx.x];
    __shared__ int steps;
    __shared__ float latest;
    if (threadIdx.x == 0) {
        steps = (int)p.state[0];
        latest = *p.current;
        p.history[steps % p.length] = latest;
    }
    __syncthreads();
    const int filled = min(steps + 1, p.length);
    float m = NEG_INF;
    for (int i = threadIdx.x; i < filled; i += blockDim.x) m = nan_max(m, p.history[i]);
    m = block_max(m);
    if (threadIdx.x == 0) {
        p.state[0] = (float)(steps + 1);
        p.state[1] = p.most_recent ? latest : m;
        *p.current = 0.0f;
    }
}

// An activation function in place on y (n values of fmt), stored rounded to fmt, as the CPU
// stores an activation's output. With amax non-null, also accumulates max |y| (for the next
// matmul's current scaling).
extern "C" __global__ void activation(void* y, int fmt, long n, int act, float* amax_out) {
    float m = 0.0f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const float v = round_to(activate(load(y, i, fmt), act), fmt);
        store(y, i, v, fmt);
        m = nan_max(m, fabsf(v));
    }
    if (amax_out != 0) {
        m = block_max(m);
        if (threadIdx.x == 0) atomic_amax(amax_out, m);
    }
}

// The sum of v over the block, for every thread of the block.
__device__ float block_sum(float v) {
    __shared__ float warp_sums[32];
    v = warp_sum(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    v = threadIdx.x < warps ? warp_sums[threadIdx.x] : 0.0f;
    if (warp == 0) {
        v = warp_sum(v);
        if (lane == 0) warp_sums[0] = v;
    }
    __syncthreads();
    v = warp_sums[0];
    __syncthreads();
    return v;
}

// Row r of a residual sum: a, or round(a + b) when b is non-null (the CPU stores the sum).
__device__ __forceinline__ float residual(const void* a, const void* b, long i, int fmt) {
    return b != 0 ? round_to(load(a, i, fmt) + load(b, i, fmt), fmt) : load(a, i, fmt);
}

// A row's normalisation from each thread's partial sum `first` (of the values for LayerNorm,
// norm = 1; of their squares for RMSNorm): LayerNorm's mean and 1 / sqrt(variance + eps), the
// variance about the mean from `deviations(mean)` (the thread's sum of squared deviations), as the
// CPU computes it; RMSNorm's 0 and 1 / sqrt(mean square + eps). Every thread of the block calls it.
template <typename Deviations>
__device__ __forceinline__ void norm_stats(float first, int cols, int norm, float eps, Deviations deviations,
                                           float& mean, float& inv) {
    const float moment = block_sum(first) / cols;
    if (norm == 1) {
        mean = moment;
        inv = 1.0f / sqrtf(block_sum(deviations(mean)) / cols + eps);
    } else {
        mean = 0.0f;
        inv = 1.0f / sqrtf(moment + eps);
    }
}

// Rows of up to NORM_CHUNKS groups of eight values per thread are held in registers by add_norm:
// one read of each input, one write of each output.
#define NORM_CHUNKS 4

// add_norm of one row held in registers: thread t holds the eight-value groups t, t + blockDim,
// ... of the row (cols a multiple of 8, at most 8 * NORM_CHUNKS * blockDim). The same arithmetic
// as the loop below, in the same order for every value; only the sums' order differs.
template <int FMT>
__device__ void add_norm_registers(const void* a, const void* b, int cols, void* sum_out, int norm,
                                   const float* weight, const float* shift, float eps, void* norm_out,
                                   float* amax_out) {
    const int groups = cols / 8;
    const long base8 = (long)blockIdx.x * groups;
    float v[NORM_CHUNKS * 8];
    float first = 0.0f;
#pragma unroll
    for (int ch = 0; ch < NORM_CHUNKS; ++ch) {
        const int g = threadIdx.x + ch * blockDim.x;
        if (g >= groups) break;
        float* x = v + ch * 8;
        load8<FMT>(a, base8 + g, x);
        if (b != 0) {
            float y[8];
            load8<FMT>(b, base8 + g, y);
            for (int k = 0; k < 8; ++k) x[k] = round_to(x[k] + y[k], FMT);
        }
        if (sum_out != 0) store8<FMT>(sum_out, base8 + g, x);
        for (int k = 0; k < 8; ++k) first += norm == 1 ? x[k] : x[k] * x[k];
    }
    if (norm == 0) return;
    float mean, inv;
    norm_stats(first, cols, norm, eps, [&](float mean) {
        float second = 0.0f;
#pragma unroll
        for (int ch = 0; ch < NORM_CHUNKS; ++ch) {
            if (threadIdx.x + ch * blockDim.x >= groups) break;
            for (int k = 0; k < 8; ++k) {
                const float d = v[ch * 8 + k] - mean;
                second += d * d;
            }
        }
        return second;
    }, mean, inv);
    float m = 0.0f;
#pragma unroll
    for (int ch = 0; ch < NORM_CHUNKS; ++ch) {
        const int g = threadIdx.x + ch * blockDim.x;
        if (g >= groups) break;
        float w[8], out[8];
        load8<FMT_F32>(weight, g, w);
        for (int k = 0; k < 8; ++k) out[k] = (v[ch * 8 + k] - mean) * inv * w[k];
        if (norm == 1) {
            float sh[8];
            load8<FMT_F32>(shift, g, sh);
            for (int k = 0; k < 8; ++k) out[k] += sh[k];
        }
        store8<FMT>(norm_out, base8 + g, out);
        for (int k = 0; k < 8; ++k) m = nan_max(m, fabsf(round_to(out[k], FMT)));
    }
    if (amax_out != 0) {
        m = block_max(m);
        if (threadIdx.x == 0) atomic_amax(amax_out, m);
    }
}

// A residual add and a normalisation of its rows, one block per row: s = a (+ b), stored into
// sum_out when non-null; then with norm = 1 LayerNorm, 2 RMSNorm (0 none) of s, times weight (+
// shift for LayerNorm), all in f32 as the CPU computes it (mean first, then the variance about
// it), stored into norm_out and accumulating max |out| into amax_out when non-null. Every
// tensor is in fmt.
extern "C" __global__ void add_norm(const void* a, const void* b, int fmt, int cols, void* sum_out, int norm,
                                    const float* weight, const float* shift, float eps, void* norm_out,
                                    float* amax_out) {
    // Groups of eight values read and written whole (16-byte aligned), the row held in registers.
    const unsigned long addresses = (unsigned long)a | (unsigned long)b | (unsigned long)sum_out |
                                    (unsigned long)norm_out | (unsigned long)weight | (unsigned long)shift;
    if (cols % 8 == 0 && cols / 8 <= NORM_CHUNKS * (int)blockDim.x && addresses % 16 == 0) {
        if (fmt == FMT_BF16) add_norm_registers<FMT_BF16>(a, b, cols, sum_out, norm, weight, shift, eps, norm_out, amax_out);
        else if (fmt == FMT_F16) add_norm_registers<FMT_F16>(a, b, cols, sum_out, norm, weight, shift, eps, norm_out, amax_out);
        else add_norm_registers<FMT_F32>(a, b, cols, sum_out, norm, weight, shift, eps, norm_out, amax_out);
        return;
    }
    const long base = (long)blockIdx.x * cols;
    float first = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float s = residual(a, b, base + c, fmt);
        if (sum_out != 0) store(sum_out, base + c, s, fmt);
        first += norm == 1 ? s : s * s;
    }
    if (norm == 0) return;
    float mean, inv;
    norm_stats(first, cols, norm, eps, [&](float mean) {
        float second = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float d = residual(a, b, base + c, fmt) - mean;
            second += d * d;
        }
        return second;
    }, mean, inv);
    float m = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = (residual(a, b, base + c, fmt) - mean) * inv * weight[c];
        if (norm == 1) v += shift[c];
        store(norm_out, base + c, v, fmt);
        m = nan_max(m, fabsf(round_to(v, fmt)));
    }
    if (amax_out != 0) {
        m = block_max(m);
        if (threadIdx.x == 0) atomic_amax(amax_out, m);
    }
}
