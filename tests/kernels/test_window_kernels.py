"""Convolution and pooling kernels (NHWC windows, few-channel images read as NCHW, im2col rows
cut by K slices, wide tiles) on single-conv models: the same results with the optimizer on
(the fused kernels) and off, and ONNX's reference results. Moved from test_graph_optimizer.py."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import model_builders as zoo  # noqa: E402
from graph_checks import check, image, node_types  # noqa: E402
from model_builders import single_conv  # noqa: E402

RNG = np.random.default_rng(21)


@pytest.mark.parametrize(
    "cin, cout, k, stride, group, dilation, pads",
    [
        (3, 8, 3, 1, 1, 1, None),
        (16, 32, 1, 1, 1, 1, None),  # 1x1: GEMM on the input as it lies
        (16, 32, 1, 2, 1, 1, None),  # strided 1x1: rows gathered
        (8, 16, 3, 2, 1, 1, None),
        (8, 8, 3, 1, 1, 2, None),  # dilated
        (8, 12, 3, 1, 4, 1, None),  # grouped, not depthwise
        (16, 16, 3, 1, 16, 1, None),  # depthwise
        (16, 16, 5, 2, 16, 1, None),  # depthwise 5x5 strided
        (8, 16, 3, 1, 8, 1, None),  # channel multiplier 2: grouped path
        (3, 5, 7, 2, 1, 1, [3, 2, 1, 3]),  # asymmetric pads
        (4, 6, 2, 1, 1, 1, [0, 0, 0, 0]),  # even kernel, no padding
    ],
)
def test_convolution_variants_match(cin, cout, k, stride, group, dilation, pads, monkeypatch):
    proto = single_conv(cin, cout, k, stride, group, dilation, pads)
    for n, size in [(1, 9), (2, 12)]:
        check(proto, image(n, cin, size, size + 3), monkeypatch)


@pytest.mark.parametrize(
    "cin, k, stride, pads",
    [
        (3, 3, 2, [1, 1, 1, 1]),  # MobileNet's stem: 9-float kernel rows copied at a fixed length
        (3, 7, 2, [3, 3, 3, 3]),  # ResNet's stem: 21-float rows
        (3, 3, 1, [0, 2, 1, 0]),  # asymmetric pads: borders on one side only
        (2, 5, 3, [2, 2, 2, 2]),  # other run lengths: the generic copy
        (3, 7, 1, [3, 3, 3, 3]),  # images narrower than the kernel: every column is a border
    ],
)
@pytest.mark.parametrize("size", [(5, 4), (15, 17), (33, 30)])
def test_stem_convolutions_on_few_channels_match(cin, k, stride, pads, size, monkeypatch):
    # Few channels: the image is read as NCHW, output pixels inside it in place and those over
    # the padding packed; a GEMM row tile starts and ends anywhere in an output row (tiles are
    # cut at row ends and borders), and spans two images.
    proto = single_conv(cin, 32, k, stride, pads=pads, after=[("Relu", {})])
    feeds = {"x": RNG.standard_normal((2, cin) + size).astype(np.float32)}
    check(proto, feeds, monkeypatch)


@pytest.mark.parametrize(
    "cin, cout, k, stride, group, dilation, pads",
    [
        (3, 32, 3, 2, 1, 1, [1, 1, 1, 1]),  # MobileNet's stem: in-place rows two floats apart
        (3, 64, 7, 2, 1, 1, [3, 3, 3, 3]),  # ResNet's: 64 columns on the wide tiles
        (3, 40, 3, 1, 1, 2, [0, 2, 1, 0]),  # stride 1, dilated, one-sided borders, a ragged second panel
        (4, 12, 3, 1, 2, 1, None),  # two groups, each reading its own planes
        (1, 8, 5, 3, 1, 1, [2, 2, 2, 2]),  # stride 3: no in-place kernel, every row packed
        (2, 8, 3, 2, 1, 1, [4, 1, 0, 4]),  # padding wider than the kernel: windows with no row inside
    ],
)
def test_few_channel_images_are_read_without_a_transpose(cin, cout, k, stride, group, dilation, pads, monkeypatch):
    proto = single_conv(cin, cout, k, stride, group, dilation, pads, after=[("Relu", {})])
    for size in [(5, 4), (29, 31), (46, 44)]:
        feeds = {"x": RNG.standard_normal((2, cin) + size).astype(np.float32)}
        check(proto, feeds, monkeypatch)
    # The only layout change left is the result's, back to NCHW.
    assert node_types(proto, feeds) == ["aiov.FusedConv", "Transpose"]


@pytest.mark.parametrize(
    "cin, k, stride, dilation, pads",
    [
        (72, 3, 2, 1, None),  # K = 648 in two slices of 324: a cut inside the 2nd kernel row
        (40, 5, 2, 1, [2, 1, 0, 2]),  # K = 1000, 200-float kernel rows, asymmetric borders
        (72, 3, 1, 1, [0, 2, 1, 0]),  # stride 1, borders on one side only
        (72, 3, 1, 2, None),  # dilated kernel rows are not one run: the per-tap copy
    ],
)
def test_kernel_rows_cut_by_k_slices_match(cin, k, stride, dilation, pads, monkeypatch):
    # Many channels: im2col rows come a span of output pixels and a piece of a kernel row at
    # a time, and a K slice of the GEMM may begin or end inside a kernel row.
    proto = single_conv(cin, 16, k, stride, dilation=dilation, pads=pads, after=[("Relu", {})])
    feeds = {"x": RNG.standard_normal((2, cin, 11, 14)).astype(np.float32)}
    check(proto, feeds, monkeypatch, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad(auto_pad, monkeypatch):
    check(single_conv(4, 6, 3, 2, auto_pad=auto_pad), image(1, 4, 10), monkeypatch)


@pytest.mark.parametrize("cin, cout, k, stride", [(32, 64, 3, 2), (24, 128, 1, 1), (64, 64, 1, 2)])
def test_tall_convolutions_on_wide_tiles(cin, cout, k, stride, monkeypatch):
    # At least 512 output pixels against 64 or 128 channels: wide tiles under the im2col rows.
    proto = single_conv(cin, cout, k, stride, after=[("Relu", {})])
    check(proto, image(1, cin, 26 * stride, 27 * stride), monkeypatch, rtol=2e-4, atol=2e-4)


def test_pooling_in_nhwc_matches(monkeypatch):
    g = zoo.GraphBuilder(seed=8)
    y = g.op("Relu", [g.op("Conv", ["x", g.weight(6, 3, 3, 3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])])
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    y = g.op("AveragePool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)
    y = g.op("AveragePool", [y], kernel_shape=[2, 2], pads=[1, 1, 0, 0], count_include_pad=1)
    g.op("ReduceMax", [y, g.const(np.array([1], np.int64))], keepdims=0)
    proto = g.model([zoo.image_input(3, None)], opset=18)
    feeds = image(2, 3, 17, 13)
    check(proto, feeds, monkeypatch)


@pytest.mark.parametrize("channels", [3, 8, 9, 12, 20, 24, 40])
@pytest.mark.parametrize("k, stride", [(3, 1), (3, 2), (5, 2), (3, 3)])
def test_depthwise_and_pooling_at_channel_counts_off_the_vector_width(channels, k, stride, monkeypatch):
    # Channels that are not a multiple of the widest vector (16 on AVX-512) go in narrower
    # vectors, unrolled for 3x3 and 5x5 windows, a last partial one recomputing channels of
    # the one before; 3x3 stride 3 takes the generic window loop. Pads on one side only put
    # border pixels in the unrolled runs.
    g = zoo.GraphBuilder(seed=9)
    pads = [k // 2, 0, 0, k // 2]
    y = g.op("Relu", [g.op("Conv", ["x", g.weight(channels, 3, 1, 1)], kernel_shape=[1, 1])])
    y = g.op(
        "Conv",
        [y, g.weight(channels, 1, k, k), g.weight(channels, scale=0.1)],
        kernel_shape=[k, k],
        strides=[stride, stride],
        pads=pads,
        group=channels,
    )
    y = g.op("AveragePool", [y], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0)
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0])
    proto = g.model([zoo.image_input(3, None)])
    check(proto, image(2, 3, 19, 23), monkeypatch)


@pytest.mark.parametrize("channels", [8, 12, 24])
def test_depthwise_residual_in_place_at_channel_counts_off_the_vector_width(channels, monkeypatch):
    # The residual (a branch nothing else reads) is the depthwise convolution's own output
    # memory: no channel may be computed twice, since its first result has already replaced
    # the residual it read.
    g = zoo.GraphBuilder(seed=10)
    r = g.op("Relu", [g.op("Conv", ["x", g.weight(channels, 3, 1, 1)], kernel_shape=[1, 1])])
    branch = g.op("Sigmoid", [g.op("Conv", ["x", g.weight(channels, 3, 1, 1)], kernel_shape=[1, 1])])
    y = g.op("Conv", [r, g.weight(channels, 1, 3, 3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=channels)
    g.op("Relu", [g.op("Add", [y, branch])])
    proto = g.model([zoo.image_input(3, None)])
    check(proto, image(2, 3, 13, 18), monkeypatch)
