"""Tensor constructor forms OpenVINO code uses: keywords and type names, ports, regions of interest,
and buffers reinterpreted as another element type."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops


@pytest.mark.parametrize("etype", [ov.Type.f32, np.float32, np.dtype(np.float32), "f32", "float32"])
def test_type_and_shape_keywords_and_names(etype):
    t = ov.Tensor(type=etype, shape=np.array([2, 3]))
    assert t.element_type == ov.Type.f32 and list(t.shape) == [2, 3] and t.data.dtype == np.float32


def test_keywords_must_come_together():
    with pytest.raises(TypeError, match="both keywords"):
        ov.Tensor(type=ov.Type.f32)


def test_tensor_for_a_port_allocates_or_shares():
    static = ops.parameter([2, 2], np.float32)
    assert list(ov.Tensor(static.output(0)).shape) == [2, 2]
    assert list(ov.Tensor(ops.parameter(ov.PartialShape.dynamic(), np.float32).output(0)).shape) == [0]
    arr = np.zeros((2, 2), np.float32)
    shared = ov.Tensor(static.output(0), arr)
    arr[0, 0] = 7
    assert shared.data[0, 0] == 7
    with pytest.raises(RuntimeError, match="exceeds"):
        ov.Tensor(ops.parameter([5], np.float32).output(0), arr)
    with pytest.warns(RuntimeWarning):
        ov.Tensor(ops.parameter([2], np.float32).output(0), arr)


def test_region_of_interest_is_a_view():
    base = ov.Tensor(np.arange(16, dtype=np.float32).reshape(4, 4))
    roi = ov.Tensor(base, [1, 1], [3, 4])
    assert list(roi.shape) == [2, 3] and not roi.is_continuous()
    roi.data[0, 0] = -1
    assert base.data[1, 1] == -1
    with pytest.raises(ov.InputError, match="axis 1"):
        ov.Tensor(base, [0, 3], [1, 5])
    with pytest.raises(RuntimeError, match="packed"):
        ov.Tensor(ov.Tensor(ov.Type.u4, [4, 4]), [0, 0], [1, 1])


def test_buffer_reinterpreted_as_another_type():
    buf = np.arange(8, dtype=np.float32).reshape(2, 4)
    t = ov.Tensor(buf, (2, 16), ov.Type.u8)
    np.testing.assert_array_equal(t.data, buf.view(np.uint8))
    back = ov.Tensor(t.data, (2, 4), ov.Type.f32)
    np.testing.assert_array_equal(back.data, buf)


def test_copy_to_copies_values():
    src = ov.Tensor(type=ov.Type.i32, shape=[3])
    src.data[:] = [1, 2, 3]
    dst = ov.Tensor(type=ov.Type.i32, shape=[3])
    src.copy_to(dst)
    np.testing.assert_array_equal(dst.data, [1, 2, 3])


def test_tensor_from_file(tmp_path):
    path = tmp_path / "w.bin"
    np.arange(5, dtype=np.uint8).tofile(path)
    t = ov.tensor_from_file(path)
    assert t.element_type == ov.Type.u8 and list(t.data) == [0, 1, 2, 3, 4]
