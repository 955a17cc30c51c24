"""NHWC convolutions under the bf16 hint, run directly (aiov._core._testing.run_op with
precision="bf16") on each bf16 kernel set (forced with AIOV_BF16_ISA, skipped where the CPU
lacks it): on avx512_bf16 the direct kernel (kernels/conv_bf16.hpp: taps summed from the pixels
where they lie, tiles of 1 to 4 zmm of output channels or a ymm up to 8, whole blocks per
thread or tiles shared column block by column block or following the padding on small
images; up to 16 channels a zero-bordered copy read a kernel row per tap), elsewhere the GEMM
paths; odd channel counts take the GEMM paths everywhere. Checked against a float64
convolution of the operands rounded to bf16 (the kernels' only rounding, accumulation is f32),
f32 outputs tight and bf16 outputs within their rounding, with bias, residual and every kind of
activation merge; and planar images (a model's first convolution), on avx512_bf16 copied to
NHWC bf16 with zero borders and read a kernel row per tap, writing f32 or bf16 (a short window
into at most 16 channels writing f32 takes the f32 few-output kernel instead); strided
depthwise convolutions writing bf16 (one AVX-512 pass on avx512_bf16 and amx, the f32 kernel
between copies on the portable set); grouped convolutions (on avx512_bf16 the direct kernel
group by group); bf16 data with a bf16 residual (a region carrying bf16 through residual
blocks: merged by the direct kernel, widened for the other paths); and depthwise convolutions
over bf16 data (on the AVX-512 sets 3x3 windows at stride 1 or 2 in channel-pair runs, stride 1
included; strided only on the portable set), writing f32 or bf16."""

import json

import pytest

SCRIPT = r"""
import json, os, sys, numpy as np, aiov
sys.path.insert(0, os.path.join(os.environ["AIOV_TESTS"], "kernels"))
from test_direct_conv import conv_reference, window_attrs
T = aiov._core._testing

def rounded(x):
    # Round to nearest even, as the kernels round their operands.
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32)

def widened(bits):
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)

rng = np.random.default_rng(7)
ACTS = {"none": (0.0, 0.0, lambda y: y), "relu": (0.0, 0.0, lambda y: np.maximum(y, 0)),
        "clamp": (-0.5, 0.7, lambda y: np.clip(y, -0.5, 0.7)),
        "sigmoid": (0.0, 0.0, lambda y: 1 / (1 + np.exp(-y))),  # on avx512_bf16 in the tile's registers
        "hswish": (0.0, 0.0, lambda y: y * np.clip(y + 3, 0, 6) / 6),
        "swish": (0.0, 0.0, lambda y: y / (1 + np.exp(-y))),
        "tanh": (0.0, 0.0, np.tanh)}  # not merged in the tile: a pass after it
# c, o, k, strides, pads (top, left, bottom, right), dilations, size, batch
CASES = [(16, 96, 1, (1, 1), (0, 0, 0, 0), (1, 1), (9, 11), 2),  # 1x1, K = 16 (8 channel pairs), 3 x 32 outputs
         (24, 144, 1, (1, 1), (0, 0, 0, 0), (1, 1), (7, 8), 1),  # 3 x 48 outputs
         (64, 64, 1, (2, 2), (0, 0, 0, 0), (1, 1), (9, 9), 2),  # strided 1x1, one tile of 64
         (8, 20, 1, (1, 2), (1, 0, 0, 1), (1, 1), (6, 7), 2),  # padded 1x1: pixels of zeros
         (32, 70, 3, (1, 1), (1, 1, 1, 1), (1, 1), (13, 11), 2),  # 64 + 6 outputs: 4 zmm then 1
         (64, 40, 3, (2, 2), (1, 1, 1, 1), (1, 1), (15, 15), 1),  # stride 2, 3 zmm with a ragged last
         (32, 24, 3, (2, 1), (0, 2, 1, 0), (1, 1), (12, 15), 2),  # asymmetric padding and strides
         (6, 16, 3, (1, 1), (2, 2, 2, 2), (2, 2), (10, 10), 1),  # dilated, 3 channel pairs, one zmm
         (20, 33, 5, (2, 2), (2, 2, 2, 2), (1, 1), (11, 10), 2),  # 5x5 windows
         (512, 48, 3, (1, 1), (1, 1, 1, 1), (1, 1), (7, 7), 1),  # few pixels, deep: tiles shared out
         (64, 272, 3, (1, 1), (1, 1, 1, 1), (1, 1), (7, 7), 2),  # tiles by the padding they reach (corners,
         # edges as rows and columns, the inside), 3 zmm: padding's taps skipped
         (32, 64, 3, (1, 1), (0, 1, 2, 1), (1, 1), (6, 6), 2),  # padding below only, rows of 6 in tiles of 6
         (2, 8, 7, (2, 2), (3, 3, 3, 3), (1, 1), (19, 17), 1),  # one channel pair per tap
         (4, 16, 3, (1, 1), (1, 1, 1, 1), (1, 1), (15, 15), 2),  # few channels: kernel rows as taps
         (16, 40, 3, (2, 1), (0, 1, 2, 1), (2, 1), (9, 10), 1),  # kernel rows, dilated down, strided
         (32, 4, 1, (1, 1), (0, 0, 0, 0), (1, 1), (9, 10), 2),  # up to 8 outputs: ymm tiles
         (24, 7, 3, (1, 1), (1, 1, 1, 1), (1, 1), (8, 9), 1),  # ymm tiles, a ragged 7
         (5, 20, 3, (1, 1), (1, 1, 1, 1), (1, 1), (9, 8), 2)]  # odd channels: the GEMM paths
worst_f32, worst_bf16 = 0.0, 0.0
for i, (c, o, k, st, pads, dil, size, batch) in enumerate(CASES):
    x = rng.standard_normal((batch, c) + size).astype(np.float32)
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    ref = conv_reference(rounded(x), rounded(w), st, pads, dil) + bias[:, None, None]
    res = rng.standard_normal(ref.shape).astype(np.float32)
    xn = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    resn = np.ascontiguousarray(res.transpose(0, 2, 3, 1))
    act = list(ACTS)[i % len(ACTS)]
    alpha, beta, fn = ACTS[act]
    for threads in (1, 0):
        for residual in (False, True):
            attrs = window_attrs(st, pads, dil, 1)
            attrs.update(layout="nhwc", act=act, act_alpha=alpha, act_beta=beta)
            inputs, runtime = [xn, w, bias], [0]
            if residual:
                inputs, runtime = inputs + [resn], [0, 3]
            expected = fn(ref + res if residual else ref)
            scale = np.max(np.abs(expected)) + 1
            (out,) = T.run_op("aiov.FusedConv", inputs, attrs, runtime_inputs=runtime, threads=threads,
                              precision="bf16")
            worst_f32 = max(worst_f32, float(np.max(np.abs(out.transpose(0, 3, 1, 2) - expected)) / scale))
            if c % 2 == 0:  # a bf16 output: the one-group, even-channel windows a region carries it from
                attrs["output_type"] = "bf16"
                (bits,) = T.run_op("aiov.FusedConv", inputs, attrs, runtime_inputs=runtime, threads=threads,
                                   precision="bf16")
                got = widened(bits).transpose(0, 3, 1, 2)
                # Rounded once from the f32 merge: within half a bf16 unit (at most 2^-8 of it).
                err = np.abs(got - expected) / (np.abs(expected) + 1e-3 * scale)
                worst_bf16 = max(worst_bf16, float(np.max(err)))
# Planar (NCHW) images: on avx512_bf16 copied to NHWC bf16 with zero borders, each kernel row of
# a window one tap of kw x C values (odd for RGB: the last pair read half).
PLANAR = [(3, 64, 7, (2, 2), (3, 3, 3, 3), (1, 1), (37, 35)),  # ResNet's stem: rows of 21 values
          (3, 32, 3, (2, 2), (1, 1, 1, 1), (1, 1), (30, 31)),  # MobileNet's stem: rows of 9
          (1, 24, 5, (1, 1), (2, 2, 2, 2), (1, 1), (13, 11)),  # one channel
          (4, 20, 3, (1, 1), (0, 0, 0, 0), (1, 1), (9, 9)),  # rows of 12: whole pairs
          (3, 17, 3, (2, 1), (2, 1, 0, 2), (2, 1), (15, 15)),  # dilated down, asymmetric padding
          (3, 40, 11, (4, 4), (0, 0, 0, 0), (1, 1), (47, 47))]  # strides leaving the last columns unread
worst_planar, worst_planar16 = 0.0, 0.0
for i, (c, o, k, st, pads, dil, size) in enumerate(PLANAR):
    x = rng.standard_normal((2, c) + size).astype(np.float32)
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    act = list(ACTS)[i % len(ACTS)]
    alpha, beta, fn = ACTS[act]
    expected = fn(conv_reference(rounded(x), rounded(w), st, pads, dil) + bias[:, None, None])
    attrs = window_attrs(st, pads, dil, 1)
    attrs.update(layout="nhwc", input_layout="nchw", act=act, act_alpha=alpha, act_beta=beta)
    for threads in (1, 0):
        (out,) = T.run_op("aiov.FusedConv", [x, w, bias], attrs, runtime_inputs=[0], threads=threads, precision="bf16")
        err = np.max(np.abs(out.transpose(0, 3, 1, 2) - expected)) / (np.max(np.abs(expected)) + 1)
        worst_planar = max(worst_planar, float(err))
        # A stem whose readers carry bf16: the same results rounded once (on avx512_bf16 in the
        # tiles; elsewhere the f32 output rounded after).
        (bits,) = T.run_op("aiov.FusedConv", [x, w, bias], dict(attrs, output_type="bf16"), runtime_inputs=[0],
                           threads=threads, precision="bf16")
        err = np.abs(widened(bits) - out) / (np.abs(out) + 1e-6)
        worst_planar16 = max(worst_planar16, float(np.max(err)))
# Planar stems of a short window into few channels, writing f32 (an activation after them that
# no bf16 region carries, EfficientNet's SiLU): the f32 few-output kernel on the planes as they
# lie, on every set, so tight against the unrounded f32 convolution; writing bf16 with an
# activation the direct kernel's tiles do not merge (Tanh), the same f32 results rounded once.
PLANAR_FEW = [(3, 8, 3, (2, 2), (1, 1, 1, 1), (32, 32), "swish"), (3, 16, 3, (1, 1), (1, 1, 1, 1), (15, 17), "relu"),
              (3, 12, 3, (2, 2), (0, 1, 1, 0), (17, 16), "tanh")]
worst_planar_few, worst_planar_few16 = 0.0, 0.0
for c, o, k, st, pads, size, act in PLANAR_FEW:
    x = rng.standard_normal((2, c) + size).astype(np.float32)
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    alpha, beta, fn = ACTS[act]
    expected = fn(conv_reference(x, w, st, pads, (1, 1)) + bias[:, None, None])
    attrs = window_attrs(st, pads, (1, 1), 1)
    attrs.update(layout="nhwc", input_layout="nchw", act=act, act_alpha=alpha, act_beta=beta)
    for threads in (1, 0):
        (out,) = T.run_op("aiov.FusedConv", [x, w, bias], attrs, runtime_inputs=[0], threads=threads, precision="bf16")
        err = np.max(np.abs(out.transpose(0, 3, 1, 2) - expected)) / (np.max(np.abs(expected)) + 1)
        worst_planar_few = max(worst_planar_few, float(err))
        if act == "tanh":
            (bits,) = T.run_op("aiov.FusedConv", [x, w, bias], dict(attrs, output_type="bf16"), runtime_inputs=[0],
                               threads=threads, precision="bf16")
            err = np.abs(widened(bits) - out) / (np.abs(out) + 1e-6)
            worst_planar_few16 = max(worst_planar_few16, float(np.max(err)))
# Strided depthwise convolutions writing bf16 (a region carrying it): f32 products of the f32
# input, rounded once as they are stored.
DEPTHWISE = [(96, 3, (2, 2), (1, 1, 1, 1), (1, 1), (15, 13), "clamp"),  # 64 + 32 channels
             (144, 3, (2, 1), (1, 1, 1, 1), (1, 1), (9, 13), "relu"),  # runs of 4 pixels at stride 1 across
             (40, 5, (2, 1), (2, 1, 2, 3), (1, 1), (11, 12), "none"),  # not 3x3: a masked last vector
             (8, 3, (2, 2), (2, 2, 2, 2), (2, 2), (7, 7), "relu")]  # dilated, windows all border
worst_depthwise = 0.0
for c, k, st, pads, dil, size, act in DEPTHWISE:
    x = rng.standard_normal((2, c) + size).astype(np.float32)
    w = (rng.standard_normal((c, 1, k, k)) / k).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    alpha, beta, fn = ACTS[act]
    y = conv_reference(x, w, st, pads, dil, group=c) + bias[:, None, None]
    res = rng.standard_normal(y.shape).astype(np.float32)
    attrs = window_attrs(st, pads, dil, c)
    attrs.update(layout="nhwc", act=act, act_alpha=alpha, act_beta=beta, output_type="bf16")
    inputs = [np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, bias]
    for threads, residual in ((1, False), (0, False), (1, True)):
        expected = fn(y + res if residual else y)
        scale = np.max(np.abs(expected)) + 1
        extra = [np.ascontiguousarray(res.transpose(0, 2, 3, 1))] if residual else []
        (bits,) = T.run_op("aiov.FusedConv", inputs + extra, attrs, runtime_inputs=[0, 3] if residual else [0],
                           threads=threads, precision="bf16")
        err = np.abs(widened(bits).transpose(0, 3, 1, 2) - expected) / (np.abs(expected) + 1e-3 * scale)
        worst_depthwise = max(worst_depthwise, float(np.max(err)))
# Grouped convolutions (ResNeXt, RegNet): on avx512_bf16 the direct kernel group by group, each
# reading its channels of the input rounded once; odd channels per group take the GEMM paths.
# c, o, k, strides, pads, size, groups
GROUPED = [(64, 64, 3, (1, 1), (1, 1, 1, 1), (9, 9), 4),  # 16 -> 16 per group
           (32, 96, 3, (2, 2), (1, 1, 1, 1), (11, 10), 2),  # 16 -> 48, strided
           (48, 48, 1, (1, 1), (0, 0, 0, 0), (7, 8), 3),  # 1x1
           (30, 60, 3, (1, 1), (0, 1, 2, 1), (6, 7), 5),  # 6 -> 12, asymmetric padding
           (15, 30, 3, (1, 1), (1, 1, 1, 1), (6, 6), 5)]  # 3 channels per group: the GEMM paths
worst_grouped = 0.0
for i, (c, o, k, st, pads, size, groups) in enumerate(GROUPED):
    x = rng.standard_normal((2, c) + size).astype(np.float32)
    w = (rng.standard_normal((o, c // groups, k, k)) / np.sqrt(c // groups * k * k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    ref = conv_reference(rounded(x), rounded(w), st, pads, (1, 1), group=groups) + bias[:, None, None]
    res = rng.standard_normal(ref.shape).astype(np.float32)
    act = list(ACTS)[i % len(ACTS)]
    alpha, beta, fn = ACTS[act]
    attrs = window_attrs(st, pads, (1, 1), groups)
    attrs.update(layout="nhwc", act=act, act_alpha=alpha, act_beta=beta)
    inputs = [np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, bias]
    for threads, residual in ((1, False), (0, False), (0, True)):
        expected = fn(ref + res if residual else ref)
        extra = [np.ascontiguousarray(res.transpose(0, 2, 3, 1))] if residual else []
        (out,) = T.run_op("aiov.FusedConv", inputs + extra, attrs, runtime_inputs=[0, 3] if residual else [0],
                          threads=threads, precision="bf16")
        err = np.max(np.abs(out.transpose(0, 3, 1, 2) - expected)) / (np.max(np.abs(expected)) + 1)
        worst_grouped = max(worst_grouped, float(err))
# bf16 tensors (a region carrying bf16): the data and the residual given as bf16 bits. On
# avx512_bf16 the direct kernel merges the bf16 residual in its tiles; every other path gets it
# widened to f32 first. 1x1 and 3x3, f32 and bf16 outputs, threads split both ways.
BF16_TENSORS = [(64, 64, 1, (1, 1), (0, 0, 0, 0), (7, 9), "relu"),
                (32, 70, 3, (1, 1), (1, 1, 1, 1), (8, 7), "clamp"),
                (48, 48, 3, (2, 2), (1, 1, 1, 1), (9, 10), "sigmoid"),
                (16, 24, 1, (1, 1), (0, 0, 0, 0), (5, 6), "none"),
                (8, 32, 3, (1, 1), (1, 1, 1, 1), (7, 7), "relu"),  # kernel rows as taps
                (32, 48, 3, (1, 1), (1, 1, 1, 1), (7, 7), "clamp"),  # tiles by the padding they reach
                (32, 6, 1, (1, 1), (0, 0, 0, 0), (6, 7), "relu")]  # ymm tiles
worst_tensors, worst_tensors16 = 0.0, 0.0
def bf16_bits(a):
    return (rounded(a).view(np.uint32) >> 16).astype(np.uint16)
for c, o, k, st, pads, size, act in BF16_TENSORS:
    x16 = bf16_bits(rng.standard_normal((2,) + size + (c,)).astype(np.float32))
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    ref = conv_reference(widened(x16).transpose(0, 3, 1, 2), rounded(w), st, pads, (1, 1)) + bias[:, None, None]
    res16 = bf16_bits(rng.standard_normal((2,) + ref.shape[2:] + (o,)).astype(np.float32))
    alpha, beta, fn = ACTS[act]
    expected = fn(ref + widened(res16).transpose(0, 3, 1, 2))
    scale = np.max(np.abs(expected)) + 1
    attrs = window_attrs(st, pads, (1, 1), 1)
    attrs.update(layout="nhwc", act=act, act_alpha=alpha, act_beta=beta)
    for threads in (1, 0):
        for out in ("f32", "bf16"):
            attrs["output_type"] = out
            (got,) = T.run_op("aiov.FusedConv", [x16, w, bias, res16], attrs, runtime_inputs=[0, 3],
                              threads=threads, precision="bf16", bf16_inputs=[0, 3])
            if out == "bf16":  # rounded once from the f32 merge
                err = np.abs(widened(got).transpose(0, 3, 1, 2) - expected) / (np.abs(expected) + 1e-3 * scale)
                worst_tensors16 = max(worst_tensors16, float(np.max(err)))
            else:
                err = np.abs(got.transpose(0, 3, 1, 2) - expected) / scale
                worst_tensors = max(worst_tensors, float(np.max(err)))
# Depthwise convolutions over bf16 data (a region carrying bf16 through MobileNet's inverted
# bottlenecks): on the AVX-512 sets an undilated 3x3 at stride 1 or 2 takes the channel-pair
# runs (32 channels a load, even and odd lanes apart, interleaved back as stored), which carry
# stride 1 too (from 32 channels on); the portable set carries only strided ones, but takes
# bf16 data for any (a blob compiled on another machine), widened for the f32 kernel. f32 products of the bf16 data,
# written f32 (tight) or rounded once to bf16. Channels in whole blocks of 32, a ragged last
# block, an odd count, fewer than a vector; runs of 8, 4, 2 and 1 pixels reaching the padding.
DEPTHWISE16 = [(144, 3, (1, 1), (1, 1, 1, 1), (9, 13), "clamp"),  # 4 x 32 + 16 channels
               (32, 3, (1, 1), (1, 1, 1, 1), (17, 19), "relu"),  # runs of 8, 8, 2, 1
               (40, 3, (1, 1), (0, 1, 2, 0), (6, 5), "none"),  # asymmetric padding
               (7, 3, (2, 1), (1, 1, 1, 1), (3, 2), "relu"),  # odd, under half a block; 2 pixels wide
               (96, 3, (2, 2), (1, 1, 1, 1), (15, 13), "clamp"),
               (50, 3, (2, 2), (0, 0, 1, 1), (8, 9), "none"),
               (64, 3, (1, 2), (2, 0, 0, 2), (10, 11), "relu"),  # strided across only
               (24, 5, (2, 2), (2, 2, 2, 2), (9, 9), "relu"),  # not 3x3: the per-pixel path
               (296, 3, (1, 1), (1, 1, 1, 1), (5, 6), "clamp")]  # 9 blocks, 8 to a run, a ragged one
worst_depthwise16, worst_depthwise16_f32 = 0.0, 0.0
for c, k, st, pads, size, act in DEPTHWISE16:
    x16 = bf16_bits(rng.standard_normal((2,) + size + (c,)).astype(np.float32))
    w = (rng.standard_normal((c, 1, k, k)) / k).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    y = conv_reference(widened(x16).transpose(0, 3, 1, 2), w, st, pads, (1, 1), group=c) + bias[:, None, None]
    res = rng.standard_normal(y.shape).astype(np.float32)
    alpha, beta, fn = ACTS[act]
    attrs = window_attrs(st, pads, (1, 1), c)
    attrs.update(layout="nhwc", act=act, act_alpha=alpha, act_beta=beta)
    for threads, residual in ((1, False), (0, False), (1, True)):
        expected = fn(y + res if residual else y)
        scale = np.max(np.abs(expected)) + 1
        extra = [np.ascontiguousarray(res.transpose(0, 2, 3, 1))] if residual else []
        for out in ("bf16", "f32"):
            attrs["output_type"] = out
            (got,) = T.run_op("aiov.FusedConv", [x16, w, bias] + extra, attrs,
                              runtime_inputs=[0, 3] if residual else [0], threads=threads, precision="bf16",
                              bf16_inputs=[0])
            if out == "bf16":
                err = np.abs(widened(got).transpose(0, 3, 1, 2) - expected) / (np.abs(expected) + 1e-3 * scale)
                worst_depthwise16 = max(worst_depthwise16, float(np.max(err)))
            else:
                err = np.abs(got.transpose(0, 3, 1, 2) - expected) / scale
                worst_depthwise16_f32 = max(worst_depthwise16_f32, float(np.max(err)))
print(json.dumps({"isa": aiov._core.gemm_bf16_isa(), "f32": worst_f32, "bf16": worst_bf16, "planar": worst_planar,
                  "depthwise": worst_depthwise, "grouped": worst_grouped, "tensors": worst_tensors, "planar16": worst_planar16,
                  "tensors16": worst_tensors16, "depthwise16": worst_depthwise16,
                  "depthwise16_f32": worst_depthwise16_f32, "planar_few": worst_planar_few,
                  "planar_few16": worst_planar_few16}))
"""

ISAS = ["scalar", "avx512_bf16", "amx"]  # each includes the ones before it


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_bf16_convolution_matches_rounded_reference(isa, run_capped):
    import aiov

    if ISAS.index(isa) > ISAS.index(aiov._core.cpu_bf16_isa()):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 300, AIOV_BF16_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["isa"] == isa  # the forced path is the one that ran
    assert result["f32"] < 1e-5
    assert result["bf16"] < 2.0**-8 + 1e-5
    # The direct kernel rounds both operands of every planar stem; the other paths multiply the
    # f32 planes of short windows (3x3 stems) unrounded, within bf16's rounding of the reference.
    assert result["planar"] < (1e-5 if isa == "avx512_bf16" else 2e-2)
    assert result["planar16"] <= 2.0**-8
    assert result["planar_few"] < 1e-5  # f32 products: a short stem into few channels writing f32
    assert 0 < result["planar_few16"] <= 2.0**-8  # and writing bf16 with an activation the tiles do not merge
    assert result["depthwise"] < 2.0**-8 + 1e-5
    assert result["grouped"] < 1e-5
    # bf16 data and residual: f32 outputs tight, bf16 ones within their rounding.
    assert result["tensors"] < 1e-5
    assert result["tensors16"] < 2.0**-8 + 1e-5
    # Depthwise over bf16 data: f32 products of it, f32 outputs tight, bf16 ones rounded once.
    assert result["depthwise16_f32"] < 1e-5
    assert result["depthwise16"] < 2.0**-8 + 1e-5
