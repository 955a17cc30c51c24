"""LpPool through the ONNX frontend matches a direct numpy window sum for p = 1, 2, 3."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import aiov as ov

RNG = np.random.default_rng(9)


def _model(attrs):
    node = helper.make_node("LpPool", ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool_matches_window_sums(p):
    x = RNG.standard_normal((1, 2, 5, 6)).astype(np.float32)
    model = ov.Core().read_model(_model({"kernel_shape": [2, 3], "strides": [2, 1], "pads": [1, 0, 0, 1], "p": p}))
    got = ov.compile_model(model)([x])[0]
    padded = np.pad(np.abs(x.astype(np.float64)) ** p, ((0, 0), (0, 0), (1, 0), (0, 1)))
    rows, cols = (padded.shape[2] - 2) // 2 + 1, padded.shape[3] - 3 + 1
    want = np.empty((1, 2, rows, cols))
    for i in range(rows):
        for j in range(cols):
            want[:, :, i, j] = padded[:, :, 2 * i : 2 * i + 2, j : j + 3].sum(axis=(2, 3)) ** (1 / p)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_lp_pool_ceil_mode_is_refused_by_name():
    with pytest.raises(ov.InputError, match="ceil_mode"):
        ov.Core().read_model(_model({"kernel_shape": [2, 2], "ceil_mode": 1}))
