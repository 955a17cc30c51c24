"""Winograd F(2x2, 3x3) convolutions against the direct GEMM path and ONNX's reference. Moved
from test_graph_optimizer.py."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402

import model_builders as zoo  # noqa: E402

# Stride 1 takes Winograd from 48 channels in and out, with enough tiles to share its
# transformed weights (Winograd2x3::worthwhile).
_WINOGRAD_CASES = [
    (48, 56, 15, [1, 1, 1, 1], 1, 1),  # odd output size: the last row and column of tiles are cut
    (48, 48, 12, [1, 1, 1, 1], 2, 1),  # a batch of two
    (64, 48, 13, [0, 0, 0, 0], 1, 1),  # unpadded: 11 x 11 outputs
    (56, 49, 14, [2, 1, 0, 1], 1, 1),  # asymmetric pads
]
# The direct paths measured faster for these.
_DIRECT_CASES = [
    (64, 128, 23, [1, 1, 1, 1], 1, 2),  # stride 2: 12 x 12 outputs from an odd size
    (80, 80, 26, [0, 1, 1, 0], 1, 2),  # stride 2, asymmetric pads, 13 x 13 outputs
    (160, 160, 12, [1, 1, 1, 1], 1, 1),  # 36 tiles for 1.6 MB of transformed weights
]


_WINOGRAD_MODEL = """
def winograd_model(zoo, cin, cout, pads, stride):
    # 3x3 convolution with bias, a residual from a bias-free side branch with its own
    # activation, then ReLU.
    g = zoo.GraphBuilder(seed=9)
    y = g.op("Conv", ["x", g.weight(cout, cin, 3, 3), g.weight(cout, scale=0.1)], kernel_shape=[3, 3], pads=pads,
             strides=[stride, stride])
    side = g.op("Conv", ["x", g.weight(cout, cin, 3, 3)], kernel_shape=[3, 3], pads=pads, strides=[stride, stride])
    side = g.op("LeakyRelu", [side], alpha=0.25)
    g.op("Relu", [g.op("Add", [y, side])])
    return g.model([zoo.image_input(cin, None)])
"""


_WINOGRAD_SCRIPT = (
    _WINOGRAD_MODEL
    + r"""
import sys, json, numpy as np, aiov as ov
sys.path.insert(0, sys.argv[1])
import model_builders as zoo
out = []
for cin, cout, size, pads, n, stride in json.loads(sys.argv[2]):
    x = np.random.default_rng(cin + size).standard_normal((n, cin, size, size)).astype(np.float32)
    proto = winograd_model(zoo, cin, cout, pads, stride)
    out.append(ov.compile_model(proto.SerializeToString())({"x": x})[0].tolist())
print(json.dumps(out))
"""
)


def test_winograd_convolutions_match_the_direct_path_and_the_reference():
    # 3x3 stride-1 convolutions with enough tiles and channels run as Winograd F(2x2, 3x3);
    # AIOV_WINOGRAD=0 keeps them on the direct GEMM. Both must match ONNX's reference; they
    # differ only in rounding. The direct cases take the direct GEMM either way.
    import json
    import os
    import subprocess
    import sys

    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = {}
    for flag in ("1", "0"):
        env = dict(os.environ, AIOV_WINOGRAD=flag)
        proc = subprocess.run(
            [sys.executable, "-c", _WINOGRAD_SCRIPT, tests, json.dumps(_WINOGRAD_CASES + _DIRECT_CASES)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        results[flag] = [np.array(r, np.float32) for r in json.loads(proc.stdout.strip().splitlines()[-1])]
    space = {}
    exec(_WINOGRAD_MODEL, space)
    cases = _WINOGRAD_CASES + _DIRECT_CASES
    assert len(results["1"]) == len(cases)
    for i, ((cin, cout, size, pads, n, stride), wino, direct) in enumerate(zip(cases, results["1"], results["0"])):
        proto = space["winograd_model"](zoo, cin, cout, pads, stride)
        x = np.random.default_rng(cin + size).standard_normal((n, cin, size, size)).astype(np.float32)
        expected = ReferenceEvaluator(proto).run(None, {"x": x})[0]
        np.testing.assert_allclose(wino, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(direct, expected, rtol=1e-4, atol=1e-4)
        if i < len(_WINOGRAD_CASES):
            assert not np.array_equal(wino, direct)  # the Winograd path really ran
        else:
            np.testing.assert_array_equal(wino, direct)
