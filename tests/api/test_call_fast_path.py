"""The one-call path of ``compiled(x)`` and ``request.infer(x)`` (numpy arrays of the input's
dtype, taken without conversion): every element type comes back as an array of its own that
later calls never change, in every form inputs are given, and what the path does not take
(other layouts, byte orders, dtypes) still gives the same values through the general path."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

DTYPES = [np.bool_, np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64]
DTYPES += [np.uint8, np.uint16, np.uint32, np.uint64]


def _identity(dtype, shape=(-1,)):
    x = ops.parameter(list(shape), dtype, name="x")
    return ov.Model([ops.reshape(x, list(shape) if shape else [], False)], [x])


def _values(dtype, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 50).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_each_type_comes_back_as_an_owned_copy_later_calls_leave_alone(dtype):
    compiled = ov.compile_model(_identity(dtype))
    request = compiled.create_infer_request()
    first_in, second_in = _values(dtype, seed=1), _values(dtype, seed=2)
    for run in (compiled, request.infer):
        first = run(first_in)[0]
        second = run(second_in)[0]
        for got, want in ((first, first_in), (second, second_in)):
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.flags["OWNDATA"] and got.flags["WRITEABLE"] and got.flags["C_CONTIGUOUS"]
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("share_inputs", [False, True])
def test_every_form_of_giving_the_inputs_is_read_the_same(share_inputs):
    a = ops.parameter([3], np.float32, name="a")
    b = ops.parameter([3], np.float32, name="b")
    compiled = ov.compile_model(ov.Model([ops.subtract(a, b)], [a, b]))
    x, y = np.array([5, 6, 7], np.float32), np.array([1, 2, 3], np.float32)
    forms = [[x, y], (x, y), {"a": x, "b": y}, {"b": y, "a": x}, {0: x, 1: y}, {1: y, "a": x}]
    for inputs in forms:
        np.testing.assert_array_equal(compiled(inputs, share_inputs=share_inputs)[0], x - y)


def test_scalar_and_empty_arrays():
    scalar = ov.compile_model(_identity(np.float32, shape=()))
    got = scalar(np.array(2.5, np.float32))[0]
    assert got.shape == () and got == 2.5
    empty = ov.compile_model(_identity(np.int32))(np.zeros(0, np.int32))[0]
    assert empty.shape == (0,) and empty.dtype == np.int32


@pytest.mark.parametrize(
    "make",
    [
        lambda v: v[::2],  # strided
        lambda v: np.asfortranarray(v.reshape(2, 4)).T.reshape(-1)[:4],  # a copy, any layout
        lambda v: v[:4].astype(v.dtype.newbyteorder()),  # the other byte order
        lambda v: v[:4].astype(np.float64),  # another dtype, converted
        lambda v: np.lib.stride_tricks.as_strided(v, (4,), (4,), writeable=False),  # read-only: copied
    ],
    ids=["strided", "reordered", "byteswapped", "float64", "read-only"],
)
def test_inputs_the_fast_path_leaves_to_the_general_one_give_the_same_values(make):
    compiled = ov.compile_model(_identity(np.float32))
    given = make(np.arange(8, dtype=np.float32))
    want = np.asarray(given, dtype=np.float32)
    for share_inputs in (False, True):
        np.testing.assert_array_equal(compiled(given, share_inputs=share_inputs)[0], want)


def test_a_shared_input_is_read_at_the_call_and_not_kept_after_the_request_moves_on():
    compiled = ov.compile_model(_identity(np.float32))
    request = compiled.create_infer_request()
    data = np.arange(4, dtype=np.float32)
    request.infer(data, share_inputs=True)
    assert np.shares_memory(request.get_input_tensor(0).data, data)
    other = np.ones(4, np.float32)
    request.infer(other)  # copied: the request lets go of `data`
    assert not np.shares_memory(request.get_input_tensor(0).data, data)
    data[:] = -1
    np.testing.assert_array_equal(request.get_input_tensor(0).data, other)
