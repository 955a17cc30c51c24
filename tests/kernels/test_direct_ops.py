"""Op kernels run one at a time through the registry (aiov._core._testing.run_op), against
numpy: elementwise broadcasting, reductions, softmax and pooling, on the calling thread and
split over the pool. Outputs start as 0xFF bytes, so an element a kernel skips shows up."""

import numpy as np
import pytest

from aiov import InputError
from aiov._core import _testing

RNG = np.random.default_rng(31)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def run(op, inputs, attrs=None, **kwargs):
    outputs = _testing.run_op(op, inputs, attrs or {}, **kwargs)
    return outputs[0]


# ---- the entry point itself ---------------------------------------------------------------


def test_outputs_are_fresh_arrays_of_the_inferred_type_and_shape():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = run("Add", [a, np.int32(10) * np.ones((1, 3), np.int32)])
    assert out.dtype == np.int32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, a + 10)
    out[0, 0] = 99  # writable, and not the input's memory
    assert a[0, 0] == 0


def test_bad_calls_name_what_was_expected():
    with pytest.raises(RuntimeError, match="NoSuchOp"):
        _testing.run_op("NoSuchOp", [rand(2)], {})
    with pytest.raises(InputError, match="cannot be broadcast"):
        _testing.run_op("Add", [rand(2, 3), rand(4)], {})
    with pytest.raises(InputError, match="runtime_inputs"):
        _testing.run_op("Add", [rand(2), rand(2)], {}, runtime_inputs=[2])
    with pytest.raises(InputError, match="shapes its output"):
        _testing.run_op("ReduceSum", [rand(2, 3), np.array([1], np.int64)], {}, runtime_inputs=[1])
    with pytest.raises(InputError, match="threads"):
        _testing.run_op("Relu", [rand(2)], {}, threads=-1)
    with pytest.raises(InputError, match="expected 2 inputs"):
        _testing.run_op("Add", [rand(2)], {})


def test_inputs_known_at_prepare_or_only_at_run_give_the_same_product():
    # MatMul packs a B it knows while preparing; one it sees only at run time is multiplied
    # unpacked. Both must agree with numpy.
    a, b = rand(7, 33), rand(33, 19)
    for runtime in ([], [0], [1], [0, 1]):
        np.testing.assert_allclose(run("MatMul", [a, b], runtime_inputs=runtime), a @ b, rtol=1e-5, atol=1e-5)


# ---- elementwise broadcasting -----------------------------------------------------------

BINARY = {
    "Add": np.add,
    "Subtract": np.subtract,
    "Multiply": np.multiply,
    "Divide": np.divide,
    "Maximum": np.maximum,
    "Minimum": np.minimum,
}
SHAPE_PAIRS = [
    ((2, 3, 4), (2, 3, 4)),  # same shape
    ((2, 3, 4), ()),  # scalar
    ((2, 3, 4), (4,)),  # along the last axis
    ((2, 3, 4), (3, 1)),  # per row of the middle axis
    ((2, 1, 4), (1, 3, 1)),  # both sides broadcast
    ((5, 1, 7, 1), (1, 6, 1, 3)),
    ((1,), (17, 9)),
    ((2, 5, 7, 3), (2, 1, 1, 3)),  # a per-(n, c) scale over NHWC (squeeze-excitation)
    ((3, 4, 5, 2), (3, 1, 5, 1)),
]


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
def test_binary_broadcasting_matches_numpy(op, shapes):
    a, b = rand(*shapes[0]), rand(*shapes[1]) + (3 if op == "Divide" else 0)
    np.testing.assert_allclose(run(op, [a, b]), BINARY[op](a, b), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run(op, [b, a]), BINARY[op](b, a), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_binary_ops_on_other_element_types(dtype):
    a = RNG.integers(-50, 50, (3, 5)).astype(dtype)
    b = RNG.integers(1, 9, (5,)).astype(dtype)
    for op in ("Add", "Subtract", "Multiply", "Maximum"):
        out = run(op, [a, b])
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, BINARY[op](a, b))


def test_comparisons_give_booleans():
    a, b = rand(4, 6), rand(6)
    out = run("Less", [a, b])
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, a < b)


@pytest.mark.parametrize(
    "shape, target, mode",
    [
        ((8, 2, 1, 5, 8), (8, 2, 2, 5, 8), "numpy"),  # Llama's K and V repeated over query heads: runs of 40
        ((3, 1), (3, 7), "numpy"),  # the innermost dim broadcast: one value repeated
        ((1, 4, 1), (2, 4, 5), "numpy"),  # both, with a leading broadcast
        ((5,), (2, 3, 5), "numpy"),  # new leading dims: the whole input copied
        ((1,), (4, 1, 3), "numpy"),  # one value everywhere, a size-1 dim between
        ((4, 1, 6), (3, 1), "bidirectional"),  # ONNX Expand: the input's dims win
        ((2, 1), (2, 0), "numpy"),  # an empty output
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, np.bool_])
def test_broadcast_matches_numpy(shape, target, mode, dtype):
    x = (RNG.standard_normal(shape) * 10).astype(dtype)
    out = run("Broadcast", [x, np.array(target, np.int64)], {"mode": mode})
    expected = x * np.ones(target, dtype) if mode == "bidirectional" else np.broadcast_to(x, target)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize(
    "shapes",
    [((64, 33, 40), (33, 1)), ((8, 40, 40, 24), (8, 1, 1, 24)), ((6, 50, 7, 9), (1, 50, 1, 9))],
    ids=str,
)
def test_large_broadcasts_split_over_threads(threads, shapes):
    # Threads' chunks of rows start and end inside a run of the innermost outer dim.
    a, b = rand(*shapes[0]), rand(*shapes[1])
    np.testing.assert_allclose(run("Multiply", [a, b], threads=threads), a * b, rtol=1e-6)
    np.testing.assert_allclose(run("Add", [b, a], threads=threads), b + a, rtol=1e-6)


@pytest.mark.parametrize(
    "shape, repeats",
    [
        ((2, 3, 4), (1, 2, 1)),  # a middle dim: blocks of the innermost dims repeated
        ((2, 3, 4), (3, 1, 2)),  # the innermost and the outermost
        ((5,), (2, 3, 4)),  # more repeats than dims: leading dims added
        ((2, 1, 3), (2, 4, 1)),
        ((2, 3), (0, 2)),  # an empty output
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, np.bool_])
def test_tile_matches_numpy(shape, repeats, dtype):
    x = (RNG.standard_normal(shape) * 10).astype(dtype)
    out = run("Tile", [x, np.array(repeats, np.int64)])
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, np.tile(x, repeats))


@pytest.mark.parametrize(
    "shapes",
    [
        ((4, 5, 6), (4, 5, 6), (4, 5, 6)),
        ((4, 5, 6), (4, 5, 6), ()),
        ((4, 5, 6), (), (1, 5, 6)),
        ((5, 1), (4, 1, 6), (6,)),
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int8, np.float16])
@pytest.mark.parametrize("threads", [1, 0])
def test_select_matches_numpy(shapes, dtype, threads):
    # A random condition (no branch to predict), operands broadcast along rows or as scalars.
    c = RNG.standard_normal(shapes[0]) > 0
    a, b = ((RNG.standard_normal(s) * 10).astype(dtype) for s in shapes[1:])
    out = run("Select", [c, a, b], threads=threads)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, np.where(c, a, b))


@pytest.mark.parametrize("threads", [1, 0])
def test_select_over_many_values_split_over_threads(threads):
    x = rand(8, 16, 32, 32)
    np.testing.assert_array_equal(run("Select", [x > 0, x, np.float32(-1)], threads=threads), np.where(x > 0, x, -1))


# ---- reductions ---------------------------------------------------------------------------

REDUCE = {
    "ReduceSum": lambda x, ax, k: x.sum(ax, keepdims=k),
    "ReduceMean": lambda x, ax, k: x.mean(ax, keepdims=k),
    "ReduceMax": lambda x, ax, k: x.max(ax, keepdims=k),
    "ReduceMin": lambda x, ax, k: x.min(ax, keepdims=k),
    "ReduceProd": lambda x, ax, k: x.prod(ax, keepdims=k),
    "ReduceL2": lambda x, ax, k: np.sqrt((x * x).sum(ax, keepdims=k)),
    "ReduceLogSumExp": lambda x, ax, k: np.log(np.exp(x).sum(ax, keepdims=k)),
}


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (1, 2), (-1,), (0, 1, 2)], ids=str)
@pytest.mark.parametrize("keep", [0, 1])
def test_reductions_match_numpy(op, axes, keep):
    x = rand(3, 5, 7) * 0.5 + (1 if op == "ReduceProd" else 0)
    out = run(op, [x, np.array(axes, np.int64)], {"keep_dims": keep})
    expected = REDUCE[op](x.astype(np.float64), tuple(axes), bool(keep))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("channels", [4, 8, 15])  # rows under a 16-float vector
def test_global_pooling_over_nhwc_with_few_channels(op, channels):
    x = rand(2, 6, 5, channels)
    out = run(op, [x, np.array([1, 2], np.int64)], {"keep_dims": 1})
    np.testing.assert_allclose(out, REDUCE[op](x.astype(np.float64), (1, 2), True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 0])
def test_reductions_of_many_rows(threads):
    x = rand(300, 257)
    for axis in (0, 1):
        np.testing.assert_allclose(
            run("ReduceSum", [x, np.array([axis], np.int64)], threads=threads),
            x.astype(np.float64).sum(axis),
            rtol=1e-4,
            atol=1e-4,
        )


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"])
def test_reductions_of_long_contiguous_runs(op, threads):
    # Each output reduces one contiguous run: global pooling over NCHW (192 runs of 3,000,
    # split over threads) and a whole tensor (576,000 values; sums carried in double).
    x = rand(8, 24, 50, 60) + 0.5
    for axes in ((2, 3), (0, 1, 2, 3)):
        out = run(op, [x, np.array(axes, np.int64)], {"keep_dims": 0}, threads=threads)
        np.testing.assert_allclose(out, REDUCE[op](x.astype(np.float64), axes, False), rtol=1e-6, atol=1e-6)


# ---- softmax ------------------------------------------------------------------------------


def softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@pytest.mark.parametrize(
    "shape, axis",
    [((5, 7), 1), ((5, 7), 0), ((2, 3, 33), -1), ((2, 3, 33), 1), ((4, 1000), 1), ((1, 17), 1), ((3, 16), 1)],
)
def test_softmax_matches_numpy(shape, axis):
    x = rand(*shape) * 4
    np.testing.assert_allclose(
        run("Softmax", [x], {"axis": axis}), softmax(x.astype(np.float64), axis), rtol=1e-5, atol=1e-6
    )


def test_softmax_of_large_values_stays_finite():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], np.float32)
    out = run("Softmax", [x], {"axis": 1})
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, softmax(x.astype(np.float64), 1), rtol=1e-5, atol=1e-6)


SUBNORMAL_SOFTMAX = r"""
import numpy as np
from aiov._core import _testing
x = np.zeros((3, 40), np.float32)
x[:, 1::3] = -1e4  # a padding mask's -10000
x[:, 2::3] = np.linspace(-80, -100, 13, dtype=np.float32)  # across where exp turns subnormal
x[2, 5] = np.nan
out = _testing.run_op("Softmax", [x], {"axis": 1})[0]
tiny = np.finfo(np.float32).tiny
ok = bool(((out[:2] == 0) | (out[:2] >= tiny)).all() and (out[:2, 1::3] == 0).all() and np.isnan(out[2]).all())
print(ok)
"""


@pytest.mark.parametrize("isa", [None, "avx2"])  # the CPU's own path (AVX-512 here), the portable loop
def test_softmax_gives_zero_where_exp_would_be_subnormal(isa, run_capped):
    # Subnormal probabilities cost an assist in every instruction reading them: the fused
    # attention under a padding mask ran many times slower. NaN rows stay NaN.
    assert run_capped(SUBNORMAL_SOFTMAX, 60, AIOV_GEMM_ISA=isa) == "True"


LAYER_NORM = r"""
import json, numpy as np
from aiov._core import _testing
rng = np.random.default_rng(4)
worst = 0.0
# Row lengths across the AVX-512 loop's edges (16 lanes, 64 per step; rows of 2 to 16 several to
# a vector, with a last vector part full; blocks of 16 rows and a part block), a row whose mean
# is far from zero, with and without the shift, eps inside and outside the root.
for n in (1, 2, 4, 5, 8, 16, 32, 63, 64, 100, 384):
    for rows in (6, 37):
        x = (rng.standard_normal((rows, n)) * 3 + 50).astype(np.float32)
        gamma, beta = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        for mode, operands in (("inside_sqrt", [x, gamma, beta]), ("outside_sqrt", [x, gamma])):
            got = _testing.run_op("aiov.LayerNorm", operands, {"eps": 1e-5, "eps_mode": mode})[0]
            d = x.astype(np.float64) - x.mean(-1, keepdims=True)
            sd = np.sqrt((d * d).mean(-1, keepdims=True))
            want = d / (np.sqrt(sd * sd + 1e-5) if mode == "inside_sqrt" else sd + 1e-5) * gamma
            if len(operands) == 3:
                want = want + beta
            worst = max(worst, float(np.max(np.abs(got - want))))
        # MVN over the last axis, centred only and normalized (its op, the same rows).
        for normalize in (0, 1):
            attrs = {"eps": 1e-9, "eps_mode": "inside_sqrt", "normalize_variance": normalize}
            got = _testing.run_op("MVN", [x, np.array([1], np.int64)], attrs)[0]
            d = x.astype(np.float64) - x.mean(-1, keepdims=True)
            want = d / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-9) if normalize else d
            worst = max(worst, float(np.max(np.abs(got - want))))
print(json.dumps(worst))
"""


@pytest.mark.parametrize("isa", [None, "avx2"])  # the CPU's own path (AVX-512 here), the portable loop
def test_layer_norm_rows_match_numpy(isa, run_capped):
    assert float(run_capped(LAYER_NORM, 60, AIOV_GEMM_ISA=isa)) < 1e-4


RMS_NORM = r"""
import json, numpy as np
from aiov._core import _testing
rng = np.random.default_rng(6)
worst = 0.0
# Row lengths across the AVX-512 loop's edges and blocks of 16 rows with a part block, with and
# without the scale.
for n in (1, 5, 8, 16, 32, 63, 100, 384):
    for rows in (6, 37):
        x = (rng.standard_normal((rows, n)) * 3 + 1).astype(np.float32)
        gamma = rng.standard_normal(n).astype(np.float32)
        for operands in ([x, gamma], [x]):
            got = _testing.run_op("aiov.RMSNorm", operands, {"eps": 1e-6})[0]
            x64 = x.astype(np.float64)
            want = x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + 1e-6)
            if len(operands) == 2:
                want = want * gamma
            worst = max(worst, float(np.max(np.abs(got - want))))
print(json.dumps(worst))
"""


@pytest.mark.parametrize("isa", [None, "avx2"])  # the CPU's own path (AVX-512 here), the portable loop
def test_rms_norm_rows_match_numpy(isa, run_capped):
    assert float(run_capped(RMS_NORM, 60, AIOV_GEMM_ISA=isa)) < 1e-5


GELU_ERF = r"""
import json, math, numpy as np
from aiov._core import _testing
rng = np.random.default_rng(9)
erf = np.vectorize(math.erf)
worst = 0.0
# Lengths across the AVX-512 loop's edges (16 lanes, 32 per step, a masked tail), one long
# enough to be split over the pool, values past the fit's bound (|x| / sqrt 2 > 4) and the
# specials: NaN stays NaN, +inf stays +inf, and -inf gives NaN as 0.5 x (1 + erf) does.
for n in (1, 15, 16, 31, 32, 33, 100, 70001):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    x[:: max(1, n // 7)] *= 10
    for threads in (1, 0):
        got = _testing.run_op("Gelu", [x], {}, threads=threads)[0]
        xd = x.astype(np.float64)
        want = 0.5 * xd * (1 + erf(xd / math.sqrt(2)))
        worst = max(worst, float(np.max(np.abs(got - want) / (1 + np.abs(want)))))
special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], np.float32)
got = _testing.run_op("Gelu", [special], {})[0]
assert np.isnan(got[0]) and got[1] == np.inf and np.isnan(got[2]), got
assert (got[3:5] == 0).all() and got[5] == np.float32(1e30) and got[6] == 0, got
print(json.dumps(worst))
"""


@pytest.mark.parametrize("isa", [None, "avx2"])  # the CPU's own path (AVX-512 here), the portable loop
def test_gelu_erf_matches_the_exact_formula(isa, run_capped):
    # erf's rational fit is within 4e-7; the result within 2e-6 relative to 1 + |gelu|.
    assert float(run_capped(GELU_ERF, 120, AIOV_GEMM_ISA=isa)) < 2e-6


@pytest.mark.parametrize("threads", [1, 0])
def test_softmax_and_log_softmax_over_many_rows(threads):
    x = rand(512, 129) * 3
    np.testing.assert_allclose(
        run("Softmax", [x], {"axis": -1}, threads=threads), softmax(x.astype(np.float64), -1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        run("LogSoftmax", [x], {"axis": -1}, threads=threads),
        np.log(softmax(x.astype(np.float64), -1)),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("shape, axis", [((3, 19, 300), 1), ((4, 21, 24, 25), -3), ((2, 1, 40), 1)], ids=str)
def test_softmax_over_a_middle_axis(shape, axis, threads):
    # A segmentation head's softmax (and log-softmax) over NCHW channels: blocks of up to 256 columns (here a
    # short last block), each column one lane of the passes; a length of one gives ones.
    x = rand(*shape) * 4
    x.reshape(-1)[:3] = [60.0, -60.0, 0.0]  # large and small values, the columns' maxima subtracted
    expected = softmax(x.astype(np.float64), axis)
    np.testing.assert_allclose(run("Softmax", [x], {"axis": axis}, threads=threads), expected, rtol=1e-5, atol=1e-6)
    log = run("LogSoftmax", [x], {"axis": axis}, threads=threads)
    np.testing.assert_allclose(log, np.log(np.maximum(expected, 1e-300)), rtol=1e-5, atol=1e-5)


# ---- pooling ------------------------------------------------------------------------------


def pool_reference(x, kernel, strides, pads_begin, pads_end, kind, exclude_pad=True, ceil=False):
    """NCHW max or average pooling, padding never counted by max."""
    n, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(
        x.astype(np.float64),
        ((0, 0), (0, 0), (pads_begin[0], pads_end[0]), (pads_begin[1], pads_end[1])),
        constant_values=fill,
    )
    ones = np.pad(np.ones((h, w)), ((pads_begin[0], pads_end[0]), (pads_begin[1], pads_end[1])))
    out_hw = []
    for i in range(2):
        span = (h, w)[i] + pads_begin[i] + pads_end[i] - kernel[i]
        size = (-(-span // strides[i]) if ceil else span // strides[i]) + 1
        if ceil and (size - 1) * strides[i] >= (h, w)[i] + pads_begin[i]:
            size -= 1
        out_hw.append(size)
    out = np.empty((n, c, out_hw[0], out_hw[1]))
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            y0, x0 = oy * strides[0], ox * strides[1]
            win = xp[:, :, y0 : y0 + kernel[0], x0 : x0 + kernel[1]]
            if kind == "max":
                out[:, :, oy, ox] = win.max((2, 3))
            else:
                count = ones[y0 : y0 + kernel[0], x0 : x0 + kernel[1]].sum() if exclude_pad else kernel[0] * kernel[1]
                out[:, :, oy, ox] = win.sum((2, 3)) / count
    return out


POOLS = [
    # kernel, strides, pads_begin, pads_end, ceil
    ((2, 2), (2, 2), (0, 0), (0, 0), False),
    ((3, 3), (2, 2), (1, 1), (1, 1), False),
    ((3, 3), (2, 2), (1, 1), (1, 1), True),
    ((3, 2), (1, 2), (0, 1), (2, 0), False),  # asymmetric everything
    ((5, 5), (3, 3), (2, 2), (2, 2), True),
]


def pool_attrs(kernel, strides, pads_begin, pads_end, ceil):
    return {
        "kernel": list(kernel),
        "strides": list(strides),
        "pads_begin": list(pads_begin),
        "pads_end": list(pads_end),
        "rounding_type": "ceil" if ceil else "floor",
    }


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kernel, strides, pads_begin, pads_end, ceil", POOLS)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_pooling_matches_numpy(kind, kernel, strides, pads_begin, pads_end, ceil, layout):
    x = rand(2, 5, 11, 13)
    attrs = dict(pool_attrs(kernel, strides, pads_begin, pads_end, ceil), layout=layout)
    if kind == "avg":
        attrs["exclude_pad"] = 1
    given = x if layout == "nchw" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out = run("MaxPool" if kind == "max" else "AvgPool", [given], attrs)
    if layout == "nhwc":
        out = out.transpose(0, 3, 1, 2)
    expected = pool_reference(x, kernel, strides, pads_begin, pads_end, kind, ceil=ceil)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("kernel, strides, pads_begin, pads_end, ceil", POOLS)
def test_nchw_max_pool_rows_give_the_plane_loop_values_nan_included(
    kernel, strides, pads_begin, pads_end, ceil, threads
):
    # f32 NCHW pooling without indices runs a row of windows at a time; with indices it keeps
    # the per-output loop. The values agree exactly, NaNs (the first in a window wins) included.
    x = rand(4, 24, 21, 23)
    x.reshape(-1)[RNG.choice(x.size, 300, replace=False)] = np.nan
    attrs = pool_attrs(kernel, strides, pads_begin, pads_end, ceil)
    rows = run("MaxPool", [x], attrs, threads=threads)
    plane_loop = _testing.run_op("MaxPool", [x], dict(attrs, with_indices=1), threads=threads)[0]
    np.testing.assert_array_equal(rows, plane_loop)


@pytest.mark.parametrize("exclude_pad", [0, 1])
def test_nchw_average_pool_rows_over_many_planes(exclude_pad):
    x = rand(4, 24, 21, 23)
    attrs = dict(pool_attrs((3, 3), (2, 2), (1, 1), (1, 1), True), exclude_pad=exclude_pad)
    expected = pool_reference(x, (3, 3), (2, 2), (1, 1), (1, 1), "avg", exclude_pad=bool(exclude_pad), ceil=True)
    np.testing.assert_allclose(run("AvgPool", [x], attrs, threads=0), expected, rtol=1e-5, atol=1e-6)


def test_average_pool_counting_the_padding():
    x = rand(1, 3, 7, 7)
    attrs = {"kernel": [3, 3], "strides": [2, 2], "pads_begin": [1, 1], "pads_end": [1, 1], "exclude_pad": 0}
    expected = pool_reference(x, (3, 3), (2, 2), (1, 1), (1, 1), "avg", exclude_pad=False)
    np.testing.assert_allclose(run("AvgPool", [x], attrs), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel, strides, pads_begin, pads_end, ceil", POOLS)
def test_u8_max_pool_in_nhwc_gives_the_planar_bytes(kernel, strides, pads_begin, pads_end, ceil):
    # A QDQ model's pooling runs on its u8 bytes inside an NHWC region.
    x = np.random.default_rng(3).integers(0, 256, (2, 5, 11, 13)).astype(np.uint8)
    attrs = pool_attrs(kernel, strides, pads_begin, pads_end, ceil)
    planar = run("MaxPool", [x], attrs)
    nhwc = run("MaxPool", [np.ascontiguousarray(x.transpose(0, 2, 3, 1))], dict(attrs, layout="nhwc"))
    assert nhwc.dtype == np.uint8
    np.testing.assert_array_equal(nhwc.transpose(0, 3, 1, 2), planar)


# ---- transposes of many small blocks ------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32, np.int64])
@pytest.mark.parametrize(
    "shape, perm",
    [
        ((8, 4, 4, 2, 8), (0, 1, 2, 4, 3)),  # a channel shuffle in NHWC: 16 values a pixel
        ((3, 5, 7, 3), (0, 1, 3, 2)),  # odd blocks, 3 columns
        ((2, 600, 5, 9), (0, 1, 3, 2)),  # many blocks: split over the pool
        ((4, 16, 16), (0, 2, 1)),  # the largest block this path takes
        ((2, 17, 16), (0, 2, 1)),  # one past it: the per-block path
    ],
)
def test_transposes_of_many_small_blocks_match_numpy(shape, perm, dtype, threads):
    x = (RNG.standard_normal(shape) * 50).astype(dtype)
    out = run("Transpose", [x, np.array(perm, np.int64)], threads=threads)
    np.testing.assert_array_equal(out, np.transpose(x, perm))


# ---- copies of short runs: a box's coordinates sliced and concatenated --------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32, np.int64])
@pytest.mark.parametrize(
    "shapes, axis",
    [
        ([(840, 1, 1)] * 4, 2),  # four [n, 1] coordinates into boxes
        ([(840, 2, 1), (840, 2, 1)], 2),
        ([(5, 3), (5, 0), (5, 1)], 1),  # an empty part
        ([(7, 2, 3), (7, 1, 3)], 1),  # rows of 3 values between the parts
        ([(3, 5), (3, 4)], 1),  # a part of 5 int64s: past the short-run size, copied per row
    ],
)
def test_concat_of_short_parts_matches_numpy(shapes, axis, dtype):
    parts = [(RNG.standard_normal(s) * 50).astype(dtype) for s in shapes]
    np.testing.assert_array_equal(run("Concat", parts, {"axis": axis}), np.concatenate(parts, axis=axis))


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32, np.int64])
@pytest.mark.parametrize(
    "shape, starts, ends, axes, steps",
    [
        ((840, 4), [0], [2], [1], [1]),  # a box's first corner
        ((840, 4), [2], [4], [1], [1]),
        ((840, 4), [1], [2], [1], [1]),  # one coordinate
        ((6, 5, 4), [1, 0], [5, 3], [0, 2], [2, 1]),  # rows stepped, runs of 3
    ],
)
def test_slices_into_short_runs_match_numpy(shape, starts, ends, axes, steps, dtype):
    x = (RNG.standard_normal(shape) * 50).astype(dtype)
    # (OpenVINO's Slice: start, stop, step, axes)
    args = [np.array(v, np.int64) for v in (starts, ends, steps, axes)]
    index = [slice(None)] * len(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice(s, e, st)
    want = x[tuple(index)]
    np.testing.assert_array_equal(run("Slice", [x, *args]), want)
