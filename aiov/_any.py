"""OVAny (a property value as OpenVINO passes it) and RTMap (runtime info of models and ports)."""

from __future__ import annotations


def unwrap(value):
    """The plain Python value inside any OVAny, also inside dicts, lists and tuples."""
    if isinstance(value, OVAny):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {unwrap(k): unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(v) for v in value)
    return value


class OVAny:
    """A value of any type; equal to another OVAny (or a plain value) holding an equal value."""

    __slots__ = ("_value",)

    def __init__(self, value=None):
        self._value = value._value if isinstance(value, OVAny) else value

    @property
    def value(self):
        return self._value

    def get(self):
        return self._value

    def set(self, value):
        self._value = unwrap(value)

    def astype(self, kind):
        return kind(self._value)

    def aslist(self, kind=None):
        values = list(self._value) if isinstance(self._value, (list, tuple, set)) else [self._value]
        return [kind(v) for v in values] if kind else values

    def __eq__(self, other):
        return unwrap(self) == unwrap(other)

    def __hash__(self):
        return hash(self._value)

    def __getitem__(self, key):
        return self._value[key]

    def __len__(self):
        return len(self._value)

    def __str__(self):
        return str(self._value)

    def __repr__(self):
        return f"<OVAny class holding {type(self._value).__name__}: {self._value!r}>"


class RTMap(dict):
    """Runtime info: string keys, values read back as OVAny."""

    def __getitem__(self, key):
        value = super().__getitem__(key)
        return value if isinstance(value, OVAny) else OVAny(value)

    def __setitem__(self, key, value):
        super().__setitem__(str(key), value if isinstance(value, OVAny) else OVAny(value))

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]
