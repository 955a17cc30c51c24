"""Layout (what each dimension of a tensor means: "NCHW", "N...", "[N,C,?]") and the layouts that
Parameters and Results carry."""

from __future__ import annotations

import re

_SCALAR = "**SCALAR**"
# Node id -> Layout. Node wrappers are made afresh on each graph access, so the layout lives beside
# the engine node (ids are never reused), not on the wrapper.
_NODE_LAYOUTS: dict = {}


class Layout:
    """``Layout("NCHW")``, ``Layout("N...C")``, ``Layout("[N,C,H,W]")``, ``Layout.scalar()``; ``?`` is
    a dimension without a name."""

    __slots__ = ("_names", "_ellipsis", "_scalar")

    def __init__(self, text: str = ""):
        if isinstance(text, Layout):
            self._names, self._ellipsis, self._scalar = text._names, text._ellipsis, text._scalar
            return
        if not isinstance(text, str):
            raise TypeError(f"Layout() takes a string, got {text!r}")
        self._scalar = text == _SCALAR
        self._ellipsis = None
        names = []
        body = text.strip()
        if self._scalar:
            body = ""
        if body.startswith("["):
            if not body.endswith("]"):
                raise RuntimeError(f"Layout {text!r}: '[' without a closing ']'")
            parts = [p.strip() for p in body[1:-1].split(",")] if body[1:-1].strip() else []
        else:
            parts = re.findall(r"\.\.\.|.", body)
        for part in parts:
            if part == "...":
                if self._ellipsis is not None:
                    raise RuntimeError(f"Layout {text!r}: more than one '...'")
                self._ellipsis = len(names)
                continue
            if not part or not (part == "?" or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part)):
                raise RuntimeError(f"Layout {text!r}: {part!r} is not a dimension name")
            name = part.upper()
            if name != "?" and name in names:
                raise RuntimeError(f"Layout {text!r}: dimension {part!r} appears twice")
            names.append(name)
        self._names = tuple(names)

    @staticmethod
    def scalar() -> "Layout":
        return Layout(_SCALAR)

    @property
    def empty(self) -> bool:
        return not self._names and self._ellipsis is None and not self._scalar

    def has_name(self, name: str) -> bool:
        return name.upper() in self._names and name != "?"

    def get_index_by_name(self, name: str) -> int:
        """Index of a named dimension; negative (from the end) when it follows a '...'."""
        key = name.upper()
        if key not in self._names:
            raise RuntimeError(f"Layout {self}: no dimension named {name!r}")
        i = self._names.index(key)
        if self._ellipsis is not None and i >= self._ellipsis:
            return i - len(self._names)
        return i

    def to_string(self) -> str:
        if self._scalar:
            return _SCALAR
        if self.empty:
            return ""
        parts = list(self._names)
        if self._ellipsis is not None:
            parts.insert(self._ellipsis, "...")
        return "[" + ",".join(parts) + "]"

    def __eq__(self, other):
        if isinstance(other, str):
            other = Layout(other)
        if not isinstance(other, Layout):
            return NotImplemented
        return (self._names, self._ellipsis, self._scalar) == (other._names, other._ellipsis, other._scalar)

    def __hash__(self):
        return hash((self._names, self._ellipsis, self._scalar))

    def __str__(self):
        return self.to_string()

    def __repr__(self):
        return f"<Layout: {self.to_string()}>"


def node_layout(node) -> Layout:
    return _NODE_LAYOUTS.get(node._native.id, Layout())


def set_node_layout(node, layout) -> None:
    layout = Layout(layout)
    if node.get_type_name() not in ("Parameter", "Result"):
        raise RuntimeError(f"only Parameters and Results carry a layout, not {node.get_type_name()}")
    rank = node.get_output_partial_shape(0).rank
    if (
        not layout.empty
        and rank.is_static
        and layout._ellipsis is None
        and not layout._scalar
        and len(layout._names) != rank.get_length()
    ):
        raise RuntimeError(
            f"layout {layout} has {len(layout._names)} dimensions, "
            f"{node.get_type_name()} '{node.name}' has rank {rank.get_length()}"
        )
    if layout.empty:
        _NODE_LAYOUTS.pop(node._native.id, None)
    else:
        _NODE_LAYOUTS[node._native.id] = layout


def _port_node(port):
    node = port.get_node()
    return node


def get_layout(port) -> Layout:
    """``layout_helpers.get_layout(model.input(0))``."""
    return node_layout(_port_node(port))


def set_layout(port, layout) -> None:
    set_node_layout(_port_node(port), layout)


def _batch_index(layout: Layout, rank: int) -> int:
    i = layout.get_index_by_name("N")
    return i + rank if i < 0 else i


def get_batch(model):
    """The batch dimension ('N' of the Parameters' layouts) of ``model``."""
    from ._types import Dimension

    found = None
    for param in model.get_parameters():
        layout = node_layout(param)
        if not layout.has_name("N"):
            continue
        shape = param.get_output_partial_shape(0)
        if shape.rank.is_dynamic:
            continue
        dim = shape[_batch_index(layout, len(shape))]
        if found is not None and not found.compatible(dim):
            raise RuntimeError(f"get_batch: Parameters disagree on the batch: {found} and {dim}")
        found = dim if found is None else found
    if found is None:
        raise RuntimeError(
            "get_batch: no Parameter has a layout with a batch ('N') dimension; "
            "set one with param.set_layout(Layout('N...'))"
        )
    return Dimension(found)


def set_batch(model, batch_size=-1) -> None:
    """Reshapes every Parameter whose layout names 'N' to ``batch_size`` (-1: dynamic)."""
    from ._types import Dimension, PartialShape

    batch = batch_size if isinstance(batch_size, Dimension) else Dimension(int(batch_size))
    shapes = {}
    for param in model.get_parameters():
        layout = node_layout(param)
        if not layout.has_name("N"):
            continue
        shape = PartialShape(param.get_output_partial_shape(0))
        dims = list(shape)
        dims[_batch_index(layout, len(dims))] = batch
        shapes[param.output(0)] = PartialShape(dims)
    if not shapes:
        raise RuntimeError(
            "set_batch: no Parameter has a layout with a batch ('N') dimension; "
            "set one with param.set_layout(Layout('N...'))"
        )
    model.reshape(shapes)
