"""OVDict: inference results keyed by output port, index or tensor name."""
from __future__ import annotations

from collections.abc import Mapping

from ._errors import InputError


class OVDict(Mapping):
    """An immutable mapping from output ports to numpy arrays. ``results[0]``,
    ``results["name"]`` and ``results[port]`` all work."""

    __slots__ = ("_ports", "_values", "_names")

    def __init__(self, ports, values, names_index=None):
        self._ports = ports            # list of ConstOutput, in output order
        self._values = values          # list of arrays
        self._names = names_index      # dict name -> index (shared per compiled model)

    def _index(self, key) -> int:
        if isinstance(key, int):
            if -len(self._values) <= key < len(self._values):
                return key % len(self._values)
            raise KeyError(f"output index {key} is out of range: there are {len(self._values)} outputs")
        if isinstance(key, str):
            names = self._names if self._names is not None else _index_names(self._ports)
            if key in names:
                return names[key]
            raise KeyError(f"no output named {key!r}; names: {sorted(names)}")
        try:
            return self._ports.index(key)
        except ValueError:
            pass
        # A port of the source Model (not the compiled one): match by tensor names.
        get_names = getattr(key, "get_names", None)
        if get_names is not None:
            names = self._names if self._names is not None else _index_names(self._ports)
            for n in get_names():
                if n in names:
                    return names[n]
        raise KeyError(f"{key!r} is not an output of this model")

    def __getitem__(self, key):
        return self._values[self._index(key)]

    def __iter__(self):
        return iter(self._ports)

    def __len__(self):
        return len(self._values)

    def __contains__(self, key):
        try:
            self._index(key)
            return True
        except KeyError:
            return False

    def keys(self):
        return list(self._ports)

    def values(self):
        return list(self._values)

    def items(self):
        return list(zip(self._ports, self._values))

    def names(self) -> tuple:
        return tuple(p.get_names() for p in self._ports)

    def to_dict(self) -> dict:
        return dict(zip(self._ports, self._values))

    def to_tuple(self) -> tuple:
        return tuple(self._values)

    def __setitem__(self, key, value):
        raise TypeError("OVDict is immutable; use to_dict() for a mutable copy")

    def __delitem__(self, key):
        raise TypeError("OVDict is immutable; use to_dict() for a mutable copy")

    def __repr__(self):
        return repr(self.to_dict())


def _index_names(ports) -> dict:
    names = {}
    for i, p in enumerate(ports):
        for n in p.get_names():
            names.setdefault(n, i)
    return names


__all__ = ["OVDict", "InputError"]
