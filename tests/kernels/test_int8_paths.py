"""Integer products (aiov.QuantizedMatMul) on every path the dispatcher can pick: AMX tiles,
AVX512-VNNI dot products and the portable loops. Each runs in a subprocess capped with
AIOV_INT8_ISA (skipped where the CPU lacks it), reports which kernels ran, and must equal an
int64 numpy product exactly (s32 outputs) or its f32 dequantization to rounding. The cases
cover every operand type pairing, zero points per tensor and per column (extreme ones too:
the accumulations reach the ends of u8 x s8), shapes off the tile edges, weights known when
the kernel is prepared and given only at run time, and both thread counts; and the dynamic
quantization of activations that feeds them (aiov.DynamicQuantize), exact against numpy,
and convolutions (aiov.QuantizedConv) with strides, padding and dilation, in NCHW and NHWC,
writing s32, f32 or u8 requantized (with and without a Relu)."""

import json

import pytest
from int8_scripts import script_prelude

SCRIPT = (
    script_prelude(0)
    + r"""
worst_i32 = 0
worst_f32 = 0.0
runs = 0
for (m, k, n), at, bt, per_col in [((1, 1, 1), np.uint8, np.int8, False), ((3, 5, 7), np.int8, np.int8, True),
                                    ((17, 63, 33), np.uint8, np.uint8, True), ((16, 64, 16), np.int8, np.uint8, False),
                                    ((33, 65, 32), np.uint8, np.int8, True), ((100, 333, 70), np.uint8, np.int8, False),
                                    ((40, 768, 48), np.int8, np.int8, True),
                                    # one row (VNNI's kernel under AMX too), K and N off the tiles
                                    ((1, 1283, 203), np.uint8, np.int8, True),
                                    # big enough to split over 2 threads
                                    ((200, 512, 300), np.uint8, np.int8, True)]:
    a = ints(at, (m, k))
    b = ints(bt, (k, n))
    for za, zb in [(ints(at, ()), ints(bt, (n,) if per_col else ())),
                   (np.array(np.iinfo(at).max, at), np.full((n,) if per_col else (), np.iinfo(bt).min, bt))]:
        ref = (a.astype(np.int64) - za.astype(np.int64)) @ (b.astype(np.int64) - zb.astype(np.int64))
        ref32 = ref.astype(np.int32)  # what an s32 accumulator holds
        factor = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        for threads in (1, 2):
            for runtime in ([], [1]):
                got = T.run_op("aiov.QuantizedMatMul", [a, b, za, zb], runtime_inputs=runtime, threads=threads)[0]
                assert got.dtype == np.int32 and got.shape == (m, n)
                worst_i32 = max(worst_i32, int(np.max(np.abs(got.astype(np.int64) - ref32))))
                got = T.run_op("aiov.QuantizedMatMul", [a, b, za, zb, factor, bias], runtime_inputs=runtime,
                               threads=threads)[0]
                want = ref32.astype(np.float32) * factor + bias
                worst_f32 = max(worst_f32, float(np.max(np.abs(got - want) / (np.abs(want) + 1))))
                # A Relu after the product (fuse_quantized_matmul's) is the merge's.
                got = T.run_op("aiov.QuantizedMatMul", [a, b, za, zb, factor, bias], {"relu": True},
                               runtime_inputs=runtime, threads=threads)[0]
                relu = np.maximum(want, 0)
                worst_f32 = max(worst_f32, float(np.max(np.abs(got - relu) / (np.abs(relu) + 1))))
                assert np.all(got >= 0)
                runs += 1
# Batched activations [B, S, K] and one factor for the whole tensor.
a, b = ints(np.uint8, (2, 3, 40)), ints(np.int8, (40, 5))
got = T.run_op("aiov.QuantizedMatMul", [a, b, np.array(3, np.uint8), np.array(0, np.int8), np.float32([0.5])])[0]
ref = 0.5 * ((a.astype(np.int64) - 3) @ b.astype(np.int64)).astype(np.float32)
assert got.shape == (2, 3, 5) and np.allclose(got, ref, rtol=1e-6)
# Convolutions (aiov.QuantizedConv): against an int64 sum over the padded taps, with the
# data's zero point as the padding.
def conv_ref(x, w, za, zw, stride, pad, dil):
    xp = np.pad(x.astype(np.int64) - int(za), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = xp.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - dil * (kh - 1) - 1) // stride + 1, (wd - dil * (kw - 1) - 1) // stride + 1
    wz = w.astype(np.int64) - zw.astype(np.int64).reshape(-1, 1, 1, 1)
    y = np.zeros((n, o, oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dil : i * dil + stride * oh : stride, j * dil : j * dil + stride * ow : stride]
            y += np.einsum("nchw,oc->nohw", patch, wz[:, :, i, j])
    return y

convs = 0
for (n, c, h, o, k, stride, pad, dil), xt, wt, zero_filters in [(*case, zero_filters) for case in [
                                                  ((1, 3, 9, 5, 3, 1, 1, 1), np.uint8, np.int8),
                                                  ((2, 17, 11, 33, 3, 2, 1, 1), np.int8, np.int8),
                                                  ((1, 64, 8, 40, 1, 1, 0, 1), np.uint8, np.uint8),
                                                  ((1, 5, 12, 7, 3, 1, 2, 2), np.uint8, np.int8),
                                                  # 1x1 on u8 rows read in place, 49 rows (a
                                                  # partial last tile), and on rows copied (C 70)
                                                  ((1, 128, 7, 40, 1, 1, 0, 1), np.uint8, np.int8),
                                                  ((1, 70, 7, 20, 1, 1, 0, 1), np.uint8, np.uint8),
                                                  # one pixel: a single row, requantized too
                                                  ((1, 130, 1, 50, 1, 1, 0, 1), np.uint8, np.int8),
                                                  # a 7x7 stride-2 stem on 3 channels
                                                  ((1, 3, 23, 64, 7, 2, 3, 1), np.uint8, np.int8),
                                                  # 3x3 stride 2 over 67 channels (K off 64s)
                                                  ((1, 67, 10, 48, 3, 2, 1, 1), np.uint8, np.int8),
                                                  # 400 rows: patches made a block at a time,
                                                  # the last block partial
                                                  ((1, 64, 20, 40, 3, 1, 1, 1), np.uint8, np.int8),
                                                  # 800 KB of weights against 64 rows: the
                                                  # tiles run column pair by column pair
                                                  ((1, 1024, 16, 800, 1, 2, 0, 1), np.uint8, np.int8),
                                                  # channels off quads: a quad reads the next
                                                  # pixel, up to the image's last byte (no pad)
                                                  ((1, 3, 8, 20, 3, 1, 0, 1), np.uint8, np.int8),
                                                  ((1, 6, 9, 70, 5, 2, 2, 1), np.uint8, np.uint8),
                                                  # 3 panels (8-row tiles); 1x1 stride 2
                                                  ((1, 21, 13, 48, 1, 2, 0, 1), np.uint8, np.int8),
                                                  # dilated: one tap per segment, C off quads
                                                  ((1, 7, 11, 24, 3, 1, 2, 2), np.uint8, np.int8),
                                                  # MobileNet's stem (3x3/2 over 3 channels, 32
                                                  # outputs): 12-row tiles crossing output rows,
                                                  # border windows on all four sides
                                                  ((1, 3, 17, 32, 3, 2, 1, 1), np.uint8, np.int8),
                                                  # padding past the window: corner windows
                                                  # wholly outside the image
                                                  ((1, 4, 6, 24, 3, 1, 3, 1), np.uint8, np.int8),
                                                  # 810 KB of 3x3 filters over 7x7 (ResNet's
                                                  # last stage): block-major, each tile's border
                                                  # windows copied once for every block
                                                  ((1, 512, 7, 176, 3, 1, 1, 1), np.uint8, np.int8)]
                                                 for zero_filters in (False, True)]:
    x, w = ints(xt, (n, c, h, h)), ints(wt, (o, c, k, k))
    za, zw = ints(xt, ()), ints(wt, (o,))
    if zero_filters:  # symmetric filters (QDQ's): u8 data runs on the direct kernels
        zw = np.full((o,), 128 if wt == np.uint8 else 0, wt)
    ref = conv_ref(x, w, za, zw, stride, pad, dil).astype(np.int32)
    attrs = {"strides": [stride] * 2, "pads_begin": [pad] * 2, "pads_end": [pad] * 2, "dilations": [dil] * 2}
    for threads in (1, 2):
        got = T.run_op("aiov.QuantizedConv", [x, w, za, zw], attrs, threads=threads)[0]
        assert got.dtype == np.int32 and np.array_equal(got, ref), (n, c, h, o, k)
        factor = rng.uniform(1e-4, 1e-3, o).astype(np.float32)
        bias = rng.standard_normal(o).astype(np.float32)
        got = T.run_op("aiov.QuantizedConv", [x, w, za, zw, factor, bias], attrs, threads=threads)[0]
        want = ref.astype(np.float32) * factor.reshape(-1, 1, 1) + bias.reshape(-1, 1, 1)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5)
        # Requantized to u8 (with a Relu first, too), and in NHWC: within one quantum of the
        # f32 result quantized (a multiply-add may round once where numpy rounds twice).
        y_scale, y_zero = np.float32(0.02), np.uint8(9)
        for relu in (False, True):
            f = np.maximum(want, 0) if relu else want
            want_u8 = np.clip(np.rint(f / y_scale) + y_zero, 0, 255)
            extra = dict(attrs, relu=relu)
            got = T.run_op("aiov.QuantizedConv", [x, w, za, zw, factor, bias, y_scale, y_zero], extra,
                           threads=threads)[0]
            assert got.dtype == np.uint8 and np.max(np.abs(got - want_u8)) <= 1, (n, c, h, o, k, relu)
            assert np.mean(got == want_u8) > 0.99
            nhwc = T.run_op("aiov.QuantizedConv", [x.transpose(0, 2, 3, 1).copy(), w, za, zw, factor, bias, y_scale,
                                                   y_zero], dict(extra, layout="nhwc"), threads=threads)[0]
            assert np.array_equal(nhwc, got.transpose(0, 2, 3, 1)), (n, c, h, o, k, relu)
            # The fused requantization writes the bytes aiov.Quantize makes of the f32 result.
            f32 = T.run_op("aiov.QuantizedConv", [x, w, za, zw, factor, bias], extra, threads=threads)[0]
            separate = T.run_op("aiov.Quantize", [np.maximum(f32, 0) if relu else f32, y_scale, y_zero])[0]
            assert np.array_equal(got, separate), (n, c, h, o, k, relu)
        got = T.run_op("aiov.QuantizedConv", [x.transpose(0, 2, 3, 1).copy(), w, za, zw], dict(attrs, layout="nhwc"),
                       threads=threads)[0]
        assert np.array_equal(got, ref.transpose(0, 2, 3, 1)), (n, c, h, o, k, zero_filters, threads)
        convs += 1

# The data's zero point and the factor given only at run time (the kernel makes per call what it
# otherwise makes once when prepared): the same results, on the direct kernels and the GEMM's.
for zw in (np.zeros(24, np.int8), ints(np.int8, (24,))):
    x, w = ints(np.uint8, (1, 5, 9, 9)), ints(np.int8, (24, 5, 3, 3))
    za, factor = np.uint8(97), rng.uniform(1e-4, 1e-3, 24).astype(np.float32)
    inputs = [x, w, za, zw, factor, rng.standard_normal(24).astype(np.float32), np.float32(0.02), np.uint8(9)]
    attrs = {"strides": [2, 2], "pads_begin": [1, 1], "pads_end": [1, 1], "dilations": [1, 1], "relu": True}
    for count in (4, 6, 8):
        known = T.run_op("aiov.QuantizedConv", inputs[:count], attrs, threads=2)[0]
        late = T.run_op("aiov.QuantizedConv", inputs[:count], attrs, runtime_inputs=[2, 4][: 1 + (count > 4)],
                        threads=2)[0]
        assert np.array_equal(known, late), (count, zw)
        if count == 4:
            ref = conv_ref(x, w, za, zw, 2, 1, 1).astype(np.int32)
            assert np.array_equal(late, ref)

# Padding on one side more than the other, and 1-D windows, on the direct kernels (symmetric
# filters): against the reference over the data padded by hand with its zero point.
for xs, ws, stride, begin, end in [((1, 3, 21, 19), (16, 3, 7, 7), 2, (3, 2), (2, 3)),
                                   ((2, 6, 30), (10, 6, 5), 2, (2,), (1,))]:
    x, w, za = ints(np.uint8, xs), ints(np.int8, ws), np.uint8(77)
    zw = np.zeros(ws[0], np.int8)
    x2, w2 = (x, w) if len(xs) == 4 else (x[:, :, None], w[:, :, None])
    b2, e2 = (begin, end) if len(xs) == 4 else ((0, *begin), (0, *end))
    padded = np.pad(x2, ((0, 0), (0, 0), (b2[0], e2[0]), (b2[1], e2[1])), constant_values=za)
    ref = conv_ref(padded, w2, za, zw, stride, 0, 1).astype(np.int32)
    ref = ref if len(xs) == 4 else ref[:, :, 0]
    attrs = {"strides": [stride] * (len(xs) - 2), "pads_begin": list(begin), "pads_end": list(end),
             "dilations": [1] * (len(xs) - 2)}
    for threads in (1, 2):
        got = T.run_op("aiov.QuantizedConv", [x, w, za, zw], attrs, threads=threads)[0]
        assert np.array_equal(got, ref), (xs, ws)

# Requantized sums whose quotients lie at or next to half-integers (y = 0.1 v + 0.05 over a
# scale of 0.1), where multiplying by the reciprocal could round the other way: the fused
# bytes stay aiov.Quantize's, on the direct kernels (symmetric filters) and the GEMM's.
for zw in (np.zeros(40, np.int8), np.full(40, 3, np.int8)):
    x, w = rng.integers(0, 4, (1, 8, 9, 9)).astype(np.uint8), rng.integers(-3, 4, (40, 8, 3, 3)).astype(np.int8)
    attrs = {"strides": [1, 1], "pads_begin": [1, 1], "pads_end": [1, 1], "dilations": [1, 1]}
    factor, bias = np.full(40, 0.1, np.float32), np.full(40, 0.05, np.float32)
    for y_scale, y_zero, relu in [(np.float32(0.1), np.uint8(128), False), (np.float32(0.0137), np.uint8(128), False),
                                  (np.float32(0.1), np.uint8(0), True), (np.float32(0.1), np.uint8(128), True)]:
        relu_attrs = dict(attrs, relu=relu)
        f32 = T.run_op("aiov.QuantizedConv", [x, w, np.uint8(2), zw, factor, bias], relu_attrs)[0]
        got = T.run_op("aiov.QuantizedConv", [x, w, np.uint8(2), zw, factor, bias, y_scale, y_zero], relu_attrs)[0]
        assert np.array_equal(got, T.run_op("aiov.Quantize", [f32, y_scale, y_zero])[0])
        if y_scale == np.float32(0.1):  # (0.0137 saturates most)
            assert np.mean((got > 0) & (got < 255)) > (0.2 if relu else 0.5)

# Dynamic quantization of activations: exact against numpy (same division, half-even rounding).
quantized = 0
# The larger in pieces over the threads (as many as a multiple of them: BERT's 128 x 384 in 4 for
# 2 threads, 6 for 3), the extremes in any piece, the last one's in its final value.
for n, threads in ((1, 2), (15, 2), (16, 2), (17, 2), (1000, 2), (16385, 2), (49152, 2), (49152, 3), (50001, 2),
                  (50001, 3)):
    ends = rng.standard_normal(n).astype(np.float32) * 4
    ends[-1] = -40.0
    for x in (rng.standard_normal(n).astype(np.float32) * 4, np.abs(rng.standard_normal(n)).astype(np.float32),
              np.zeros(n, np.float32), ends):
        y, scale, zero = T.run_op("aiov.DynamicQuantize", [x], threads=threads)
        lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
        want_scale = np.float32((np.float32(hi) - np.float32(lo)) / np.float32(255)) if hi > lo else np.float32(1)
        want_zero = np.clip(np.rint(np.float32(0) - np.float32(lo) / want_scale), 0, 255)
        want = np.clip(np.rint(x / want_scale) + want_zero, 0, 255).astype(np.uint8)
        assert scale == want_scale and zero == want_zero and np.array_equal(y, want), (n, x, y, want)
        # A given scale and zero point (QuantizeLinear per tensor), saturating both ways.
        s, z = np.float32(0.01), np.uint8(100)
        y = T.run_op("aiov.Quantize", [x, s, z], threads=2)[0]
        assert np.array_equal(y, np.clip(np.rint(x / s) + z, 0, 255).astype(np.uint8))
        y = T.run_op("aiov.Quantize", [x, s, np.int8(-3)], threads=2)[0]
        assert y.dtype == np.int8 and np.array_equal(y, np.clip(np.rint(x / s) - 3, -128, 127).astype(np.int8))
        quantized += 1
# Quotients at and next to half-integers (where multiplying by the reciprocal could round the
# other way), huge, infinite and NaN values, and a scale whose reciprocal overflows.
for s in (np.float32(0.0137), np.float32(0.1), np.float32(3.7), np.float32(1e-39)):
    x = (np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)) * s
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf)),
                        np.float32([1e30, -1e30, 3e6, np.inf, -np.inf, np.nan, 0.0])])
    with np.errstate(all="ignore"):
        want = np.clip(np.nan_to_num(np.rint(x / s), nan=-1e9) + 128, 0, 255).astype(np.uint8)  # NaN: 0
    got = T.run_op("aiov.Quantize", [x, s, np.uint8(128)], threads=2)[0]
    assert np.array_equal(got, want), (s, x[got != want], got[got != want], want[got != want])
print(json.dumps({"isa": ov._core.gemm_int8_isa(), "conv_isa": ov._core.conv_int8_isa(), "i32": worst_i32, "f32": worst_f32, "runs": runs,
                  "quantized": quantized, "convs": convs}))
"""
)

ISAS = ["scalar", "avx512_vnni", "amx"]  # each includes the ones before it


def cpu_int8_isa():
    import aiov

    return aiov._core.cpu_int8_isa()


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_int8_path_matches_integer_reference(isa, run_capped):
    if ISAS.index(isa) > ISAS.index(cpu_int8_isa()):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 300, AIOV_INT8_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["isa"] == isa  # the forced path is the one that ran
    # Direct convolutions run on VNNI or the portable loops; on AMX the GEMM's tiles take them.
    assert result["conv_isa"] == ("" if isa == "amx" else isa)
    assert result["i32"] == 0
    assert result["f32"] < 1e-5
    assert result["runs"] == 72 and result["quantized"] == 40 and result["convs"] == 72


EDGES_SCRIPT = (
    script_prelude(3)
    + r"""
# Every row count of a tile and one past it, against K off whole quads, 16-byte and 64-byte
# groups (the padding the packing picks per ISA) and N off whole panels and panel pairs.
checked = 0
for m in range(1, 14):
    for i, (k, n) in enumerate([(1, 1), (3, 17), (5, 16), (16, 15), (17, 33), (24, 48), (63, 31), (64, 50),
                                (65, 64), (130, 97)]):
        at, bt = (np.uint8, np.int8) if (m + i) % 2 else (np.int8, np.uint8)
        a, b = ints(at, (m, k)), ints(bt, (k, n))
        za, zb = ints(at, ()), ints(bt, (n,) if i % 2 else ())
        ref = ((a.astype(np.int64) - za.astype(np.int64)) @ (b.astype(np.int64) - zb.astype(np.int64))).astype(np.int32)
        got = T.run_op("aiov.QuantizedMatMul", [a, b, za, zb], threads=2)[0]
        assert np.array_equal(got, ref), (m, k, n)
        factor = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        got = T.run_op("aiov.QuantizedMatMul", [a, b, za, zb, factor, bias], {"relu": True}, threads=2)[0]
        want = np.maximum(ref.astype(np.float32) * factor + bias, 0)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5), (m, k, n)
        checked += 1
# u8 activations against weights without a zero point (what dynamic quantization gives):
# rows whose K needs no padding are read where they are, the last tile's rows copied.
for m in (1, 5, 12, 13, 25):
    for k in (4, 16, 24, 64, 384, 1024, 30):
        a, b = ints(np.uint8, (m, k)), ints(np.int8, (k, 40))
        za = ints(np.uint8, ())
        ref = ((a.astype(np.int64) - za) @ b.astype(np.int64)).astype(np.int32)
        got = T.run_op("aiov.QuantizedMatMul", [a, b, za, np.int8(0)], threads=2)[0]
        assert np.array_equal(got, ref), (m, k)
        checked += 1
# The same edges requantized to u8: 1x1 convolutions over 1 x m pixels of k channels (in
# NHWC, the data itself is the rows when k fills the kernels' padding), the bytes
# aiov.Quantize makes of the f32 result.
for m, k, n in [(1, 16, 96), (7, 16, 96), (13, 24, 144), (12, 4, 17), (25, 20, 33), (50, 64, 20), (3, 130, 7)]:
    x, w = ints(np.uint8, (1, 1, m, k)), ints(np.int8, (n, k, 1, 1))
    za, zw = ints(np.uint8, ()), ints(np.int8, (n,))
    factor = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    y_scale, y_zero = np.float32(0.02), np.uint8(9)
    for relu in (False, True):
        attrs = {"relu": relu, "layout": "nhwc"}
        f32 = T.run_op("aiov.QuantizedConv", [x, w, za, zw, factor, bias], attrs, threads=2)[0]
        ref = (x.astype(np.int64) - za) @ (w[:, :, 0, 0].astype(np.int64) - zw.reshape(-1, 1)).T
        want = ref.astype(np.int32).astype(np.float32) * factor + bias
        assert np.allclose(f32, np.maximum(want, 0) if relu else want, rtol=1e-5, atol=1e-5), (m, k, n)
        got = T.run_op("aiov.QuantizedConv", [x, w, za, zw, factor, bias, y_scale, y_zero], attrs, threads=2)[0]
        assert got.dtype == np.uint8 and np.array_equal(got, T.run_op("aiov.Quantize", [f32, y_scale, y_zero])[0])
        checked += 1
print(json.dumps({"isa": ov._core.gemm_int8_isa(), "checked": checked}))
"""
)


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_int8_path_tile_and_padding_edges(isa, run_capped):
    if ISAS.index(isa) > ISAS.index(cpu_int8_isa()):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(EDGES_SCRIPT, 300, AIOV_INT8_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["isa"] == isa
    assert result["checked"] == 13 * 10 + 5 * 7 + 7 * 2


def test_gemm_isa_cap_lowers_int8_to_portable(run_capped):
    # AIOV_GEMM_ISA below avx512 leaves no VNNI or AMX to use: the portable loops run.
    script = "import aiov; print(aiov._core.gemm_int8_isa())"
    assert run_capped(script, 60, AIOV_GEMM_ISA="avx2", AIOV_INT8_ISA=None) == "scalar"


def test_bad_operands_are_named():
    import numpy as np

    import aiov

    T = aiov._core._testing
    a, b = np.zeros((2, 4), np.uint8), np.zeros((4, 3), np.int8)
    with pytest.raises(Exception, match="u8 or i8"):
        T.run_op("aiov.QuantizedMatMul", [a.astype(np.int16), b, np.int16(0), np.int8(0)])
    with pytest.raises(Exception, match="inner dimensions"):
        T.run_op("aiov.QuantizedMatMul", [np.zeros((2, 5), np.uint8), b, np.uint8(0), np.int8(0)])
    with pytest.raises(Exception, match=r"zero point of B must be one value or \[3\]"):
        T.run_op("aiov.QuantizedMatMul", [a, b, np.uint8(0), np.zeros(2, np.int8)])
    with pytest.raises(Exception, match="zero points must have their operand's type"):
        T.run_op("aiov.QuantizedMatMul", [a, b, np.int8(0), np.int8(0)])
    with pytest.raises(Exception, match=r"relu needs the dequantized \(f32\) output"):
        T.run_op("aiov.QuantizedMatMul", [a, b, np.uint8(0), np.int8(0)], {"relu": True})
    # A requantizing convolution takes one f32 scale and one u8 zero point, after a bias.
    x, w = np.zeros((1, 2, 4, 4), np.uint8), np.zeros((3, 2, 1, 1), np.int8)
    head = [x, w, np.uint8(0), np.int8(0), np.float32(1), np.zeros(3, np.float32)]
    with pytest.raises(Exception, match="requantizing needs one f32 scale and one u8 zero point"):
        T.run_op("aiov.QuantizedConv", head + [np.float32(0.1), np.int8(0)])
    with pytest.raises(Exception, match="requantizing needs one f32 scale and one u8 zero point"):
        T.run_op("aiov.QuantizedConv", head + [np.float32([0.1, 0.2]), np.uint8(0)])


def test_quantized_add_is_the_dequantized_sum_requantized():
    import numpy as np

    import aiov

    T = aiov._core._testing
    rng = np.random.default_rng(5)
    for n in (1, 17, 600, 70000):  # the last one shared over the pool
        a, b = rng.integers(0, 256, n).astype(np.uint8), rng.integers(0, 256, n).astype(np.uint8)
        sa, za, sb, zb, sy, zy = np.float32(0.03), np.uint8(126), np.float32(0.07), np.uint8(3), np.float32(0.05), 9
        got = T.run_op("aiov.QuantizedAdd", [a, sa, za, b, sb, zb, sy, np.uint8(zy)], threads=2)[0]
        # The separate ops' f32 steps: each operand dequantized, the sum, then quantized.
        total = (a.astype(np.float32) - np.float32(za)) * sa + (b.astype(np.float32) - np.float32(zb)) * sb
        want = np.clip(np.rint(total / sy) + zy, 0, 255).astype(np.uint8)
        assert got.dtype == np.uint8 and np.array_equal(got, want), n
    with pytest.raises(Exception, match="one f32 scale and one u8 zero point"):
        T.run_op("aiov.QuantizedAdd", [a, sa, np.int8(0), b, sb, zb, sy, np.uint8(zy)])
    with pytest.raises(Exception, match="adds u8 tensors"):
        T.run_op("aiov.QuantizedAdd", [a.astype(np.int8), sa, za, b, sb, zb, sy, np.uint8(zy)])
    with pytest.raises(Exception, match="operands must have one shape"):
        T.run_op("aiov.QuantizedAdd", [a[:5], sa, za, b[:6], sb, zb, sy, np.uint8(zy)])


@pytest.mark.parametrize("n", [1, 15, 16, 33, 64, 513, 70000])  # vector tails, blocks, the pool
def test_quantized_add_vector_paths_give_the_separate_ops_bytes(n):
    import numpy as np

    import aiov

    T = aiov._core._testing
    rng = np.random.default_rng(n)
    a, b = rng.integers(0, 256, n).astype(np.uint8), rng.integers(0, 256, n).astype(np.uint8)
    # Random scales (where a fused multiply-add would round differently), and quarter scales
    # whose sums land on exact halves of the output's (round-half-even ties).
    random_scales = [np.float32(s) for s in rng.uniform(0.001, 0.2, 3)]
    for sa, sb, sy in [random_scales, [np.float32(0.25), np.float32(0.25), np.float32(0.5)]]:
        za, zb, zy = (np.uint8(z) for z in rng.integers(0, 256, 3))
        got = T.run_op("aiov.QuantizedAdd", [a, sa, za, b, sb, zb, sy, zy], threads=2)[0]
        total = (a.astype(np.float32) - np.float32(za)) * sa + (b.astype(np.float32) - np.float32(zb)) * sb
        want = np.clip(np.rint(total / sy) + np.float32(zy), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(got, want)


def test_requantization_rounds_as_the_division_does():
    # The vector kernels multiply by the scale's reciprocal and divide only the lanes that
    # may round differently: values whose quotient lies on, or an ulp either side of, a
    # half-integer must still give numpy's rint(x / scale) (a correctly rounded division).
    import numpy as np

    import aiov

    T = aiov._core._testing
    rng = np.random.default_rng(11)
    for scale in np.float32([0.02, 0.1, 1 / 3, 0.0123457, 7.0, 3e-5]):
        halves = (np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)) * scale
        near = np.concatenate([halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf)])
        wide = rng.standard_normal(5000).astype(np.float32) * scale * 200
        edges = np.float32([0, -0.0, np.inf, -np.inf, np.nan, 3e38, -3e38, 1e-40])
        x = np.concatenate([near, wide, edges]).astype(np.float32)
        for zero in (np.uint8(0), np.uint8(128)):
            got = T.run_op("aiov.Quantize", [x, scale, zero])[0]
            with np.errstate(invalid="ignore", over="ignore"):
                want = np.clip(np.nan_to_num(np.rint(x / scale), nan=-1e9) + np.float32(zero), 0, 255).astype(np.uint8)
            assert np.array_equal(got, want), (scale, zero, x[got != want], got[got != want], want[got != want])


FOLDED_MERGE_SCRIPT = r"""
import json, numpy as np, aiov as ov
T = ov._core._testing
rng = np.random.default_rng(21)
# 1x1 convolutions (NHWC, u8 out) over many pixels, so that some of their quotients land near
# half-integers, with biases small and large against the output scale (past 1024 quanta the
# column block's merge takes its exact steps), zero points at both ends, and a Relu: the bytes must be those
# aiov.Quantize makes of the f32 output. Symmetric filters run on the GEMM's u8 strips: short K
# (8 to 32 channels), column blocks of 1, 2 and 3 panels and columns off them (24, 40, 80 =
# 3 + 2 panels, 144 = 3 x 3), row counts off the 8- and 12-row calls (1, 7, 49), 800 KB of
# weights against 49 rows (strips block by block); filters with zero points (the last two) on
# its tiles, whose u8 merge folds the same way.
checked = 0
for pixels, c, o, bias_quanta, filter_zeros in [
        (3000, 16, 96, 3.0, False), (777, 24, 40, 900.0, False), (500, 64, 33, 5000.0, False),
        (1001, 32, 64, 0.0, False), (49, 8, 24, 3.0, False), (7, 12, 144, 3.0, False), (1, 20, 80, 3.0, False),
        (300, 24, 16, 3.0, False), (130, 16, 48, 2000.0, False), (49, 1024, 800, 3.0, False),
        (900, 16, 40, 3.0, True), (61, 20, 96, 0.0, True)]:
    x, w = rng.integers(0, 256, (1, 1, pixels, c)).astype(np.uint8), rng.integers(-128, 128, (o, c, 1, 1)).astype(np.int8)
    za = np.uint8(rng.integers(0, 256))
    zw = rng.integers(-20, 20, o).astype(np.int8) if filter_zeros else np.zeros(o, np.int8)
    factor = rng.uniform(1e-4, 1e-3, o).astype(np.float32)
    for y_scale in (np.float32(0.02), np.float32(0.0371)):
        bias = (rng.standard_normal(o) * bias_quanta * y_scale).astype(np.float32)
        if bias_quanta >= 900:  # (some columns near the limit, on either side of it)
            bias[:4] = np.float32([1023.5, -1023.9, 1024.5, -1030.0]) * y_scale
        for y_zero in (np.uint8(0), np.uint8(128), np.uint8(255)):
            for relu in (False, True):
                attrs = {"relu": relu, "layout": "nhwc"}
                f32 = T.run_op("aiov.QuantizedConv", [x, w, za, zw, factor, bias], attrs)[0]
                got = T.run_op("aiov.QuantizedConv", [x, w, za, zw, factor, bias, y_scale, y_zero], attrs,
                               threads=1 + relu)[0]
                want = T.run_op("aiov.Quantize", [f32, y_scale, y_zero])[0]
                assert np.array_equal(got, want), (pixels, c, o, y_zero, relu, np.argwhere(got != want)[:5])
                q = f32 / y_scale
                checked += int(np.sum(np.abs(np.abs(q - np.rint(q)) - 0.5) < 1.0 / 1024))
# Output scales whose reciprocal is not a normal float: the merge divides (every row exact).
x, w = rng.integers(0, 256, (1, 1, 37, 16)).astype(np.uint8), rng.integers(-128, 128, (24, 16, 1, 1)).astype(np.int8)
factor, bias = np.full(24, 1e-44, np.float32), rng.standard_normal(24).astype(np.float32) * np.float32(1e-38)
for y_scale in (np.float32(1e-39), np.float32(3e38)):
    inputs = [x, w, np.uint8(9), np.zeros(24, np.int8), factor, bias]
    f32 = T.run_op("aiov.QuantizedConv", inputs, {"layout": "nhwc"})[0]
    got = T.run_op("aiov.QuantizedConv", inputs + [y_scale, np.uint8(100)], {"layout": "nhwc"})[0]
    assert np.array_equal(got, T.run_op("aiov.Quantize", [f32, y_scale, np.uint8(100)])[0]), y_scale
print(json.dumps({"conv_isa": ov._core.conv_int8_isa(), "near_half": checked}))
"""


@pytest.mark.parametrize("isa", ["avx512_vnni", "scalar"])
def test_requantizing_merge_folds_the_scales_without_changing_a_byte(isa, run_capped):
    if ISAS.index(isa) > ISAS.index(cpu_int8_isa()):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(FOLDED_MERGE_SCRIPT, 300, AIOV_INT8_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["conv_isa"] == isa
    assert result["near_half"] > 100  # the exact steps' rows were reached
