"""OpenVINO's ``openvino.utils`` namespace: type helpers (``types``) and ``data_helpers``."""

from __future__ import annotations

from . import data_helpers, types  # noqa: F401
