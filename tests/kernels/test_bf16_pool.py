"""MaxPool of bf16 NHWC tensors (kernels/pool_bf16: a region carrying bf16 between
convolutions through a pool), run directly (aiov._core._testing.run_op with bf16 bits): the
exact maximum of each window's in-bounds values, bits and all, in floor and ceil rounding, with
padding, strides and dilation, a NaN winning over numbers as in the f32 kernel."""

import numpy as np
import pytest


def bf16_bits(x):
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF).astype(np.uint16)


def widened(bits):
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def reference(x, k, s, pads, d, out_hw):
    """NHWC max over each window's in-bounds taps (NaN wins), as f32 values."""
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
    (40, (2, 3), (1, 2), (0, 1, 1, 0), (2, 1), (9, 10), "ceil"),  # dilated, asymmetric
    (5, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (7, 6), "floor"),  # channels not a vector's
]


@pytest.mark.parametrize("c, k, s, pads, d, size, rounding", CASES)
@pytest.mark.parametrize("threads", [1, 0])
def test_bf16_max_pool_is_the_exact_window_maximum(c, k, s, pads, d, size, rounding, threads):
    import aiov

    rng = np.random.default_rng(3)
    x = bf16_bits(rng.standard_normal((2,) + size + (c,)).astype(np.float32))
    x.reshape(-1)[7] = 0xFFC0  # a NaN (x86's default one, negative): wins its windows
    attrs = {
        "kernel": list(k),
        "strides": list(s),
        "pads_begin": list(pads[:2]),
        "pads_end": list(pads[2:]),
        "dilations": list(d),
        "rounding_type": rounding,
        "layout": "nhwc",
    }
    (got,) = aiov._core._testing.run_op("MaxPool", [x], attrs, runtime_inputs=[0], threads=threads, bf16_inputs=[0])
    got = np.asarray(got)
    assert got.dtype == np.uint16  # bf16 out, as it came in
    span = [(k[i] - 1) * d[i] + 1 for i in range(2)]
    extent = [size[i] + pads[i] + pads[i + 2] - span[i] for i in range(2)]
    out_hw = tuple((e + (s[i] - 1 if rounding == "ceil" else 0)) // s[i] + 1 for i, e in enumerate(extent))
    assert got.shape == (2,) + out_hw + (c,)
    expected = reference(widened(x), k, s, pads[:2], d, out_hw)
    np.testing.assert_array_equal(np.isnan(widened(got)), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_array_equal(widened(got)[finite], expected[finite])  # exact: one of the inputs
