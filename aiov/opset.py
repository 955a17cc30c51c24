"""Opset builders (``import aiov.opset13 as ops``). Each call creates a node whose output
types and shapes come from the native op registry."""
from __future__ import annotations

import numpy as np

from . import _core
from ._errors import InputError
from ._graph import Node, Output, as_output, make_result
from ._types import Type, as_partial_shape, as_type

__all__ = [
    "parameter", "constant", "result", "add", "subtract", "multiply", "divide", "maximum", "minimum",
    "power", "absolute", "negative", "relu", "sigmoid", "tanh", "exp", "log", "sqrt", "matmul",
    "reshape", "convert", "concat", "softmax",
]


def _name(name):
    return "" if name is None else str(name)


def parameter(shape, dtype=np.float32, name=None) -> Node:
    """A model input of the given shape (-1 or Dimension() for dynamic) and element type."""
    etype = as_type(dtype)
    return Node(_core.make_parameter(etype._id, as_partial_shape(shape)._engine(), _name(name)))


def constant(value, dtype=None, name=None) -> Node:
    """A constant tensor. Python floats default to f32 and ints to i64 unless dtype is given."""
    if isinstance(value, Node):
        return value
    if dtype is not None:
        etype = as_type(dtype)
        if etype.bitwidth < 8:
            arr = np.ascontiguousarray(value, dtype=np.uint8)
            raise InputError("constant(): build packed u1/u4/i4 constants from a Tensor")
        arr = np.ascontiguousarray(value, dtype=etype.to_dtype())
    else:
        arr = np.asarray(value)
        if arr.dtype == np.float64 and not isinstance(value, np.ndarray):
            arr = arr.astype(np.float32)
        if arr.dtype.kind in "USO":
            raise InputError(f"constant(): cannot make a constant of dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr)
        etype = Type(arr.dtype)
    raw = arr.reshape(-1).view(np.uint8)
    return Node(_core.make_constant(etype._id, list(arr.shape), raw, _name(name)))


def result(data, name=None) -> Node:
    node = make_result(as_output(data))
    if name:
        node.set_friendly_name(name)
    return node


def _make(op, inputs, attrs=None, name=None) -> Node:
    outs = [as_output(i) for i in inputs]
    native_inputs = [(o._node._native, o._index) for o in outs]
    return Node(_core.make_node(op, native_inputs, attrs or {}, _name(name)))


def _pair(left, right):
    """Turn a scalar/array operand into a constant of the other operand's element type."""
    lnode = isinstance(left, (Node, Output))
    rnode = isinstance(right, (Node, Output))
    if lnode and not rnode:
        right = constant(right, as_output(left).get_element_type().to_dtype()
                         if not isinstance(right, np.ndarray) else None)
    elif rnode and not lnode:
        left = constant(left, as_output(right).get_element_type().to_dtype()
                        if not isinstance(left, np.ndarray) else None)
    return left, right


def _binary(op):
    def build(left, right, auto_broadcast="NUMPY", name=None) -> Node:
        left, right = _pair(left, right)
        return _make(op, [left, right], {"auto_broadcast": str(auto_broadcast).lower()}, name)
    build.__name__ = op.lower()
    build.__doc__ = f"Elementwise {op} with numpy broadcasting."
    return build


add = _binary("Add")
subtract = _binary("Subtract")
multiply = _binary("Multiply")
divide = _binary("Divide")
maximum = _binary("Maximum")
minimum = _binary("Minimum")
power = _binary("Power")


def _unary(op):
    def build(node, name=None) -> Node:
        return _make(op, [node], {}, name)
    build.__doc__ = f"Elementwise {op}."
    return build


absolute = _unary("Abs")
negative = _unary("Negative")
relu = _unary("Relu")
sigmoid = _unary("Sigmoid")
tanh = _unary("Tanh")
exp = _unary("Exp")
log = _unary("Log")
sqrt = _unary("Sqrt")


def matmul(data_a, data_b, transpose_a=False, transpose_b=False, name=None) -> Node:
    data_a, data_b = _pair(data_a, data_b)
    return _make("MatMul", [data_a, data_b],
                 {"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b)}, name)


def reshape(node, output_shape, special_zero=False, name=None) -> Node:
    if not isinstance(output_shape, (Node, Output)):
        output_shape = constant(np.asarray(output_shape, dtype=np.int64).reshape(-1))
    return _make("Reshape", [node, output_shape], {"special_zero": bool(special_zero)}, name)


def convert(data, destination_type, name=None) -> Node:
    return _make("Convert", [data], {"destination_type": as_type(destination_type).get_type_name()}, name)


def concat(nodes, axis, name=None) -> Node:
    return _make("Concat", list(nodes), {"axis": int(axis)}, name)


def softmax(data, axis, name=None) -> Node:
    return _make("Softmax", [data], {"axis": int(axis)}, name)
