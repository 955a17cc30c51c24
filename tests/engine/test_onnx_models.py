"""Whole architectures built with the onnx helper run on aiov and match onnx's reference
evaluator: a ResNet-style block stack, a MobileNet-style depthwise stack and a BERT-style
encoder layer with an attention mask, at several batch sizes and sequence lengths."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import model_builders as zoo  # noqa: E402

RNG = np.random.default_rng(11)


def GraphBuilder():
    return zoo.GraphBuilder(seed=11)


def _conv_bn(g, x, cin, cout, k, stride, group=1, relu=True):
    return g.conv_bn(x, cin, cout, k, stride, group=group, act="relu" if relu else None, bias=True)


def resnet_model():
    g = GraphBuilder()
    x = _conv_bn(g, "x", 3, 16, 3, 2)
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for cin, cout, stride in [(16, 16, 1), (16, 32, 2)]:
        y = _conv_bn(g, x, cin, cout, 3, stride)
        y = _conv_bn(g, y, cout, cout, 3, 1, relu=False)
        shortcut = x if stride == 1 and cin == cout else _conv_bn(g, x, cin, cout, 1, stride, relu=False)
        x = g.op("Relu", [g.op("Add", [y, shortcut])])
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    g.op("Gemm", [x, g.weight(10, 32), g.weight(10, scale=0.1)], transB=1)
    return g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 32])])


def mobilenet_model():
    g = GraphBuilder()
    x = _conv_bn(g, "x", 3, 16, 3, 2)
    for cin, cout, stride in [(16, 24, 1), (24, 32, 2)]:
        y = _conv_bn(g, x, cin, cin * 2, 1, 1)  # expand
        y = _conv_bn(g, y, cin * 2, cin * 2, 3, stride, group=cin * 2)  # depthwise
        y = g.op("Clip", [y, g.const(np.float32(0)), g.const(np.float32(6))])
        x = _conv_bn(g, y, cin * 2, cout, 1, 1, relu=False)  # project
    x = g.op("AveragePool", [x], kernel_shape=[8, 8], strides=[8, 8])
    g.op("Flatten", [x], axis=1)
    return g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 32])])


def bert_layer_model(hidden=64, heads=4):
    g = GraphBuilder()
    head = hidden // heads
    ln_scale, ln_bias = g.weight(hidden, scale=1.0), g.weight(hidden, scale=0.1)

    def dense(x, n_in, n_out):
        return g.op("Add", [g.op("MatMul", [x, g.weight(n_in, n_out)]), g.weight(n_out, scale=0.1)])

    def split_heads(x):  # [b, s, h] -> [b, heads, s, head]
        x = g.op("Reshape", [x, g.const(np.array([0, 0, heads, head], np.int64))])
        return g.op("Transpose", [x], perm=[0, 2, 1, 3])

    q, k, v = (split_heads(dense("x", hidden, hidden)) for _ in range(3))
    scores = g.op(
        "Div", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]), g.const(np.float32(np.sqrt(head)))]
    )
    # mask [b, s] of 1/0 -> additive [b, 1, 1, s]
    mask = g.op("Unsqueeze", ["mask", g.const(np.array([1, 2], np.int64))])
    additive = g.op(
        "Mul",
        [
            g.op("Sub", [g.const(np.float32(1)), g.op("Cast", [mask], to=TensorProto.FLOAT)]),
            g.const(np.float32(-10000)),
        ],
    )
    probs = g.op("Softmax", [g.op("Add", [scores, additive])], axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, g.const(np.array([0, 0, hidden], np.int64))])
    x = g.op("LayerNormalization", [g.op("Add", [dense(ctx, hidden, hidden), "x"]), ln_scale, ln_bias], axis=-1)
    h = dense(x, hidden, 4 * hidden)
    erf = g.op("Erf", [g.op("Div", [h, g.const(np.float32(np.sqrt(2)))])])
    gelu = g.op("Mul", [g.op("Mul", [h, g.const(np.float32(0.5))]), g.op("Add", [g.const(np.float32(1)), erf])])
    ff = dense(gelu, 4 * hidden, hidden)
    g.op("LayerNormalization", [g.op("Add", [ff, x]), ln_scale, ln_bias], axis=-1)
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", hidden]),
        helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "s"]),
    ]
    return g.model(inputs)


def _check(proto, feeds, rtol=1e-4, atol=1e-4):
    expected = ReferenceEvaluator(proto).run(None, feeds)[0]
    got = ov.compile_model(proto.SerializeToString())(feeds)["out"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    try:
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, session.run(None, feeds)[0], rtol=rtol, atol=atol)


@pytest.mark.parametrize("batch", [1, 3])
def test_resnet_style_stack(batch):
    _check(resnet_model(), {"x": RNG.standard_normal((batch, 3, 32, 32)).astype(np.float32)})


@pytest.mark.parametrize("batch", [1, 2])
def test_mobilenet_style_depthwise_stack(batch):
    _check(mobilenet_model(), {"x": RNG.standard_normal((batch, 3, 32, 32)).astype(np.float32)})


@pytest.mark.parametrize("batch, seq", [(1, 8), (2, 16), (3, 5)])
def test_bert_style_encoder_layer_with_mask(batch, seq):
    mask = np.ones((batch, seq), np.int64)
    mask[:, seq - 2 :] = 0  # padded positions
    _check(bert_layer_model(), {"x": RNG.standard_normal((batch, seq, 64)).astype(np.float32), "mask": mask})


def test_one_compiled_model_serves_many_shapes_through_every_api():
    compiled = ov.compile_model(resnet_model().SerializeToString())
    x = RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)
    direct = compiled(x)["out"]
    queue = ov.AsyncInferQueue(compiled, 2)
    outs = {}
    queue.set_callback(lambda req, i: outs.__setitem__(i, req.get_output_tensor().data.copy()))
    for i in range(2):
        queue.start_async(x[i : i + 1], i)
    queue.wait_all()
    np.testing.assert_allclose(np.concatenate([outs[0], outs[1]]), direct, rtol=1e-5, atol=1e-5)


@pytest.mark.anyio
async def test_onnx_model_through_aio(anyio_backend):
    from aiov import aio

    compiled = await aio.compile_model(mobilenet_model().SerializeToString(), "CPU")
    x = RNG.standard_normal((1, 3, 32, 32)).astype(np.float32)
    expected = compiled.sync(x)["out"]
    results = [r["out"] for r in [await compiled(x) for _ in range(3)]]
    for r in results:
        np.testing.assert_allclose(r, expected, rtol=1e-6, atol=1e-6)
