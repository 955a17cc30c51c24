"""OVDict: inference results keyed by output port, index or tensor name."""

from __future__ import annotations

from collections.abc import Mapping

from ._errors import PortError
from ._ports import PortTable


class OVDict(Mapping):
    """An immutable mapping from output ports to numpy arrays. ``results[0]``,
    ``results["name"]`` and ``results[port]`` all work (the rules of ``aiov._ports``); a key
    that selects no output raises ``PortError``, a ``KeyError``."""

    __slots__ = ("_ports", "_values", "_table")

    def __init__(self, ports, values, table=None):
        self._ports = ports  # list of ConstOutput, in output order
        self._values = values  # list of arrays
        self._table = table  # PortTable of the outputs (shared per compiled model)

    def _index(self, key) -> int:
        if key is None:  # a mapping has no "the only key"
            raise PortError("results are selected by index, name or port, got None")
        table = self._table
        if table is None:
            table = self._table = PortTable(self._ports, "output")
        return table.index(key)

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
        except PortError:
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
        raise TypeError(
            "'OVDict' object does not support item assignment: it is immutable; use to_dict() for a mutable copy"
        )

    def __delitem__(self, key):
        raise TypeError(
            "'OVDict' object does not support item deletion: it is immutable; use to_dict() for a mutable copy"
        )

    def __repr__(self):
        return repr(self.to_dict())


__all__ = ["OVDict"]
