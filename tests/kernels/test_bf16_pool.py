"""MaxPool of bf16 NHWC tensors (kernels/pool_bf16: a region carrying bf16 between
convolutions through a pool), run directly (aiov._core._testing.run_op with bf16 bits) on each
kernel set (the AVX-512 one, and the portable loop's clones under AIOV_GEMM_ISA=avx2 and
scalar): the exact maximum of each window's in-bounds values, bits and all, in floor and ceil
rounding, with padding, strides and dilation, over channel counts of a ymm, whole and masked
zmm blocks, a NaN winning over numbers as in the f32 kernel."""

import json

import pytest

SCRIPT = r"""
import json, numpy as np, aiov

def bf16_bits(x):
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF).astype(np.uint16)

def widened(bits):
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)

def reference(x, k, s, pads, d, out_hw):
    # NHWC max over each window's in-bounds taps (NaN wins), as f32 values.
    n, h, w, c = x.shape
    y = np.full((n,) + out_hw + (c,), -np.inf, np.float32)
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            for ky in range(k[0]):
                for kx in range(k[1]):
                    iy, ix = oy * s[0] - pads[0] + ky * d[0], ox * s[1] - pads[1] + kx * d[1]
                    if 0 <= iy < h and 0 <= ix < w:
                        v, acc = x[:, iy, ix, :], y[:, oy, ox, :]
                        y[:, oy, ox, :] = np.where((v > acc) | (np.isnan(v) & ~np.isnan(acc)), v, acc)
    return y

# channels, kernel, strides, pads (top, left, bottom, right), dilations, size, rounding
CASES = [
    (64, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (13, 12), "floor"),  # ResNet's, after its stem
    (16, (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), (14, 14), "ceil"),  # SqueezeNet's: the last window partly outside
    (40, (2, 3), (1, 2), (0, 1, 1, 0), (2, 1), (9, 10), "ceil"),  # dilated, asymmetric, a masked block
    (5, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (7, 6), "floor"),  # channels not a vector's
]
rng = np.random.default_rng(3)
results = []
for c, k, s, pads, d, size, rounding in CASES:
    x = bf16_bits(rng.standard_normal((2,) + size + (c,)).astype(np.float32))
    x.reshape(-1)[7] = 0xFFC0  # a NaN (x86's default one, negative): wins its windows
    attrs = {"kernel": list(k), "strides": list(s), "pads_begin": list(pads[:2]), "pads_end": list(pads[2:]),
             "dilations": list(d), "rounding_type": rounding, "layout": "nhwc"}
    span = [(k[i] - 1) * d[i] + 1 for i in range(2)]
    extent = [size[i] + pads[i] + pads[i + 2] - span[i] for i in range(2)]
    out_hw = tuple((e + (s[i] - 1 if rounding == "ceil" else 0)) // s[i] + 1 for i, e in enumerate(extent))
    expected = reference(widened(x), k, s, pads[:2], d, out_hw)
    for threads in (1, 0):
        (got,) = aiov._core._testing.run_op("MaxPool", [x], attrs, runtime_inputs=[0], threads=threads,
                                            bf16_inputs=[0])
        got = np.asarray(got)
        same_nan = bool(np.array_equal(np.isnan(widened(got)), np.isnan(expected)))
        finite = ~np.isnan(expected)
        exact = bool(np.array_equal(widened(got)[finite], expected[finite]))  # one of the inputs
        results.append([str(got.dtype), list(got.shape) == [2, *out_hw, c], same_nan, exact])
print(json.dumps({"isa": aiov._core.gemm_isa(), "results": results}))
"""

ISAS = ["scalar", "avx2", "avx512"]  # each includes the ones before it


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_bf16_max_pool_is_the_exact_window_maximum(isa, run_capped):
    best = run_capped("import aiov; print(aiov._core.gemm_isa())", 60, AIOV_GEMM_ISA=None)
    if ISAS.index(isa) > ISAS.index(best):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 180, AIOV_GEMM_ISA=isa))
    assert result["isa"] == isa  # the forced set is the one that ran
    for dtype, shape, same_nan, exact in result["results"]:
        assert dtype == "uint16"  # bf16 out, as it came in
        assert shape and same_nan and exact
