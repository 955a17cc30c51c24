"""Type, Dimension, Shape and PartialShape behave like OpenVINO's."""

import numpy as np
import pytest

import aiov as ov

# OpenVINO names a numeric type by its kind's first letter and its bits (float32 is f32, uint8 u8).
NUMERIC = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def _numeric(name):
    bits = np.dtype(name).itemsize * 8
    return getattr(np, name), getattr(ov.Type, f"{name[0]}{bits}"), bits


DTYPES = [_numeric(name) for name in NUMERIC] + [(np.bool_, ov.Type.boolean, 8)]


@pytest.mark.parametrize("dtype,etype,bits", DTYPES)
def test_type_from_numpy_dtype_round_trips(dtype, etype, bits):
    assert ov.Type(dtype) == etype
    assert ov.Type(np.dtype(dtype)) == etype
    assert etype.to_dtype() == np.dtype(dtype)
    assert etype.bitwidth == bits
    assert ov.Tensor(np.zeros((2, 3), dtype=dtype)).element_type == etype


def test_tensor_from_default_numpy_arrays_gets_f64_and_i32():
    assert ov.Tensor(np.ones((2, 8))).element_type == ov.Type.f64
    assert ov.Tensor(np.ones((2, 8), dtype=np.int32)).element_type == ov.Type.i32


def test_type_equality_and_hashing():
    assert ov.Type.f32 == ov.Type("f32") == ov.Type(np.float32)
    assert ov.Type.f32 != ov.Type.f16
    assert ov.Type.f32 != ov.Type.i32
    assert len({ov.Type.f32, ov.Type(np.float32), ov.Type.i8}) == 2


def test_low_precision_types_have_sub_byte_bitwidth():
    assert ov.Type.u1.bitwidth == 1
    assert ov.Type.u4.bitwidth == 4
    assert ov.Type.i4.bitwidth == 4
    assert ov.Type.u1.get_bitwidth() == 1


def test_type_names_and_str_match_openvino_spelling():
    assert ov.Type.f32.get_type_name() == "f32"
    assert str(ov.Type.f64) == "double64"
    assert repr(ov.Type.f32) == "<Type: 'float32'>"


def test_type_rejects_unsupported_dtype():
    with pytest.raises(TypeError):
        ov.Type(np.complex64)


def test_dimension_static_dynamic_and_interval():
    assert ov.Dimension(3).is_static and ov.Dimension(3).get_length() == 3
    assert ov.Dimension().is_dynamic and ov.Dimension(-1).is_dynamic
    assert str(ov.Dimension()) == "?"
    d = ov.Dimension(1, 10)
    assert d.is_dynamic and (d.get_min_length(), d.get_max_length()) == (1, 10)
    assert str(d) == "1..10"
    assert ov.Dimension(3) == 3 and ov.Dimension(3) != 4
    with pytest.raises(RuntimeError):
        ov.Dimension().get_length()


def test_partial_shape_dynamic_dims_and_str_forms():
    ps = ov.PartialShape([1, -1])
    assert str(ps) == "[1,?]"
    assert ps.is_dynamic and not ps.is_static
    assert ps[0].get_length() == 1 and ps[1].is_dynamic
    assert ps.rank.get_length() == 2
    assert ov.PartialShape("[1,?]") == ps
    assert str(ov.PartialShape([1, ov.Dimension(2, 5)])) == "[1,2..5]"
    assert str(ov.PartialShape.dynamic()) == "[...]"
    assert ov.PartialShape.dynamic().rank.is_dynamic
    with pytest.raises(RuntimeError):
        ps.to_shape()


def test_partial_shape_static_to_shape_and_compatibility():
    ps = ov.PartialShape([2, 3])
    assert ps.is_static and ps.to_shape() == ov.Shape([2, 3])
    assert ov.PartialShape([-1, 3]).compatible(ps)
    assert not ov.PartialShape([4, 3]).compatible(ps)
    assert not ov.PartialShape([2, 3, 1]).compatible(ps)


def test_shape_is_a_list_of_ints_with_openvino_str():
    s = ov.Shape([1, 2, 3])
    assert list(s) == [1, 2, 3] and len(s) == 3
    assert str(s) == "[1,2,3]"
    with pytest.raises(ValueError):
        ov.Shape([1, -1])


def test_shape_strings_match_openvino():
    openvino = pytest.importorskip("openvino")
    assert str(ov.PartialShape([1, -1])) == str(openvino.PartialShape([1, -1]))
    assert str(ov.PartialShape([1, ov.Dimension(2, 5)])) == str(openvino.PartialShape([1, openvino.Dimension(2, 5)]))
    assert str(ov.Shape([1, 2])) == str(openvino.Shape([1, 2]))
    assert str(ov.PartialShape.dynamic()) == str(openvino.PartialShape.dynamic())
    assert repr(ov.Type.f32) == repr(openvino.Type.f32)
