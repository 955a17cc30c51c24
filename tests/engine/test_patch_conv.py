"""Convolutions whose stride is their window ("patchify": ViT's, Swin's and ConvNeXt's patch
embeddings) and other large-stride stems, as ONNX models against onnxruntime: on a model's
few-channel NCHW image aiov.FusedConv makes the rows of each block of patches on demand
(docs/kernels.md: a stride the grid kernels cannot read in place), on more channels it runs
in NHWC; either way bias and Relu stay in the convolution's epilogue."""

import logging
import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import aiov as ov

from graph_checks import node_types, onnxruntime_outputs

RNG = np.random.default_rng(29)


def conv_model(n, c, size, o, k, stride, pads=0, bias=True, relu=False, dilation=1):
    w = (RNG.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(RNG.standard_normal(o).astype(np.float32), "b"))
        inputs.append("b")
    nodes = [
        helper.make_node(
            "Conv",
            inputs,
            ["y" if not relu else "c"],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pads] * 4,
            dilations=[dilation, dilation],
        )
    ]
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "patch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, size[0], size[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_kernels(proto, caplog):
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="aiov"):
        ov.compile_model(proto.SerializeToString(), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return re.findall(r"\(aiov\.FusedConv\)[^:]*: ([^\n]*)", caplog.text)


def run(proto, x, threads):
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    return ov.compile_model(proto.SerializeToString(), "CPU", config)({"x": x})[0]


@pytest.mark.parametrize(
    "n, c, size, o, k",
    [
        (8, 3, (32, 32), 32, 8),  # torchvision's ViT at the zoo's size
        (2, 3, (64, 48), 96, 4),  # Swin's 4x4 patches
        (1, 1, (40, 40), 24, 5),  # one channel
        (3, 4, (33, 35), 20, 4),  # four channels; the last partial patch of each row and column unread
        (1, 3, (48, 48), 64, 16),  # ViT-B/16's 16x16 patches
    ],
)
@pytest.mark.parametrize("bias, relu", [(True, False), (False, True)])
@pytest.mark.parametrize("threads", [1, 0])
def test_patch_embedding_of_a_planar_image_matches_onnxruntime(n, c, size, o, k, bias, relu, threads, caplog):
    proto = conv_model(n, c, size, o, k, k, bias=bias, relu=relu)
    x = RNG.standard_normal((n, c) + size).astype(np.float32)
    expected = onnxruntime_outputs(proto, {"x": x})[0]
    np.testing.assert_allclose(run(proto, x, threads), expected, rtol=1e-4, atol=1e-4)
    assert node_types(proto, {"x": x}).count("aiov.FusedConv") == 1  # the Relu in its epilogue
    assert [k for k in conv_kernels(proto, caplog) if "planar-input conv, rows made on demand" in k]


@pytest.mark.parametrize(
    "n, c, size, o, k, stride, pads",
    [
        (2, 3, (45, 47), 32, 11, 4, 2),  # AlexNet's stem: windows over the borders on every side
        (1, 3, (29, 30), 16 + 3, 7, 3, 3),  # 7x7/3, more outputs than the few-output kernel takes
        (2, 4, (20, 21), 40, 3, 3, 1),  # 3x3/3 with padding
    ],
)
@pytest.mark.parametrize("threads", [1, 0])
def test_large_stride_stems_match_onnxruntime(n, c, size, o, k, stride, pads, threads, caplog):
    proto = conv_model(n, c, size, o, k, stride, pads=pads, relu=True)
    x = RNG.standard_normal((n, c) + size).astype(np.float32)
    expected = onnxruntime_outputs(proto, {"x": x})[0]
    np.testing.assert_allclose(run(proto, x, threads), expected, rtol=1e-4, atol=1e-4)
    assert [k for k in conv_kernels(proto, caplog) if "planar-input conv, rows made on demand" in k]


def test_dilated_large_stride_stem_keeps_the_grid(caplog):
    # Dilated taps are not contiguous on an image line: the grid's packed rows still serve.
    proto = conv_model(2, 3, (30, 30), 24, 3, 3, pads=1, dilation=2)
    x = RNG.standard_normal((2, 3, 30, 30)).astype(np.float32)
    expected = onnxruntime_outputs(proto, {"x": x})[0]
    np.testing.assert_allclose(run(proto, x, 1), expected, rtol=1e-4, atol=1e-4)
    kernels = conv_kernels(proto, caplog)
    assert kernels and all(k.startswith("planar-input conv, packed GEMM") for k in kernels)


@pytest.mark.parametrize(
    "n, c, size, o, k",
    [
        (8, 17, (32, 32), 32, 8),  # more channels than a planar image: NHWC, runs of whole kernel rows
        (2, 8, (16, 20), 48, 4),  # few channels: im2col rows
        (2, 32, (14, 14), 64, 2),  # ConvNeXt's downsampling
    ],
)
@pytest.mark.parametrize("relu", [False, True])
def test_patch_embedding_in_nhwc_matches_onnxruntime(n, c, size, o, k, relu):
    proto = conv_model(n, c, size, o, k, k, relu=relu)
    x = RNG.standard_normal((n, c) + size).astype(np.float32)
    expected = onnxruntime_outputs(proto, {"x": x})[0]
    np.testing.assert_allclose(run(proto, x, 0), expected, rtol=1e-4, atol=1e-4)
    assert node_types(proto, {"x": x}).count("aiov.FusedConv") == 1
