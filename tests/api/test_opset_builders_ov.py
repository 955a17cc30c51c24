"""Builders OpenVINO code calls that map onto existing engine ops (topk, cum_sum, transposed
convolutions, logical reductions, OpenVINO's aliases): each graph is built with aiov.opset15
and, when openvino is installed, with openvino.opset15, and both run on the same inputs."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset15 as ops

RNG = np.random.default_rng(7)
FILTERS = (np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) - 20) / 10
GROUP_FILTERS = (np.arange(2 * 2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3, 3) - 50) / 30


def _run(lib, build, feeds):
    params = [lib.opset15.parameter(list(f.shape), f.dtype) for f in feeds]
    node = build(lib.opset15, *params)
    model = lib.Model(node.outputs(), params)
    # OpenVINO's CPU plugin may compute in bf16 unless asked for f32
    compiled = lib.compile_model(model, "CPU", {} if lib is ov else {"INFERENCE_PRECISION_HINT": "f32"})
    results = compiled(feeds)
    return [results[i] for i in range(len(compiled.outputs))]


def _data(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


CASES = {
    "topk-max-value": (lambda o, x: o.topk(x, 3, 1, "max", "value"), [_data(2, 6, 4)]),
    "topk-min-index-i64": (lambda o, x: o.topk(x, np.int32(2), -1, "min", "index", "i64"), [_data(2, 6, 4)]),
    "cum_sum": (lambda o, x: o.cum_sum(x, 1), [_data(2, 6, 4)]),
    "cum_sum-exclusive-reverse": (lambda o, x: o.cum_sum(x, -1, True, True), [_data(2, 6, 4)]),
    "abs": (lambda o, x: o.abs(x), [_data(5)]),
    "ceil": (lambda o, x: o.ceil(x), [_data(5)]),
    "deconv": (lambda o, x: o.convolution_backprop_data(x, o.constant(FILTERS), [2, 2]), [_data(1, 2, 5, 5)]),
    "deconv-pads-dilations-output_padding": (
        lambda o, x: o.convolution_backprop_data(
            x, o.constant(FILTERS), [2, 2], None, [1, 0], [0, 1], [2, 1], "explicit", [1, 1]
        ),
        [_data(1, 2, 5, 5)],
    ),
    "group-deconv": (
        lambda o, x: o.group_convolution_backprop_data(x, o.constant(GROUP_FILTERS), [2, 2]),
        [_data(1, 4, 5, 5)],
    ),
    "logical-reductions": (
        lambda o, x: o.concat([o.reduce_logical_and(x, [1], True), o.reduce_logical_or(x, [1], True)], 1),
        [RNG.random((3, 4)) > 0.3],
    ),
}
# output_shape decides the pads (OpenVINO's rule): explicit cuts from pads_begin, same_* centre
for mode in (None, "same_upper", "same_lower"):
    for size in ([9, 10], [12, 13], [7, 8]):
        CASES[f"deconv-output_shape-{mode}-{size}"] = (
            lambda o, x, mode=mode, size=size: o.convolution_backprop_data(
                x, o.constant(FILTERS), [2, 2], o.constant(np.array(size, np.int64)), [1, 0], None, None, mode
            ),
            [_data(1, 2, 5, 5)],
        )


@pytest.mark.parametrize("case", sorted(CASES))
def test_builder_matches_openvino(case):
    openvino = pytest.importorskip("openvino")
    build, feeds = CASES[case]
    got = _run(ov, build, feeds)
    want = _run(openvino, build, feeds)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_topk_and_logical_reductions_against_numpy():
    x = _data(3, 7)
    values, indices = _run(ov, lambda o, p: o.topk(p, 2, 1, "max", "value"), [x])
    np.testing.assert_allclose(values, -np.sort(-x, axis=1)[:, :2])
    assert indices.dtype == np.int32
    np.testing.assert_array_equal(np.take_along_axis(x, indices.astype(np.int64), 1), values)
    b = RNG.random((4, 5)) > 0.5
    both = _run(ov, lambda o, p: o.concat([o.reduce_logical_and(p, [0]), o.reduce_logical_or(p, [0])], 0), [b])[0]
    np.testing.assert_array_equal(both, np.concatenate([b.all(0), b.any(0)]))


def test_builders_refuse_what_they_cannot_honour():
    x = ops.parameter([1, 2, -1, 5], np.float32)
    with pytest.raises(ov.InputError, match="static spatial"):
        ops.convolution_backprop_data(x, ops.constant(FILTERS), [2, 2], [9, 10])
    with pytest.raises(ov.InputError, match="stable"):
        ops.topk(x, 1, 1, "max", "value", stable=True)
    with pytest.raises(ov.InputError, match="boolean"):
        ops.reduce_logical_and(x, [1])
    with pytest.raises(ov.InputError, match="constant"):
        ops.convolution_backprop_data(x, ops.constant(FILTERS), [2, 2], ops.parameter([2], np.int64))


def test_pdpd_broadcasting_only_where_it_agrees_with_numpy():
    a = ops.parameter([2, 3, 4, 5], np.int32)
    node = ops.bitwise_and(a, ops.parameter([2, 3, 1, 5], np.int32), "PDPD")
    assert list(node.get_output_shape(0)) == [2, 3, 4, 5]
    with pytest.raises(ov.InputError, match="PDPD"):
        ops.bitwise_or(ops.parameter([3, 1], np.int32), ops.parameter([4], np.int32), "pdpd")


def test_comparison_operators_build_nodes_with_a_deprecation_warning():
    a = ops.parameter([2, 2], np.float32)
    with pytest.warns(DeprecationWarning, match="greater"):
        node = a > np.zeros((2, 2), np.float32)
    assert node.get_type_name() == "Greater" and node.get_output_element_type(0) == ov.Type.boolean
    with pytest.warns(DeprecationWarning):
        assert (a == 1.0).get_type_name() == "Equal"
    assert a == a and a != ops.parameter([2, 2], np.float32)  # node against node stays identity
    assert len({a, a}) == 1


@pytest.mark.parametrize("builder", ["avg_pool", "max_pool"])
def test_ceil_torch_rounding(builder):
    x = ops.parameter([1, 1, 5, 5], np.float32)
    if builder == "avg_pool":
        node = ops.avg_pool(x, [2, 2], [1, 1], [1, 1], [2, 2], False, "ceil_torch")
    else:
        node = ops.max_pool(x, [2, 2], [1, 1], [1, 1], [1, 1], [2, 2], "ceil_torch")
    assert list(node.get_output_shape(0)) == [1, 1, 3, 3]  # a 4th window would start in the padding


X3 = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
# (begin, end, strides, begin_mask, end_mask, new_axis_mask, shrink_axis_mask, ellipsis_mask) -> numpy
STRIDED = [
    (([1, 2, 3], [3, -1, 6], [1, 1, 2], [0, 0, 0], [0, 0, 0]), X3[1:3, 2:-1, 3:6:2]),
    (([-1, 0, 0], [0, 0, 0], [-1, 1, -2], [1, 1, 1], [1, 1, 1]), X3[::-1, :, ::-2]),
    (([3, 4], [0, 1], [-1, -2], [0, 0], [0, 0]), X3[3:0:-1, 4:1:-2]),
    (([-100, 2], [100, -100], [1, -1], [0, 0], [0, 0]), X3[-100:100, 2:-100:-1]),
    (([1, 0], [0, 0], [1, 1], [0, 0, 0], [0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]), X3[1, None]),
    (([1, 0, 2], [2, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]), X3[1:2, None, 2]),
    (([0, 1], [0, 3], [1, 1], [0, 0], [0, 0], [0, 0], [0, 0], [1, 0]), X3[..., 1:3]),
    (([2], [0], [1], [0], [1], None, [1], None), X3[2]),
    (([0, 2, 1], [0, 4, 5], [1, 1, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0]), X3[0:0, ..., 1:5:2]),
]


@pytest.mark.parametrize(("args", "want"), STRIDED, ids=[str(i) for i in range(len(STRIDED))])
def test_strided_slice_against_numpy(args, want):
    got = _run(ov, lambda o, x: ops.strided_slice(x, *args), [X3])[0]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    node = ops.strided_slice(ops.parameter([4, 5, 6], np.float32), *args)
    assert node.get_type_name() == "StridedSlice" and list(node.get_output_shape(0)) == list(want.shape)


def test_strided_slice_shapes_agree_with_openvino_and_it_round_trips_ir(tmp_path):
    openvino = pytest.importorskip("openvino")
    node = ops.strided_slice(ops.parameter([4, 5, 6], np.float32), *STRIDED[5][0])
    model = ov.Model(node, [node.input_value(0).get_node()])
    ov.save_model(model, str(tmp_path / "s.xml"))
    assert openvino.Core().read_model(str(tmp_path / "s.xml")).output(0).get_partial_shape() == openvino.PartialShape(
        [1, 1, 6]
    )
    again = ov.Core().read_model(str(tmp_path / "s.xml"))
    np.testing.assert_array_equal(ov.compile_model(again)(X3)[0], STRIDED[5][1])


def test_strided_slice_refuses_bad_entries():
    x = ops.parameter([4, 5], np.float32)
    with pytest.raises(ov.InputError, match="shrink index"):
        ops.strided_slice(x, [7], [8], [1], [0], [0], None, [1])
    with pytest.raises(ov.InputError, match="entries for rank"):
        ops.strided_slice(x, [0, 0, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0])
    with pytest.raises(ov.InputError, match="zero"):
        ops.strided_slice(x, [0], [1], [0], [0], [0])
    dynamic = ops.strided_slice(ops.parameter([-1, 5], np.float32), [0, 1], [0, 3], [1, 1], [1, 0], [1, 0], [1, 0, 0])
    assert str(dynamic.get_output_partial_shape(0)) == "[1,?,5]"


def _normalize_l2_reference(x, axes, eps, mode):
    if not axes:
        return (x != 0).astype(x.dtype)
    squares = (x.astype(np.float64) ** 2).sum(axis=tuple(axes), keepdims=True)
    return (x / np.sqrt(squares + eps if mode == "add" else np.maximum(squares, eps))).astype(x.dtype)


@pytest.mark.parametrize("axes", [[1], [1, 2, 3], [0, 2], [-1], []])
@pytest.mark.parametrize(("eps", "mode"), [(1e-6, "add"), (1.0, "add"), (0.5, "max"), (100.0, "max")])
def test_normalize_l2_follows_openvinos_spec(axes, eps, mode):
    x = _data(2, 3, 4, 5)
    x[0, 0] = 0
    got = _run(ov, lambda o, p: o.normalize_l2(p, np.array(axes, np.int64), eps, mode), [x])[0]
    np.testing.assert_allclose(got, _normalize_l2_reference(x, axes, eps, mode), rtol=1e-5, atol=1e-7)


def test_normalize_l2_add_matches_openvino():
    # (OpenVINO's CPU plugin treats eps_mode 'max' as 'add'; its spec, which aiov follows, does not)
    openvino = pytest.importorskip("openvino")
    x = _data(2, 3, 4)
    build = lambda o, p: o.normalize_l2(p, np.array([1, 2], np.int64), 0.25, "add")  # noqa: E731
    np.testing.assert_allclose(_run(ov, build, [x])[0], _run(openvino, build, [x])[0], rtol=1e-5)
    node = ops.normalize_l2(ops.parameter([2, 3], np.float32), [1], 1e-6, "add")
    assert node.get_type_name() == "NormalizeL2"
    with pytest.raises(ov.InputError, match="floating-point"):
        ops.normalize_l2(ops.parameter([2, 3], np.int32), [1], 1e-6, "add")


POOLS = {
    "2d": ((2, 3, 6, 6), ([2, 2], [1, 1], [0, 0], [0, 0], [2, 2])),
    "2d-padded-ceil": ((1, 2, 5, 5), ([2, 2], [1, 1], [1, 1], [1, 1], [3, 3], "ceil")),
    "1d": ((2, 2, 7), ([2], [2], [0], [1], [2])),
    "3d": ((1, 2, 4, 4, 4), ([1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0], [2, 2, 2])),
}


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize(("index_type", "axis"), [("i64", 0), ("i32", 0), ("i64", 1)])
def test_max_pool_indices_match_openvino(pool, index_type, axis):
    openvino = pytest.importorskip("openvino")
    shape, args = POOLS[pool]
    args = list(args) + (["floor"] if len(args) == 5 else [])
    x = _data(*shape)
    build = lambda o, p: o.max_pool(p, *args, None, index_type, axis)  # noqa: E731
    (values, indices), (want_values, want_indices) = _run(ov, build, [x]), _run(openvino, build, [x])
    np.testing.assert_array_equal(values, want_values)
    assert indices.dtype == want_indices.dtype
    np.testing.assert_array_equal(indices, want_indices)
    # each index points at its maximum, within the tensor (axis 0) or the sample (axis 1)
    flat = x.reshape(-1) if axis == 0 else x.reshape(shape[0], -1)
    picked = (
        flat[indices.astype(np.int64)]
        if axis == 0
        else np.take_along_axis(flat, indices.reshape(shape[0], -1).astype(np.int64), 1).reshape(values.shape)
    )
    np.testing.assert_array_equal(picked, values)


def test_a_node_with_several_outputs_reads_as_its_first():
    x = ops.parameter([1, 1, 4, 4], np.float32)
    pool = ops.max_pool(x, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2])
    assert pool.get_output_size() == 2
    assert ops.relu(pool).input_value(0) == pool.output(0)
    single = ops.max_pool(x, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2], with_indices=False)
    assert single.get_output_size() == 1


def test_strided_slice_with_bounds_given_at_run_time():
    x = ops.parameter([4, 5, 6], np.float32)
    begin = ops.parameter([2], np.int64)
    node = ops.strided_slice(x, begin, [3, 4], [1, 1], [0, 0], [0, 0], [0, 1, 1], [1, 0, 1])
    # masks past begin's two entries do not count: one shrunk, one added
    assert str(node.get_output_partial_shape(0)) == "[?,?,?]"
    model = ov.Model(node, [x, begin])
    got = ov.compile_model(model)([X3, np.array([1, 0], np.int64)])[0]
    np.testing.assert_array_equal(got, X3[1, None])
