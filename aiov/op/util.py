"""``openvino.op.util``: descriptions of the variables that stateful models keep between inferences."""

from __future__ import annotations

from .._types import PartialShape, Type, as_partial_shape, as_type

__all__ = ["VariableInfo", "Variable"]


class VariableInfo:
    """What a variable holds: ``data_shape``, ``data_type`` and its ``variable_id``."""

    def __init__(self):
        self.data_shape = PartialShape.dynamic()
        self.data_type = Type.dynamic
        self.variable_id = ""

    def __setattr__(self, name, value):
        if name == "data_shape":
            value = as_partial_shape(value)
        elif name == "data_type":
            value = as_type(value)
        elif name == "variable_id":
            value = str(value)
        object.__setattr__(self, name, value)

    def __repr__(self):
        return f"<VariableInfo: {self.variable_id} {self.data_type} {self.data_shape}>"


class Variable:
    """A variable: its VariableInfo, which ``update`` replaces."""

    def __init__(self, info: VariableInfo):
        self._info = _copy(info)

    def get_info(self) -> VariableInfo:
        return _copy(self._info)

    @property
    def info(self) -> VariableInfo:
        return self.get_info()

    def update(self, info: VariableInfo) -> None:
        self._info = _copy(info)

    def __repr__(self):
        return f"<Variable: {self._info.variable_id}>"


def _copy(info: VariableInfo) -> VariableInfo:
    out = VariableInfo()
    out.data_shape, out.data_type, out.variable_id = info.data_shape, info.data_type, info.variable_id
    return out
