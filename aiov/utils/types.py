"""Conversions between numpy/Python types and element types (``openvino.utils.types``)."""

from __future__ import annotations

import numpy as np

from .._types import Type

__all__ = [
    "get_element_type",
    "get_element_type_str",
    "get_dtype",
    "get_numpy_ctype",
    "make_constant_node",
    "as_node",
    "as_nodes",
]


def get_element_type(data_type) -> Type:
    """Element type of a numpy dtype or scalar type (Python ``int`` is i32 and ``float`` f32, as in
    OpenVINO)."""
    if data_type is int:
        return Type.i32
    if data_type is float:
        return Type.f32
    if isinstance(data_type, Type):
        return data_type
    try:
        return Type(data_type)
    except TypeError:
        raise TypeError(f"unsupported element type: {data_type!r}") from None


def get_element_type_str(data_type) -> str:
    if data_type is int:
        return "i32"
    if data_type is float:
        return "f32"
    return get_element_type(data_type).get_type_name()


def get_dtype(element_type: Type) -> np.dtype:
    """Numpy dtype of an element type."""
    if not isinstance(element_type, Type):
        raise TypeError(f"expected an element type, got {element_type!r}")
    return element_type.to_dtype()


def get_numpy_ctype(element_type: Type) -> type:
    return get_dtype(element_type).type


def make_constant_node(value, dtype=None):
    from ..opset import constant

    return constant(value, dtype)


def as_node(value, name=None):
    """A Node (or Output) as is; anything else becomes a Constant."""
    from .._graph import Node, _PortBase

    if isinstance(value, (Node, _PortBase)):
        return value
    from ..opset import constant

    return constant(value, name=name)


def as_nodes(*values, name=None) -> list:
    return [as_node(v, name=name) for v in values]
