"""aiov.Quantize with to_nhwc (a QDQ model's NCHW image quantized straight into the NHWC bytes
its first convolution reads, kernels/quantized_bytes' quantize_planes_to_pixels) on each path the
dispatcher can pick: AVX-512 (up to 4 channels interleaved in registers, more through the
planes) and the portable loops. Each runs in a subprocess capped with AIOV_INT8_ISA (skipped
where the CPU lacks it), reports which kernels ran, and must give exactly numpy's bytes of the
quantization (x / scale in f32, rounded half to even, plus the zero point, saturated; NaN the
lowest byte) transposed, which are also the plain aiov.Quantize's bytes transposed: values on
half-integers of x / scale and next to them, NaN, +-inf, saturating values, u8 and s8, channel
counts 1-5 and 8, widths on and off the 16-pixel steps, one and two threads."""

import json

import pytest
from test_quantized_bytes import cpu_paths

SCRIPT = r"""
import json, numpy as np, aiov as ov
T = ov._core._testing
rng = np.random.default_rng(3)

def reference(x, scale, zero):
    signed = zero.dtype == np.int8
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.rint(x / scale) + np.float32(zero)
    lo, hi = (-128, 127) if signed else (0, 255)
    q = np.where(np.isnan(q), lo, np.clip(q, lo, hi))  # (-inf, +inf saturate)
    return q.astype(zero.dtype).transpose(0, 2, 3, 1)

def values(shape, scale):
    x = (rng.standard_normal(shape) * 60 * scale).astype(np.float32)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, flat.size // 3, replace=False)
    # Exact halves of x / scale (round half to even), and their float neighbours.
    halves = (rng.integers(-300, 300, picks.size) + 0.5).astype(np.float32) * scale
    flat[picks] = np.nextafter(halves, np.float32(rng.choice([-np.inf, 0, np.inf])), dtype=np.float32)
    picks = rng.choice(flat.size, max(1, flat.size // 50), replace=False)
    flat[picks] = rng.choice(np.float32([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e10, -1e10]), picks.size)
    return x

checked = 0
# A power-of-two scale (halves exact), ordinary ones, and one whose reciprocal is not normal
# (the kernels then always divide).
for scale in np.float32([0.0625, 0.0173, 0.1, 3e-39]):
    for zero in (np.uint8(0), np.uint8(131), np.uint8(255), np.int8(-128), np.int8(5), np.int8(127)):
        for C in (1, 2, 3, 4, 5, 8):
            for H, W in ((2, 16), (3, 13), (2, 64), (1, 67), (5, 33)):
                x = values((2, C, H, W), scale)
                want = reference(x, scale, zero)
                for threads in (1, 2):
                    got = T.run_op("aiov.Quantize", [x, scale, zero], {"to_nhwc": True}, threads=threads)[0]
                    assert got.dtype == zero.dtype and got.shape == want.shape, (got.dtype, got.shape)
                    assert np.array_equal(got, want), (scale, zero, C, H, W, threads)
                    checked += 1
                plain = T.run_op("aiov.Quantize", [x, scale, zero])[0]
                assert np.array_equal(plain.transpose(0, 2, 3, 1), want), (scale, zero, C, H, W)
# Images the pool cuts into pieces (several per image, and more images than pieces).
for shape in ((3, 3, 70, 129), (5, 1, 200, 200), (2, 6, 50, 61)):
    x = values(shape, np.float32(0.02))
    for zero in (np.uint8(128), np.int8(-3)):
        want = reference(x, np.float32(0.02), zero)
        for threads in (1, 2):
            got = T.run_op("aiov.Quantize", [x, np.float32(0.02), zero], {"to_nhwc": True}, threads=threads)[0]
            assert np.array_equal(got, want), (shape, zero, threads)
            checked += 1
print(json.dumps({"isa": ov._core.quantized_bytes_isa(), "checked": checked}))
"""


@pytest.mark.parametrize("path", ["avx512_vbmi", "avx512", "scalar"])
def test_quantize_to_nhwc_path_gives_the_transposed_bytes(path, run_capped):
    if path not in cpu_paths():
        pytest.skip(f"this CPU does not run the {path} kernels")
    cap = "scalar" if path == "scalar" else None
    result = json.loads(run_capped(SCRIPT, 300, AIOV_INT8_ISA=cap, AIOV_GEMM_ISA=None))
    assert result == {"isa": path, "checked": 4 * 6 * 6 * 5 * 2 + 3 * 2 * 2}  # the forced path ran them all


def test_quantize_to_nhwc_needs_rank_4():
    import numpy as np

    import aiov as ov

    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(Exception, match="to_nhwc needs x of rank 4"):
        ov._core._testing.run_op("aiov.Quantize", [x, np.float32(0.1), np.uint8(0)], {"to_nhwc": True})
