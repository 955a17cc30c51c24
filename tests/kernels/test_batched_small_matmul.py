"""Batched MatMul of many small products (attention's scores and context): whole products per
thread, all on the calling thread when together they are too small to hand off. Every shape
must give numpy's result, whichever way it ran."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((8, 2, 5, 16), (8, 2, 16, 5)),  # 16 products of 400 MACs: one thread
        ((2, 3, 1, 7), (2, 3, 7, 1)),  # vectors
        ((4, 12, 33, 64), (4, 12, 64, 33)),  # 48 products of ~70k MACs: split
        ((3, 1, 20, 8), (1, 5, 8, 20)),  # broadcast batches
    ],
)
def test_many_small_products_match_numpy(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a = ops.parameter(list(a_shape), np.float32, name="a")
    b = ops.parameter(list(b_shape), np.float32, name="b")
    compiled = ov.compile_model(ov.Model([ops.matmul(a, b, False, False)], [a, b]), "CPU")
    for _ in range(3):
        x = rng.standard_normal(a_shape).astype(np.float32)
        y = rng.standard_normal(b_shape).astype(np.float32)
        np.testing.assert_allclose(compiled([x, y])[0], np.matmul(x, y), rtol=1e-4, atol=1e-4)
