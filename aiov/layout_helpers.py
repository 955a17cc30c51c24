"""``openvino.layout_helpers``: the layout of a model's input or output port, and which of the
usual dimensions (batch N, channels C, depth D, height H, width W) a Layout names and where."""

from __future__ import annotations

from ._layout import Layout, get_layout, set_layout


def _has(name):
    def has(layout) -> bool:
        return Layout(layout).has_name(name)

    return has


def _index(name):
    def index(layout) -> int:
        """Index of the dimension (negative when it follows a '...'); RuntimeError when absent."""
        return Layout(layout).get_index_by_name(name)

    return index


has_batch, has_channels, has_depth, has_height, has_width = (_has(n) for n in "NCDHW")
batch_idx, channels_idx, depth_idx, height_idx, width_idx = (_index(n) for n in "NCDHW")

__all__ = [
    "batch_idx",
    "channels_idx",
    "depth_idx",
    "get_layout",
    "has_batch",
    "has_channels",
    "has_depth",
    "has_height",
    "has_width",
    "height_idx",
    "set_layout",
    "width_idx",
]
