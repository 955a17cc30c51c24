"""The GEMM paths and their epilogues (bias, residual, clamp, activations) through whole
models: every tile shape and K slicing gives the optimizer-off and reference results. Moved
from test_graph_optimizer.py."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import model_builders as zoo  # noqa: E402
from graph_checks import check, image, node_types  # noqa: E402

RNG = np.random.default_rng(21)


@pytest.mark.parametrize("rows", [1, 3, 20, 100])
@pytest.mark.parametrize("width", [10, 100])
def test_mlp_epilogues_on_every_gemm_path(rows, width, monkeypatch):
    proto = zoo.mlp(sizes=(37, width, width, 7))
    check(proto, {"x": RNG.standard_normal((rows, 37)).astype(np.float32)}, monkeypatch)


@pytest.mark.parametrize("rows", [512, 700])
@pytest.mark.parametrize("k", [40, 600])
@pytest.mark.parametrize("n", [64, 128])
@pytest.mark.parametrize("act", ["Relu", "Sigmoid"])
def test_tall_products_on_wide_tiles(rows, k, n, act, monkeypatch):
    # Weights for a tall A against 64 or 128 columns are packed for the wide 6 x 64 tiles
    # (AVX-512): ragged last tiles, two K slices, a residual written over and an activation
    # applied after the tile (Sigmoid) must all hold there too.
    g = zoo.GraphBuilder(seed=12)
    h = g.dense("x", k, n)
    g.op(act, [g.op("Add", [g.dense(h, n, n), h])])
    proto = g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", k])])
    check(proto, {"x": RNG.standard_normal((rows, k)).astype(np.float32)}, monkeypatch, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("rows", [64, 1000])
def test_mlp_whose_rows_are_a_multiple_of_2_kib(rows, monkeypatch):
    # K = 512 and 1024: rows of A in place would share L1 sets, so few-column products copy
    # them to a spread stride first (narrow tiles for the 12-wide layer).
    proto = zoo.mlp(sizes=(1024, 512, 40, 1024, 12))
    check(proto, {"x": RNG.standard_normal((rows, 1024)).astype(np.float32)}, monkeypatch, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize(
    "cin, cout, k",
    [
        (600, 40, 1),  # K beyond one GEMM K slice, few columns: A rows read in place
        (600, 96, 1),  # several column panels: packed A
        (64, 20, 3),  # 3x3, K = 576: rows made on demand over two K slices
        (5, 70, 3),
        (600, 12, 1),  # at most 16 columns: narrow tiles of more rows (AVX-512)
        (64, 16, 3),
        (5, 8, 3),  # at most 8 columns: narrow tiles on AVX2 too
    ],
)
@pytest.mark.parametrize("act", ["Relu", "Clip"])
def test_residual_and_clamp_merged_in_the_gemm_tile(cin, cout, k, act, monkeypatch):
    # The residual joins the first K slice and the clamp the last: both must hold when the
    # product is accumulated over several slices.
    g = zoo.GraphBuilder(seed=8)
    side = g.op("Conv", ["x", g.weight(cout, cin, 1, 1), g.weight(cout, scale=0.1)], kernel_shape=[1, 1])
    y = g.op(
        "Conv", ["x", g.weight(cout, cin, k, k), g.weight(cout, scale=0.1)], kernel_shape=[k, k], pads=[k // 2] * 4
    )
    y = g.op("Add", [y, side])
    if act == "Relu":
        g.op("Relu", [y])
    else:
        g.op("Clip", [y, g.const(np.float32(-0.5)), g.const(np.float32(0.7))])
    proto = g.model([zoo.image_input(cin, None)])
    feeds = image(1, cin, 9)
    check(proto, feeds, monkeypatch, rtol=2e-4, atol=2e-4)
    types = node_types(proto, feeds)
    assert types.count("aiov.FusedConv") == 2 and not {"Add", "Relu", "Clamp"} & set(types)


def test_fused_gelu_is_accurate_over_the_whole_range():
    # The fused Gelu uses its own erf approximation: within 2e-6 of the exact value from
    # -12 to 12, through the tails where erf saturates.
    import math

    x = np.linspace(-12, 12, 64 * 64, dtype=np.float32).reshape(64, 64)
    g = zoo.GraphBuilder(seed=13)
    h = g.op("Add", [g.op("MatMul", ["x", g.const(np.eye(64, dtype=np.float32))]), g.const(np.zeros(64, np.float32))])
    g.op("Gelu", [h])
    proto = g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])], opset=20)
    got = ov.compile_model(proto.SerializeToString())({"x": x})[0]
    exact = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))(x.astype(np.float64))
    assert node_types(proto, {"x": x}) == ["aiov.FusedMatMul"]
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=2e-6)
