"""Normalizations over each sample's channel groups, their per-channel scale and shift and the
activation after them, as exporters write them (InstanceNormalization; torch's GroupNorm: a
Reshape to [N, G, -1] around InstanceNormalization, then Mul and Add by [C, 1, ...]; ONNX's
GroupNormalization), become one aiov.GroupNorm (fuse_layer_norm, docs/passes.md): results
against onnxruntime within f32 tolerance, and the op types the compiled model runs."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import aiov as ov

from graph_checks import node_types, onnxruntime_outputs

RNG = np.random.default_rng(31)


class Graph:
    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, value, dtype=np.float32):
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type, inputs, **attrs):
        out = f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def gelu(self, x):  # the erf form as torch exports it
        e = self.op("Erf", [self.op("Div", [x, self.const(np.sqrt(2.0))])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [e, self.const(1.0)])]), self.const(0.5)])

    def activation(self, x, act):
        return {"none": lambda: x, "gelu": lambda: self.gelu(x), "relu": lambda: self.op("Relu", [x])}[act]()

    def model(self, out, shape, opset=17):
        dims = ["N", shape[1], "L"] if shape[0] is None else list(shape)
        graph = helper.make_graph(
            self.nodes,
            "norm",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
            self.inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(proto, x, fused=True):
    """The compiled model's result against onnxruntime's; the op types it runs."""
    expected = onnxruntime_outputs(proto, {"x": x})[0]
    got = ov.compile_model(proto.SerializeToString(), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({"x": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    types = node_types(proto, {"x": x})
    if fused:
        assert types.count("aiov.GroupNorm") == 1
        assert not {"MVN", "aiov.ElementwiseChain", "Gelu", "Multiply", "Add", "Relu"} & set(types), types
    return types


def channel_shape(c, rank):
    return [c] + [1] * (rank - 2)


@pytest.mark.parametrize("shape", [(8, 16, 79), (2, 6, 5, 7)])  # NCW (wav2vec2) and NCHW
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("act", ["gelu", "relu", "none"])
def test_instance_normalization_with_its_affine_and_activation(shape, affine, act):
    c = shape[1]
    g = Graph()
    scale = RNG.uniform(0.5, 1.5, c) if affine else np.ones(c)
    bias = RNG.standard_normal(c) if affine else np.zeros(c)
    y = g.op("InstanceNormalization", ["x", g.const(scale), g.const(bias)], epsilon=1e-5)
    y = g.activation(y, act)
    x = (RNG.standard_normal(shape) * 3 + 1).astype(np.float32)
    # Without an affine or an activation there is nothing to fuse into the normalization.
    check(g.model(y, shape), x, fused=affine or act != "none")


def torch_group_norm(g, x, c, groups, rank, act, dynamic_back=True):
    """torch.nn.GroupNorm as torch.onnx.export writes it, then the activation."""
    grouped = g.op("Reshape", [x, g.const([0, groups, -1], np.int64)])
    y = g.op("InstanceNormalization", [grouped, g.const(np.ones(groups)), g.const(np.zeros(groups))], epsilon=1e-5)
    back = g.op("Shape", [x]) if dynamic_back else g.const(SHAPES[rank], np.int64)
    y = g.op("Reshape", [y, back])
    y = g.op("Mul", [y, g.const(RNG.uniform(0.5, 1.5, channel_shape(c, rank)))])
    y = g.op("Add", [y, g.const(RNG.standard_normal(channel_shape(c, rank)))])
    return g.activation(y, act)


SHAPES = {3: (3, 12, 21), 4: (2, 12, 5, 6)}


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("groups", [1, 3, 4, 12])
@pytest.mark.parametrize("act", ["gelu", "none"])
def test_torch_group_norm_export(rank, groups, act):
    shape = SHAPES[rank]
    g = Graph()
    y = torch_group_norm(g, "x", shape[1], groups, rank, act)
    x = (RNG.standard_normal(shape) * 2 - 1).astype(np.float32)
    check(g.model(y, shape), x)


def test_torch_group_norm_export_with_dynamic_batch_and_length():
    # wav2vec2's feature extractor: its input's batch and length are known only at run time,
    # the reshape back to x's shape goes by x's ShapeOf.
    g = Graph()
    y = torch_group_norm(g, "x", 16, 16, 3, "gelu")
    proto = g.model(y, (None, 16, None))
    for n, length in [(2, 31), (8, 79)]:
        check(proto, RNG.standard_normal((n, 16, length)).astype(np.float32))


def test_torch_group_norm_export_with_a_constant_shape_back():
    g = Graph()
    y = torch_group_norm(g, "x", 12, 4, 4, "relu", dynamic_back=False)
    check(g.model(y, SHAPES[4]), RNG.standard_normal(SHAPES[4]).astype(np.float32))


def test_grouped_view_stays_the_models_output_shape():
    # Scaled and activated while still [N, G, -1] (no Reshape back): the fused op's output is
    # reshaped the same way.
    g = Graph()
    grouped = g.op("Reshape", ["x", g.const([0, 3, -1], np.int64)])
    y = g.op("InstanceNormalization", [grouped, g.const(RNG.uniform(0.5, 1.5, 3)), g.const(RNG.standard_normal(3))])
    y = g.op("Relu", [y])
    types = check(g.model(y, (2, 6, 4, 5)), RNG.standard_normal((2, 6, 4, 5)).astype(np.float32))
    assert types.count("Reshape") <= 1


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_onnx_group_normalization_and_activation(groups):
    g = Graph()
    c = 6
    y = g.op(
        "GroupNormalization",
        ["x", g.const(RNG.uniform(0.5, 1.5, c)), g.const(RNG.standard_normal(c))],
        num_groups=groups,
        epsilon=1e-5,
    )
    y = g.gelu(y)
    x = RNG.standard_normal((2, c, 7, 3)).astype(np.float32)
    check(g.model(y, x.shape, opset=21), x)


def test_a_normalization_read_twice_keeps_its_readers():
    # The normalized value is also a graph output: the activation after it cannot be taken in.
    g = Graph()
    n = g.op("InstanceNormalization", ["x", g.const(np.ones(4)), g.const(np.zeros(4))])
    y = g.op("Relu", [n])
    graph = helper.make_graph(
        g.nodes,
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 9])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in (n, y)],
        g.inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = RNG.standard_normal((2, 4, 9)).astype(np.float32)
    expected = onnxruntime_outputs(proto, {"x": x})
    got = ov.compile_model(proto.SerializeToString())({"x": x})
    for i in range(2):
        np.testing.assert_allclose(got[i], expected[i], rtol=1e-4, atol=1e-4)
    types = node_types(proto, {"x": x})
    assert "aiov.GroupNorm" in types and "Relu" in types
