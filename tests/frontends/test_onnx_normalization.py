"""GroupNormalization (ONNX opset 18's per-group scale and opset 21's per-channel one) and
RMSNormalization through the ONNX frontend, the builder and the IR match numpy references."""

import numpy as np
import pytest
from onnx import helper

import aiov as ov
import aiov.opset13 as ops

RNG = np.random.default_rng(5)


def _group_norm_ref(x, scale_c, bias_c, groups, eps):
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1).astype(np.float64)
    y = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y.reshape(x.shape) * scale_c.reshape(shape) + bias_c.reshape(shape)


def _onnx_model(op, inputs, attrs, opset):
    names = [f"in{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], **attrs)
    dtype = helper.np_dtype_to_tensor_dtype(inputs[0].dtype)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, dtype, list(v.shape)) for n, v in zip(names, inputs)],
        [helper.make_tensor_value_info("y", dtype, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ov.Core().read_model(model.SerializeToString())


def _run(model, inputs):
    return ov.compile_model(model)(list(inputs))[0]


@pytest.mark.parametrize("opset", [18, 21])
def test_onnx_group_normalization_scale_per_group_then_per_channel(opset):
    x = RNG.standard_normal((2, 6, 3, 4)).astype(np.float32)
    groups = 3
    width = groups if opset < 21 else 6
    scale = RNG.standard_normal(width).astype(np.float32)
    bias = RNG.standard_normal(width).astype(np.float32)
    got = _run(
        _onnx_model("GroupNormalization", [x, scale, bias], {"num_groups": groups, "epsilon": 1e-3}, opset),
        [x, scale, bias],
    )
    repeat = 6 // width
    want = _group_norm_ref(x, np.repeat(scale, repeat), np.repeat(bias, repeat), groups, 1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_group_normalization_builder_f16_and_ir_round_trip(tmp_path):
    x = RNG.standard_normal((1, 4, 5)).astype(np.float16)
    scale = RNG.standard_normal(4).astype(np.float16)
    bias = RNG.standard_normal(4).astype(np.float16)
    p = ops.parameter([1, 4, 5], np.float16, name="x")
    y = ops.group_normalization(p, ops.constant(scale), ops.constant(bias), 2, 1e-5)
    model = ov.Model([y], [p], "gn")
    want = _group_norm_ref(x.astype(np.float32), scale.astype(np.float32), bias.astype(np.float32), 2, 1e-5)
    got = _run(model, [x])
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=1e-2, atol=1e-2)
    path = tmp_path / "gn.xml"
    ov.save_model(model, str(path))
    loaded = ov.Core().read_model(str(path))
    assert "GroupNormalization" in [o.get_type_name() for o in loaded.get_ordered_ops()]
    np.testing.assert_array_equal(_run(loaded, [x]), got)


def test_group_normalization_refuses_groups_that_do_not_divide_the_channels():
    p = ops.parameter([1, 6, 2], np.float32)
    c = ops.constant(np.ones(6, np.float32))
    with pytest.raises(ov.InputError, match="must divide the channels"):
        ops.group_normalization(p, c, c, 4)


@pytest.mark.parametrize("axis", [-1, 1])
def test_onnx_rms_normalization_with_broadcast_scale(axis):
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    scale = RNG.standard_normal((1, 4) if axis == 1 else (4,)).astype(np.float32)
    got = _run(_onnx_model("RMSNormalization", [x, scale], {"axis": axis, "epsilon": 1e-4}, 23), [x, scale])
    axes = tuple(range(axis % 3, 3))
    want = x / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=axes, keepdims=True) + 1e-4) * scale
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
