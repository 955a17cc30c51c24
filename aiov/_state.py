"""Stateful models: the ``read_value``/``assign`` builders, the variables a model declares, and
``VariableState``, a request's handle on one of its variables.

A variable's value lives in the engine, per request: ReadValue reads it (its initial value
while it has none) and Assign writes it when an inference succeeds."""

from __future__ import annotations

import numpy as np

from ._errors import InputError
from ._types import PartialShape, Type, as_partial_shape, as_type, type_from_id
from .op.util import Variable, VariableInfo


def _info(variable_id, variable_type=None, variable_shape=None) -> VariableInfo:
    info = VariableInfo()
    info.variable_id = variable_id
    info.data_type = Type.dynamic if variable_type is None else as_type(variable_type)
    info.data_shape = PartialShape.dynamic() if variable_shape is None else as_partial_shape(variable_shape)
    return info


def _read_value_attrs(info: VariableInfo) -> dict:
    if not info.variable_id:
        raise InputError("read_value: the variable needs a non-empty variable_id")
    return {
        "variable_id": info.variable_id,
        "variable_type": info.data_type.get_type_name(),
        "variable_shape": str(info.data_shape),
    }


def read_value(*args, name=None, **kwargs):
    """ReadValue: the value of a variable, or ``init_value`` while the variable has none.
    Forms: ``read_value(init_value, variable_id, variable_type=None, variable_shape=None)``,
    ``read_value(variable_id, variable_type=None, variable_shape=None)``,
    ``read_value(variable)`` and ``read_value(init_value, variable)``."""
    from ._graph import Node, _PortBase
    from .opset import _make, constant

    args = list(args)
    init = None
    if args and not isinstance(args[0], (str, Variable)):
        init = args.pop(0)
    init = kwargs.pop("init_value", init)
    if "ov_variable" in kwargs:
        args.insert(0, kwargs.pop("ov_variable"))
    if args and isinstance(args[0], Variable):
        info = args.pop(0).get_info()
    else:
        variable_id = kwargs.pop("variable_id", args.pop(0) if args else None)
        if not isinstance(variable_id, str):
            raise TypeError(f"read_value: expected a variable id (str) or a Variable, got {variable_id!r}")
        variable_type = kwargs.pop("variable_type", args.pop(0) if args else None)
        variable_shape = kwargs.pop("variable_shape", args.pop(0) if args else None)
        info = _info(variable_id, variable_type, variable_shape)
    if args or kwargs:
        raise TypeError(f"read_value: unexpected arguments {args or sorted(kwargs)}")
    inputs = []
    if init is not None:
        if not isinstance(init, (Node, _PortBase)):
            dtype = None if info.data_type == Type.dynamic else info.data_type.to_dtype()
            init = constant(np.asarray(init, dtype=dtype))
        inputs.append(init)
    return _make("ReadValue", inputs, _read_value_attrs(info), name)


def assign(new_value=None, variable_id=None, name=None):
    """Assign: ``new_value`` becomes the variable's value once the inference succeeds.
    ``variable_id`` is the variable's id or a Variable; ``assign()`` alone makes an empty
    sink (OpenVINO's default constructor), which a model cannot compile."""
    from .opset import _make

    if isinstance(variable_id, Variable):
        variable_id = variable_id.get_info().variable_id
    attrs = {"variable_id": "" if variable_id is None else str(variable_id)}
    return _make("Assign", [] if new_value is None else [new_value], attrs, name)


def variable_of(node) -> Variable:
    """The Variable a ReadValue or Assign node names (its declared type and shape)."""
    attrs = node._native.attributes()
    info = VariableInfo()
    info.variable_id = attrs.get("variable_id", "")
    if node.get_type_name() == "ReadValue":
        declared = as_partial_shape(attrs.get("variable_shape", "..."))
        text = attrs.get("variable_type", "dynamic")
        info.data_type = node.get_output_element_type(0) if text == "dynamic" else as_type(text)
        info.data_shape = declared
    elif node.get_input_size():
        info.data_type = node.input_value(0).get_element_type()
        info.data_shape = node.input_value(0).get_partial_shape()
    return Variable(info)


class VariableState:
    """One variable of one request: ``name``, ``state`` (a Tensor copy of its value; assigning
    a Tensor or array sets it) and ``reset()`` (back to its initial value). Every access
    raises BusyError while the request's job runs."""

    __slots__ = ("_native", "_index", "_name", "_type")

    def __init__(self, native_request, index: int, name: str, type_id: int):
        self._native, self._index, self._name, self._type = native_request, index, name, type_from_id(type_id)

    @property
    def name(self) -> str:
        return self._name

    def get_name(self) -> str:
        return self._name

    def get_state(self):
        from ._tensor import Tensor

        return Tensor._wrap(self._native.state(self._index), self._type)

    def set_state(self, value) -> None:
        from ._tensor import Tensor

        if isinstance(value, Tensor):
            if value.element_type != self._type:
                raise InputError(
                    f"variable '{self._name}': expected element type {self._type.get_type_name()}, "
                    f"got a Tensor of {value.element_type.get_type_name()}"
                )
            arr = value.data
        else:
            arr = np.asarray(value, dtype=self._type.to_dtype())
        self._native.set_state(self._index, np.ascontiguousarray(arr), self._type._id)

    state = property(get_state, set_state)

    def reset(self) -> None:
        self._native.reset_state(self._index)

    def __repr__(self):
        return f"<VariableState: '{self._name}'>"


def query_state(request) -> list:
    """The VariableStates of an InferRequest, in the compiled model's variable order."""
    variables = request._compiled._native.variables
    return [VariableState(request._native, i, vid, type_id) for i, (vid, type_id, _) in enumerate(variables)]


__all__ = ["VariableState", "as_sink", "assign", "query_state", "read_value", "reshape_variables", "variable_of"]


def as_sink(value):
    """The node of a sink given as a node or as one of its output ports."""
    from ._graph import Node, _PortBase

    if isinstance(value, _PortBase):
        return value.get_node()
    if isinstance(value, Node):
        return value
    raise TypeError(f"a model's sinks are Assign nodes or their outputs, got {value!r}")


def reshape_variables(model, shapes: dict):
    """Gives the variables named in ``shapes`` (id -> shape) their new declared shape on every
    ReadValue reading them; returns the function that puts the old ones back."""
    undo = []
    for variable_id, shape in shapes.items():
        if not isinstance(variable_id, str):
            raise TypeError(f"Incorrect key type {type(variable_id)} to reshape a model, expected values as str.")
        text = str(as_partial_shape(shape))
        for native in model._order():
            attrs = native.attributes() if native.op_type == "ReadValue" else {}
            if attrs.get("variable_id") == variable_id:
                undo.append((native, attrs["variable_shape"]))
                native.set_attributes({"variable_shape": text})
        for variable in model._variables:
            info = variable.get_info()
            if info.variable_id == variable_id:
                info.data_shape = as_partial_shape(shape)
                variable.update(info)

    def restore():
        for native, text in reversed(undo):
            native.set_attributes({"variable_shape": text})

    return restore
