"""The pieces of OpenVINO's typed properties API: keys, value conversions and enums.

A property key is a ``str`` equal to its name (so it works as a dict key wherever a config dict is
accepted); called with no argument it returns the name, with a value a ``(name, OVAny(value))``
pair after converting the value to the property's type."""

from __future__ import annotations

import enum

import numpy as np

from .._any import OVAny


def _refuse(name, value):
    raise TypeError(f"{name}(): incompatible function arguments; got {value!r} of type {type(value).__name__}")


def as_bool(name, value):
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    _refuse(name, value)


def as_str(name, value):
    if isinstance(value, str):
        return str(value)
    _refuse(name, value)


def as_int(name, value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    _refuse(name, value)


def as_uint(name, value):
    value = as_int(name, value)
    if value < 0:
        raise TypeError(f"{name}(): incompatible function arguments; expected an unsigned value, got {value}")
    return value


def as_float32(name, value):
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return float(np.float32(value))  # stored as f32, like OpenVINO: reads back equal to np.float32(x)
    _refuse(name, value)


def as_type(name, value):
    from .._types import Type

    if isinstance(value, Type):
        return value
    _refuse(name, value)


def as_any(name, value):
    return value


def enum_of(enum_cls):
    def convert(name, value):
        if isinstance(value, enum_cls):
            return value
        if isinstance(value, str) and value.upper() in enum_cls.__members__:
            return enum_cls.__members__[value.upper()]
        _refuse(name, value)

    return convert


def set_of(enum_cls):
    def convert(name, value):
        if isinstance(value, (set, frozenset, list, tuple)) and all(isinstance(v, enum_cls) for v in value):
            return set(value)
        _refuse(name, value)

    return convert


class Property(str):
    """A property key (see the module docstring)."""

    def __new__(cls, name: str, convert=as_any, read_only: bool = False):
        self = super().__new__(cls, name)
        self._convert = convert
        self._read_only = read_only
        return self

    @property
    def read_only(self) -> bool:
        return self._read_only

    def convert(self, value):
        """``value`` as this property's type (TypeError when it is not one)."""
        return self._convert(str(self), value)

    def __call__(self, *args):
        if not args:
            return str(self)
        if self._read_only:
            raise TypeError(f"{self}(): incompatible function arguments; a read-only property takes no value")
        if len(args) != 1:
            raise TypeError(f"{self}(): incompatible function arguments; expected one value, got {len(args)}")
        return (str(self), OVAny(self.convert(args[0])))

    def __reduce__(self):
        return (str, (str(self),))


def ro(name):
    return Property(name, read_only=True)


class PropertyEnum(enum.IntEnum):
    """OpenVINO's property enums: ``str()`` is ``Class.MEMBER``, ``int()`` the value; a member is also
    equal to its name as a string ("LATENCY"), which is how configs spell them."""

    def __str__(self):
        return f"{type(self).__name__}.{self.name}"

    def __eq__(self, other):
        if isinstance(other, str):
            return other == self.name or other == str(self)
        return int.__eq__(self, other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = enum.IntEnum.__hash__


def make_enum(name: str, members) -> type:
    """A PropertyEnum with OpenVINO's ``__entries`` table (name -> (member, doc)), aliases included."""
    cls = PropertyEnum(name, list(members))
    setattr(cls, "__entries", {n: (cls[n], None) for n, _ in members})
    return cls
