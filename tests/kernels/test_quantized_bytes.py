"""The u8 kernels between a QDQ model's integer products (kernels/quantized_bytes): the residual
sum requantized (aiov.QuantizedAdd), the 256-byte table lookup (aiov.QuantizedLookup) and NHWC
max pooling of bytes, on each path the dispatcher can pick: AVX-512 (with AVX512_VBMI's byte
permutes for the lookup where the CPU has them) and the portable loops. Each runs in a
subprocess capped with AIOV_INT8_ISA (skipped where the CPU lacks it), reports which kernels
ran, and must give exactly the bytes of numpy's f32 steps, the table, and a numpy max pool over
the image padded with zeros (u8's lowest, which never wins)."""

import json

import pytest

SCRIPT = r"""
import json, numpy as np, aiov as ov
T = ov._core._testing
rng = np.random.default_rng(0)
sums = lookups = pools = 0
# Lengths around the vector widths (16 and 64 bytes) and the blocks, and one the pool splits.
for n in (1, 15, 16, 17, 63, 64, 65, 127, 128, 200, 513, 70001):
    a, b = rng.integers(0, 256, n).astype(np.uint8), rng.integers(0, 256, n).astype(np.uint8)
    # Random scales, where an FMA would round differently, and scales whose sums land on exact
    # halves of the output's (round half to even), and a zero point that saturates both ends.
    for sa, sb, sy in [rng.uniform(0.001, 0.2, 3).astype(np.float32), np.float32([0.25, 0.25, 0.5]),
                       np.float32([0.03, 0.05, 0.06])]:
        za, zb, zy = (np.uint8(z) for z in rng.integers(0, 256, 3))
        total = (a.astype(np.float32) - np.float32(za)) * sa + (b.astype(np.float32) - np.float32(zb)) * sb
        want = np.clip(np.rint(total / sy) + np.float32(zy), 0, 255).astype(np.uint8)
        for threads in (1, 2):
            got = T.run_op("aiov.QuantizedAdd", [a, sa, za, b, sb, zb, sy, zy], threads=threads)[0]
            assert got.dtype == np.uint8 and np.array_equal(got, want), (n, sa, sb, sy, threads)
            sums += 1
    table = rng.integers(0, 256, 256).astype(np.uint8)
    for threads in (1, 2):
        got = T.run_op("aiov.QuantizedLookup", [a, table], threads=threads)[0]
        assert np.array_equal(got, table[a]), (n, threads)
        lookups += 1
# Long enough for the pool to share out even on the fastest lookup.
big = rng.integers(0, 256, 1 << 21).astype(np.uint8)
assert np.array_equal(T.run_op("aiov.QuantizedLookup", [big, table], threads=2)[0], table[big])
lookups += 1
# Every byte value through every table entry (the VBMI lookup picks by the index's top bit).
every = np.arange(256, dtype=np.uint8)
table = rng.permutation(256).astype(np.uint8)
assert np.array_equal(T.run_op("aiov.QuantizedLookup", [every, table])[0], table)
lookups += 1

def max_pool_reference(x, kernel, strides, dilations, pads_begin, pads_end, ceil):
    N, H, W, C = x.shape
    out = []
    for size, k, s, d, p0, p1 in zip((H, W), kernel, strides, dilations, pads_begin, pads_end):
        span = size + p0 + p1 - (d * (k - 1) + 1)
        o = (-(-span // s) if ceil else span // s) + 1
        if ceil and (o - 1) * s >= size + p0:
            o -= 1
        out.append(o)
    (OH, OW), (kh, kw), (sh, sw), (dh, dw), (ph, pw) = out, kernel, strides, dilations, pads_begin
    big = np.zeros((N, H + ph + kh * dh + OH * sh, W + pw + kw * dw + OW * sw, C), np.uint8)
    big[:, ph:ph + H, pw:pw + W] = x
    y = np.zeros((N, OH, OW, C), np.uint8)
    for ky in range(kh):
        for kx in range(kw):
            y = np.maximum(y, big[:, ky * dh:ky * dh + OH * sh:sh, kx * dw:kx * dw + OW * sw:sw])
    return y

for C in (1, 3, 8, 16, 64, 70, 130):  # under, at and past a 64-byte vector of channels
    x = rng.integers(0, 256, (2, 9, 11, C)).astype(np.uint8)
    for kernel, strides, dilations, pads_begin, pads_end, ceil in [
            ((3, 3), (2, 2), (1, 1), (1, 1), (1, 1), False), ((3, 3), (1, 1), (1, 1), (1, 1), (1, 1), False),
            ((3, 3), (2, 2), (1, 1), (0, 0), (0, 0), True), ((2, 2), (2, 2), (1, 1), (0, 0), (0, 0), False),
            ((3, 2), (1, 2), (2, 1), (0, 1), (2, 0), False), ((5, 5), (3, 3), (1, 1), (2, 2), (2, 2), True),
            ((3, 3), (1, 1), (1, 2), (2, 3), (2, 3), False)]:
        attrs = {"kernel": list(kernel), "strides": list(strides), "dilations": list(dilations),
                 "pads_begin": list(pads_begin), "pads_end": list(pads_end),
                 "rounding_type": "ceil" if ceil else "floor", "layout": "nhwc"}
        want = max_pool_reference(x, kernel, strides, dilations, pads_begin, pads_end, ceil)
        for threads in (1, 2):
            got = T.run_op("MaxPool", [x], attrs, threads=threads)[0]
            assert got.dtype == np.uint8 and np.array_equal(got, want), (C, kernel, strides, dilations, threads)
            pools += 1
print(json.dumps({"isa": ov._core.quantized_bytes_isa(), "sums": sums, "lookups": lookups, "pools": pools}))
"""


def cpu_paths():
    """The kernel sets this CPU can run, portable first."""
    import aiov

    if aiov._core.cpu_int8_isa() == "scalar":
        return ["scalar"]
    return ["scalar", "avx512_vbmi" if _has_vbmi() else "avx512"]


def _has_vbmi():
    try:
        with open("/proc/cpuinfo") as fh:
            return " avx512vbmi " in fh.read().replace("\n", " ")
    except OSError:
        return False


@pytest.mark.parametrize("path", ["avx512_vbmi", "avx512", "scalar"])
def test_quantized_bytes_path_gives_the_separate_ops_bytes(path, run_capped):
    if path not in cpu_paths():
        pytest.skip(f"this CPU does not run the {path} kernels")
    # AIOV_INT8_ISA=scalar forces the portable loops; uncapped, the CPU's best set runs.
    cap = "scalar" if path == "scalar" else None
    result = json.loads(run_capped(SCRIPT, 300, AIOV_INT8_ISA=cap, AIOV_GEMM_ISA=None))
    assert result == {"isa": path, "sums": 72, "lookups": 26, "pools": 98}  # the forced path ran them all
