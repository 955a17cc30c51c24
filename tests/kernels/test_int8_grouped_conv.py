"""Grouped and depthwise integer convolutions (aiov.QuantizedConv with group > 1) on each path
the dispatcher can pick: the depthwise (and narrow-group) kernel's AVX512-VNNI dot products
and its portable loops, and the per-group integer GEMMs. Each runs in a subprocess capped with AIOV_INT8_ISA
(skipped where the CPU lacks it), reports which kernels ran, and must equal an int64 numpy
convolution exactly (s32 outputs) or its f32 dequantization to rounding. The cases cover
MobileNet's 3x3 stride 1 and 2, padding, dilation, channel counts off the vector width,
every operand type pairing, zero points per tensor, per channel and at the ends of their
ranges, channel multipliers, ResNeXt-style groups, 1-D windows, NCHW and NHWC, both thread
counts, weights within s8 (groups' inputs 4 a VPDPBUSD), and (where the op has that form) requantization to u8 with and without relu, equal
byte for byte to aiov.Quantize of the f32 result."""

import json

import pytest
from int8_scripts import script_prelude

SCRIPT = (
    script_prelude(0)
    + r"""
def conv_ref(x, w, za, zw, stride, pad, dil, group):
    # int64 sums over the taps of (x - za) * (w - zw), padding being the data's zero point.
    spatial = x.ndim - 2
    xp = np.pad(x.astype(np.int64) - int(za), [(0, 0), (0, 0)] + [(pad, pad)] * spatial)
    wz = w.astype(np.int64) - zw.astype(np.int64).reshape((-1,) + (1,) * (spatial + 1))
    o, cg = w.shape[:2]
    out = [(xp.shape[2 + d] - dil * (w.shape[2 + d] - 1) - 1) // stride + 1 for d in range(spatial)]
    y = np.zeros((x.shape[0], o) + tuple(out), np.int64)
    og = o // group
    for tap in np.ndindex(*w.shape[2:]):
        window = tuple(slice(t * dil, t * dil + stride * n, stride) for t, n in zip(tap, out))
        for g in range(group):
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + window]
            y[:, g * og : (g + 1) * og] += np.einsum("nc...,oc->no...", patch, wz[(slice(g * og, (g + 1) * og), slice(None)) + tap])
    return y

convs = requantized = 0
# (batch, channels, size, outputs, kernel, stride, pad, dilation, group, spatial dims)
cases = [((1, 32, 9, 32, 3, 1, 1, 1, 32, 2), np.uint8, np.int8, "random"),
         ((2, 67, 10, 67, 3, 2, 1, 1, 67, 2), np.int8, np.int8, "random"),
         ((1, 144, 14, 144, 3, 2, 1, 1, 144, 2), np.uint8, np.int8, "extreme"),
         ((1, 5, 7, 5, 3, 1, 0, 2, 5, 2), np.uint8, np.uint8, "random"),
         # an image narrower than the window (no pixel has all its taps inside), and no padding
         ((1, 16, 2, 16, 3, 1, 1, 1, 16, 2), np.uint8, np.int8, "random"),
         ((1, 24, 6, 24, 3, 2, 0, 1, 24, 2), np.int8, np.int8, "random"),
         ((1, 96, 12, 96, 5, 1, 2, 1, 96, 2), np.uint8, np.int8, "tensor"),
         ((1, 20, 16, 20, 3, 1, 1, 1, 20, 1), np.uint8, np.int8, "random"),
         ((1, 8, 6, 16, 3, 1, 1, 1, 8, 2), np.uint8, np.int8, "random"),
         ((1, 16, 8, 32, 3, 1, 1, 1, 4, 2), np.uint8, np.int8, "extreme"),
         ((2, 12, 7, 6, 3, 2, 1, 1, 3, 2), np.int8, np.uint8, "random"),
         ((1, 64, 14, 64, 3, 1, 1, 1, 8, 2), np.uint8, np.int8, "tensor"),
         # groups of 4 (channels off the vector width), 2, 16 and 32 channels
         ((1, 40, 9, 40, 3, 1, 1, 1, 10, 2), np.uint8, np.int8, "random"),
         ((2, 32, 7, 32, 3, 2, 1, 1, 16, 2), np.int8, np.uint8, "extreme"),
         ((1, 48, 6, 48, 3, 1, 1, 1, 3, 2), np.uint8, np.int8, "tensor"),
         ((1, 64, 6, 64, 3, 1, 1, 1, 2, 2), np.uint8, np.int8, "random"),
         # weights zero-centred (within s8): groups of 4, 8 and 16 take 4 inputs a VPDPBUSD;
         # wav2vec2's positional convolution (1-D, 16 taps, 4 groups of 8); channels off 16
         ((1, 64, 14, 64, 3, 1, 1, 1, 8, 2), np.uint8, np.int8, "symmetric"),
         ((1, 40, 9, 40, 3, 2, 1, 1, 10, 2), np.int8, np.int8, "symmetric"),
         ((2, 48, 6, 48, 3, 1, 1, 1, 3, 2), np.uint8, np.int8, "symmetric"),
         ((1, 24, 7, 24, 3, 1, 1, 1, 3, 2), np.uint8, np.int8, "symmetric"),
         ((2, 32, 39, 32, 16, 1, 8, 1, 4, 1), np.uint8, np.int8, "symmetric")]
for (n, c, h, o, k, stride, pad, dil, group, spatial), xt, wt, zeros in cases:
    x, w = ints(xt, (n, c) + (h,) * spatial), ints(wt, (o, c // group) + (k,) * spatial)
    za, zw = ints(xt, ()), ints(wt, (o,))
    if zeros == "extreme":  # sums at the ends of u8 x s8
        x[:] = np.iinfo(xt).max
        za, zw = np.array(np.iinfo(xt).min, xt), np.full((o,), np.iinfo(wt).min, wt)
        w[:] = np.iinfo(wt).max
    elif zeros == "tensor":
        zw = ints(wt, ())
    elif zeros == "symmetric":
        zw = np.zeros(o, wt)
    ref = conv_ref(x, w, za, zw, stride, pad, dil, group).astype(np.int32)
    attrs = {"strides": [stride] * spatial, "pads_begin": [pad] * spatial, "pads_end": [pad] * spatial,
             "dilations": [dil] * spatial, "group": group}
    for threads in (1, 2):
        got = T.run_op("aiov.QuantizedConv", [x, w, za, zw], attrs, threads=threads)[0]
        assert got.dtype == np.int32 and np.array_equal(got, ref), (n, c, group, threads)
        factor = rng.uniform(1e-4, 1e-3, o).astype(np.float32)
        bias = rng.standard_normal(o).astype(np.float32)
        got = T.run_op("aiov.QuantizedConv", [x, w, za, zw, factor, bias], attrs, threads=threads)[0]
        shape = (-1,) + (1,) * spatial
        want = ref.astype(np.float32) * factor.reshape(shape) + bias.reshape(shape)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5), (n, c, group, threads)
        # Zero points, factors and bias known only when it runs (not when it is planned).
        inputs = [x, w, za, zw, factor, bias]
        late = T.run_op("aiov.QuantizedConv", inputs, attrs, runtime_inputs=[2, 3, 4, 5], threads=threads)[0]
        assert np.array_equal(late, got), (n, c, group, threads, "zero points at run time")
        convs += 1
        if spatial != 2:
            continue
        # Channels last in and out (inside the optimizer's NHWC regions), s32 and f32.
        to_nhwc = lambda t: np.ascontiguousarray(t.transpose(0, 2, 3, 1))  # noqa: E731
        nhwc = dict(attrs, layout="nhwc")
        got = T.run_op("aiov.QuantizedConv", [to_nhwc(x), w, za, zw], nhwc, threads=threads)[0]
        assert np.array_equal(got, to_nhwc(ref)), (n, c, group, threads, "nhwc")
        got = T.run_op("aiov.QuantizedConv", [to_nhwc(x), w, za, zw, factor, bias], nhwc, threads=threads)[0]
        assert np.allclose(got, to_nhwc(want), rtol=1e-5, atol=1e-5), (n, c, group, threads, "nhwc")
        # Requantized to u8 (relu first): the bytes aiov.Quantize makes of the f32 result.
        y_scale, y_zero = np.float32(np.abs(want).max() / 200), np.uint8(90)
        for relu in (False, True):
            f32 = np.maximum(want, 0) if relu else want
            expected = T.run_op("aiov.Quantize", [np.ascontiguousarray(f32), y_scale, y_zero])[0]
            inputs = [x, w, za, zw, factor, bias, y_scale, y_zero]
            got = T.run_op("aiov.QuantizedConv", inputs, dict(attrs, relu=relu), threads=threads)[0]
            assert np.array_equal(got, expected), (n, c, group, threads, "u8", relu)
            inputs[0] = to_nhwc(x)
            got = T.run_op("aiov.QuantizedConv", inputs, dict(nhwc, relu=relu), threads=threads)[0]
            assert np.array_equal(got, to_nhwc(expected)), (n, c, group, threads, "u8 nhwc", relu)
            requantized += 1
print(json.dumps({"isa": ov._core.depthwise_int8_isa(), "convs": convs, "requantized": requantized}))
"""
)

ISAS = ["scalar", "avx512_vnni"]  # AMX has no depthwise form: its CPUs run the VNNI kernel


def cpu_int8_isa():
    import aiov

    return aiov._core.cpu_int8_isa()


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_grouped_conv_path_matches_integer_reference(isa, run_capped):
    if cpu_int8_isa() == "scalar" and isa != "scalar":
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 300, AIOV_INT8_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["isa"] == isa  # the forced path is the one that ran
    assert result["convs"] == 42
    assert result["requantized"] == 76


def test_bad_groups_are_named():
    import numpy as np

    import aiov

    T = aiov._core._testing
    x, z8 = np.zeros((1, 6, 5, 5), np.uint8), np.int8(0)
    attrs = {"strides": [1, 1], "pads_begin": [0, 0], "pads_end": [0, 0], "dilations": [1, 1], "group": 4}
    with pytest.raises(Exception, match="'group' must be a divisor of the data's 6 channels, got 4"):
        T.run_op("aiov.QuantizedConv", [x, np.zeros((4, 1, 3, 3), np.int8), np.uint8(0), z8], attrs)
    attrs["group"] = 3
    with pytest.raises(Exception, match="data has 6 channels but filters"):
        T.run_op("aiov.QuantizedConv", [x, np.zeros((3, 1, 3, 3), np.int8), np.uint8(0), z8], attrs)
    with pytest.raises(Exception, match="4 output channels do not split into 3 groups"):
        T.run_op("aiov.QuantizedConv", [x, np.zeros((4, 2, 3, 3), np.int8), np.uint8(0), z8], attrs)


NEAR_HALF_SCRIPT = r"""
import json, numpy as np, aiov as ov
T = ov._core._testing
rng = np.random.default_rng(4)
# Depthwise 3x3 convolutions requantized to u8 in NHWC (the VNNI kernel's own epilogue):
# quotients at half-integers (y = 0.1 v + 0.05 over 0.1), many random ones (some land near a
# half-integer), biases past 1024 quanta in some channels, with and without a Relu and a bias:
# the bytes aiov.Quantize makes of the f32 result.
near = 0
for c, h, small in [(32, 20, True), (144, 28, False), (40, 9, False)]:
    x = rng.integers(0, 4 if small else 256, (1, h, h, c)).astype(np.uint8)
    w = rng.integers(-3, 4, (c, 1, 3, 3)).astype(np.int8) if small else rng.integers(-128, 128, (c, 1, 3, 3)).astype(np.int8)
    attrs = {"strides": [1, 1], "pads_begin": [1, 1], "pads_end": [1, 1], "dilations": [1, 1], "group": c, "layout": "nhwc"}
    factor = np.full(c, 0.1, np.float32) if small else rng.uniform(1e-4, 1e-3, c).astype(np.float32)
    y_scale = np.float32(0.1) if small else np.float32(0.0173)
    bias = np.full(c, 0.05, np.float32) if small else rng.standard_normal(c).astype(np.float32)
    bias[:2] = np.float32([1500, -1030]) * y_scale
    for with_bias in (True, False):
        for y_zero, relu in [(np.uint8(128), False), (np.uint8(0), True), (np.uint8(255), False)]:
            head = [x, w, np.uint8(2), np.zeros(c, np.int8), factor] + ([bias] if with_bias else [])
            f32 = T.run_op("aiov.QuantizedConv", head, dict(attrs, relu=relu))[0]
            if not with_bias:  # (the requantizing form takes a bias: a zero one)
                head.append(np.zeros(c, np.float32))
            got = T.run_op("aiov.QuantizedConv", head + [y_scale, y_zero], dict(attrs, relu=relu), threads=2)[0]
            assert np.array_equal(got, T.run_op("aiov.Quantize", [f32, y_scale, y_zero])[0]), (c, h, with_bias, relu)
            q = f32 / y_scale
            near += int(np.sum(np.abs(np.abs(q - np.rint(q)) - 0.5) < 1.0 / 1024))
# Quotients a few ulps either side of a half-integer, where an epilogue folding scale and
# requantization into one multiply-add (emulated here in f64) would round the other way: one
# pixel of 37 in every channel, the window's centre tap weighing 1, factors
# (n + 0.5) * scale / 37 moved by up to 40 ulps.
y_scale, y_zero = np.float32(0.05), np.uint8(7)
targets = ((np.arange(240) + 0.5) * 0.05 / 37).astype(np.float32)
steps = [targets]
for direction in (np.inf, -np.inf):
    walked = targets
    for _ in range(40):
        walked = np.nextafter(walked, np.float32(direction))
        steps.append(walked)
grid = np.concatenate(steps).astype(np.float32)
exact = np.rint((np.float32(37) * grid) / y_scale)
one_step = (37.0 * (grid * (np.float32(1) / y_scale)).astype(np.float64) + 7.0).astype(np.float32)
factor = grid[(np.rint(one_step) - 7 != exact) & (np.abs(one_step - np.rint(one_step)) != 0.5)]
c = factor.size
x = np.full((1, 1, 1, c), 37, np.uint8)
w = np.zeros((c, 1, 3, 3), np.int8)
w[:, 0, 1, 1] = 1
attrs = {"strides": [1, 1], "pads_begin": [1, 1], "pads_end": [1, 1], "dilations": [1, 1], "group": c, "layout": "nhwc"}
head = [x, w, np.uint8(0), np.zeros(c, np.int8), factor, np.zeros(c, np.float32)]
f32 = T.run_op("aiov.QuantizedConv", head, attrs)[0]
got = T.run_op("aiov.QuantizedConv", head + [y_scale, y_zero], attrs)[0]
assert np.array_equal(got, T.run_op("aiov.Quantize", [f32, y_scale, y_zero])[0])
print(json.dumps({"isa": ov._core.depthwise_int8_isa(), "near": near, "hard": c}))
"""


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_requantized_depthwise_rounds_near_halves_as_quantize_does(isa, run_capped):
    if cpu_int8_isa() == "scalar" and isa != "scalar":
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(NEAR_HALF_SCRIPT, 300, AIOV_INT8_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["isa"] == isa
    assert result["near"] > 100  # random quotients near half-integers
    assert result["hard"] >= 32  # factors a single multiply-add rounds the other way


ROW_SCRIPT = r"""
import json, logging, numpy as np, aiov as ov
from onnx import TensorProto, helper, numpy_helper
T = ov._core._testing
rng = np.random.default_rng(7)

def conv_ref(x, w, za, zw, stride, pads, dil):
    # int64 depthwise sums of (x - za) * (w - zw), padding being the data's zero point;
    # pads (top, left, bottom, right), stride and dil (along h, along w).
    xp = np.pad(x.astype(np.int64) - int(za), [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
    wz = w.astype(np.int64)[:, 0] - zw.astype(np.int64).reshape(-1, 1, 1)
    kh, kw = w.shape[2:]
    oh = (xp.shape[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((x.shape[0], x.shape[1], oh, ow), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky * dil[0] : ky * dil[0] + stride[0] * oh : stride[0], kx * dil[1] : kx * dil[1] + stride[1] * ow : stride[1]]
            y += patch * wz[:, ky, kx].reshape(1, -1, 1, 1)
    return y

to_nhwc = lambda t: np.ascontiguousarray(t.transpose(0, 2, 3, 1))  # noqa: E731
checked = requantized = 0
# Depthwise windows whose weights less their zero point fit s8 (the row kernel's VPDPBUSD):
# channels off 16 and 64 (a last block of 16 or 32 takes several pixels a vector, gathered at
# stride 2), every width from 1 to 20 (no pixel inside, a few, runs with leftovers), stride 1
# and 2 along the width, padding at each border alike and not, 3x3, 5x5 and 7x7 (two groups of 4
# kernel rows) and windows of 1 to 7 rows, odd and even output heights (two rows a pass, the
# last alone), dilation and stride along the height, u8 weights about 128, batch 2.
# (channels, height, width, kernel (or (rows, columns)), strides, pads t/l/b/r, dilations,
# weight type, batch)
cases = [(c, 6, width, 3, (1, 1), (1, 1, 1, 1), (1, 1), np.int8, 1)
         for c, width in [(1, 1), (5, 2), (16, 3), (17, 4), (32, 5), (48, 6), (64, 7), (65, 8), (80, 9),
                          (96, 10), (144, 11), (160, 12), (32, 13), (16, 14), (144, 15), (96, 16), (33, 17),
                          (8, 18), (64, 19), (128, 20)]]
cases += [(96, 9, 17, 3, (2, 2), (1, 1, 1, 1), (1, 1), np.int8, 1),
          (144, 8, 15, 3, (2, 2), (0, 1, 1, 0), (1, 1), np.int8, 2),
          (32, 7, 20, 3, (1, 2), (1, 1, 1, 1), (1, 1), np.int8, 1),
          (16, 7, 19, 3, (2, 2), (1, 0, 0, 1), (1, 1), np.int8, 1),
          (48, 6, 11, 3, (1, 1), (0, 0, 0, 0), (1, 1), np.int8, 1),
          (32, 9, 16, 5, (1, 1), (2, 2, 2, 2), (1, 1), np.int8, 1),
          (80, 8, 13, 5, (2, 2), (2, 1, 0, 2), (1, 1), np.int8, 2),
          (64, 9, 12, 3, (1, 1), (2, 1, 2, 1), (2, 1), np.int8, 1),
          (40, 10, 14, 3, (2, 1), (1, 1, 1, 1), (3, 1), np.uint8, 1),
          (16, 5, 9, 5, (1, 2), (2, 2, 2, 2), (1, 1), np.uint8, 1),
          # windows of 1, 2, 4, 6 and 7 rows (a group of 4 rows part empty, two groups)
          (48, 4, 12, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1), np.int8, 1),
          (96, 5, 13, (2, 3), (1, 2), (1, 1, 0, 1), (1, 1), np.int8, 1),
          (32, 6, 10, (4, 3), (1, 1), (1, 1, 2, 1), (1, 1), np.int8, 1),
          (16, 8, 9, (6, 5), (2, 1), (2, 2, 3, 2), (1, 1), np.int8, 1),
          (64, 9, 11, (7, 5), (1, 1), (3, 2, 3, 2), (1, 1), np.int8, 1),
          # windows 7 wide (ConvNeXt's 7x7 with padding 3): 8 channels (one pixel a vector, most
          # columns over the padding), 16 and 32 (several pixels a vector, edges one by one), off
          # 16 and 64; stride 2 either way; 3 and 1 rows (no two-row pass); an image narrower
          # than the window; u8 weights
          (8, 8, 8, 7, (1, 1), (3, 3, 3, 3), (1, 1), np.int8, 2),
          (16, 6, 13, 7, (1, 1), (3, 3, 3, 3), (1, 1), np.int8, 1),
          (32, 7, 16, 7, (2, 2), (3, 3, 3, 3), (1, 1), np.int8, 1),
          (70, 9, 15, 7, (1, 2), (3, 2, 1, 3), (1, 1), np.int8, 1),
          (24, 6, 12, (3, 7), (1, 1), (1, 3, 1, 3), (1, 1), np.int8, 1),
          (144, 5, 11, (1, 7), (1, 1), (0, 3, 0, 3), (1, 1), np.uint8, 1),
          (16, 4, 4, 7, (1, 1), (3, 3, 3, 3), (1, 1), np.int8, 2)]
for c, h, width, k, stride, pads, dil, wt, n in cases:
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.integers(0, 256, (n, c, h, width)).astype(np.uint8)
    if wt == np.int8:
        w, zw = rng.integers(-128, 128, (c, 1, kh, kw)).astype(np.int8), np.zeros(c, np.int8)
    else:  # w - zw within s8
        zw = rng.integers(120, 136, c).astype(np.uint8)
        w = (zw.astype(np.int64).reshape(-1, 1, 1, 1) + rng.integers(-120, 120, (c, 1, kh, kw))).astype(np.uint8)
    za = np.uint8(rng.integers(0, 256))
    ref = conv_ref(x, w, za, zw, stride, pads, dil)
    if ref.shape[2] < 1 or ref.shape[3] < 1:
        continue
    ref = ref.astype(np.int32)
    attrs = {"strides": list(stride), "pads_begin": list(pads[:2]), "pads_end": list(pads[2:]), "dilations": list(dil), "group": c}
    factor = rng.uniform(2e-4, 2e-3, c).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    want = ref.astype(np.float32) * factor.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)
    y_scale, y_zero = np.float32(np.abs(want).max() / 150), np.uint8(rng.integers(60, 140))
    for threads in (1, 2):
        for layout, cast in (("nchw", lambda t: t), ("nhwc", to_nhwc)):
            a = dict(attrs, layout=layout)
            got = T.run_op("aiov.QuantizedConv", [cast(x), w, za, zw], a, threads=threads)[0]
            assert np.array_equal(got, cast(ref)), (c, width, k, stride, pads, layout, threads, "s32")
            # f32: the sum times the factor, then the bias, each rounded (no FMA), as numpy does
            got = T.run_op("aiov.QuantizedConv", [cast(x), w, za, zw, factor, bias], a, threads=threads)[0]
            assert np.array_equal(got, cast(want)), (c, width, k, stride, layout, threads, "f32")
            for relu in (False, True):
                f32 = cast(np.maximum(want, 0) if relu else want)
                expected = T.run_op("aiov.Quantize", [np.ascontiguousarray(f32), y_scale, y_zero])[0]
                got = T.run_op("aiov.QuantizedConv", [cast(x), w, za, zw, factor, bias, y_scale, y_zero],
                               dict(a, relu=relu), threads=threads)[0]
                assert np.array_equal(got, expected), (c, width, k, stride, pads, layout, threads, "u8", relu)
                requantized += 1
            checked += 1

# Quotients past 2^31 (a tiny output scale) saturate to 255 and 0, not wrap.
c = 80
x = rng.integers(0, 256, (1, c, 5, 9)).astype(np.uint8)
w, zw = rng.integers(-128, 128, (c, 1, 3, 3)).astype(np.int8), np.zeros(c, np.int8)
head = [to_nhwc(x), w, np.uint8(9), zw, rng.uniform(2e-4, 2e-3, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)]
attrs = {"strides": [1, 1], "pads_begin": [1, 1], "pads_end": [1, 1], "dilations": [1, 1], "group": c, "layout": "nhwc"}
for relu in (False, True):
    f32 = T.run_op("aiov.QuantizedConv", head, dict(attrs, relu=relu))[0]
    expected = T.run_op("aiov.Quantize", [f32, np.float32(1e-30), np.uint8(7)])[0]
    got = T.run_op("aiov.QuantizedConv", head + [np.float32(1e-30), np.uint8(7)], dict(attrs, relu=relu))[0]
    floor = 7 if relu else 0  # (a Relu's floor is the zero point)
    assert np.array_equal(got, expected) and set(np.unique(got)) == {floor, 255}, relu

# Which kernel a model's depthwise QLinearConv took (the plan's DEBUG log).
plans = []
class Plans(logging.Handler):
    def emit(self, record):
        plans.append(record.getMessage())
logging.getLogger("aiov").addHandler(Plans())
logging.getLogger("aiov").setLevel(logging.DEBUG)
c = 24
inits = [numpy_helper.from_array(v, name) for v, name in [
    (np.float32(0.05), "xs"), (np.uint8(100), "xz"), (rng.integers(-90, 90, (c, 1, 3, 3)).astype(np.int8), "w"),
    (np.full(c, 0.01, np.float32), "ws"), (np.zeros(c, np.int8), "wz"), (np.float32(0.1), "ys"), (np.uint8(90), "yz")]]
nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
         helper.make_node("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["yq"], group=c, pads=[1, 1, 1, 1]),
         helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 9, 9])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
proto.ir_version = 8
ov.compile_model(proto.SerializeToString())({"x": rng.standard_normal((1, c, 9, 9)).astype(np.float32)})
rows = any("depthwise integer avx512_vnni by kernel rows" in p for p in plans)
print(json.dumps({"isa": ov._core.depthwise_int8_isa(), "checked": checked, "requantized": requantized, "rows": rows}))
"""


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_depthwise_row_kernel_matches_integer_reference(isa, run_capped):
    """Windows whose weights fit s8 take the VNNI row kernel (4 kernel rows a VPDPBUSD) and
    must equal the int64 reference exactly (s32), numpy's f32 sum * factor + bias (f32) and
    byte for byte aiov.Quantize of that (u8), in both layouts and on both thread counts."""
    if cpu_int8_isa() == "scalar" and isa != "scalar":
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(ROW_SCRIPT, 600, AIOV_INT8_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["isa"] == isa
    assert result["checked"] == 4 * 42
    assert result["requantized"] == 2 * result["checked"]
    assert result["rows"] == (isa == "avx512_vnni")  # the row kernel ran where the CPU has it
