"""Tensor: copies by default, shares both ways with shared_memory=True, allocates from
(Type, shape), wraps packed low-precision data."""

import numpy as np
import pytest

import aiov as ov
from aiov.helpers import pack_data, unpack_data


def test_tensor_copies_array_by_default():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = ov.Tensor(arr)
    assert not np.shares_memory(t.data, arr)
    arr[0, 0] = 100
    assert t.data[0, 0] == 0
    t.data[1, 1] = -1
    assert arr[1, 1] == 4
    assert list(t.shape) == [2, 3] and t.element_type == ov.Type.f32
    assert t.size == 6 and t.byte_size == 24


def test_tensor_shared_memory_shares_both_ways():
    arr = np.zeros((3, 4), dtype=np.float32)
    t = ov.Tensor(arr, shared_memory=True)
    assert np.shares_memory(t.data, arr)
    arr[1, 2] = 7
    assert t.data[1, 2] == 7
    t.data[2, 3] = -5
    assert arr[2, 3] == -5


def test_tensor_from_type_and_shape_allocates_zeros():
    t = ov.Tensor(ov.Type.f32, [2, 3])
    assert t.element_type == ov.Type.f32
    assert list(t.shape) == [2, 3]
    assert t.data.dtype == np.float32 and t.data.shape == (2, 3)
    assert np.all(t.data == 0)
    t2 = ov.Tensor(ov.Type.i64, ov.Shape([4]))
    assert t2.data.dtype == np.int64 and t2.data.shape == (4,)


def test_tensor_from_packed_u4_data():
    values = np.arange(16, dtype=np.uint8).repeat(2)[:31]
    packed = pack_data(values, ov.Type.u4)
    t = ov.Tensor(packed, [31], ov.Type.u4)
    assert t.element_type == ov.Type.u4
    assert list(t.shape) == [31]
    assert t.data.dtype == np.uint8 and t.data.size == 16
    assert t.byte_size == 16
    np.testing.assert_array_equal(unpack_data(t.data, t.element_type, t.shape), values)


def test_tensor_packed_data_with_wrong_byte_count_is_rejected():
    with pytest.raises(ov.InputError, match="packed"):
        ov.Tensor(np.zeros(10, np.uint8), [100], ov.Type.u4)


def test_tensor_set_shape_and_copy_from():
    t = ov.Tensor(ov.Type.f32, [2, 2])
    t.copy_from(np.array([[1, 2], [3, 4]], np.float32))
    np.testing.assert_array_equal(t.data, [[1, 2], [3, 4]])
    t.shape = [4]
    assert list(t.shape) == [4]
    np.testing.assert_array_equal(t.data, [1, 2, 3, 4])


def test_tensor_converts_with_numpy_array_protocol():
    t = ov.Tensor(np.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(np.asarray(t), [0, 1, 2])
