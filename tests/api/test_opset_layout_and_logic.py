"""Builders for layout, indexing, comparison and activation ops match numpy."""

import math

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

RNG = np.random.default_rng(7)
DATA = RNG.standard_normal((2, 3, 4)).astype(np.float32)
_erf = np.vectorize(math.erf)

CASES = {
    "transpose": (lambda x: ops.transpose(x, [2, 0, 1]), lambda d: d.transpose(2, 0, 1)),
    "gather_negative_index": (lambda x: ops.gather(x, [-1, 0], 1), lambda d: d[:, [2, 0]]),
    "slice_with_axes_and_step": (lambda x: ops.slice(x, [0, 1], [2, 4], [1, 2], [0, 2]), lambda d: d[0:2, :, 1:4:2]),
    "slice_negative_step": (lambda x: ops.slice(x, [-1], [-100], [-1], [2]), lambda d: d[:, :, ::-1]),
    "tile": (lambda x: ops.tile(x, [1, 2, 1]), lambda d: np.tile(d, (1, 2, 1))),
    "pad_constant": (
        lambda x: ops.pad(x, [0, 1, 0], [0, 0, 2], "constant", 0.5),
        lambda d: np.pad(d, ((0, 0), (1, 0), (0, 2)), constant_values=0.5),
    ),
    "pad_edge": (
        lambda x: ops.pad(x, [0, 1, 2], [1, 0, 2], "edge"),
        lambda d: np.pad(d, ((0, 1), (1, 0), (2, 2)), mode="edge"),
    ),
    "pad_reflect": (
        lambda x: ops.pad(x, [0, 2, 2], [0, 1, 3], "reflect"),
        lambda d: np.pad(d, ((0, 0), (2, 1), (2, 3)), mode="reflect"),
    ),
    "squeeze_unsqueeze": (lambda x: ops.squeeze(ops.unsqueeze(x, [0, -1]), [0]), lambda d: d[..., None]),
    "broadcast_numpy": (
        lambda x: ops.broadcast(ops.constant(np.float32(2)), [2, 3, 4]),
        lambda d: np.full((2, 3, 4), 2, np.float32),
    ),
    "broadcast_bidirectional": (
        lambda x: ops.broadcast(x, [3, 1, 1, 1], broadcast_spec="BIDIRECTIONAL"),
        lambda d: np.broadcast_to(d, (3, 2, 3, 4)),
    ),
    "select": (
        lambda x: ops.select(ops.greater(x, 0.5), x, ops.constant(np.float32(-1))),
        lambda d: np.where(d > 0.5, d, -1),
    ),
    "shape_of": (lambda x: ops.shape_of(x), lambda d: np.array(d.shape)),
    "range": (lambda x: ops.range(1, 10, 3, np.int64), lambda d: np.arange(1, 10, 3)),
    "gelu_erf": (lambda x: ops.gelu(x), lambda d: 0.5 * d * (1 + _erf(d / np.sqrt(2)))),
    "gelu_tanh": (
        lambda x: ops.gelu(x, "tanh"),
        lambda d: 0.5 * d * (1 + np.tanh(np.sqrt(2 / np.pi) * (d + 0.044715 * d**3))),
    ),
    "clamp": (lambda x: ops.clamp(x, -0.2, 0.7), lambda d: np.clip(d, -0.2, 0.7)),
    "elu": (lambda x: ops.elu(x, 0.5), lambda d: np.where(d > 0, d, 0.5 * (np.exp(d) - 1))),
    "leaky_relu": (lambda x: ops.leaky_relu(x, 0.1), lambda d: np.where(d >= 0, d, 0.1 * d)),
    "prelu": (
        lambda x: ops.prelu(x, np.array([0.1, 0.2, 0.3, 0.4], np.float32)),
        lambda d: np.where(d < 0, d * np.array([0.1, 0.2, 0.3, 0.4]), d),
    ),
    "hard_sigmoid": (lambda x: ops.hard_sigmoid(x, 0.3, 0.4), lambda d: np.clip(0.3 * d + 0.4, 0, 1)),
    "hswish": (lambda x: ops.hswish(x), lambda d: d * np.clip(d + 3, 0, 6) / 6),
    "hsigmoid": (lambda x: ops.hsigmoid(x), lambda d: np.clip(d + 3, 0, 6) / 6),
    "softplus": (lambda x: ops.softplus(x), lambda d: np.log1p(np.exp(d))),
    "erf": (lambda x: ops.erf(x), lambda d: _erf(d)),
    "floor": (lambda x: ops.floor(x), np.floor),
    "ceiling": (lambda x: ops.ceiling(x), np.ceil),
    "sign": (lambda x: ops.sign(x), np.sign),
    "round_half_even": (lambda x: ops.round(ops.multiply(x, 4.0)), lambda d: np.round(d * 4)),
    "reciprocal": (lambda x: ops.reciprocal(x), lambda d: 1 / d),
    "equal_self": (lambda x: ops.equal(x, x), lambda d: np.ones(d.shape, bool)),
    "less_equal": (lambda x: ops.less_equal(x, 0.0), lambda d: d <= 0),
    "not_equal": (lambda x: ops.not_equal(x, 0.0), lambda d: d != 0),
    "logic": (
        lambda x: ops.logical_xor(
            ops.logical_and(ops.less(x, 0.5), ops.greater(x, -0.5)), ops.logical_not(ops.greater_equal(x, 0.0))
        ),
        lambda d: ((d < 0.5) & (d > -0.5)) ^ ~(d >= 0),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_builder_matches_numpy(name):
    build, reference = CASES[name]
    x = ops.parameter(list(DATA.shape), np.float32, name="x")
    out = ov.compile_model(ov.Model(build(x), [x]))(DATA)[0]
    expected = np.asarray(reference(DATA.astype(np.float64)))
    assert out.shape == expected.shape
    if expected.dtype == bool:
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_allclose(out, expected, rtol=2e-6, atol=2e-6)


def test_split_and_variadic_split_outputs():
    x = ops.parameter([2, 3, 6], np.float32, name="x")
    halves = ops.split(x, -1, 2)
    parts = ops.variadic_split(x, 2, [1, -1, 2])
    model = ov.Model(halves.outputs() + parts.outputs(), [x])
    data = np.arange(36, dtype=np.float32).reshape(2, 3, 6)
    got = ov.compile_model(model)(data).to_tuple()
    for out, ref in zip(got, np.split(data, 2, axis=2) + np.split(data, [1, 4], axis=2)):
        np.testing.assert_array_equal(out, ref)


def test_shape_of_feeds_reshape_at_run_time_with_dynamic_batch():
    x = ops.parameter([-1, 3, 4], np.float32, name="x")
    batch = ops.gather(ops.shape_of(x), [0], 0)
    target = ops.concat([batch, ops.constant(np.array([12], np.int64))], 0)
    model = ov.Model(ops.reshape(x, target), [x])
    compiled = ov.compile_model(model)
    for n in (1, 5):
        data = np.arange(n * 12, dtype=np.float32).reshape(n, 3, 4)
        np.testing.assert_array_equal(compiled(data)[0], data.reshape(n, 12))


def test_bad_layout_arguments_name_the_problem():
    x = ops.parameter([2, 3], np.float32, name="x")
    with pytest.raises(ov.InputError, match="not a permutation"):
        ops.transpose(x, [0, 0])
    with pytest.raises(ov.InputError, match="cannot squeeze axis 1 of size 3"):
        ops.squeeze(x, [1])
    with pytest.raises(ov.InputError, match="do not add up"):
        ops.variadic_split(x, 1, [1, 1])
    with pytest.raises(ov.InputError, match="condition must be boolean"):
        ops.select(x, x, x)


def test_gather_index_out_of_range_fails_the_inference_only():
    x = ops.parameter([4], np.float32, name="x")
    idx = ops.parameter([2], np.int64, name="idx")
    compiled = ov.compile_model(ov.Model(ops.gather(x, idx, 0), [x, idx]))
    data = np.arange(4, dtype=np.float32)
    with pytest.raises(ov.InputError, match="out of range"):
        compiled({"x": data, "idx": np.array([0, 9])})
    np.testing.assert_array_equal(compiled({"x": data, "idx": np.array([3, -4])})[0], [3, 0])


@pytest.mark.parametrize(
    "shape, order",
    [
        ((1, 57, 45, 70), (0, 3, 1, 2)),  # NHWC -> NCHW, more pixels than channels, ragged sizes
        ((2, 70, 23, 9), (0, 2, 3, 1)),  # NCHW -> NHWC with a batch
        ((3, 9, 600), (0, 2, 1)),  # few rows, many columns: the split runs along the columns
        ((5, 1000, 17), (2, 1, 0)),
        ((2, 3, 181, 203), (0, 2, 3, 1)),  # an image's 3 channels go last: rows split over the pool
        ((1, 4, 150, 99), (0, 2, 3, 1)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float64, np.uint8])
def test_large_transposes_match_numpy(shape, order, dtype):
    # Big enough to be split over the pool and to use the vector transposes.
    data = RNG.integers(-1000, 1000, shape).astype(dtype)
    x = ops.parameter(list(shape), dtype)
    out = ov.compile_model(ov.Model(ops.transpose(x, list(order)), [x]))([data])[0]
    np.testing.assert_array_equal(out, data.transpose(order))
