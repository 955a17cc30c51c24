"""ONNX math and elementwise ops added through the registry alone: trigonometric and hyperbolic
functions, Mod (both sign rules), bitwise ops and shifts, IsNaN/IsInf, CastLike, the extra
reductions, CumProd, Hardmax, LpNormalization, MeanVarianceNormalization, Trilu and EyeLike.
Each matches ONNX's reference evaluator from ONNX, and the ops with an aiov.opset builder
survive an IR round trip (aiov.save_model / read_model)."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

RNG = np.random.default_rng(11)
_ONNX_TYPE = {
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.uint16): TensorProto.UINT16,
    np.dtype(np.uint32): TensorProto.UINT32,
    np.dtype(np.uint64): TensorProto.UINT64,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def _model(op, inputs, opset, out_dtype=None, **attrs):
    """One ONNX node over numpy inputs (names x0, x1, ...), output shape left to inference."""
    names = [f"x{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], **attrs)
    out_type = _ONNX_TYPE[np.dtype(out_dtype or inputs[0].dtype)]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, _ONNX_TYPE[a.dtype], list(a.shape)) for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info("y", out_type, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(op, inputs, opset, out_dtype=None, rtol=1e-6, atol=1e-7, **attrs):
    model = _model(op, inputs, opset, out_dtype, **attrs)
    expected = ReferenceEvaluator(model).run(None, {f"x{i}": a for i, a in enumerate(inputs)})[0]
    got = ov.compile_model(model.SerializeToString())(list(inputs))[0]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    return got


TRIG = [
    ("Sin", 7, 3),
    ("Cos", 7, 3),
    ("Tan", 7, 1.2),
    ("Asin", 7, 0.99),
    ("Acos", 7, 0.99),
    ("Atan", 7, 5),
    ("Sinh", 9, 3),
    ("Cosh", 9, 3),
    ("Asinh", 9, 5),
    ("Atanh", 9, 0.99),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("op, opset, scale", TRIG, ids=[t[0] for t in TRIG])
def test_trigonometric_and_hyperbolic_functions(op, opset, scale, dtype):
    x = (RNG.uniform(-1, 1, (2, 3, 5)) * scale).astype(dtype)
    tol = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-14}[dtype]
    _check(op, [x], opset, rtol=tol, atol=tol)


@pytest.mark.filterwarnings("ignore:invalid value encountered in arccosh:RuntimeWarning")
def test_acosh_on_its_domain_and_nan_outside():
    x = np.array([1.0, 1.5, 10.0, 0.5], np.float32)
    got = _check("Acosh", [x], 9)
    assert np.isnan(got[3])


def test_trigonometric_ops_refuse_integers():
    with pytest.raises(ov.InputError, match="floating-point"):
        ops.sin(ops.parameter([3], np.int32))


MOD_CASES = [
    (np.int32, 0),
    (np.int64, 0),
    (np.int8, 0),
    (np.uint8, 0),
    (np.int32, 1),
    (np.int64, 1),
    (np.float32, 1),
    (np.float64, 1),
    (np.float16, 1),
]


@pytest.mark.parametrize("dtype, fmod", MOD_CASES, ids=[f"{np.dtype(d).name}-fmod{f}" for d, f in MOD_CASES])
def test_mod_sign_rules_and_broadcasting(dtype, fmod):
    if np.issubdtype(dtype, np.unsignedinteger):
        a = RNG.integers(0, 100, (2, 3, 4)).astype(dtype)
        b = RNG.integers(1, 9, (3, 1)).astype(dtype)
    else:
        a = (RNG.uniform(-20, 20, (2, 3, 4))).astype(dtype)
        b = np.array([[3], [-4], [5]], dtype)
    _check("Mod", [a, b], 13, rtol=1e-3 if dtype == np.float16 else 1e-6, fmod=fmod)


def test_integer_mod_by_zero_and_by_minus_one_do_not_trap():
    a = np.array([7, -7, np.iinfo(np.int32).min], np.int32)
    for builder in (ops.mod, ops.floor_mod):
        x = ops.parameter([3], np.int32)
        model = ov.Model([builder(x, np.array([0, -1, -1], np.int32))], [x])
        np.testing.assert_array_equal(ov.compile_model(model)(a)[0], [0, 0, 0])


def test_float_floor_mod_follows_numpy():
    a = np.array([5.5, -5.5, 5.5, -0.0, 3.0, -3.0, np.inf, 1.0], np.float32)
    b = np.array([2.0, 2.0, -2.0, 3.0, 0.0, np.inf, 2.0, np.nan], np.float32)
    x, y = ops.parameter([8], np.float32), ops.parameter([8], np.float32)
    got = ov.compile_model(ov.Model([ops.floor_mod(x, y)], [x, y]))([a, b])[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.mod(a, b)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint16, np.uint64])
def test_bitwise_binaries_broadcast(op, dtype):
    info = np.iinfo(dtype)
    a = RNG.integers(info.min, info.max, (2, 3, 4), dtype=dtype, endpoint=True)
    b = RNG.integers(info.min, info.max, (1, 4), dtype=dtype, endpoint=True)
    _check(op, [a, b], 18)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint8, np.uint32])
def test_bitwise_not(dtype):
    info = np.iinfo(dtype)
    _check("BitwiseNot", [RNG.integers(info.min, info.max, (3, 5), dtype=dtype, endpoint=True)], 18)


def test_bitwise_ops_on_booleans_are_logical_and_refuse_floats():
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    x, y = ops.parameter([4], np.bool_), ops.parameter([4], np.bool_)
    model = ov.Model([ops.bitwise_and(x, y), ops.bitwise_xor(x, y), ops.bitwise_not(x)], [x, y])
    got = ov.compile_model(model)([a, b])
    np.testing.assert_array_equal(got[0], a & b)
    np.testing.assert_array_equal(got[1], a ^ b)
    np.testing.assert_array_equal(got[2], ~a)
    with pytest.raises(ov.InputError, match="integer or boolean"):
        ops.bitwise_or(ops.parameter([2], np.float32), ops.parameter([2], np.float32))


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_bit_shift(direction, dtype):
    bits = np.iinfo(dtype).bits
    x = RNG.integers(0, np.iinfo(dtype).max, (2, 6), dtype=dtype, endpoint=True)
    s = RNG.integers(0, bits - 1, (6,), dtype=dtype)
    _check("BitShift", [x, s], 11, direction=direction)


def test_shift_by_the_width_or_more_gives_zero():
    x = ops.parameter([3], np.uint8)
    model = ov.Model(
        [
            ops.bitwise_left_shift(x, np.array([8, 9, 1], np.uint8)),
            ops.bitwise_right_shift(x, np.array([8, 200, 1], np.uint8)),
        ],
        [x],
    )
    got = ov.compile_model(model)(np.array([255, 1, 3], np.uint8))
    np.testing.assert_array_equal(got[0], [0, 0, 6])
    np.testing.assert_array_equal(got[1], [0, 0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_is_nan_and_is_inf(dtype):
    x = np.array([[1.0, np.nan, np.inf], [-np.inf, 0.0, -2.5]], dtype)
    _check("IsNaN", [x], 13, out_dtype=np.bool_)
    for pos, neg in [(1, 1), (1, 0), (0, 1), (0, 0)]:
        _check("IsInf", [x], 10, out_dtype=np.bool_, detect_positive=pos, detect_negative=neg)


def test_cast_like_takes_the_second_inputs_type():
    x = (RNG.standard_normal((2, 3)) * 10).astype(np.float32)
    _check("CastLike", [x, np.zeros((1,), np.int32)], 15, out_dtype=np.int32)
    _check("CastLike", [x, np.zeros((1,), np.float64)], 15, out_dtype=np.float64)


REDUCERS = ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("op", REDUCERS)
def test_reductions_with_axes_as_attribute_or_input(op, keepdims, opset):
    x = RNG.uniform(0.1, 3, (2, 3, 4)).astype(np.float32)
    if opset >= 18:
        model = helper.make_model(
            helper.make_graph(
                [helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)],
                "g",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                [helper.make_tensor("axes", TensorProto.INT64, [2], [0, -1])],
            ),
            opset_imports=[helper.make_opsetid("", opset)],
        )
        expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
        got = ov.compile_model(model.SerializeToString())(x)[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    else:
        _check(op, [x], opset, rtol=1e-5, axes=[0, -1], keepdims=keepdims)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64])
def test_reductions_keep_other_types(dtype):
    # (ONNX's reference widens int32 sums to int64; onnxruntime and aiov keep the input type.)
    x = RNG.integers(-5, 6, (3, 4)).astype(dtype)
    for op, want, attrs in [
        ("ReduceL1", np.abs(x).sum(1, keepdims=True), {"axes": [1]}),
        ("ReduceSumSquare", (x * x).sum(0), {"axes": [0], "keepdims": 0}),
    ]:
        got = ov.compile_model(_model(op, [x], 13, **attrs).SerializeToString())(x)[0]
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want.astype(dtype))


def test_reduction_builders_survive_an_ir_round_trip(tmp_path):
    x = ops.parameter([2, 3, 4], np.float32, name="x")
    outs = [
        ops.reduce_l1(x, [1]),
        ops.reduce_sum_square(x, [0, 2], keep_dims=True),
        ops.reduce_log_sum(x, [2]),
        ops.reduce_log_sum_exp(x, [1]),
    ]
    model = ov.Model(outs, [x])
    data = RNG.uniform(0.5, 2, (2, 3, 4)).astype(np.float32)
    want = [np.abs(data).sum(1), (data**2).sum((0, 2), keepdims=True), np.log(data.sum(2)), np.log(np.exp(data).sum(1))]
    ov.save_model(model, tmp_path / "m.xml")
    again = ov.Core().read_model(tmp_path / "m.xml")
    for m in (model, again):
        got = ov.compile_model(m)(data)
        for i, w in enumerate(want):
            np.testing.assert_allclose(got[i], w, rtol=1e-5)


@pytest.mark.parametrize("exclusive, reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_cum_prod(dtype, exclusive, reverse):
    x = RNG.integers(1, 4, (2, 5, 3)).astype(dtype)
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("CumProd", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)],
            "g",
            [helper.make_tensor_value_info("x", _ONNX_TYPE[np.dtype(dtype)], list(x.shape))],
            [helper.make_tensor_value_info("y", _ONNX_TYPE[np.dtype(dtype)], None)],
            [helper.make_tensor("axis", TensorProto.INT64, [], [1])],
        ),
        opset_imports=[helper.make_opsetid("", 26)],
    )
    got = ov.compile_model(model.SerializeToString())(x)[0]
    want = np.flip(x, 1) if reverse else x
    want = np.cumprod(want, 1)
    if exclusive:
        want = np.concatenate([np.ones_like(want[:, :1]), want[:, :-1]], 1)
    if reverse:
        want = np.flip(want, 1)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_hardmax_picks_the_first_maximum(axis):
    x = RNG.integers(0, 3, (2, 3, 4)).astype(np.float32)  # ties: the first one wins
    _check("Hardmax", [x], 13, axis=axis)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_hardmax_before_opset_13_flattens_from_the_axis_on(axis):
    # (ONNX's reference evaluator applies opset 13's rule to every opset, so numpy decides.)
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    rows = x.reshape(int(np.prod(x.shape[:axis])), -1)
    want = np.zeros_like(rows)
    want[np.arange(len(rows)), rows.argmax(1)] = 1
    got = ov.compile_model(_model("Hardmax", [x], 11, axis=axis).SerializeToString())(x)[0]
    np.testing.assert_array_equal(got, want.reshape(x.shape))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_lp_normalization(p, axis):
    # (ONNX's reference forgets |x| for p=1; its node tests and onnxruntime use the L1 norm.)
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    x[0, 0] = 0  # a zero vector along the last axis stays zero
    norm = np.linalg.norm(x, ord=p, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):
        want = np.where(norm == 0, 0, x / norm)
    got = ov.compile_model(_model("LpNormalization", [x], 13, p=p, axis=axis).SerializeToString())(x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_mean_variance_normalization():
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    _check("MeanVarianceNormalization", [x], 13, rtol=1e-4, atol=1e-5)
    _check("MeanVarianceNormalization", [x], 13, rtol=1e-4, atol=1e-5, axes=[1, 3])


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [-6, -1, 0, 2, 7])
def test_trilu(upper, k):
    x = RNG.integers(1, 9, (2, 4, 5)).astype(np.int64)
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.INT64, [2, 4, 5])],
            [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
            [helper.make_tensor("k", TensorProto.INT64, [], [k])],
        ),
        opset_imports=[helper.make_opsetid("", 14)],
    )
    got = ov.compile_model(model.SerializeToString())(x)[0]
    np.testing.assert_array_equal(got, np.triu(x, k) if upper else np.tril(x, k))


@pytest.mark.parametrize("k", [-2, 0, 1, 9])
def test_eye_like_with_and_without_dtype(k):
    x = np.zeros((3, 4), np.float32)
    np.testing.assert_array_equal(_check("EyeLike", [x], 9, k=k), np.eye(3, 4, k, np.float32))
    got = _check("EyeLike", [x], 9, out_dtype=np.int32, k=k, dtype=TensorProto.INT32)
    np.testing.assert_array_equal(got, np.eye(3, 4, k, np.int32))


UNARY_BUILDERS = ["sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh"]


def test_unary_builders_match_numpy_and_survive_an_ir_round_trip(tmp_path):
    x = ops.parameter([7], np.float32, name="x")
    outs = [getattr(ops, b)(x, name=b) for b in UNARY_BUILDERS]
    model = ov.Model(outs, [x])
    data = np.linspace(-0.9, 0.9, 7, dtype=np.float32)
    names = {
        "asin": "arcsin",
        "acos": "arccos",
        "atan": "arctan",
        "asinh": "arcsinh",
        "acosh": "arccosh",
        "atanh": "arctanh",
    }
    with np.errstate(invalid="ignore"):
        want = [getattr(np, names.get(b, b))(data) for b in UNARY_BUILDERS]
    ov.save_model(model, tmp_path / "m.xml")
    xml = (tmp_path / "m.xml").read_text()
    assert 'type="Asinh" version="opset4"' in xml and 'type="Sin" version="opset1"' in xml
    again = ov.Core().read_model(tmp_path / "m.xml")
    for m in (model, again):
        got = ov.compile_model(m)(data)
        for i, w in enumerate(want):
            np.testing.assert_allclose(got[i], w, rtol=1e-6, atol=1e-7, equal_nan=True)


def test_binary_and_classification_builders_survive_an_ir_round_trip(tmp_path):
    a, b = ops.parameter([2, 3], np.int32, name="a"), ops.parameter([3], np.int32, name="b")
    f = ops.parameter([3], np.float32, name="f")
    outs = [
        ops.floor_mod(a, b),
        ops.mod(a, b),
        ops.bitwise_and(a, b),
        ops.bitwise_or(a, b),
        ops.bitwise_xor(a, b),
        ops.bitwise_not(a),
        ops.bitwise_left_shift(a, b),
        ops.bitwise_right_shift(a, b),
        ops.is_nan(f),
        ops.is_inf(f, False, True),
        ops.trilu(a, 0, upper=False),
        ops.cum_prod(a, 1),
        ops.hardmax(f, 0),
        ops.eye_like(a, 1),
    ]
    model = ov.Model(outs, [a, b, f])
    av = np.array([[7, -7, 9], [-9, 4, 13]], np.int32)
    bv = np.array([3, 2, -4], np.int32)
    fv = np.array([np.inf, -np.inf, np.nan], np.float32)
    want = [
        np.mod(av, bv),
        np.fmod(av, bv),
        av & bv,
        av | bv,
        av ^ bv,
        ~av,
        None,
        None,
        np.isnan(fv),
        np.isneginf(fv),
        np.tril(av),
        np.cumprod(av, 1),
        np.array([0, 0, 1], np.float32),  # a NaN counts as the largest, like argmax
        np.eye(2, 3, 1, dtype=np.int32),
    ]
    ov.save_model(model, tmp_path / "m.xml")
    again = ov.Core().read_model(tmp_path / "m.xml")
    for m in (model, again):
        got = ov.compile_model(m)([av, bv, fv])
        for i, w in enumerate(want):
            if w is not None:
                np.testing.assert_array_equal(got[i], w, err_msg=str(i))
