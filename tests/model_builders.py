"""The models the tests (and ``benchmarks/engine.py``) are built on: one place, no files read.

* Small graphs built with the opset builders, for the API and async tests: ``add_model``,
  ``two_output_model``, ``scale_model``, ``failing_model``, and the matmul chains
  ``heavy_model`` / ``medium_model`` (with ``heavy_reference`` / ``medium_reference``) that run
  long enough to be cancelled or overlapped, and ``folding_model``, slow to compile.
* Real-shaped networks built as ONNX models with ``GraphBuilder`` (seeded random weights): an
  MLP, a strided conv stack, ResNet-50 (v1.5, torchvision's layer shapes), MobileNetV2 and a
  BERT-style encoder. Every builder takes the sizes that matter as arguments so the tests can
  run the same architecture small; the defaults are the real shapes.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import aiov as ov
import aiov.opset13 as ops

# ---- small graphs built with the opset builders ----------------------------------------------


def add_model(shape=(8,), names=("input_0", "input_1"), out_name="result_0"):
    """out = input_0 + input_1; tensor names set on inputs and the output."""
    a = ops.parameter(list(shape), np.float32, name=names[0])
    b = ops.parameter(list(shape), np.float32, name=names[1])
    model = ov.Model(ops.add(a, b), [a, b])
    model.outputs[0].tensor.set_names({out_name})
    return model


def two_output_model():
    """x -> (x * 2, x + 1), outputs named "double" and "plus_one"; input [2, 3] "x"."""
    x = ops.parameter([2, 3], np.float32, name="x")
    model = ov.Model([ops.multiply(x, 2.0), ops.add(x, 1.0)], [x])
    model.outputs[0].tensor.set_names({"double"})
    model.outputs[1].tensor.set_names({"plus_one"})
    return model


def scale_model(n=4, factor=3.0):
    """x[n] -> x * factor, input "x", output "y"."""
    x = ops.parameter([n], np.float32, name="x")
    model = ov.Model(ops.multiply(x, factor), [x])
    model.outputs[0].tensor.set_names({"y"})
    return model


def failing_model():
    """x[?] reshaped to a constant [2, 3]: fails at run time unless x has 6 elements;
    otherwise returns x.reshape(2, 3) + 0 (as f32)."""
    x = ops.parameter([-1], np.float32, name="x")
    model = ov.Model(ops.reshape(x, [2, 3]), [x])
    model.outputs[0].tensor.set_names({"y"})
    return model


def lookup_model(rows=10, width=4):
    """table[rows, width] gathered by int64 indices i[?, k] -> [?, k, width] (output "rows"): an
    index outside the table fails at run time, for that job only when jobs are batched."""
    i = ops.parameter([-1, -1], np.int64, name="i")
    table = ops.constant(np.arange(rows * width, dtype=np.float32).reshape(rows, width))
    model = ov.Model(ops.gather(table, i, 0), [i])
    model.outputs[0].tensor.set_names({"rows"})
    return model


def heavy_model(layers=4, size=1024, dynamic_batch=True, seed=0, same_weight=False):
    """A matmul chain (relu(x @ W_i)), each W a size x size f32 constant; tens of ms per
    inference at batch 256 on two cores. Returns (model, weights)."""
    rng = np.random.default_rng(seed)
    x = ops.parameter([-1 if dynamic_batch else 256, size], np.float32, name="x")
    h = x
    weights = []
    for i in range(layers):
        if i == 0 or not same_weight:
            w = (rng.standard_normal((size, size)) * (1.0 / np.sqrt(size))).astype(np.float32)
        weights.append(w)
        h = ops.relu(ops.matmul(h, ops.constant(w)))
    return ov.Model(h, [x]), weights


def heavy_reference(x, weights):
    h = x.astype(np.float64)
    for w in weights:
        h = np.maximum(h @ w.astype(np.float64), 0)
    return h


def tiny_model():
    """Add of two [8] vectors "a" and "b", output "sum": the async tests' smallest model."""
    return add_model(names=("a", "b"), out_name="sum")


def medium_model(layers=4, size=256, seed=0):
    """``heavy_model`` at 256 wide: long enough for jobs to be cancelled while running, short
    enough to run hundreds of them. Returns (model, weights)."""
    return heavy_model(layers, size, seed=seed)


def medium_reference(weights, x):
    return heavy_reference(x, weights)


def folding_model(folds=3, size=1024, seed=1):
    """A static-shape model whose constant matmul chain is folded at compile time, so that
    compile_model itself does tens of ms of work."""
    rng = np.random.default_rng(seed)
    x = ops.parameter([1, size], np.float32, name="x")
    w = ops.constant((rng.standard_normal((size, size)) * 0.03).astype(np.float32))
    for _ in range(folds):
        w = ops.matmul(w, ops.constant((rng.standard_normal((size, size)) * 0.03).astype(np.float32)))
    return ov.Model(ops.matmul(x, w), [x])


# ---- real-shaped networks as ONNX models ------------------------------------------------------


class GraphBuilder:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, array):
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape, scale=None):
        scale = scale or 1.0 / np.sqrt(np.prod(shape[1:]) if len(shape) > 1 else shape[0])
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def positive(self, n):
        return self.const(self.rng.uniform(0.5, 1.5, n).astype(np.float32))

    def op(self, op_type, inputs, **attrs):
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def model(self, inputs, opset=17):
        self.nodes[-1].output[0] = "out"
        graph = helper.make_graph(
            self.nodes, "m", inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], self.inits
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])

    # ---- layers ------------------------------------------------------------------------------

    def conv_bn(self, x, cin, cout, k, stride=1, group=1, act="relu", bias=False):
        """Conv (+bias) + BatchNormalization + activation ("relu", "relu6", None)."""
        inputs = [x, self.weight(cout, cin // group, k, k)]
        if bias:
            inputs.append(self.weight(cout, scale=0.1))
        y = self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group)
        y = self.op(
            "BatchNormalization",
            [y, self.positive(cout), self.weight(cout, scale=0.1), self.weight(cout, scale=0.1), self.positive(cout)],
            epsilon=1e-5,
        )
        if act == "relu":
            return self.op("Relu", [y])
        if act == "relu6":
            return self.op("Clip", [y, self.const(np.float32(0)), self.const(np.float32(6))])
        return y

    def dense(self, x, n_in, n_out):
        return self.op("Add", [self.op("MatMul", [x, self.weight(n_in, n_out)]), self.weight(n_out, scale=0.1)])


def image_input(channels, size):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, size, size])


def mlp(sizes=(784, 1024, 1024, 10), seed=1):
    """Dense layers with ReLU between them: MatMul + Add (+ Relu)."""
    g = GraphBuilder(seed)
    x = "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        x = g.dense(x, a, b)
        if i < len(sizes) - 2:
            x = g.op("Relu", [x])
    return g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", sizes[0]])])


def conv_stack(channels=(3, 32, 64, 128, 256), classes=10, seed=2):
    """3x3 stride-2 convolutions with bias and ReLU, global average pool, Gemm classifier."""
    g = GraphBuilder(seed)
    x = "x"
    for cin, cout in zip(channels, channels[1:]):
        x = g.op(
            "Conv",
            [x, g.weight(cout, cin, 3, 3), g.weight(cout, scale=0.1)],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        )
        x = g.op("Relu", [x])
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.op("Gemm", [x, g.weight(classes, channels[-1]), g.weight(classes, scale=0.1)], transB=1)
    return g.model([image_input(channels[0], None)])


def resnet50(blocks=(3, 4, 6, 3), width=64, classes=1000, seed=3):
    """ResNet-50 v1.5: bottlenecks with the stride on the 3x3 conv, BatchNorm after every conv."""
    g = GraphBuilder(seed)
    x = g.conv_bn("x", 3, width, 7, 2)
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = width
    for stage, count in enumerate(blocks):
        mid = width * 2**stage
        cout = mid * 4
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            y = g.conv_bn(x, cin, mid, 1)
            y = g.conv_bn(y, mid, mid, 3, stride)
            y = g.conv_bn(y, mid, cout, 1, act=None)
            shortcut = x if i > 0 else g.conv_bn(x, cin, cout, 1, stride, act=None)
            x = g.op("Relu", [g.op("Add", [y, shortcut])])
            cin = cout
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.op("Gemm", [x, g.weight(classes, cin), g.weight(classes, scale=0.1)], transB=1)
    return g.model([image_input(3, None)])


def single_conv(cin, cout, k, stride=1, group=1, dilation=1, pads=None, auto_pad=None, after=(), bias=True):
    """One ONNX Conv (with bias unless bias=False) on an NCHW input "x", then the ops of
    `after`, each given as (op, {"inputs": [scalar operands], "attrs": {...}})."""
    g = GraphBuilder(seed=3)
    attrs = dict(kernel_shape=[k, k], strides=[stride, stride], dilations=[dilation, dilation], group=group)
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    else:
        attrs["pads"] = pads if pads is not None else [k // 2] * 4
    inputs = ["x", g.weight(cout, cin // group, k, k)] + ([g.weight(cout, scale=0.1)] if bias else [])
    y = g.op("Conv", inputs, **attrs)
    for op, extra in after:
        y = g.op(op, [y] + [g.const(np.float32(v)) for v in extra.get("inputs", [])], **extra.get("attrs", {}))
    return g.model([image_input(cin, None)])


MOBILENET_V2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenet_v2(settings=MOBILENET_V2, classes=1000, seed=4):
    """MobileNetV2: inverted residuals (1x1 expand, 3x3 depthwise, 1x1 project) with ReLU6."""
    g = GraphBuilder(seed)
    x = g.conv_bn("x", 3, 32, 3, 2, act="relu6")
    cin = 32
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = g.conv_bn(x, cin, hidden, 1, act="relu6") if t != 1 else x
            y = g.conv_bn(y, hidden, hidden, 3, stride, group=hidden, act="relu6")
            y = g.conv_bn(y, hidden, c, 1, act=None)
            x = g.op("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = g.conv_bn(x, cin, 1280, 1, act="relu6")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.op("Gemm", [x, g.weight(classes, 1280), g.weight(classes, scale=0.1)], transB=1)
    return g.model([image_input(3, None)])


def bert_encoder(hidden=384, heads=12, layers=6, ffn=None, seed=5):
    """Post-LN transformer encoder layers as exported by common tools: MatMul+Add projections,
    per-head Reshape/Transpose, scaled scores + additive mask, Softmax, LayerNormalization and
    Gelu in its erf form. Inputs: x [batch, seq, hidden] and mask [batch, seq] of 1/0."""
    g = GraphBuilder(seed)
    ffn = ffn or 4 * hidden
    head = hidden // heads
    mask = g.op("Unsqueeze", ["mask", g.const(np.array([1, 2], np.int64))])
    additive = g.op(
        "Mul",
        [
            g.op("Sub", [g.const(np.float32(1)), g.op("Cast", [mask], to=TensorProto.FLOAT)]),
            g.const(np.float32(-10000)),
        ],
    )

    def split_heads(t):  # [b, s, h] -> [b, heads, s, head]
        t = g.op("Reshape", [t, g.const(np.array([0, 0, heads, head], np.int64))])
        return g.op("Transpose", [t], perm=[0, 2, 1, 3])

    x = "x"
    for _ in range(layers):
        q, k, v = (split_heads(g.dense(x, hidden, hidden)) for _ in range(3))
        scores = g.op(
            "Div", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]), g.const(np.float32(np.sqrt(head)))]
        )
        probs = g.op("Softmax", [g.op("Add", [scores, additive])], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, g.const(np.array([0, 0, hidden], np.int64))])
        x = g.op(
            "LayerNormalization",
            [g.op("Add", [g.dense(ctx, hidden, hidden), x]), g.positive(hidden), g.weight(hidden, scale=0.1)],
            axis=-1,
            epsilon=1e-12,
        )
        h = g.dense(x, hidden, ffn)
        erf = g.op("Erf", [g.op("Div", [h, g.const(np.float32(np.sqrt(2)))])])
        gelu = g.op("Mul", [g.op("Mul", [h, g.const(np.float32(0.5))]), g.op("Add", [g.const(np.float32(1)), erf])])
        x = g.op(
            "LayerNormalization",
            [g.op("Add", [g.dense(gelu, ffn, hidden), x]), g.positive(hidden), g.weight(hidden, scale=0.1)],
            axis=-1,
            epsilon=1e-12,
        )
    g.op("Identity", [x])
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", hidden]),
        helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "s"]),
    ]
    return g.model(inputs)


def bert_feeds(batch, seq, hidden, seed=6):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[:, seq - seq // 8 :] = 0  # a padded tail
    return {"x": rng.standard_normal((batch, seq, hidden)).astype(np.float32), "mask": mask}


def quantized(model, calibration=None):
    """An ONNX model quantized by onnxruntime.quantization as users quantize for CPUs:
    dynamically (s8 weights, u8 activations quantized per call) when `calibration` is None,
    else statically in QDQ form (u8 activations, s8 per-channel weights) after onnxruntime's
    pre-processing, calibrated on the feed dicts `calibration` lists."""
    import os
    import tempfile

    import onnx
    from onnxruntime import quantization as q

    with tempfile.TemporaryDirectory(prefix="aiov_int8_") as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(model, src)
        if calibration is None:
            # Into standard ONNX ops only: onnxruntime's quantized LSTM is a contrib op of its
            # own (com.microsoft.DynamicQuantizeLSTM), so LSTMs stay f32 as every runtime reads them.
            standard = [op for op in q.registry.IntegerOpsRegistry if op != "LSTM"]
            q.quantize_dynamic(src, dst, weight_type=q.QuantType.QInt8, op_types_to_quantize=standard)
            return onnx.load(dst)
        from onnxruntime.quantization.shape_inference import quant_pre_process

        # The recommended pre-processing: BatchNorms folded into the convolutions, so each
        # convolution is one quantized product.
        quant_pre_process(src, src, skip_symbolic_shape=True)

        class Reader(q.CalibrationDataReader):
            def __init__(self):
                self.feeds = iter(calibration)

            def get_next(self):
                return next(self.feeds, None)

        # u8 activations, s8 weights: the pairing every runtime's int8 kernels take (OpenVINO
        # refuses convolutions with s8 activations).
        q.quantize_static(
            src,
            dst,
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
        )
        return onnx.load(dst)


def one_node_model(op_type, elem_type=TensorProto.FLOAT, opset=17):
    """ONNX: ``y = op_type(x)``, x a vector of 2 of ``elem_type`` (y's type said, its shape not)."""
    graph = helper.make_graph(
        [helper.make_node(op_type, ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", elem_type, [2])],
        [helper.make_tensor_value_info("y", elem_type, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def if_node(condition, output, then_node, else_node, elem_type=TensorProto.FLOAT):
    """An ONNX If whose branches are one node each (reading names of the enclosing graph); a
    branch gives its node's first output, of ``elem_type``."""

    def branch(node, name):
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(node.output[0], elem_type, None)])

    return helper.make_node(
        "If", [condition], [output], then_branch=branch(then_node, "then"), else_branch=branch(else_node, "else")
    )


def nonzero_then_if(outputs=("y",), scalar_sum=False):
    """ONNX: ``y = If(c, concat(flat, flat), sum(flat))`` with ``flat`` the indices NonZero finds
    in ``x`` [5] as one vector. Only running tells y's shape: NonZero's size, then the branch
    taken. ``outputs`` are of y and nz (those indices). With ``scalar_sum`` the sum is a scalar,
    so not even y's rank is known before the If runs."""
    i64 = TensorProto.INT64
    graph = helper.make_graph(
        [
            helper.make_node("NonZero", ["x"], ["nz"]),
            helper.make_node("Reshape", ["nz", "minus_one"], ["flat"]),
            if_node(
                "c",
                "y",
                helper.make_node("Concat", ["flat", "flat"], ["t"], axis=0),
                helper.make_node("ReduceSum", ["flat"], ["e"], keepdims=0 if scalar_sum else 1),
                i64,
            ),
        ],
        "nonzero_then_if",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [5]),
        ],
        [helper.make_tensor_value_info(name, i64, None) for name in outputs],
        [helper.make_tensor("minus_one", i64, [1], [-1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def small_networks(rng):
    """(ONNX model, feeds) of a small ResNet, MobileNetV2, BERT encoder and MLP: every kernel
    family a network of each kind reaches, at sizes a test runs in a moment."""

    def x(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return [
        (resnet50(blocks=(1, 1), width=8, classes=5), {"x": x(2, 3, 24, 24)}),
        (mobilenet_v2(settings=((1, 8, 1, 1), (6, 12, 2, 2)), classes=5), {"x": x(1, 3, 20, 20)}),
        (bert_encoder(hidden=32, heads=4, layers=1), bert_feeds(2, 7, 32)),
        # bias and ReLU fused into a product whose K takes two slices
        (mlp(sizes=(1500, 70, 5)), {"x": x(40, 1500)}),
    ]


def accumulator_model(shape=(4,), dtype=np.float32, variable_id="acc", init=True, work_layers=0, size=64):
    """A stateful running sum: output = state + x, then state := output (ReadValue/Assign on
    variable ``variable_id``; its initial value is zeros, given as an input of ReadValue when
    ``init``). ``work_layers`` > 0 adds a chain of size x size matmuls that the output does not
    need but every inference runs: jobs long enough to be seen running (shape must be (n, size))."""
    x = ops.parameter(list(shape), dtype, name="x")
    if init:
        state = ops.read_value(ops.constant(np.zeros(shape, dtype)), variable_id, dtype, list(shape))
    else:
        state = ops.read_value(variable_id, dtype, list(shape))
    total = ops.add(state, x, name="total")
    sinks = [ops.assign(total, variable_id)]
    results = [ops.result(total, name="sum")]
    if work_layers:
        h = total
        rng = np.random.default_rng(7)
        for _ in range(work_layers):
            w = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
            h = ops.relu(ops.matmul(h, ops.constant(w)))
        results.append(ops.result(h, name="work"))
    return ov.Model(results, sinks, [x], name="accumulator")
