"""``openvino.utils.data_helpers``: where OpenVINO keeps its result dictionary."""

from __future__ import annotations

from .._results import OVDict  # noqa: F401

__all__ = ["OVDict"]
