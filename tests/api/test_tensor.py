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


def test_tensor_on_shared_memory_cannot_grow_past_it():
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = ov.Tensor(arr, shared_memory=True)
    with pytest.raises(RuntimeError, match="set_shape failed: shape \\[4, 4\\] needs 64 bytes.*has 48"):
        t.shape = [4, 4]
    assert list(t.shape) == [3, 4] and np.shares_memory(t.data, arr)
    t.shape = [2, 3]  # smaller: the first elements of the same memory
    assert np.shares_memory(t.data, arr)
    np.testing.assert_array_equal(t.data, [[0, 1, 2], [3, 4, 5]])
    t.shape = [12]  # and back up to all of it
    t.data[11] = -1
    assert arr[2, 3] == -1


def test_tensor_owning_its_memory_grows():
    t = ov.Tensor(ov.Type.f32, [2, 2])
    t.shape = [3, 3]
    assert t.data.shape == (3, 3) and not t.data.any()
    packed = ov.Tensor(ov.Type.u4, [3])
    packed.shape = [9]
    assert packed.byte_size == 5


def test_region_of_interest_cannot_change_shape():
    base = ov.Tensor(np.zeros((4, 4), np.float32))
    roi = ov.Tensor(base, [1, 1], [3, 3])
    roi.shape = [2, 2]
    with pytest.raises(RuntimeError, match="set_shape failed: a region of interest"):
        roi.shape = [4]


def test_tensor_for_a_port_may_use_the_whole_array():
    port = ov.opset13.parameter([2], np.float32).output(0)
    arr = np.zeros(6, np.float32)
    with pytest.warns(RuntimeWarning):
        t = ov.Tensor(port, arr)
    t.shape = [6]
    t.data[5] = 3
    assert arr[5] == 3
    with pytest.raises(RuntimeError, match="cannot grow"):
        t.shape = [7]


@pytest.mark.parametrize("etype", [ov.Type.u1, ov.Type.u4, ov.Type.i4])
def test_packed_tensor_has_no_strides(etype):
    t = ov.Tensor(etype, [2, 8])
    with pytest.raises(RuntimeError, match=f"bitwidths less then 8 bit. A {etype.get_type_name()} tensor packs"):
        t.get_strides()
    assert ov.Tensor(ov.Type.u8, [2, 8]).strides == [8, 1]


def test_deep_copy_of_a_shared_tensor_owns_its_memory():
    import copy

    arr = np.zeros(4, np.float32)
    deep = copy.deepcopy(ov.Tensor(arr, shared_memory=True))
    assert not np.shares_memory(deep.data, arr)
    deep.shape = [8]  # its own memory: free to grow
    assert deep.data.shape == (8,)


def test_copies_and_pickles_of_a_shared_tensor():
    import copy
    import pickle

    arr = np.arange(4, dtype=np.float32)
    t = ov.Tensor(arr, shared_memory=True)
    shallow = copy.copy(t)
    assert np.shares_memory(shallow.data, arr)
    with pytest.raises(RuntimeError, match="cannot grow"):
        shallow.shape = [8]  # still the caller's memory
    back = pickle.loads(pickle.dumps(t))
    np.testing.assert_array_equal(back.data, arr)
    assert back.element_type == ov.Type.f32 and not np.shares_memory(back.data, arr)
    back.shape = [8]  # its own memory: free to grow
    assert back.data.shape == (8,)
