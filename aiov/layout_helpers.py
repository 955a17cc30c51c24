"""``openvino.layout_helpers``: the layout of a model's input or output port."""

from __future__ import annotations

from ._layout import get_layout, set_layout  # noqa: F401

__all__ = ["get_layout", "set_layout"]
