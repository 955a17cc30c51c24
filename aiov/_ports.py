"""Finding a model's input or output port by index, name or port object.

One set of rules for Model, CompiledModel, InferRequest and OVDict:
- ``None`` selects the only port (an error when there are several);
- an integer (numpy integers too, not bool) is a position as in a Python list:
  ``-count <= i < count``;
- a string is a tensor name of the port, else the friendly name of its node;
- a port object is the same port, else (a port of the Model a CompiledModel was compiled
  from) the port that shares one of its tensor names.
Every miss raises ``PortError`` (an ``InputError`` and a ``KeyError``) naming what was asked
and listing the ports that exist.
"""

from __future__ import annotations

import numbers

from ._errors import PortError, PortKeyTypeError
from ._graph import _PortBase


def port_label(port) -> str:
    """A port's tensor names ("a/b"), or its node's friendly name when it has none."""
    return "/".join(sorted(port.get_names())) or port.get_node().get_friendly_name()


class PortTable:
    """The ports of one side (inputs or outputs) of a model, with their names indexed once.
    Build a new table when the names may have changed (a Model is editable; a compiled
    model's ports are fixed)."""

    __slots__ = ("ports", "kind", "names", "labels")

    def __init__(self, ports, kind: str):
        self.ports = list(ports)
        self.kind = kind  # "input" or "output", for messages
        self.names = {}
        for i, p in enumerate(self.ports):
            for n in p.get_names():
                self.names.setdefault(n, i)
        for i, p in enumerate(self.ports):  # friendly names rank after every tensor name
            self.names.setdefault(p.get_node().get_friendly_name(), i)
        self.labels = [port_label(p) for p in self.ports]

    def __len__(self):
        return len(self.ports)

    def listing(self) -> str:
        n = len(self.ports)
        if n == 0:
            return f"the model has no {self.kind}s"
        return f"the model has {n} {self.kind}{'s' if n != 1 else ''} ({', '.join(self.labels)})"

    def find(self, key):
        """The index of `key`, or None when it names no port here (bad types still raise)."""
        if isinstance(key, str):
            return self.names.get(key)
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            key, count = int(key), len(self.ports)
            return key % count if -count <= key < count else None
        if isinstance(key, _PortBase):
            for i, p in enumerate(self.ports):
                if p == key:
                    return i
            for n in key.get_names():
                if n in self.names:
                    return self.names[n]
            return None
        raise PortKeyTypeError(
            f"Incompatible key type for {self.kind}: {key!r} (Unknown key type: {type(key)}); an {self.kind} "
            f"is selected by index, name or port; {self.listing()}"
        )

    def index(self, key=None) -> int:
        if key is None:
            if len(self.ports) == 1:
                return 0
            raise PortError(f"no {self.kind} was named: {self.listing()}; pass an index, a name or a port")
        found = self.find(key)
        if found is not None:
            return found
        if isinstance(key, str):
            raise PortError(f"no {self.kind} named {key!r}: {self.listing()}")
        if isinstance(key, _PortBase):
            raise PortError(f"{key!r} is not an {self.kind} of this model: {self.listing()}")
        raise PortError(f"{self.kind} index {int(key)} is out of range: {self.listing()}")

    def port(self, key=None):
        return self.ports[self.index(key)]


def find_input_or_output(inputs: PortTable, outputs: PortTable, key):
    """("input" | "output", index) for a name or port, inputs first (InferRequest.get_tensor)."""
    if not isinstance(key, (str, _PortBase)):
        raise PortError(f"a tensor is selected by name or port, got a {type(key).__name__} ({key!r})")
    for table in (inputs, outputs):
        found = table.find(key)
        if found is not None:
            return table.kind, found
    if isinstance(key, str):  # OpenVINO's wording first: code matches on it
        raise PortError(
            f"Port for tensor name {key} was not found: no input or output is named {key!r}; "
            f"{inputs.listing()}; {outputs.listing()}"
        )
    raise PortError(f"no input or output for {key!r}: {inputs.listing()}; {outputs.listing()}")
