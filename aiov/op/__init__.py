"""OpenVINO's op classes (``from openvino.op import Constant, Parameter``).

They are Node subclasses built by the same registry-backed builders as ``aiov.opset``; a node
reached through a graph (``model.get_parameters()``, ``node.input_value(0).get_node()``) is an
instance of its class too."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._errors import InputError
from .._graph import NODE_CLASSES, Node, constant_value, make_result
from .._types import Type, as_partial_shape, as_type
from . import util  # noqa: E402,F401

__all__ = ["Constant", "Parameter", "Result", "util"]


def _shareable(arr) -> bool:
    """Whether a Constant can be made on ``arr``'s memory as it is."""
    return (
        isinstance(arr, np.ndarray) and arr.flags.c_contiguous and arr.dtype.isnative and arr.dtype.kind not in "USOVc"
    )


def _native_of(node: Node):
    return node._native


class Constant(Node):
    """``Constant(array)``, ``Constant(tensor)``, ``Constant(Type, shape, values)``.

    ``shared_memory=True`` (a C-contiguous array or a Tensor) makes the node's value the caller's
    memory, as in OpenVINO: ``.data`` shows later writes to it. A compiled model still takes a
    copy when it is compiled, so writes after ``compile_model`` never reach it."""

    __slots__ = ()

    def __init__(self, *args, shared_memory: bool = False, **kwargs):
        from .._core import Node as _NativeNode

        if len(args) == 1 and isinstance(args[0], _NativeNode) and not kwargs:
            super().__init__(args[0])  # wrapping an existing engine node
            return
        from .. import opset
        from .._tensor import Tensor

        value = kwargs.pop("array", kwargs.pop("tensor", None))
        if value is not None:
            args = (value,) + args
        if kwargs:
            raise TypeError(f"Constant(): unexpected arguments {sorted(kwargs)}")
        if not args:
            raise TypeError("Constant() needs an array, a Tensor, or an element type, a shape and values")
        first = args[0]
        if isinstance(first, Type) and len(args) == 3:
            etype, shape, values = first, tuple(int(d) for d in args[1]), args[2]
            arr = np.asarray(values, dtype=etype.to_dtype())
            count = int(np.prod(shape, dtype=np.int64))
            if arr.size == 1 and count != 1:
                arr = np.full(shape, arr.reshape(-1)[0], dtype=arr.dtype)
            elif arr.size != count:
                raise InputError(f"Constant(): shape {list(shape)} needs {count} values, got {arr.size}")
            node = opset.constant(arr.reshape(shape), etype)
        else:
            if isinstance(first, Tensor):
                arr = first.data
                etype = first.get_element_type()
            else:
                arr = first if isinstance(first, np.ndarray) else np.asarray(first)
                etype = None
            if shared_memory and isinstance(arr, np.ndarray) and arr.ndim > 1 and not arr.flags.c_contiguous:
                raise RuntimeError(
                    "SHARED MEMORY MODE FOR THIS CONSTANT IS NOT APPLICABLE! Passed numpy array must be C contiguous."
                )
            if etype is not None and etype.bitwidth < 8:
                raise InputError("Constant(): packed u1/u4/i4 tensors are not supported")
            if shared_memory and _shareable(arr):
                etype = etype if etype is not None else Type(arr.dtype)
                raw = arr.reshape(-1).view(np.uint8)
                super().__init__(_core.make_shared_constant(etype._id, list(arr.shape), raw, arr, ""))
                return
            node = opset.constant(np.asarray(arr), None if etype is None else etype)
        super().__init__(node._native)

    @property
    def data(self) -> np.ndarray:
        """The value (a read-only view of the engine's copy)."""
        return constant_value(self)

    def get_data(self) -> np.ndarray:
        return constant_value(self)

    def get_byte_size(self) -> int:
        return int(constant_value(self).nbytes)

    def get_vector(self) -> list:
        return constant_value(self).reshape(-1).tolist()

    def get_value_strings(self) -> list:
        return [str(v) for v in constant_value(self).reshape(-1)]


class Parameter(Node):
    """``Parameter(Type.f32, PartialShape([1, 3]))``: a model input."""

    __slots__ = ()

    def __init__(self, *args, **kwargs):
        from .._core import Node as _NativeNode

        if len(args) == 1 and isinstance(args[0], _NativeNode) and not kwargs:
            super().__init__(args[0])
            return
        from .. import opset

        etype = kwargs.pop("element_type", args[0] if args else None)
        shape = kwargs.pop("shape", args[1] if len(args) > 1 else None)
        if etype is None or shape is None:
            raise TypeError("Parameter() needs an element type and a shape")
        node = opset.parameter(as_partial_shape(shape), as_type(etype), kwargs.pop("name", None))
        super().__init__(node._native)

    def get_partial_shape(self):
        return self.get_output_partial_shape(0)

    @property
    def layout(self):
        from .._layout import node_layout

        return node_layout(self)

    @layout.setter
    def layout(self, value):
        self.set_layout(value)


def Result(source) -> Node:  # noqa: N802 (OpenVINO's class name; a Result is built from its source)
    from .._graph import as_output

    return make_result(as_output(source))


NODE_CLASSES["Constant"] = Constant
NODE_CLASSES["Parameter"] = Parameter
