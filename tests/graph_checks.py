"""Running an ONNX model with the graph optimizer on and off (AIOV_GRAPH_OPT) and against
ONNX's reference evaluator: how the engine and kernel tests check that a rewrite or a kernel
path changes how a model runs, never what it computes."""

import numpy as np
from onnx.reference import ReferenceEvaluator

import aiov as ov

RNG = np.random.default_rng(21)


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
        expected = ReferenceEvaluator(proto).run(None, feeds)[0]
        np.testing.assert_allclose(optimized, expected, rtol=rtol, atol=atol)
    return optimized


def image(n, c, h, w=None):
    """Feeds for an NCHW input "x" of random values."""
    return {"x": RNG.standard_normal((n, c, h, w or h)).astype(np.float32)}
