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


def _convert(value, kind):
    """``kind(value)``, reading the text of a bool as the IR writes it ("true"/"false")."""
    if kind is bool and isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
        raise ValueError(f"{value!r} is not a boolean")
    return kind(value)


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
        return _convert(self._value, kind)

    def aslist(self, kind=None):
        value = self._value
        if isinstance(value, str):  # rt_info read from an IR: a list is its items' text, space separated
            values = value.split()
        else:
            values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        return [_convert(v, kind) for v in values] if kind else values

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
        inner = value.value if isinstance(value, OVAny) else value
        if isinstance(inner, dict):
            return inner  # a nested map reads as the dict it is, as OpenVINO's does
        return value if isinstance(value, OVAny) else OVAny(value)

    def __setitem__(self, key, value):
        super().__setitem__(str(key), value if isinstance(value, OVAny) else OVAny(value))

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]
