"""The f32 GEMM run directly (aiov._core._testing.gemm and gemm_packed) against float64
numpy: odd M, N and K around the micro-tile sizes and the K slices, transposed operands,
strided rows, alpha and beta, B packed as weights are (panels or rows, by rows_hint) with its
epilogue, on the calling thread and on the pool."""

import numpy as np
import pytest

from aiov import InputError
from aiov._core import _testing

RNG = np.random.default_rng(51)

# Around the tile sizes of every ISA (AVX-512 16/32/64 columns x up to 14 rows, AVX2 8/16,
# portable), the dot-product and streaming paths for few rows, and K past one slice.
SHAPES = [
    (1, 1, 1),
    (1, 7, 3),
    (3, 1, 5),
    (2, 5, 1),
    (5, 17, 9),
    (7, 33, 31),
    (13, 15, 64),
    (17, 65, 129),
    (31, 8, 300),
    (64, 48, 17),
    (100, 3, 77),
    (129, 129, 257),
    (6, 200, 513),
    (300, 40, 1000),
]


def mat(rows, cols):
    return RNG.standard_normal((rows, cols)).astype(np.float32)


def close(got, expected, k):
    # Float32 sums of k products: error grows with sqrt(k) on random data.
    tol = 2e-6 * np.sqrt(k) * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)


@pytest.mark.parametrize("m, n, k", SHAPES, ids=str)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_matches_numpy(m, n, k, trans_a, trans_b):
    a, b = mat(m, k), mat(k, n)
    given_a = np.ascontiguousarray(a.T) if trans_a else a
    given_b = np.ascontiguousarray(b.T) if trans_b else b
    out = _testing.gemm(given_a, given_b, trans_a, trans_b)
    assert out.shape == (m, n) and out.dtype == np.float32
    close(out, a.astype(np.float64) @ b, k)


@pytest.mark.parametrize("m, n, k", [(5, 17, 9), (64, 48, 17), (129, 129, 257)], ids=str)
def test_gemm_alpha_beta_and_strided_rows(m, n, k):
    # Slices of wider arrays: rows lda / ldb / ldc floats apart, not the logical width.
    a = mat(m, k + 7)[:, :k]
    b = mat(k, n + 3)[:, :n]
    c = mat(m, n + 5)[:, :n]
    out = _testing.gemm(a, b, alpha=0.5, beta=-2.0, c=c)
    close(out, 0.5 * (a.astype(np.float64) @ b) - 2.0 * c, k)
    close(_testing.gemm(a, b, alpha=0.0, beta=1.0, c=c), c, 1)  # alpha 0: A and B are not read


@pytest.mark.parametrize("m, n, k", SHAPES, ids=str)
@pytest.mark.parametrize("rows_hint", [-1, 1, 4096])
def test_packed_gemm_matches_numpy(m, n, k, rows_hint):
    # rows_hint: the M the weights are packed for; few columns stay rows for few rows of A,
    # tall A wants panels, wide tiles for tall A against 64 or 128 columns.
    a, b = mat(m, k), mat(k, n)
    close(_testing.gemm_packed(a, b, rows_hint=rows_hint), a.astype(np.float64) @ b, k)
    close(
        _testing.gemm_packed(a, np.ascontiguousarray(b.T), trans_b=True, rows_hint=rows_hint),
        a.astype(np.float64) @ b,
        k,
    )


@pytest.mark.parametrize("m, n, k", [(1, 7, 3), (7, 33, 31), (31, 8, 300), (129, 129, 257), (300, 64, 1000)], ids=str)
@pytest.mark.parametrize("act", ["none", "relu", "clamp", "leaky_relu", "sigmoid", "tanh"])
def test_packed_gemm_epilogue_bias_residual_activation(m, n, k, act):
    a, b = mat(m, k), mat(k, n)
    bias = RNG.standard_normal(n).astype(np.float32)
    residual = mat(m, n)
    alpha, beta = {"clamp": (-0.5, 0.7), "leaky_relu": (0.1, 0.0)}.get(act, (0.0, 0.0))
    y = a.astype(np.float64) @ b + bias + residual
    expected = {
        "none": y,
        "relu": np.maximum(y, 0),
        "clamp": np.clip(y, alpha, beta),
        "leaky_relu": np.where(y < 0, alpha * y, y),
        "sigmoid": 1 / (1 + np.exp(-y)),
        "tanh": np.tanh(y),
    }[act]
    out = _testing.gemm_packed(a, b, bias=bias, residual=residual, activation=act, act_alpha=alpha, act_beta=beta)
    close(out, expected, k)


@pytest.mark.parametrize("m, n, k", [(64, 10, 1024), (100, 24, 512), (1024, 3, 600), (1025, 16, 513)], ids=str)
@pytest.mark.parametrize("rows_hint", [64, 1024, 1025])
@pytest.mark.parametrize("threads", [1, 2])
def test_few_columns_against_a_long_k_match_numpy(m, n, k, rows_hint, threads):
    # K >= 512 keeps up to 24 columns as dot-product rows for up to 1024 rows of A (AVX-512),
    # the bias and activation then applied in a pass of their own; more rows take panels.
    a, b = mat(m, k), mat(k, n)
    bias = RNG.standard_normal(n).astype(np.float32)
    expected = np.maximum(a.astype(np.float64) @ b + bias, 0)
    for given_b, trans_b in [(b, False), (np.ascontiguousarray(b.T), True)]:
        out = _testing.gemm_packed(
            a, given_b, trans_b=trans_b, bias=bias, activation="relu", rows_hint=rows_hint, threads=threads
        )
        close(out, expected, k)


@pytest.mark.parametrize("m, n, k", [(300, 40, 1000), (1000, 129, 65), (257, 300, 129)], ids=str)
@pytest.mark.parametrize("threads", [0, 2])
def test_gemm_split_over_threads_gives_the_same_product(m, n, k, threads):
    a, b = mat(m, k), mat(k, n)
    bias = RNG.standard_normal(n).astype(np.float32)
    expected = a.astype(np.float64) @ b
    close(_testing.gemm(a, b, threads=threads), expected, k)
    close(_testing.gemm_packed(a, b, bias=bias, activation="relu", threads=threads), np.maximum(expected + bias, 0), k)


def test_bad_gemm_calls_name_what_was_expected():
    with pytest.raises(InputError, match="inner dimensions"):
        _testing.gemm(mat(3, 4), mat(5, 6))
    with pytest.raises(InputError, match="beta != 0 needs c"):
        _testing.gemm(mat(3, 4), mat(4, 6), beta=1.0)
    with pytest.raises(InputError, match="bias"):
        _testing.gemm_packed(mat(3, 4), mat(4, 6), bias=np.ones(5, np.float32))
    with pytest.raises(InputError, match="residual"):
        _testing.gemm_packed(mat(3, 4), mat(4, 6), residual=mat(6, 3))
    with pytest.raises(InputError):
        _testing.gemm_packed(mat(3, 4), mat(4, 6), activation="no-such-activation")
    with pytest.raises(InputError, match="rows must be contiguous"):
        _testing.gemm(mat(4, 6)[:, ::2], mat(3, 2))
