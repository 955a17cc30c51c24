"""The opset builders: each op against numpy, and (when openvino is installed) the same
graph built with openvino.opset13 against aiov.opset13."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

RTOL, ATOL = 1e-5, 1e-6
RNG = np.random.default_rng(123)


def _pos(shape):
    return (RNG.random(shape) + 0.5).astype(np.float32)


def _any(shape):
    return RNG.standard_normal(shape).astype(np.float32)


# name -> (builder(lib, params) -> node, param shapes, input makers, numpy reference)
BINARY = {
    "add": (np.add, _any),
    "subtract": (np.subtract, _any),
    "multiply": (np.multiply, _any),
    "divide": (np.divide, _pos),
    "maximum": (np.maximum, _any),
    "minimum": (np.minimum, _any),
    "power": (np.power, _pos),
}
UNARY = {
    "absolute": (np.abs, _any),
    "negative": (np.negative, _any),
    "relu": (lambda x: np.maximum(x, 0), _any),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x.astype(np.float64))), _any),
    "tanh": (np.tanh, _any),
    "exp": (np.exp, _any),
    "log": (np.log, _pos),
    "sqrt": (np.sqrt, _pos),
}


def _softmax(x, axis):
    e = np.exp(x.astype(np.float64) - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _case_graphs():
    """(id, build(lib) -> (results, params), inputs, expected)"""
    cases = []
    for name, (ref, make) in BINARY.items():
        for sa, sb in [((2, 3), (2, 3)), ((4, 1, 3), (5, 1)), ((3,), (2, 3))]:
            a, b = make(sa), make(sb)

            def build(lib, name=name, sa=sa, sb=sb):
                pa, pb = lib.parameter(list(sa), np.float32, name="a"), lib.parameter(list(sb), np.float32, name="b")
                return getattr(lib, name)(pa, pb), [pa, pb]

            cases.append((f"{name}-{sa}-{sb}", build, [a, b], ref(a.astype(np.float64), b.astype(np.float64))))
    for name, (ref, make) in UNARY.items():
        x = make((3, 7))

        def build(lib, name=name):
            p = lib.parameter([3, 7], np.float32, name="x")
            return getattr(lib, name)(p), [p]

        cases.append((name, build, [x], ref(x.astype(np.float64))))
    for ta, tb, sa, sb in [
        (False, False, (3, 4), (4, 5)),
        (True, False, (4, 3), (4, 5)),
        (False, True, (3, 4), (5, 4)),
        (True, True, (4, 3), (5, 4)),
        (False, False, (2, 3, 4), (4, 5)),
        (False, False, (2, 1, 3, 4), (5, 4, 2)),
        (False, True, (2, 3, 4), (2, 6, 4)),
    ]:
        a, b = _any(sa), _any(sb)
        ea = np.swapaxes(a, -1, -2) if ta else a
        eb = np.swapaxes(b, -1, -2) if tb else b

        def build(lib, ta=ta, tb=tb, sa=sa, sb=sb):
            pa, pb = lib.parameter(list(sa), np.float32, name="a"), lib.parameter(list(sb), np.float32, name="b")
            return lib.matmul(pa, pb, ta, tb), [pa, pb]

        cases.append(
            (
                f"matmul-{sa}-{sb}-ta{int(ta)}-tb{int(tb)}",
                build,
                [a, b],
                np.matmul(ea.astype(np.float64), eb.astype(np.float64)),
            )
        )
    x = _any((2, 3, 4))
    for target, special_zero, expected_shape in [
        ([-1], False, (24,)),
        ([4, -1], False, (4, 6)),
        ([0, -1], True, (2, 12)),
        ([0, 0, 2, 2], True, (2, 3, 2, 2)),
    ]:

        def build(lib, target=target, special_zero=special_zero):
            p = lib.parameter([2, 3, 4], np.float32, name="x")
            shape = lib.constant(np.array(target, dtype=np.int64))
            return lib.reshape(p, shape, special_zero), [p]

        cases.append((f"reshape-{target}-sz{int(special_zero)}", build, [x], x.reshape(expected_shape)))
    xi = (_any((2, 5)) * 10).astype(np.float32)
    for dst, np_dst in [("i32", np.int32), ("f16", np.float16)]:

        def build(lib, dst=dst):
            p = lib.parameter([2, 5], np.float32, name="x")
            return lib.convert(p, dst), [p]

        # f32 -> int conversion truncates toward zero (as OpenVINO's CPU plugin and numpy do).
        expected = xi.astype(np_dst)
        cases.append((f"convert-{dst}", build, [xi], expected))
    a, b, c = _any((2, 3)), _any((2, 1)), _any((2, 4))

    def build_concat(lib):
        ps = [lib.parameter(list(s), np.float32, name=n) for s, n in [((2, 3), "a"), ((2, 1), "b"), ((2, 4), "c")]]
        return lib.concat(ps, 1), ps

    cases.append(("concat-axis1", build_concat, [a, b, c], np.concatenate([a, b, c], axis=1)))

    def build_concat_neg(lib):
        ps = [lib.parameter([2, 3], np.float32, name=n) for n in "ab"]
        return lib.concat(ps, -2), ps

    cases.append(("concat-axis-neg2", build_concat_neg, [a, a + 1], np.concatenate([a, a + 1], axis=0)))
    s = _any((3, 4, 5)) * 3
    for axis in (0, 1, 2, -1):

        def build(lib, axis=axis):
            p = lib.parameter([3, 4, 5], np.float32, name="x")
            return lib.softmax(p, axis), [p]

        cases.append((f"softmax-axis{axis}", build, [s], _softmax(s, axis)))
    # A small graph with constants, broadcasting and a dynamic batch.
    w = _any((6, 4))
    xb = _any((5, 6))

    def build_mlp(lib):
        p = lib.parameter([-1, 6], np.float32, name="x")
        h = lib.add(lib.matmul(p, lib.constant(w), False, False), lib.constant(np.float32(0.5)))
        return lib.softmax(lib.tanh(h), 1), [p]

    cases.append(("dynamic-batch-mlp", build_mlp, [xb], _softmax(np.tanh(xb.astype(np.float64) @ w + 0.5), 1)))
    return cases


CASES = _case_graphs()
IDS = [c[0] for c in CASES]


def _run_aiov(build, inputs):
    node, params = build(ops)
    return ov.compile_model(ov.Model(node, params), "CPU")(inputs)[0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_op_matches_numpy(case):
    _, build, inputs, expected = case
    got = _run_aiov(build, inputs)
    assert got.shape == expected.shape
    if expected.dtype.kind in "iu":
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got.astype(np.float64), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_op_matches_openvino(case):
    openvino = pytest.importorskip("openvino")
    import openvino.opset13 as ovops

    _, build, inputs, _ = case
    node, params = build(ovops)
    ref = openvino.compile_model(openvino.Model(node, params), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(inputs)[0]
    got = _run_aiov(build, inputs)
    assert got.shape == ref.shape
    assert got.dtype == ref.dtype
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def test_dynamic_dims_in_output_shapes():
    a = ops.parameter([-1, 3], np.float32, name="a")
    b = ops.parameter([1, -1, 3], np.float32, name="b")
    node = ops.add(a, b)
    assert str(node.get_output_partial_shape(0)) == "[1,?,3]"
    compiled = ov.compile_model(ov.Model(node, [a, b]))
    x, y = _any((4, 3)), _any((1, 4, 3))
    np.testing.assert_allclose(compiled([x, y])[0], x + y, rtol=RTOL, atol=ATOL)
    x, y = _any((1, 3)), _any((1, 6, 3))  # broadcasting across a dynamic dim
    np.testing.assert_allclose(compiled([x, y])[0], x + y, rtol=RTOL, atol=ATOL)


def test_scalar_operands_become_constants_of_the_other_operand_type():
    x = ops.parameter([3], np.float32, name="x")
    compiled = ov.compile_model(ov.Model(ops.subtract(ops.multiply(x, 2), 1.5), [x]))
    data = np.array([0, 1, 2], np.float32)
    np.testing.assert_array_equal(compiled(data)[0], data * 2 - 1.5)


def _unary_run(name, x):
    p = ops.parameter([x.size], np.float32, name="x")
    return ov.compile_model(ov.Model(getattr(ops, name)(p), [p]))(x)[0]


def test_tanh_keeps_relative_precision_for_small_inputs():
    x = np.concatenate([np.logspace(-6, 0, 500), -np.logspace(-6, 0, 500)]).astype(np.float32)
    np.testing.assert_allclose(_unary_run("tanh", x), np.tanh(x.astype(np.float64)), rtol=1e-5, atol=0)


def test_abs_of_negative_zero_is_positive_zero():
    got = _unary_run("absolute", np.array([-0.0, -1.0], np.float32))
    assert not np.signbit(got[0]) and got[1] == 1.0


@pytest.mark.parametrize("n", [1, 5, 15, 16, 17, 33, 128, 200])
def test_softmax_rows_match_float64_at_every_length(n):
    # Lengths around the 16-float vectors of the AVX-512 row kernel (masked tails), values
    # up to +-80, -inf entries (masked attention keys), a constant row and a row with a NaN.
    rng = np.random.default_rng(n)
    x = rng.uniform(-80, 80, (5, n)).astype(np.float32)
    x[1, 1::3] = -np.inf
    x[2] = 3.0
    x[3, n // 2] = np.nan
    p = ops.parameter([5, n], np.float32, name="x")
    got = ov.compile_model(ov.Model(ops.softmax(p, 1), [p]))(x)[0]
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-30)
    assert np.isnan(got[3]).all() and not np.isnan(got[[0, 1, 2, 4]]).any()
