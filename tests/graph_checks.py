"""Running an ONNX model with the graph optimizer on and off (AIOV_GRAPH_OPT) and against
ONNX's reference evaluator: how the engine and kernel tests check that a rewrite or a kernel
path changes how a model runs, never what it computes."""

import numpy as np
from onnx.reference import ReferenceEvaluator

import aiov as ov

RNG = np.random.default_rng(21)


def onnx_before_1_20() -> bool:
    """onnx 1.19 is the last release for Python 3.9: its reference implementation and node cases
    predate fixes and spec revisions that later releases (and aiov) follow."""
    import onnx

    return tuple(int(p) for p in onnx.__version__.split(".")[:2]) < (1, 20)


def reference_outputs(proto, feeds):
    """ONNX's reference evaluator on ``proto``. Before onnx 1.20 (the last release for Python
    3.9 is 1.19) it pads auto_pad convolutions wrongly (VALID as SAME, SAME_UPPER's pad on the
    wrong side): those get the explicit pads ONNX's formula gives for the fed shape first."""
    if onnx_before_1_20():
        proto = _explicit_conv_pads(proto, feeds)
    return ReferenceEvaluator(proto).run(None, feeds)


def onnxruntime_outputs(proto, feeds):
    """onnxruntime's outputs (the test is skipped where it is not installed)."""
    import pytest

    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def aiov_outputs(proto, feeds):
    return list(ov.compile_model(proto.SerializeToString())(feeds).values())


def _explicit_conv_pads(proto, feeds):
    from onnx import helper

    proto = type(proto).FromString(proto.SerializeToString())
    for node in proto.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("auto_pad", b"NOTSET").decode()
        if node.op_type != "Conv" or mode == "NOTSET" or node.input[0] not in feeds:
            continue
        spatial = np.shape(feeds[node.input[0]])[2:]
        kernel = attrs["kernel_shape"]
        strides = attrs.get("strides", [1] * len(spatial))
        dilations = attrs.get("dilations", [1] * len(spatial))
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            total = 0 if mode == "VALID" else max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begins.append(large if mode == "SAME_LOWER" else small)
            ends.append(small if mode == "SAME_LOWER" else large)
        kept = [a for a in node.attribute if a.name != "auto_pad"]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute("pads", begins + ends)])
    return proto


def run_both(proto, feeds, monkeypatch):
    data = proto.SerializeToString()
    monkeypatch.setenv("AIOV_GRAPH_OPT", "0")
    plain = ov.compile_model(data)(feeds)[0]
    monkeypatch.setenv("AIOV_GRAPH_OPT", "1")
    optimized = ov.compile_model(data)(feeds)[0]
    return plain, optimized


def node_types(proto, feeds):
    """The node types the optimized model runs, in order (from its profiling records)."""
    compiled = ov.compile_model(proto.SerializeToString(), "CPU", {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    request.infer(feeds)
    return [p.node_type for p in request.get_profiling_info()]


def check(proto, feeds, monkeypatch, rtol=1e-4, atol=1e-4, reference=True):
    """The first output with the optimizer on; asserts it matches the optimizer off and (when
    `reference`) ONNX's reference evaluator."""
    plain, optimized = run_both(proto, feeds, monkeypatch)
    assert optimized.shape == plain.shape
    np.testing.assert_allclose(optimized, plain, rtol=rtol, atol=atol)
    if reference:
        expected = reference_outputs(proto, feeds)[0]
        np.testing.assert_allclose(optimized, expected, rtol=rtol, atol=atol)
    return optimized


def image(n, c, h, w=None):
    """Feeds for an NCHW input "x" of random values."""
    return {"x": RNG.standard_normal((n, c, h, w or h)).astype(np.float32)}
