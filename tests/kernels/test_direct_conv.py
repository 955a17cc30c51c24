"""Convolution kernels run directly (aiov._core._testing.run_op) against a numpy reference:
the plain NCHW Convolution, and every path of aiov.FusedConv, the NHWC convolution the
optimizer makes (docs/kernels.md, "Kernel names"): a 1x1 GEMM on the input as it lies, rows
read in place (ConvRuns, 16+ channels per group), rows made on demand (ConvRows, few channels),
an NCHW image read as it lies (ConvPlanes; strided more than the grid reads in place, its rows made
on demand: PlanarRows), at most 16 outputs from an NCHW or NHWC input
without the GEMM, depthwise, grouped and Winograd F(2x2, 3x3), each with its bias, residual
and activation."""

import numpy as np
import pytest

from aiov._core import _testing

RNG = np.random.default_rng(41)


def conv_reference(x, w, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1):
    """NCHW convolution in float64; pads are (top, left, bottom, right)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // group
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    oh = (h + top + bottom - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + left + right - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((n, o, oh, ow))
    for g in range(group):
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dilations[0], j * dilations[1]
                patch = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    y0 : y0 + strides[0] * (oh - 1) + 1 : strides[0],
                    x0 : x0 + strides[1] * (ow - 1) + 1 : strides[1],
                ]
                out[:, g * og : (g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og : (g + 1) * og, :, i, j])
    return out


def filters(o, cg, k):
    return (RNG.standard_normal((o, cg, k, k)) / np.sqrt(cg * k * k)).astype(np.float32)


def window_attrs(strides, pads, dilations, group):
    return {
        "strides": list(strides),
        "pads_begin": [pads[0], pads[1]],
        "pads_end": [pads[2], pads[3]],
        "dilations": list(dilations),
        "group": group,
    }


CASES = [
    # c, o, k, strides, pads, dilations, group, size: the path it takes in aiov.FusedConv
    (24, 40, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, (7, 9)),  # 1x1: one GEMM on the input as it lies
    (16, 24, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1, (9, 9)),  # strided 1x1: rows gathered
    (32, 20, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, (13, 11)),  # many channels: runs read in place
    (32, 24, 3, (2, 1), (0, 2, 1, 0), (1, 1), 1, (12, 15)),  # runs, asymmetric padding and strides
    (20, 16, 5, (2, 2), (2, 2, 2, 2), (1, 1), 1, (11, 10)),  # runs over 5x5 windows
    (5, 17, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, (9, 8)),  # few channels: rows made on demand
    (6, 20, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1, (10, 10)),  # dilated rows
    (6, 8, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, (10, 10)),  # at most 16 outputs: not a GEMM
    (8, 12, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2, (7, 7)),  # grouped, 4 channels into 6 per group: few outputs
    (32, 32, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2, (9, 9)),  # grouped, 16 into 16 per group: few outputs
    (64, 64, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2, (9, 9)),  # grouped, 32 into 32 per group: runs per group
    (16, 48, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2, (7, 8)),  # grouped, 8 into 24 per group: rows per group
    (24, 24, 1, (1, 1), (0, 0, 0, 0), (1, 1), 3, (6, 7)),  # grouped 1x1 (ShuffleNet): rows per group
    (16, 16, 3, (1, 1), (1, 1, 1, 1), (1, 1), 16, (10, 9)),  # depthwise
    (16, 16, 5, (2, 2), (2, 2, 2, 2), (1, 1), 16, (11, 11)),  # depthwise 5x5 strided
    (48, 48, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, (17, 15)),  # Winograd F(2x2, 3x3), odd output
    (64, 64, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, (23, 23)),  # stride-2 3x3: runs read in place, not Winograd
]


# The epilogue activations these tests run, with the parameters they pass: (alpha, beta, act(y)).
def activated(y, act):
    alpha, beta = {"clamp": (-0.5, 0.7), "leaky_relu": (0.1, 0.0)}.get(act, (0.0, 0.0))
    expected = {
        "none": lambda: y,
        "relu": lambda: np.maximum(y, 0),
        "clamp": lambda: np.clip(y, alpha, beta),
        "leaky_relu": lambda: np.where(y < 0, alpha * y, y),
        "hswish": lambda: y * np.clip(y / 6 + 0.5, 0, 1),
    }[act]()
    return alpha, beta, expected


@pytest.mark.parametrize("c, o, k, strides, pads, dilations, group, size", CASES)
def test_plain_convolution_matches_numpy(c, o, k, strides, pads, dilations, group, size):
    x = RNG.standard_normal((2, c) + size).astype(np.float32)
    w = filters(o, c // group, k)
    (out,) = _testing.run_op("Convolution", [x, w], window_attrs(strides, pads, dilations, group), runtime_inputs=[0])
    np.testing.assert_allclose(out, conv_reference(x, w, strides, pads, dilations, group), rtol=1e-4, atol=1e-4)


def fused_conv(
    x_nchw,
    w,
    bias,
    strides,
    pads,
    dilations,
    group,
    residual=None,
    act="none",
    act_alpha=0.0,
    act_beta=0.0,
    planar=False,
    threads=1,
):
    """aiov.FusedConv on the NHWC form of x (or on x as it lies when planar); NCHW result."""
    attrs = window_attrs(strides, pads, dilations, group)
    attrs.update(layout="nhwc", act=act, act_alpha=act_alpha, act_beta=act_beta)
    if planar:
        attrs["input_layout"] = "nchw"
    x = x_nchw if planar else np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    inputs = [x, w, bias]
    runtime = [0]
    if residual is not None:
        inputs.append(np.ascontiguousarray(residual.transpose(0, 2, 3, 1)))
        runtime.append(3)
    (out,) = _testing.run_op("aiov.FusedConv", inputs, attrs, runtime_inputs=runtime, threads=threads)
    return out.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("c, o, k, strides, pads, dilations, group, size", CASES)
@pytest.mark.parametrize("threads", [1, 0])
def test_fused_convolution_paths_match_numpy(c, o, k, strides, pads, dilations, group, size, threads):
    x = RNG.standard_normal((2, c) + size).astype(np.float32)
    w = filters(o, c // group, k)
    bias = RNG.standard_normal(o).astype(np.float32)
    expected = conv_reference(x, w, strides, pads, dilations, group) + bias[:, None, None]
    out = fused_conv(x, w, bias, strides, pads, dilations, group, threads=threads)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c, o, k, strides, pads, dilations, group, size", CASES[::2])
@pytest.mark.parametrize("act", ["relu", "clamp", "leaky_relu"])
def test_fused_convolution_applies_residual_then_activation(c, o, k, strides, pads, dilations, group, size, act):
    x = RNG.standard_normal((1, c) + size).astype(np.float32)
    w = filters(o, c // group, k)
    bias = RNG.standard_normal(o).astype(np.float32) * 0.1
    y = conv_reference(x, w, strides, pads, dilations, group) + bias[:, None, None]
    residual = RNG.standard_normal(y.shape).astype(np.float32)
    y = y + residual
    alpha, beta, expected = activated(y, act)
    out = fused_conv(
        x, w, bias, strides, pads, dilations, group, residual=residual, act=act, act_alpha=alpha, act_beta=beta
    )
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "c, o, k, strides, pads, size",
    [
        (3, 32, 3, (2, 2), (1, 1, 1, 1), (15, 17)),  # MobileNet's stem
        (3, 64, 7, (2, 2), (3, 3, 3, 3), (20, 19)),  # ResNet's stem: wide tiles
        (3, 40, 3, (1, 1), (0, 2, 1, 0), (9, 31)),  # stride 1, one-sided borders
        (1, 8, 5, (3, 3), (2, 2, 2, 2), (13, 13)),  # stride 3
        (3, 24, 8, (8, 8), (0, 0, 0, 0), (16, 27)),  # patches (stride 8): rows made on demand
        (4, 20, 5, (4, 3), (2, 1, 0, 2), (17, 15)),  # stride 4 down, 3 across: rows over every border
    ],
)
@pytest.mark.parametrize("threads", [1, 0])
def test_fused_convolution_reads_a_few_channel_nchw_image_as_it_lies(c, o, k, strides, pads, size, threads):
    x = RNG.standard_normal((2, c) + size).astype(np.float32)
    w = filters(o, c, k)
    bias = RNG.standard_normal(o).astype(np.float32)
    expected = np.maximum(conv_reference(x, w, strides, pads) + bias[:, None, None], 0)
    out = fused_conv(x, w, bias, strides, pads, (1, 1), 1, act="relu", planar=True, threads=threads)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "c, o, k, strides, pads, group, size",
    [
        (4, 40, 4, (4, 4), (0, 0, 0, 0), 2, (17, 18)),  # grouped patches: each group's rows from its planes
        (3, 36, 5, (3, 3), (1, 2, 2, 1), 3, (16, 17)),  # one plane a group, over the borders
    ],
)
@pytest.mark.parametrize("threads", [1, 0])
def test_grouped_large_stride_convolution_of_a_planar_image(c, o, k, strides, pads, group, size, threads):
    x = RNG.standard_normal((2, c) + size).astype(np.float32)
    w = filters(o, c // group, k)
    bias = RNG.standard_normal(o).astype(np.float32)
    expected = conv_reference(x, w, strides, pads, (1, 1), group) + bias[:, None, None]
    out = fused_conv(x, w, bias, strides, pads, (1, 1), group, planar=True, threads=threads)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def check_few_output_convolution(c, o, k, strides, pads, dilations, size, act, threads, planar, group=1):
    # The few-output kernels against float64: bias, a residual (none when act is "none", for
    # the NHWC kernel's plain store) and the activation, from a planar or an NHWC input. k is
    # a square window's side or a (height, width) pair.
    x = RNG.standard_normal((2, c) + size).astype(np.float32)
    kh, kw = (k, k) if isinstance(k, int) else k
    w = (RNG.standard_normal((o, c // group, kh, kw)) / np.sqrt(c // group * kh * kw)).astype(np.float32)
    bias = RNG.standard_normal(o).astype(np.float32)
    y = conv_reference(x, w, strides, pads, dilations, group) + bias[:, None, None]
    residual = None if act == "none" else RNG.standard_normal(y.shape).astype(np.float32)
    if residual is not None:
        y = y + residual
    alpha, beta, expected = activated(y, act)
    out = fused_conv(
        x,
        w,
        bias,
        strides,
        pads,
        dilations,
        group,
        residual=residual,
        act=act,
        act_alpha=alpha,
        act_beta=beta,
        planar=planar,
        threads=threads,
    )
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "c, o, k, strides, pads, dilations, size",
    [
        (3, 8, 7, (2, 2), (3, 3, 3, 3), (1, 1), (32, 32)),  # ResNet/DenseNet stems at zoo widths
        (3, 16, 7, (2, 2), (3, 3, 3, 3), (1, 1), (21, 19)),  # a last run of pixels short of 8
        (3, 12, 3, (2, 2), (1, 1, 1, 1), (1, 1), (15, 17)),  # channels short of a vector
        (3, 5, 3, (1, 1), (0, 2, 1, 0), (1, 1), (9, 31)),  # stride 1, one-sided pads
        (1, 1, 5, (3, 3), (2, 2, 2, 2), (1, 1), (13, 13)),  # one channel in and out, stride 3
        (2, 9, 3, (1, 2), (2, 1, 0, 3), (2, 1), (11, 10)),  # dilated rows, padding wider than the kernel
        # Unpadded: every image but the last read as it lies, its last short runs reading on
        (3, 16, 3, (2, 2), (0, 0, 0, 0), (1, 1), (17, 19)),  # SqueezeNet's stem
        (3, 8, 3, (2, 2), (0, 0, 0, 0), (1, 1), (16, 16)),  # a last input row and column no window reads
        (1, 4, 5, (1, 1), (0, 0, 0, 0), (1, 1), (9, 12)),  # one channel
    ],
)
@pytest.mark.parametrize("act", ["relu", "clamp", "hswish"])
@pytest.mark.parametrize("threads", [1, 0])
def test_few_output_convolution_of_a_planar_image(c, o, k, strides, pads, dilations, size, act, threads):
    # At most 16 output channels: one vector per output pixel over a zero-padded copy of the
    # NCHW image, with bias, residual and the activation (hswish as a pass after the store).
    check_few_output_convolution(c, o, k, strides, pads, dilations, size, act, threads, planar=True)


# At most 16 outputs from an NHWC input: one vector of output channels per pixel. 3x3 at
# stride 1 or 2 takes runs of 8 and 4 pixels sharing each input column between the taps
# (masked where a run crosses the border), other windows runs of 8 reading each tap.
FEW_OUTPUT_NHWC = [
    # c, o, k, strides, pads, dilations, size
    (8, 8, 3, (1, 1), (1, 1, 1, 1), (1, 1), (8, 8)),  # one masked run of 8 per row
    (5, 13, 3, (1, 1), (1, 1, 1, 1), (1, 1), (9, 23)),  # runs of 8, 8, 4 and 3 single pixels
    (16, 16, 3, (2, 2), (1, 1, 1, 1), (1, 1), (17, 19)),  # stride 2, a full 16-float vector
    (3, 1, 3, (2, 1), (0, 2, 1, 0), (1, 1), (12, 15)),  # one output, asymmetric padding
    (24, 9, 3, (1, 2), (3, 3, 3, 3), (1, 1), (5, 6)),  # padding wider than the kernel
    (7, 16, 3, (1, 1), (2, 2, 2, 2), (2, 2), (11, 13)),  # dilated: a pixel per tap's read
    (4, 11, 5, (1, 1), (2, 2, 2, 2), (1, 1), (12, 21)),  # 5x5
    (9, 6, 2, (2, 3), (0, 0, 1, 1), (1, 1), (10, 17)),  # even window, stride 3 across
    (64, 12, 3, (1, 1), (1, 1, 1, 1), (1, 1), (6, 5)),  # wide input
]


@pytest.mark.parametrize("c, o, k, strides, pads, dilations, size", FEW_OUTPUT_NHWC)
@pytest.mark.parametrize("act", ["none", "relu", "clamp", "hswish"])
@pytest.mark.parametrize("threads", [1, 0])
def test_few_output_convolution_of_an_nhwc_input(c, o, k, strides, pads, dilations, size, act, threads):
    # Without an activation, also without a residual (the plain store).
    check_few_output_convolution(c, o, k, strides, pads, dilations, size, act, threads, planar=False)


# Grouped (not depthwise), at most 16 outputs per group: the few-output kernel runs each group
# over its slice of every pixel's channels (with its slice of bias and residual), instead of a
# GEMM per group with N of a few columns.
FEW_OUTPUT_GROUPED = [
    # c, o, k, strides, pads, dilations, group, size
    (32, 32, (1, 16), (1, 1), (0, 8, 0, 8), (1, 1), 4, (1, 39)),  # wav2vec2's positional conv (1-D, even window)
    (32, 32, 3, (1, 1), (1, 1, 1, 1), (1, 1), 8, (9, 19)),  # ResNeXt: 4 into 4, runs of 8, 4 and singles
    (48, 48, 3, (2, 2), (1, 1, 1, 1), (1, 1), 6, (11, 13)),  # RegNet: 8 per group, stride 2
    (24, 24, 3, (1, 1), (2, 2, 2, 2), (2, 2), 2, (10, 9)),  # dilated, 12 into 12 per group
    (20, 26, 5, (1, 2), (2, 1, 2, 3), (1, 1), 2, (8, 12)),  # 10 into 13 per group: 16-float vectors
    (6, 9, 2, (2, 1), (0, 1, 1, 0), (1, 1), 3, (7, 6)),  # even window, 2 into 3
]


@pytest.mark.parametrize("c, o, k, strides, pads, dilations, group, size", FEW_OUTPUT_GROUPED)
@pytest.mark.parametrize("act", ["none", "relu", "hswish"])
@pytest.mark.parametrize("threads", [1, 0])
def test_few_output_grouped_convolution_of_an_nhwc_input(c, o, k, strides, pads, dilations, group, size, act, threads):
    check_few_output_convolution(c, o, k, strides, pads, dilations, size, act, threads, planar=False, group=group)
