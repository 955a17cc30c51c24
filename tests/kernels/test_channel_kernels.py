"""Per-channel layers run one at a time through the registry against numpy: LRN (a window
sum along the channels, over blocks of pixels) and BatchNormInference (a per-channel
scale and shift), at sizes that leave partial vectors and blocks, on the calling thread and
split over the pool."""

import numpy as np
import pytest

from aiov._core import _testing

RNG = np.random.default_rng(41)


def lrn_reference(x, size, alpha, beta, bias):
    x64 = x.astype(np.float64)
    sq = x64 * x64
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    total = np.zeros_like(sq)
    channels = x.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - before), min(channels - 1, c + after)
        total[:, c] = sq[:, lo : hi + 1].sum(axis=1)
    return (x64 / (bias + alpha / size * total) ** beta).astype(np.float32)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("beta", [0.75, 0.5, 1.0, 0.6])
@pytest.mark.parametrize(
    "shape",
    [(2, 7, 5, 3), (1, 19, 23, 29), (3, 4, 1, 1), (1, 64, 17, 17), (2, 3, 40), (1, 6, 2, 3, 5)],
    ids=str,
)
@pytest.mark.parametrize("threads", [1, 0])
def test_lrn_matches_numpy(size, beta, shape, threads):
    x = (RNG.standard_normal(shape) * 3).astype(np.float32)
    attrs = {"size": size, "alpha": 0.02, "beta": beta, "bias": 1.5}
    out = _testing.run_op("LRN", [x], attrs, threads=threads)[0]
    np.testing.assert_allclose(out, lrn_reference(x, size, 0.02, beta, 1.5), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("size", [1, 3, 4, 5])
@pytest.mark.parametrize("shape", [(2, 7, 5, 3), (1, 19, 23, 29), (1, 64, 3, 3)], ids=str)
@pytest.mark.parametrize("threads", [1, 0])
def test_lrn_on_channels_last_data_matches_numpy(size, shape, threads):
    # The layout the optimizer gives an LRN inside a convolution region.
    x = (RNG.standard_normal(shape) * 3).astype(np.float32)
    attrs = {"size": size, "alpha": 0.02, "beta": 0.75, "bias": 1.5, "layout": "nhwc"}
    out = _testing.run_op("LRN", [np.ascontiguousarray(x.transpose(0, 2, 3, 1))], attrs, threads=threads)[0]
    want = lrn_reference(x, size, 0.02, 0.75, 1.5).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, want, rtol=2e-6, atol=1e-6)


def test_lrn_small_windows_after_huge_ones_stay_exact():
    # Huge values early in the channels, tiny ones late: a running sum would carry the
    # rounding of the huge squares into the small windows.
    x = RNG.standard_normal((1, 300, 4, 9)).astype(np.float32) * 1e-3
    x[:, :20] *= 1e6
    attrs = {"size": 5, "alpha": 1.0, "beta": 0.75, "bias": 1e-6}
    out = _testing.run_op("LRN", [x], attrs, threads=0)[0]
    np.testing.assert_allclose(out, lrn_reference(x, 5, 1.0, 0.75, 1e-6), rtol=1e-5)


def batch_norm_reference(x, gamma, beta, mean, var, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    return ((x - mean.reshape(shape)) * inv.reshape(shape) + beta.reshape(shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 33, 61, 3), (3, 8), (2, 17, 130)], ids=str)
@pytest.mark.parametrize("threads", [1, 0])
def test_batch_norm_matches_numpy(shape, threads):
    channels = shape[1]
    x = RNG.standard_normal(shape).astype(np.float32)
    gamma, beta, mean = (RNG.standard_normal(channels).astype(np.float32) for _ in range(3))
    var = RNG.uniform(0.1, 2.0, channels).astype(np.float32)
    out = _testing.run_op("BatchNormInference", [x, gamma, beta, mean, var], {"epsilon": 1e-3}, threads=threads)[0]
    np.testing.assert_allclose(out, batch_norm_reference(x, gamma, beta, mean, var, 1e-3), rtol=1e-5, atol=1e-5)
