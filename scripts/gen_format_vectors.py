#!/usr/bin/env python3
"""Generate bit-exact test vectors for low-precision float formats.

The reference is the PyPI package `ml_dtypes` (plus numpy for float16).  The
Rust tests read the binary files written here and compare our own
encoders/decoders against them bit for bit.

Usage (from the repository root):

    pip install ml_dtypes numpy
    python3 scripts/gen_format_vectors.py

Everything under tests/vectors/ (the .bin files and README.md) is rewritten.
The output is deterministic for a given ml_dtypes/numpy version (fixed seed).

Besides writing the vectors, the script checks the behaviours that
tests/vectors/README.md describes (round-to-nearest-even, overflow, NaN, e8m0
rounding) against small independent models.  If a future ml_dtypes release
behaves differently, the script stops with an error instead of silently
writing a README that no longer matches the data.
"""

import pathlib
import sys

import ml_dtypes
import numpy as np

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

OUT_DIR = pathlib.Path(__file__).resolve().parent.parent / "tests" / "vectors"
SEED = 20250101

# Narrow formats: short name -> (ml_dtypes attribute name, storage bits).
# The 6- and 4-bit types are stored by ml_dtypes in the low bits of a byte.
NARROW_FORMATS = {
    "e4m3": ("float8_e4m3fn", 8),
    "e5m2": ("float8_e5m2", 8),
    "e2m3": ("float6_e2m3fn", 6),
    "e3m2": ("float6_e3m2fn", 6),
    "e2m1": ("float4_e2m1fn", 4),
    "e8m0": ("float8_e8m0fnu", 8),
}

# 16-bit formats: short name -> numpy-compatible scalar type.
WIDE_FORMATS = {
    "bf16": ml_dtypes.bfloat16,
    "f16": np.float16,
}

# Formats that get an encode_f32_<fmt>.bin file.  e8m0 is an extra beyond the
# original brief (its rounding is unusual, so it deserves pinned vectors).
F32_TARGETS = ["e4m3", "e5m2", "e2m3", "e3m2", "e2m1", "e8m0", "bf16", "f16"]

# Random f32 inputs per encode_f32 file:
#   N_RANDOM_RANGE values sign * 2^e * (1 + 23-bit fraction), e spread over the range
#   N_RANDOM_BITS arbitrary 32-bit patterns (includes NaNs, infs, subnormals)
# These dominate the size of the encode_f32 files; lower them to shrink tests/vectors.
N_RANDOM_RANGE = 20000
N_RANDOM_BITS = 2000
# Smaller counts for the extra e8m0 file (only 255 values; structured inputs
# already pin every boundary).
N_RANDOM_OVERRIDE = {"e8m0": (4000, 1000)}

# For the 16-bit targets, testing every adjacent pair would make the files too
# large, so per binade only the first and last PAIRS_PER_BINADE_EDGE pairs are
# used (plus every pair involving a subnormal or zero, and the binade-crossing
# pairs, which are "last" pairs).
PAIRS_PER_BINADE_EDGE = 2

# Behaviour the README states in prose, per format, as codes for inputs
# (positive, negative).  check_claims() asserts these against ml_dtypes.
#   overflow: finite inputs beyond the overflow threshold (and +-FLT_MAX)
#   inf:      +-inf input
#   nan:      NaN input with sign bit 0 / 1 (any payload)
#   zero:     +0.0 / -0.0 input
#   thr:      code for +(max + ulp/2) exactly (tie at the overflow threshold)
README_CLAIMS = {
    "e4m3": dict(overflow=(0x7F, 0xFF), inf=(0x7F, 0xFF), nan=(0x7F, 0xFF), zero=(0x00, 0x80), thr=0x7E),
    "e5m2": dict(overflow=(0x7C, 0xFC), inf=(0x7C, 0xFC), nan=(0x7E, 0xFE), zero=(0x00, 0x80), thr=0x7C),
    "e2m3": dict(overflow=(0x1F, 0x3F), inf=(0x1F, 0x3F), nan=(0x20, 0x00), zero=(0x00, 0x20), thr=0x1F),
    "e3m2": dict(overflow=(0x1F, 0x3F), inf=(0x1F, 0x3F), nan=(0x20, 0x00), zero=(0x00, 0x20), thr=0x1F),
    "e2m1": dict(overflow=(0x07, 0x0F), inf=(0x07, 0x0F), nan=(0x08, 0x00), zero=(0x00, 0x08), thr=0x07),
    "e8m0": dict(overflow=(0xFF, 0xFF), inf=(0xFF, 0xFF), nan=(0xFF, 0xFF), zero=(0xFF, 0xFF), thr=0xFF),
    "bf16": dict(overflow=(0x7F80, 0xFF80), inf=(0x7F80, 0xFF80), nan=(0x7FC0, 0xFFC0), zero=(0x0000, 0x8000), thr=0x7F80),
    "f16": dict(overflow=(0x7C00, 0xFC00), inf=(0x7C00, 0xFC00), nan=None, zero=(0x0000, 0x8000), thr=0x7C00),  # f16 NaN: see check_wide_nan_rule
}

# Canonical and odd NaN bit patterns used as inputs.
F32_NAN_BITS = [
    0x7FC00000,  # +qNaN (numpy's np.nan)
    0xFFC00000,  # -qNaN
    0x7F800001,  # +sNaN, smallest payload
    0xFF800001,  # -sNaN
    0x7FA00000,  # +sNaN
    0x7FFFFFFF,  # +qNaN, all payload bits
    0xFFFFFFFF,  # -qNaN, all payload bits
]


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def fmt_type(name):
    """numpy scalar type for a short format name, or None if unavailable."""
    if name in WIDE_FORMATS:
        return WIDE_FORMATS[name]
    return getattr(ml_dtypes, NARROW_FORMATS[name][0], None)


def fmt_bits(name):
    return 16 if name in WIDE_FORMATS else NARROW_FORMATS[name][1]


def code_dtype(name):
    """Unsigned integer dtype holding a code of this format."""
    return np.dtype("<u2") if fmt_bits(name) == 16 else np.dtype("u1")


def f32_from_bits(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def f32_bits(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def next_up(x):
    x = np.asarray(x, dtype=np.float32)
    return np.nextafter(x, np.float32(np.inf))


def next_down(x):
    x = np.asarray(x, dtype=np.float32)
    return np.nextafter(x, np.float32(-np.inf))


def cast_f32(x, name):
    """Codes that ml_dtypes/numpy produce for f32 values `x` (plain cast)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        return x.astype(fmt_type(name)).view(code_dtype(name))


def decode_codes(codes, name):
    """Decode codes (as stored by ml_dtypes) to float32."""
    codes = np.asarray(codes, dtype=code_dtype(name))
    with np.errstate(all="ignore"):
        return codes.view(fmt_type(name)).astype(np.float32)


def all_codes(name):
    return np.arange(1 << fmt_bits(name), dtype=np.uint32).astype(code_dtype(name))


def unique_in_order(bits):
    """Drop duplicate u32 bit patterns, keeping first occurrences in order."""
    _, first = np.unique(bits, return_index=True)
    return bits[np.sort(first)]


def check(cond, msg):
    if not cond:
        sys.exit(f"CHECK FAILED: {msg}\n(the README text would be wrong; update it)")


class Info:
    """Numeric parameters of a format, measured with ml_dtypes.finfo."""

    def __init__(self, name):
        fi = ml_dtypes.finfo(fmt_type(name))
        self.nmant = int(fi.nmant)
        self.max = float(fi.max)
        self.tiny = float(fi.tiny)  # smallest positive normal
        self.emin = int(np.log2(self.tiny))
        self.emax = int(np.floor(np.log2(self.max)))


# ---------------------------------------------------------------------------
# Input generation for encode_f32_<fmt>.bin
# ---------------------------------------------------------------------------

def positive_finite_values(name):
    """Sorted non-negative finite values of the format, as float64.

    Returns (values, codes) where codes[i] encodes values[i].  For sign-magnitude
    formats the positive codes are monotone in value, so "adjacent codes" are
    "adjacent values".
    """
    codes = all_codes(name)
    vals = decode_codes(codes, name).astype(np.float64)
    keep = np.isfinite(vals) & (vals >= 0) & ~np.signbit(vals)
    vals, codes = vals[keep], codes[keep]
    order = np.argsort(vals, kind="stable")
    vals, codes = vals[order], codes[order]
    check(np.all(np.diff(vals) > 0), f"{name}: positive values not distinct")
    return vals, codes


def selected_pairs(name, codes):
    """Indices i of the adjacent pairs (v[i], v[i+1]) to test."""
    n_pairs = len(codes) - 1
    if name not in WIDE_FORMATS:
        return np.arange(n_pairs)
    nmant = Info(name).nmant
    frac = codes[:n_pairs].astype(np.int64) & ((1 << nmant) - 1)
    exp_field = codes[:n_pairs].astype(np.int64) >> nmant
    k = PAIRS_PER_BINADE_EDGE
    keep = (exp_field == 0) | (frac < k) | (frac >= (1 << nmant) - k)
    return np.nonzero(keep)[0]


def midpoint_inputs(name):
    """Representable values, midpoints, and the midpoints' f32 neighbours."""
    vals, codes = positive_finite_values(name)
    idx = selected_pairs(name, codes)
    a, b = vals[idx], vals[idx + 1]
    mid = (a + b) / 2  # exact in float64
    mid32 = mid.astype(np.float32)
    check(np.all(mid32.astype(np.float64) == mid), f"{name}: midpoint not exact in f32")
    pos = np.concatenate(
        [np.stack([a.astype(np.float32), next_down(mid32), mid32, next_up(mid32)], 1).ravel(),
         [np.float32(vals[-1])]]
    )
    return np.concatenate([pos, -pos]).astype(np.float32)


def overflow_threshold(name):
    """(max, ulp, thr): ulp = distance from max to the next value beyond it,
    i.e. the spacing of the top binade (for e8m0, whose values are powers of
    two, the next value would be 2*max, so ulp = max); thr = max + ulp/2."""
    vals, _ = positive_finite_values(name)
    mx = vals[-1]
    ulp = mx if name == "e8m0" else mx - vals[-2]
    thr = np.float32(mx + ulp / 2)
    check(float(thr) == mx + ulp / 2, f"{name}: threshold not exact in f32")
    return mx, ulp, thr


def overflow_inputs(name):
    """Max, the overflow threshold (max + half top ulp), neighbours, beyond."""
    mx, ulp, thr = overflow_threshold(name)
    pos = np.array(
        [mx, next_down(thr), thr, next_up(thr), mx + ulp, 2 * mx,
         np.finfo(np.float32).max],
        dtype=np.float32,
    )
    return np.concatenate([pos, -pos])


def underflow_inputs(name):
    """Values around and just below half the smallest positive value."""
    vals, _ = positive_finite_values(name)
    smallest = vals[1] if vals[0] == 0 else vals[0]
    half = np.float32(smallest / 2)
    below = [half]
    for _ in range(3):
        below.append(next_down(below[-1]))
    pos = np.array(below + [smallest / 4, smallest / 8, smallest * 0.75,
                            next_up(np.float32(smallest))], dtype=np.float32)
    return np.concatenate([pos, -pos])


def special_inputs():
    """Zeros, infinities, NaNs and f32 extremes."""
    f32 = np.finfo(np.float32)
    pos = np.array([0.0, np.inf, f32.smallest_subnormal, f32.tiny, f32.max], dtype=np.float32)
    return np.concatenate([pos, -pos, f32_from_bits(F32_NAN_BITS)])


def random_inputs(name, rng):
    """Random values spread over the format's range + random bit patterns."""
    n_range, n_bits = N_RANDOM_OVERRIDE.get(name, (N_RANDOM_RANGE, N_RANDOM_BITS))
    info = Info(name)
    lo = max(info.emin - info.nmant - 2, -150)  # well into underflow
    hi = min(info.emax + 2, 127)  # beyond overflow, clamped to f32
    exps = rng.integers(lo, hi + 1, n_range)
    frac = rng.integers(0, 1 << 23, n_range).astype(np.float64) / (1 << 23)
    signs = rng.choice([-1.0, 1.0], n_range)
    with np.errstate(all="ignore"):
        spread = (signs * np.ldexp(1.0 + frac, exps)).astype(np.float32)
    bits = rng.integers(0, 1 << 32, n_bits, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([spread, f32_from_bits(bits)])


def f32_inputs(name, rng):
    parts = [special_inputs(), midpoint_inputs(name), overflow_inputs(name),
             underflow_inputs(name), random_inputs(name, rng)]
    return f32_from_bits(unique_in_order(np.concatenate([f32_bits(p) for p in parts])))


# ---------------------------------------------------------------------------
# Independent models used to check (and describe) ml_dtypes' behaviour
# ---------------------------------------------------------------------------

def reference_rne(x, info):
    """Round finite float64 values to the format's grid, ties to even.

    Unbounded exponent above (overflow is detected by the caller by comparing
    with info.max), gradual underflow below.  Sign is kept (also for zero).
    """
    ax = np.abs(x)
    _, ex = np.frexp(ax)  # ax = m * 2**ex, m in [0.5, 1)
    quantum = np.ldexp(1.0, np.maximum(ex - 1, info.emin) - info.nmant)
    return np.copysign(np.rint(ax / quantum) * quantum, x)  # rint = ties-to-even


def is_tie(x, info):
    ax = np.abs(x)
    _, ex = np.frexp(ax)
    quantum = np.ldexp(1.0, np.maximum(ex - 1, info.emin) - info.nmant)
    r = ax / quantum
    return (r - np.floor(r)) == 0.5


def reference_e8m0(x):
    """Observed ml_dtypes float32 -> float8_e8m0fnu rule (see README)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, 0xFF, dtype=np.int64)
    ok = np.isfinite(x) & (x > 0)
    m, ex = np.frexp(np.where(ok, x, 1.0))  # x = m * 2**ex, m in [0.5, 1)
    code = (ex - 1) + 127 + (m >= 0.75)  # exponent, +1 when fraction >= .5
    code = np.where(x <= 2.0**-127, 0, code)
    code = np.where((x > 2.0**-127) & (x < 2.0**-126), 1, code)
    code = np.where(code >= 255, 0xFF, code)
    return np.where(ok, code, out).astype(np.uint8)


def check_cast(name, x, codes, what):
    """Check codes for f32 inputs x against the models.  Returns tie stats."""
    x = np.asarray(x, dtype=np.float32)
    if name == "e8m0":
        bad = np.nonzero(reference_e8m0(x) != codes)[0]
        check(len(bad) == 0, f"{what}: e8m0 model mismatch at {f32_bits(x[bad[:5]])}")
        return 0, 0
    info = Info(name)
    x64 = x.astype(np.float64)
    fin = np.isfinite(x64)
    ref = np.where(fin, reference_rne(np.where(fin, x64, 0), info), 0)
    over = fin & (np.abs(ref) > info.max)
    ok = fin & ~over
    got = decode_codes(codes, name).astype(np.float64)
    # Compare values and sign (so -0 vs +0 is checked too).
    same = (got == ref) & (np.signbit(got) == np.signbit(ref))
    bad = np.nonzero(ok & ~same)[0]
    check(len(bad) == 0, f"{what}: not round-to-nearest-even at f32 bits "
          f"{[hex(int(b)) for b in f32_bits(x[bad[:5]])]}")
    # Every overflowing input must give the same code as casting +-FLT_MAX.
    ovf = cast_f32([np.finfo(np.float32).max, -np.finfo(np.float32).max], name)
    exp_ovf = np.where(np.signbit(x64), ovf[1], ovf[0])
    bad = np.nonzero(over & (codes != exp_ovf))[0]
    check(len(bad) == 0, f"{what}: inconsistent overflow at {f32_bits(x[bad[:5]])}")
    ties = ok & is_tie(np.where(fin, x64, 1), info)
    sub_ties = ties & (np.abs(x64) < info.tiny)
    return int(ties.sum()), int(sub_ties.sum())


def check_claims(name, x, codes):
    """Assert the README_CLAIMS table on the given inputs and a few probes."""
    claims = README_CLAIMS[name]
    f32max = np.finfo(np.float32).max
    _, _, thr = overflow_threshold(name)
    probes = {
        "overflow": [f32max, -f32max], "inf": [np.inf, -np.inf],
        "zero": [0.0, -0.0], "thr": [thr],
    }
    for key, vals in probes.items():
        got = tuple(int(c) for c in cast_f32(vals, name))
        want = claims[key] if isinstance(claims[key], tuple) else (claims[key],)
        check(got == want, f"{name}: {key} gives {got}, README says {want}")
    if claims["nan"] is not None:
        nan = np.isnan(x)
        want = np.where(np.signbit(x), claims["nan"][1], claims["nan"][0])
        check(np.all(codes[nan] == want[nan]), f"{name}: NaN inputs break README rule")


def check_wide_nan_rule(name, x, codes):
    """NaN f32 -> bf16/f16: check the observed payload rule (see README)."""
    b = f32_bits(x).astype(np.int64)
    nan = np.isnan(x)
    sign = (b >> 31) << 15
    if name == "bf16":
        exp = sign | 0x7FC0
    else:
        payload = (b & 0x7FFFFF) >> 13
        exp = sign | 0x7C00 | np.where(payload == 0, 1, payload)
    check(np.all(codes[nan] == exp[nan]), f"{name}: NaN rule does not hold")


# ---------------------------------------------------------------------------
# File writers
# ---------------------------------------------------------------------------

def write(path, data):
    path.write_bytes(data)
    print(f"  {path.name:24s} {len(data):8d} bytes")


def gen_decode(name):
    codes = all_codes(name)
    vals = decode_codes(codes, name)
    write(OUT_DIR / f"decode_{name}.bin", f32_bits(vals).astype("<u4").tobytes())
    return vals


def gen_encode_table(src, name):
    """All 65536 patterns of src, via float32, cast to the narrow format."""
    x = all_codes(src).view(fmt_type(src)).astype(np.float32)  # exact
    codes = cast_f32(x, name)
    # Record whether a direct cast (without the float32 step) would differ.
    with np.errstate(all="ignore"):
        direct = all_codes(src).view(fmt_type(src)).astype(fmt_type(name)).view(np.uint8)
    n_direct_diff = int(np.count_nonzero(direct != codes))
    ties = check_cast(name, x, codes, f"encode_{src}_{name}")
    write(OUT_DIR / f"encode_{src}_{name}.bin", codes.astype("u1").tobytes())
    return n_direct_diff, ties


def gen_encode_f32(name, rng):
    x = f32_inputs(name, rng)
    codes = cast_f32(x, name)
    ties = check_cast(name, x, codes, f"encode_f32_{name}")
    check_claims(name, x, codes)
    if name in WIDE_FORMATS:
        check_wide_nan_rule(name, x, codes)
    rec = np.dtype([("x", "<u4"), ("code", code_dtype(name))])  # packed
    out = np.empty(len(x), dtype=rec)
    out["x"], out["code"] = f32_bits(x), codes
    write(OUT_DIR / f"encode_f32_{name}.bin", out.tobytes())
    return len(x), rec.itemsize, ties


# ---------------------------------------------------------------------------
# Measured behaviour tables for the README
# ---------------------------------------------------------------------------

def hexcode(c, name):
    return f"0x{int(c):04x}" if fmt_bits(name) == 16 else f"0x{int(c):02x}"


def describe_code(c, name):
    v = float(decode_codes([c], name)[0])
    return f"{hexcode(c, name)} ({v:g})"


def behaviour_table(names):
    """Markdown table: cast results of the interesting f32 inputs."""
    cols = ["cast(max)", "thr-", "thr", "thr+", "+inf", "-inf", "+NaN", "-NaN", "-0.0", "-max-1ulp"]
    lines = ["| fmt | max value | thr = max+ulp/2 | " + " | ".join(cols) + " |",
             "|" + "---|" * (len(cols) + 3)]
    for name in names:
        mx, ulp, thr = overflow_threshold(name)
        inputs = np.array([mx, next_down(thr), thr, next_up(thr), np.inf, -np.inf,
                           f32_from_bits(0x7FC00000), f32_from_bits(0xFFC00000), -0.0,
                           -(mx + ulp)], dtype=np.float32)
        codes = cast_f32(inputs, name)
        lines.append(f"| {name} | {mx:g} | {float(thr):g} | "
                     + " | ".join(describe_code(c, name) for c in codes) + " |")
    return "\n".join(lines)


def nan_codes(name, vals):
    nan = np.nonzero(np.isnan(vals))[0]
    if len(nan) == 0:
        return "none"
    return ", ".join(f"0x{int(c):02x}→0x{int(b):08x}" for c, b in zip(nan, f32_bits(vals[nan])))


def e8m0_table():
    rows = [0.0, -0.0, -1.0, 2.0**-149, 2.0**-128, 2.0**-127, f32_from_bits(0x00400001),
            1.25 * 2.0**-127, 2.0**-126, float(next_down(np.float32(1.5))), 1.5, 3.0,
            2.0**127, float(next_down(np.float32(1.5 * 2.0**127))), 1.5 * 2.0**127,
            np.inf, np.nan]
    x = np.array(rows, dtype=np.float32)
    codes = cast_f32(x, "e8m0")
    lines = ["| f32 input | bits | code | decodes to |", "|---|---|---|---|"]
    for xi, c in zip(x, codes):
        v = float(decode_codes([c], "e8m0")[0])
        lines.append(f"| {float(xi):.9g} | 0x{int(f32_bits(xi)):08x} | 0x{int(c):02x} | {v:.9g} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def main():
    rng = np.random.default_rng(SEED)
    print(f"ml_dtypes {ml_dtypes.__version__}, numpy {np.__version__}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    missing = [n for n in NARROW_FORMATS if fmt_type(n) is None]
    narrow = [n for n in NARROW_FORMATS if n not in missing]
    for n in missing:
        print(f"  WARNING: ml_dtypes has no {NARROW_FORMATS[n][0]}; skipping {n}")

    print("decode tables:")
    decoded = {n: gen_decode(n) for n in narrow}

    print("encode tables (bf16/f16 -> narrow):")
    direct_diffs, table_ties = {}, {}
    for src in WIDE_FORMATS:
        for n in narrow:
            direct_diffs[(src, n)], table_ties[(src, n)] = gen_encode_table(src, n)

    print("encode_f32 records:")
    f32_stats = {}
    for n in F32_TARGETS:
        if n in missing:
            continue
        f32_stats[n] = gen_encode_f32(n, rng)

    total = sum(p.stat().st_size for p in OUT_DIR.glob("*.bin"))
    print(f"total {total} bytes in .bin files")

    write_readme(narrow, missing, decoded, direct_diffs, table_ties, f32_stats)


# ---------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------

def file_table():
    lines = ["| file | bytes | layout |", "|---|---|---|"]
    for p in sorted(OUT_DIR.glob("*.bin")):
        stem = p.stem
        if stem.startswith("decode_"):
            n = stem[len("decode_"):]
            lay = f"{1 << fmt_bits(n)} × u32 LE (f32 bits), index = code"
        elif stem.startswith("encode_f32_"):
            n = stem[len("encode_f32_"):]
            rs = 4 + code_dtype(n).itemsize
            ct = "u16 LE" if rs == 6 else "u8"
            lay = f"{p.stat().st_size // rs} records × {rs} B: (u32 LE f32 bits, {ct} code)"
        else:
            lay = "65536 × u8 code, index = 16-bit source pattern"
        lines.append(f"| `{p.name}` | {p.stat().st_size} | {lay} |")
    return "\n".join(lines)


def write_readme(narrow, missing, decoded, direct_diffs, table_ties, f32_stats):
    nan_list = "\n".join(f"- **{n}** ({NARROW_FORMATS[n][0]}): {nan_codes(n, decoded[n])}"
                         for n in narrow)
    tie_lines = []
    for n, (count, _, (ties, sub)) in f32_stats.items():
        if n != "e8m0":
            tb = sum(table_ties[(s, n)][0] for s in WIDE_FORMATS) \
                if n in NARROW_FORMATS else "n/a"
            tie_lines.append(f"| {n} | {ties} | {sub} | {tb} |")
    direct = ", ".join(f"{s}→{n}: {d}" for (s, n), d in direct_diffs.items() if d) or \
        "none (all 0 differences)"
    missing_txt = ("Missing from this ml_dtypes and skipped: "
                   + ", ".join(NARROW_FORMATS[n][0] for n in missing)) if missing else \
        "All requested formats were present in the installed ml_dtypes."

    text = README_TEMPLATE.format(
        mlv=ml_dtypes.__version__, npv=np.__version__, seed=SEED,
        missing=missing_txt, files=file_table(), nan_list=nan_list,
        behaviour=behaviour_table([n for n in F32_TARGETS if n not in missing and n != "e8m0"]),
        e8m0=e8m0_table(), ties="\n".join(tie_lines), direct=direct,
        nrand=N_RANDOM_RANGE, nbits=N_RANDOM_BITS,
        nrand8=N_RANDOM_OVERRIDE["e8m0"][0], nbits8=N_RANDOM_OVERRIDE["e8m0"][1], k=PAIRS_PER_BINADE_EDGE,
    )
    (OUT_DIR / "README.md").write_text(text)
    print("  README.md written")


README_TEMPLATE = """\
# Low-precision format test vectors

Generated by `python3 scripts/gen_format_vectors.py` (from the repository root)
with **ml_dtypes {mlv}** and **numpy {npv}** (RNG seed {seed}).  Do not edit by
hand; rerun the script.  The script also checks every behaviour described in
"Observed ml_dtypes behaviour" below against small independent models and
refuses to write this file if one of them no longer holds.

{missing}

Format names: `e4m3` = `float8_e4m3fn`, `e5m2` = `float8_e5m2`,
`e2m3` = `float6_e2m3fn`, `e3m2` = `float6_e3m2fn`, `e2m1` = `float4_e2m1fn`,
`e8m0` = `float8_e8m0fnu`, `bf16` = `ml_dtypes.bfloat16`, `f16` = `numpy.float16`.

## Files

All multi-byte integers are **little-endian**.  There are no headers.

{files}

### Codes

A *code* is the bit pattern ml_dtypes stores (`array.view(np.uint8)` /
`view(np.uint16)`).  The 6-bit and 4-bit formats occupy the **low** 6 / 4 bits of
the byte, sign bit = bit 5 / bit 3; the upper bits are always 0 in these files.

### `decode_<fmt>.bin`

For `code = 0 .. 2^bits - 1` in order: the f32 bit pattern of
`np.array([code], np.uint8).view(fmt).astype(np.float32)`.  4·2^bits bytes
(1024 for 8-bit formats, 256 for 6-bit, 64 for 4-bit).

### `encode_<src>_<fmt>.bin` (src = bf16, f16)

For every 16-bit pattern `p = 0 .. 65535` of `src`, one byte:
`np.array([p], np.uint16).view(src).astype(np.float32).astype(fmt).view(np.uint8)`
(plain cast, no saturation flag; the f32 step is exact and keeps NaN payloads).
65536 bytes.  Casting `src` directly to `fmt` without the f32 step gives
different codes for: {direct}.

### `encode_f32_<fmt>.bin`

Packed records `(u32 f32 input bits, code)`; code is `u8` (5-byte records) for
the narrow formats and `u16` (6-byte records) for bf16/f16.  Code =
`np.array([x], np.float32).astype(fmt).view(uint)`.  Record order has no
meaning; duplicates (by bit pattern) were removed.  Inputs, both signs each:

- specials: ±0, ±inf, NaNs `0x7fc00000 0xffc00000 0x7f800001 0xff800001
  0x7fa00000 0x7fffffff 0xffffffff`, ±smallest f32 subnormal, ±f32 min normal,
  ±f32 max;
- for each pair of adjacent finite values of the format (non-negative side,
  mirrored to negative; the pair (0, smallest subnormal) mirrors to the pair
  across zero): the lower value, the exact midpoint and its two f32 neighbours,
  plus the max value.  All pairs for the narrow formats; for bf16/f16 every
  pair involving a subnormal or zero plus the first and last {k} pairs of every
  binade (this includes each binade-crossing pair);
- overflow: max, `thr = max + ulp/2` (ulp = spacing of the top binade), thr's f32
  neighbours, `max + ulp`, `2·max`, f32 max;
- underflow: `s/2` (s = smallest positive value) and the three f32 values below
  it, `s/4`, `s/8`, `0.75·s`;
- {nrand} random values (e8m0: {nrand8}) `sign · 2^e · (1 + f)`, integer `e` uniform in
  `[emin − mantissa_bits − 2, emax + 2]` (clamped to f32), `f` a random 23-bit
  fraction (rounded to f32 where below the f32 normal range);
- {nbits} (e8m0: {nbits8}) uniformly random 32-bit patterns (some are NaN, inf, subnormal).

`encode_f32_e8m0.bin` is an extra beyond the original brief (same record
layout), because e8m0 rounding is unusual (see below).

## Observed ml_dtypes behaviour

All statements below were measured with the versions above.

### Decoding: NaN codes

Listed as `code→f32 bits of the decoded value`.  The 6- and 4-bit formats have
no NaN and no infinity: every code decodes to a finite number (code
`0b1_00_000` etc. is −0.0).  e5m2 decodes `0x7c`/`0xfc` to ±inf.

{nan_list}

e8m0 decodes code `c` (0..254) to exactly `2^(c−127)` (code 0 = 2^−127, an f32
subnormal `0x00400000`; code 127 = 1.0; code 254 = 2^127), no zero, no sign.

### Casting f32 to a format (plain `.astype`)

Cast results (`code (decoded value)`) for: the largest finite value `max`; the
overflow threshold `thr = max + ulp/2` and its f32 neighbours `thr−`/`thr+`;
±inf; NaN `0x7fc00000`/`0xffc00000`; −0.0; and `−(max + ulp)`.

{behaviour}

Summary (the same rules hold for every other input in the files; the script
checks this):

- **Rounding is round-to-nearest, ties-to-even in every format except e8m0,
  including in the subnormal range and at the underflow boundary** (an exact
  tie between 0 and the smallest subnormal goes to ±0, anything above it to the
  smallest subnormal).  The tie-breaking uses the *unbounded* exponent grid, so
  whether `thr` itself overflows depends on the parity of max's mantissa:
  - e4m3: max = 448 = 0x7e has an *even* mantissa (110), so `thr` = 464 rounds
    **down to 448**; only values `> 464` overflow.
  - e5m2, bf16, f16: max has an *odd* (all-ones) mantissa, so `thr` itself
    rounds up, i.e. **`|x| ≥ thr` overflows** (to ±inf).
  - e2m3, e3m2, e2m1: same parity as e5m2 (`|x| ≥ thr` overflows), but since
    overflow saturates to ±max the threshold is invisible: every `|x| ≥ max`
    gives ±max.
- **Overflow result** (finite value whose rounded magnitude exceeds max, and
  ±inf input):
  - e4m3 (no inf): **NaN** `0x7f` / `0xff` (sign of input kept).  ±inf → the
    same NaN codes.
  - e5m2: **±inf** `0x7c` / `0xfc`.  ±inf → ±inf.
  - e2m3, e3m2, e2m1 (no inf, no NaN): **saturate to ±max** (`0x1f`/`0x3f`,
    `0x1f`/`0x3f`, `0x7`/`0xf`).  ±inf → ±max as well.
  - bf16 `0x7f80`/`0xff80`, f16 `0x7c00`/`0xfc00`: ±inf.
- **NaN input**:
  - e4m3: `0x7f` for positive-sign NaN, `0xff` for negative-sign NaN (payload
    ignored).
  - e5m2: `0x7e` / `0xfe` (payload ignored; sign kept).
  - e2m3, e3m2, e2m1: NaN becomes a **zero with the opposite sign**: a NaN with
    sign bit 0 → **−0** (`0x20`, `0x20`, `0x8`), a NaN with sign bit 1 → **+0**
    (`0x00`).  (ml_dtypes defines the "quiet NaN" of these types as the −0 code
    and then negates it for negative inputs.)
  - bf16: `0x7fc0` / `0xffc0` (sign kept, payload dropped).
  - f16 (numpy's cast, measured on this machine): `sign | 0x7c00 | p` where
    `p = (f32 fraction >> 13)`, or `p = 1` if that is 0 — i.e. the payload is
    truncated, the quiet bit is *not* forced (a signalling NaN stays
    signalling).  Rust tests may prefer to only require "is NaN" here.
- **−0.0** → the negative-zero code (`0x80`, `0x80`, `0x20`, `0x20`, `0x8`,
  `0x8000`, `0x8000`); results that round to zero keep the input's sign.

Exact ties checked against the ties-to-even model (count of tie inputs in the
files; "subnormal" = input below the smallest normal):

| fmt | ties in encode_f32 | of which subnormal | ties in encode_bf16/f16 tables |
|---|---|---|---|
{ties}

### e8m0 (`float8_e8m0fnu`)

Represents only the 255 values `2^k`, k = −127..127 (codes 0..254); code
`0xff` is the only NaN.  No zero, no sign, no infinity.

Cast from f32 (also what the bf16/f16 tables contain, via f32):

- NaN, ±inf, ±0, and **every negative value** → `0xff` (NaN).
- `0 < x ≤ 2^−127` → code 0 (2^−127).  Values below the smallest value do
  *not* become NaN or zero: they clamp to 2^−127.
- `2^−127 < x < 2^−126` → code 1 (2^−126): **every** value strictly above
  2^−127 in this interval rounds *up* (not to nearest), an artefact of
  ml_dtypes treating code 0 like a subnormal.
- `x ≥ 2^−126`: write `x = 2^e · (1 + f)`, `0 ≤ f < 1`.  Result is `2^e` if
  `f < 0.5`, else `2^(e+1)`.  So rounding is to nearest in **linear** space
  (threshold 1.5·2^e, not √2·2^e) with **ties rounded up** (away from zero),
  not to even: 1.5 → 2.0, 3.0 → 4.0.
- Overflow: `x ≥ 1.5 · 2^127` → `0xff` (NaN); `x < 1.5·2^127` → code 254.

{e8m0}
"""


if __name__ == "__main__":
    # NaN/overflow casts are the point of this script: silence numpy's warnings.
    with np.errstate(all="ignore"):
        main()
