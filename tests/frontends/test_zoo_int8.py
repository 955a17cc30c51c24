"""Zoo architectures (tests/zoo, exported by torch) quantized as users quantize them with
onnxruntime.quantization: a CNN statically in QDQ form, transformers dynamically. aiov runs
their products on its integer kernels and matches onnxruntime's int8 results."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")
import onnx  # noqa: E402

import model_builders  # noqa: E402
from graph_checks import aiov_outputs, node_types, onnxruntime_outputs  # noqa: E402

ZOO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")


def zoo_model(name):
    """The model and its first recorded case's inputs."""
    data = np.load(os.path.join(ZOO, f"{name}.npz"))
    feeds = {k.split(".", 1)[1]: data[k] for k in data.files if k.startswith("in0.")}
    return onnx.load(os.path.join(ZOO, f"{name}.onnx")), feeds


def test_static_qdq_resnet_runs_integer_convolutions():
    model, feeds = zoo_model("resnet")
    rng = np.random.default_rng(23)
    image = feeds["pixels"]
    calibration = [{"pixels": rng.standard_normal(image.shape).astype(np.float32)} for _ in range(3)]
    proto = model_builders.quantized(model, calibration)
    got, want = aiov_outputs(proto, feeds)[0], onnxruntime_outputs(proto, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05 * np.max(np.abs(want)))
    convs = sum(n.op_type == "Conv" for n in proto.graph.node)
    types = node_types(proto, feeds)
    assert types.count("aiov.QuantizedConv") == convs
    assert "Convolution" not in types and "aiov.FusedConv" not in types


@pytest.mark.parametrize("name", ["bert", "lstm_gru"])
def test_dynamic_transformer_and_recurrent_run_integer_products(name):
    model, feeds = zoo_model(name)
    proto = model_builders.quantized(model)
    assert all(n.domain in ("", "ai.onnx") for n in proto.graph.node)  # nothing onnxruntime-only
    got, want = aiov_outputs(proto, feeds), onnxruntime_outputs(proto, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3 * max(1.0, np.max(np.abs(w))))
    products = sum(n.op_type == "MatMulInteger" for n in proto.graph.node)
    assert products > 0
    assert node_types(proto, feeds).count("aiov.QuantizedMatMul") == products
