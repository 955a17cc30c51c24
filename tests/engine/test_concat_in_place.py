"""A Concat along the channels of NHWC convolutions (SqueezeNet's fire modules, Inception's
branches) is not a copy: the planner has each part's producer write straight into its slice of
the Concat's memory, rows a whole Concat row apart. Every case here checks the numbers against
the optimizer off and onnxruntime, and whether the Concat still ran as a step (it is absent from
the profile when every part was written in place)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import aiov as ov

from graph_checks import onnxruntime_outputs, run_both

RNG = np.random.default_rng(27)


class Net:
    """A small ONNX graph built conv by conv (NCHW, as exporters write it)."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, what):
        self.count += 1
        return f"{what}{self.count}"

    def conv(self, src, cin, cout, k, act="Relu", group=1, stride=1):
        name = self.name("conv")
        w = (RNG.standard_normal((cout, cin // group, k, k)) / np.sqrt(cin * k * k / group)).astype(np.float32)
        b = RNG.standard_normal(cout).astype(np.float32) * 0.1
        self.inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
        self.nodes.append(
            helper.make_node(
                "Conv",
                [src, f"{name}_w", f"{name}_b"],
                [f"{name}_y"],
                pads=[k // 2] * 4,
                group=group,
                strides=[stride, stride],
            )
        )
        return self.op(act, f"{name}_y") if act else f"{name}_y"

    def op(self, kind, *srcs, **attrs):
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, list(srcs), [out], **attrs))
        return out

    def model(self, outputs, channels, size=9, batch=2):
        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, size, size])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
            self.inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def profiled_types(proto, feeds, config=None):
    compiled = ov.compile_model(proto.SerializeToString(), "CPU", {"PERF_COUNT": True, **(config or {})})
    request = compiled.create_infer_request()
    results = [np.array(r) for r in request.infer(feeds).values()]
    return results, [p.node_type for p in request.get_profiling_info()]


def check(proto, feeds, monkeypatch, atol=1e-4):
    """The optimized model against the unoptimized one and onnxruntime; returns the node types
    it ran."""
    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_allclose(optimized, plain, rtol=1e-5, atol=atol)
    results, types = profiled_types(proto, feeds)
    for got, want in zip(results, onnxruntime_outputs(proto, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol)
    return types


def fire(net, src, cin, squeeze, expand, act3="Relu"):
    s = net.conv(src, cin, squeeze, 1)
    return net.op("Concat", net.conv(s, squeeze, expand, 1), net.conv(s, squeeze, expand, 3, act=act3), axis=1)


@pytest.mark.parametrize("expand", [6, 16, 40], ids=["few_outputs", "one_vector", "gemm"])
def test_fire_module_parts_are_written_in_place(expand, monkeypatch):
    net = Net()
    cat = fire(net, "x", 8, 4, expand)
    out = net.conv(cat, 2 * expand, 5, 1, act=None)  # the next convolution reads the whole Concat
    feeds = {"x": RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)}
    types = check(net.model([out], 8), feeds, monkeypatch)
    assert "Concat" not in types
    assert types.count("aiov.FusedConv") == 4


def test_two_fire_modules_and_a_pool_between(monkeypatch):
    # SqueezeNet's order: fire, fire, ceil-mode max pool, fire; then global average pool.
    net = Net()
    a = fire(net, "x", 3, 4, 8)
    b = fire(net, a, 16, 4, 8)
    pooled = net.op("MaxPool", b, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    c = fire(net, pooled, 16, 8, 16)
    out = net.op("GlobalAveragePool", net.conv(c, 32, 10, 1))
    feeds = {"x": RNG.standard_normal((3, 3, 15, 15)).astype(np.float32)}
    types = check(net.model([out], 3, size=15, batch=3), feeds, monkeypatch)
    assert "Concat" not in types


@pytest.mark.parametrize(
    "branch",
    ["sigmoid", "depthwise", "winograd", "residual", "three_parts"],
)
def test_parts_of_every_convolution_path(branch, monkeypatch):
    # Paths that write strided rows themselves and ones staged through a buffer of their own
    # (depthwise, Winograd), an activation applied after the store (sigmoid), a fused residual.
    net = Net()
    s = net.conv("x", 8, 32, 1)
    parts = [net.conv(s, 32, 8, 1)]
    if branch == "sigmoid":
        parts.append(net.conv(s, 32, 6, 3, act="Sigmoid"))
    elif branch == "depthwise":
        parts.append(net.conv(s, 32, 32, 3, group=32))
    elif branch == "winograd":
        parts.append(net.conv(s, 32, 48, 3, act=None))
    elif branch == "residual":
        parts.append(net.op("Relu", net.op("Add", net.conv(s, 32, 8, 3, act=None), parts[0])))
        parts[0] = net.conv(s, 32, 8, 1)  # the residual's reader is the Add, not the Concat
    else:
        parts += [net.conv(s, 32, 6, 3), net.conv(s, 32, 4, 1, act="Relu")]
    cat = net.op("Concat", *parts, axis=1)
    channels = {"sigmoid": 14, "depthwise": 40, "winograd": 56, "residual": 16, "three_parts": 18}[branch]
    out = net.conv(cat, channels, 4, 1, act=None)
    feeds = {"x": RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)}
    types = check(net.model([out], 8), feeds, monkeypatch)
    assert "Concat" not in types


def test_inception_branches_read_the_concat(monkeypatch):
    # Four branches (1x1; 1x1 then 3x3; 1x1 then 5x5; max pool then 1x1) concatenated, and the
    # Concat read by the next module's branches: parts in place, the Concat read as it lies.
    net = Net()

    def inception(src, cin):
        pooled = net.op("MaxPool", src, kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
        return net.op(
            "Concat",
            net.conv(src, cin, 8, 1),
            net.conv(net.conv(src, cin, 6, 1), 6, 12, 3),
            net.conv(net.conv(src, cin, 4, 1), 4, 6, 5),
            net.conv(pooled, cin, 6, 1),
            axis=1,
        )

    out = inception(inception("x", 8), 32)
    feeds = {"x": RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)}
    types = check(net.model([out], 8), feeds, monkeypatch)
    assert "Concat" not in types


def test_a_concat_that_is_the_model_output(monkeypatch):
    # (Through the transpose back to NCHW, which reads the Concat's memory.)
    net = Net()
    cat = fire(net, "x", 8, 4, 6)
    feeds = {"x": RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)}
    types = check(net.model([cat], 8), feeds, monkeypatch)
    assert "Concat" not in types


def test_a_part_read_elsewhere_is_not_written_in_place(monkeypatch):
    net = Net()
    s = net.conv("x", 8, 4, 1)
    a, b = net.conv(s, 4, 6, 1), net.conv(s, 4, 6, 3)
    cat = net.op("Concat", a, b, axis=1)
    out = net.conv(cat, 12, 5, 1, act=None)
    feeds = {"x": RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)}
    types = check(net.model([out, a], 8), feeds, monkeypatch)  # a is also a model output
    assert "Concat" in types


def test_a_view_of_the_concat_as_output_and_repeated_runs(monkeypatch):
    # The Concat's memory stays in the arena (the output is copied from it), and a second run
    # with other numbers writes every slice again.
    net = Net()
    cat = fire(net, "x", 8, 4, 6)
    flat = net.op("Flatten", net.op("Relu", cat), axis=1)  # (the NHWC region ends before the Flatten)
    proto = net.model([flat], 8)
    compiled = ov.compile_model(proto.SerializeToString())
    for _ in range(2):
        feeds = {"x": RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)}
        np.testing.assert_allclose(compiled(feeds)[0], onnxruntime_outputs(proto, feeds)[0], rtol=1e-4, atol=1e-4)
    check(proto, feeds, monkeypatch)


def test_bf16_parts_are_staged_and_agree_with_f32():
    net = Net()
    cat = fire(net, "x", 8, 16, 32)
    out = net.conv(cat, 64, 8, 1, act=None)
    proto = net.model([out], 8)
    feeds = {"x": RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)}
    try:
        (got,), types = profiled_types(proto, feeds, {"INFERENCE_PRECISION_HINT": "bf16"})
    except Exception as e:  # a CPU without bf16 products refuses the hint
        pytest.skip(f"bf16 not available: {e}")
    want = onnxruntime_outputs(proto, feeds)[0]
    assert np.max(np.abs(got - want)) <= 0.05 * np.max(np.abs(want))
    assert "Concat" not in types


QDQ_SCRIPT = r"""
import json, os, numpy as np, aiov as ov
data = open(os.environ["MODEL"], "rb").read()
feeds = {"x": np.load(os.environ["FEEDS"])}
os.environ["AIOV_GRAPH_OPT"] = "0"
plain = ov.compile_model(data)(feeds)[0]
os.environ["AIOV_GRAPH_OPT"] = "1"
request = ov.compile_model(data, "CPU", {"PERF_COUNT": True}).create_infer_request()
optimized = np.array(request.infer(feeds)[0])
types = [p.node_type for p in request.get_profiling_info()]
print(json.dumps({"isa": ov._core.quantized_bytes_isa(), "equal": bool(np.array_equal(optimized, plain)),
                  "concats": types.count("Concat"), "lookups": types.count("aiov.QuantizedLookup")}))
"""


def qdq_fire(expand):
    """A QDQ fire module: the 1x1 branch quantized at the Concat's scale (its bytes go in as they
    are), the 3x3 one at another (through its requantization table), then a third convolution."""
    scales = {"x": (0.03, 128), "s": (0.04, 0), "a": (0.05, 0), "b": (0.02, 0), "cat": (0.05, 0), "c": (0.04, 10)}
    net = Net()
    for name, (scale, zero) in scales.items():
        net.inits += [
            numpy_helper.from_array(np.float32(scale), f"{name}_s"),
            numpy_helper.from_array(np.uint8(zero), f"{name}_z"),
        ]

    def qdq(src, name):
        net.nodes.append(helper.make_node("QuantizeLinear", [src, f"{name}_s", f"{name}_z"], [f"{name}_q"]))
        net.nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_d"]))
        return f"{name}_d"

    def conv(src, name, cin, cout, k, relu=True):
        w = RNG.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
        net.inits += [
            numpy_helper.from_array(w, f"{name}_w"),
            numpy_helper.from_array(RNG.uniform(0.002, 0.01, cout).astype(np.float32), f"{name}_ws"),
            numpy_helper.from_array(np.zeros(cout, np.int8), f"{name}_wz"),
        ]
        net.nodes.append(
            helper.make_node("DequantizeLinear", [f"{name}_w", f"{name}_ws", f"{name}_wz"], [f"{name}_wd"], axis=0)
        )
        net.nodes.append(helper.make_node("Conv", [src, f"{name}_wd"], [f"{name}_y"], pads=[k // 2] * 4))
        out = f"{name}_y"
        if relu:
            net.nodes.append(helper.make_node("Relu", [out], [f"{name}_r"]))
            out = f"{name}_r"
        return qdq(out, name)

    s = conv(qdq("x", "x"), "s", 6, 4, 1)
    cat = net.op("Concat", conv(s, "a", 4, expand, 1), conv(s, "b", 4, expand, 3), axis=1)
    out = conv(qdq(cat, "cat"), "c", 2 * expand, 8, 3, relu=False)
    return net.model([out], 6)


@pytest.mark.parametrize("expand", [16, 32, 70])  # rows of 16 and 32 bytes four and two a vector; past 64
@pytest.mark.parametrize("path", ["best", "scalar"])
def test_qdq_fire_module_bytes_on_each_path(path, expand, run_capped, tmp_path):
    # The integer convolution writes its bytes into its slice, the table its looked-up ones, on
    # the CPU's kernels and on the portable ones: the very bytes of the unoptimized graph.
    proto = qdq_fire(expand)
    (tmp_path / "m.onnx").write_bytes(proto.SerializeToString())
    np.save(tmp_path / "x.npy", RNG.standard_normal((2, 6, 9, 9)).astype(np.float32) * 2)
    cap = "scalar" if path == "scalar" else None
    result = json.loads(
        run_capped(
            QDQ_SCRIPT,
            300,
            MODEL=str(tmp_path / "m.onnx"),
            FEEDS=str(tmp_path / "x.npy"),
            AIOV_INT8_ISA=cap,
            AIOV_GEMM_ISA=None,
            AIOV_GRAPH_OPT=None,
        )
    )
    assert result["equal"]
    assert result["concats"] == 0 and result["lookups"] == 1
    if path == "scalar":
        assert result["isa"] == "scalar"
