"""Index-driven and rearranging ops (GatherND, GatherElements, ScatterNDUpdate,
ScatterElementsUpdate, OneHot, DepthToSpace, SpaceToDepth, ReverseSequence): their builders
match numpy for every index type, indices are untrusted run-time values (negative ones wrap,
out-of-range ones raise a clear error and nothing else), and the ops survive an IR round trip."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

RNG = np.random.default_rng(11)
INDEX_TYPES = [np.int32, np.int64]


def _run(outputs, params, values):
    compiled = ov.compile_model(ov.Model(outputs if isinstance(outputs, list) else [outputs], params))
    return compiled(values)[0]


def _param(array, name):
    return ops.parameter(list(array.shape), array.dtype, name=name)


# ---- numpy references -------------------------------------------------------------------


def _gather_nd_ref(data, indices, batch_dims=0):
    batch = data.shape[:batch_dims]
    d = data.reshape((-1,) + data.shape[batch_dims:])
    i = indices.reshape((-1,) + indices.shape[batch_dims:])
    out = np.stack([db[tuple(np.moveaxis(ib, -1, 0))] for db, ib in zip(d, i)])
    return out.reshape(batch + out.shape[1:])


def _scatter_nd_ref(data, indices, updates, reduction):
    out = data.copy()
    combine = {"none": lambda a, b: b, "sum": np.add, "prod": np.multiply, "min": np.minimum, "max": np.maximum}
    k = indices.shape[-1]
    for tup, upd in zip(indices.reshape(-1, k), updates.reshape((-1,) + data.shape[k:])):
        out[tuple(tup)] = combine[reduction](out[tuple(tup)], upd)
    return out


def _scatter_elements_ref(data, indices, updates, axis, reduction):
    out = data.copy()
    combine = {"none": lambda a, b: b, "sum": np.add, "prod": np.multiply, "min": np.minimum, "max": np.maximum}
    for pos in np.ndindex(*indices.shape):
        target = list(pos)
        target[axis] = indices[pos]
        out[tuple(target)] = combine[reduction](out[tuple(target)], updates[pos])
    return out


# ---- gathers ------------------------------------------------------------------------------


@pytest.mark.parametrize("itype", INDEX_TYPES)
def test_gather_nd_matches_numpy_with_negative_indices(itype):
    data = RNG.standard_normal((4, 5, 3)).astype(np.float32)
    indices = np.array([[[0, -1], [3, 2]], [[-4, 0], [1, -5]]], itype)
    d, i = _param(data, "d"), _param(indices, "i")
    got = _run(ops.gather_nd(d, i), [d, i], [data, indices])
    assert got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got, _gather_nd_ref(data, indices % np.array([4, 5])))


@pytest.mark.parametrize("itype", INDEX_TYPES)
def test_gather_nd_with_batch_dims(itype):
    data = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    indices = np.array([[[1, 3], [0, -1]], [[2, 0], [-3, 2]], [[0, 0], [1, 1]]], itype)
    indices = np.stack([indices, indices[::-1]])  # [2, 3, 2, 2]: batch dims (2, 3)
    d, i = _param(data, "d"), _param(indices, "i")
    got = _run(ops.gather_nd(d, i, 2), [d, i], [data, indices])
    assert got.shape == (2, 3, 2)
    np.testing.assert_array_equal(got, _gather_nd_ref(data, indices % np.array([4, 5]), batch_dims=2))


@pytest.mark.parametrize("itype", INDEX_TYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_matches_take_along_axis(itype, axis):
    data = RNG.integers(-100, 100, (3, 4, 5)).astype(np.int8)  # any element size moves
    shape = list(data.shape)
    shape[axis] = 6
    indices = RNG.integers(-data.shape[axis], data.shape[axis], shape).astype(itype)
    d, i = _param(data, "d"), _param(indices, "i")
    got = _run(ops.gather_elements(d, i, axis), [d, i], [data, indices])
    np.testing.assert_array_equal(got, np.take_along_axis(data, indices % data.shape[axis], axis))


# ---- scatters -----------------------------------------------------------------------------


@pytest.mark.parametrize("itype", INDEX_TYPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "prod", "min", "max"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
def test_scatter_nd_update_reductions(itype, reduction, dtype):
    data = RNG.integers(-5, 5, (4, 3, 2)).astype(dtype)
    # Repeated tuples: each update combines with what the previous ones left.
    indices = np.array([[1, 2], [-1, 0], [1, -1], [0, 0]], itype)
    updates = RNG.integers(-5, 5, (4, 2)).astype(dtype)
    d, i, u = _param(data, "d"), _param(indices, "i"), _param(updates, "u")
    got = _run(ops.scatter_nd_update(d, i, u, reduction), [d, i, u], [data, indices, updates])
    np.testing.assert_array_equal(got, _scatter_nd_ref(data, indices % np.array([4, 3]), updates, reduction))


@pytest.mark.parametrize("itype", INDEX_TYPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "prod", "min", "max"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements_update_reductions(itype, reduction, axis):
    data = RNG.standard_normal((3, 4)).astype(np.float32)
    indices = RNG.integers(-data.shape[axis], data.shape[axis], (2, 3)).astype(itype)
    updates = RNG.standard_normal((2, 3)).astype(np.float32)
    d, i, u = _param(data, "d"), _param(indices, "i"), _param(updates, "u")
    got = _run(ops.scatter_elements_update(d, i, u, axis, reduction), [d, i, u], [data, indices, updates])
    want = _scatter_elements_ref(data, indices % data.shape[axis], updates, axis % 2, reduction)
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ---- untrusted indices --------------------------------------------------------------------


def _out_of_range_cases():
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    yield "gather_nd", lambda d, i: ops.gather_nd(d, i), data, np.array([[1], [3]]), np.array([[1], [-4]])
    yield (
        "gather_elements",
        lambda d, i: ops.gather_elements(d, i, 1),
        data,
        np.array([[0, 4], [1, 1], [0, 0]]),
        np.array([[0, -5], [1, 1], [0, 0]]),
    )
    upd_nd = ops.constant(np.ones((2, 4), np.float32))
    yield (
        "scatter_nd_update",
        lambda d, i: ops.scatter_nd_update(d, i, upd_nd),
        data,
        np.array([[0], [3]]),
        np.array([[0], [-4]]),
    )
    upd_el = ops.constant(np.ones((1, 2), np.float32))
    yield (
        "scatter_elements_update",
        lambda d, i: ops.scatter_elements_update(d, i, upd_el, 1, "sum"),
        data,
        np.array([[0, 7]]),
        np.array([[0, -5]]),
    )


@pytest.mark.parametrize("itype", INDEX_TYPES)
@pytest.mark.parametrize("case", list(_out_of_range_cases()), ids=lambda c: c[0])
def test_out_of_range_indices_raise_and_the_model_keeps_working(case, itype):
    _, build, data, too_big, too_negative = case
    d = _param(data, "d")
    i = ops.parameter(list(too_big.shape), itype, name="i")
    compiled = ov.compile_model(ov.Model([build(d, i)], [d, i]))
    for bad in (too_big, too_negative, np.full(too_big.shape, np.iinfo(itype).max)):
        with pytest.raises(ov.InputError, match="out of range for a dimension of"):
            compiled([data, bad.astype(itype)])
    good = np.zeros(too_big.shape, itype)
    assert compiled([data, good])[0].shape == tuple(build(d, ops.constant(good)).get_output_partial_shape(0).to_shape())


def test_wrong_shapes_are_refused_when_the_model_is_built():
    data = ops.parameter([3, 4], np.float32)
    with pytest.raises(ov.InputError, match="last dimension of indices is 3"):
        ops.gather_nd(data, ops.constant(np.zeros((2, 3), np.int64)))
    with pytest.raises(ov.InputError, match="updates must have shape"):
        ops.scatter_nd_update(
            data, ops.constant(np.zeros((2, 1), np.int64)), ops.constant(np.zeros((2, 5), np.float32))
        )
    with pytest.raises(ov.InputError, match="i32 or i64"):
        ops.gather_elements(data, ops.constant(np.zeros((3, 4), np.float32)))
    with pytest.raises(ov.InputError, match="rank of data"):
        ops.gather_elements(data, ops.constant(np.zeros((3,), np.int64)))
    with pytest.raises(ov.InputError, match="block_size 1048576 is too large"):  # 2^20^7 overflows int64
        ops.depth_to_space(ops.parameter([1, -1] + [2] * 7, np.float32), "blocks_first", 2**20)
    with pytest.raises(ov.InputError, match="multiple of block_size"):
        ops.space_to_depth(ops.parameter([1, 2, 3, 4], np.float32), "blocks_first", 2)


# ---- layout ops ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["blocks_first", "depth_first"])
def test_depth_to_space_and_back(mode):
    data = RNG.standard_normal((2, 8, 3, 5)).astype(np.float32)
    n, c, h, w = data.shape
    if mode == "blocks_first":
        want = data.reshape(n, 2, 2, c // 4, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // 4, h * 2, w * 2)
    else:
        want = data.reshape(n, c // 4, 2, 2, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)
    d = _param(data, "d")
    np.testing.assert_array_equal(_run(ops.depth_to_space(d, mode, 2), [d], [data]), want)
    back = _param(want, "b")
    np.testing.assert_array_equal(_run(ops.space_to_depth(back, mode, 2), [back], [want]), data)


@pytest.mark.parametrize("itype", INDEX_TYPES)
def test_reverse_sequence_reverses_each_batch_prefix(itype):
    data = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # [time, batch, feature]
    lengths = np.array([4, 0, 2], itype)
    d, s = _param(data, "d"), _param(lengths, "s")
    got = _run(ops.reverse_sequence(d, s, 1, 0), [d, s], [data, lengths])
    want = data.copy()
    for b, n in enumerate(lengths):
        want[:n, b] = data[:n, b][::-1]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ov.InputError, match="seq_lengths\\[1\\] is 5"):
        ov.compile_model(ov.Model([ops.reverse_sequence(d, s, 1, 0)], [d, s]))([data, np.array([1, 5, 1], itype)])


@pytest.mark.parametrize("itype", INDEX_TYPES)
def test_one_hot_wraps_negative_and_leaves_out_of_range_off(itype):
    indices = np.array([[0, -1, 3], [5, -4, 2]], itype)
    i = _param(indices, "i")
    got = _run(ops.one_hot(i, 4, 5.0, -1.0, axis=1, negative_indices_mode="normalize"), [i], [indices])
    assert got.shape == (2, 4, 3) and got.dtype == np.float32
    want = np.full((2, 4, 3), -1.0, np.float32)
    for (r, c), v in np.ndenumerate(indices):
        if -4 <= v < 4:
            want[r, v % 4, c] = 5.0
    np.testing.assert_array_equal(got, want)
    # OpenVINO's default (its opset1 rule): negative indices stay off.
    ignored = _run(ops.one_hot(i, 4, 5.0, -1.0, axis=1), [i], [indices])
    np.testing.assert_array_equal(ignored, np.where((indices < 0)[:, None, :], -1.0, want))


# ---- IR round trip ------------------------------------------------------------------------


def test_ir_round_trip_keeps_every_op(tmp_path):
    x = ops.parameter([2, 8, 2, 2], np.float32, name="x")
    idx = ops.parameter([2, 1], np.int32, name="idx")
    y = ops.depth_to_space(x, "depth_first", 2)  # [2, 2, 4, 4]
    y = ops.space_to_depth(y, "blocks_first", 2)  # [2, 8, 2, 2]
    y = ops.reverse_sequence(y, ops.constant(np.array([2, 1], np.int64)), 0, 1)
    y = ops.scatter_nd_update(y, idx, ops.gather_nd(y, idx), "sum")
    y = ops.scatter_elements_update(
        y, ops.constant(np.zeros((2, 8, 2, 1), np.int64)), ops.constant(np.ones((2, 8, 2, 1), np.float32)), -1, "max"
    )
    y = ops.gather_elements(y, ops.constant(np.ones((2, 8, 2, 2), np.int64)), 2)
    hot = ops.one_hot(ops.constant(np.array([1, -1], np.int64)), 3, 1.0, 0.0, axis=0, negative_indices_mode="normalize")
    model = ov.Model([y, hot], [x, idx], "gather_scatter")
    path = tmp_path / "m.xml"
    ov.save_model(model, str(path))
    loaded = ov.Core().read_model(str(path))
    types = lambda m: [o.get_type_name() for o in m.get_ordered_ops()]  # noqa: E731
    assert types(loaded) == types(model)
    for name in (
        "GatherND",
        "GatherElements",
        "ScatterNDUpdate",
        "ScatterElementsUpdate",
        "OneHot",
        "DepthToSpace",
        "SpaceToDepth",
        "ReverseSequence",
    ):
        assert name in types(loaded)
    xv = RNG.standard_normal((2, 8, 2, 2)).astype(np.float32)
    iv = np.array([[1], [-2]], np.int32)
    want, got = ov.compile_model(model)([xv, iv]), ov.compile_model(loaded)([xv, iv])
    for a, b in zip(want.values(), got.values()):
        np.testing.assert_array_equal(a, b)


# ---- OpenVINO's own reductions, against OpenVINO ----------------------------------------------


@pytest.mark.parametrize("reduction", ["sum", "prod", "min", "max", "mean"])
@pytest.mark.parametrize("use_init_val", [True, False])
def test_scatter_elements_update_matches_openvino(reduction, use_init_val):
    ovo = pytest.importorskip("openvino")
    o12 = pytest.importorskip("openvino.opset12")
    data = RNG.integers(1, 6, (3, 4)).astype(np.float32)
    indices = np.array([[0, 1, 1], [2, 1, 1]], np.int64)  # targets hit twice and more
    updates = RNG.integers(1, 6, (2, 3)).astype(np.float32)
    theirs = o12.scatter_elements_update(
        o12.constant(data),
        o12.constant(indices),
        o12.constant(updates),
        o12.constant(np.int64(1)),
        reduction,
        use_init_val,
    )
    want = ovo.compile_model(ovo.Model([theirs], []), "CPU")([])[0]
    mine = ops.scatter_elements_update(
        ops.constant(data), ops.constant(indices), ops.constant(updates), 1, reduction, use_init_val
    )
    np.testing.assert_allclose(ov.compile_model(ov.Model([mine], []))([])[0], want, rtol=1e-6)


def test_scatter_nd_update_sub_matches_openvino():
    ovo = pytest.importorskip("openvino")
    o15 = pytest.importorskip("openvino.opset15")
    data = RNG.standard_normal((4, 3)).astype(np.float32)
    indices = np.array([[1], [3], [1]], np.int32)
    updates = RNG.standard_normal((3, 3)).astype(np.float32)
    theirs = o15.scatter_nd_update(o15.constant(data), o15.constant(indices), o15.constant(updates), "sub")
    want = ovo.compile_model(ovo.Model([theirs], []), "CPU")([])[0]
    mine = ops.scatter_nd_update(ops.constant(data), ops.constant(indices), ops.constant(updates), "sub")
    np.testing.assert_allclose(ov.compile_model(ov.Model([mine], []))([])[0], want, rtol=1e-6)
