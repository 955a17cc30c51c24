"""Packing helpers for the low-precision element types u1, u2, i2, u4, i4 and nf4 (4-bit codes
into a table of normal-float values, packed as u4)."""

from __future__ import annotations

import numpy as np

from ._errors import InputError
from ._narrow import pack_codes, unpack_codes
from ._tensor import element_count
from ._types import as_type

_SIGNED = ("i2", "i4")
# type -> the type whose bit layout it has
_LAYOUTS = {"u1": "u1", "u2": "u2", "i2": "i2", "u4": "u4", "i4": "i4", "nf4": "u4"}


def _layout(etype) -> str:
    name = as_type(etype).get_type_name()
    if name not in _LAYOUTS:
        raise InputError(f"pack_data/unpack_data handle u1, u2, i2, u4, i4 and nf4, got {name}")
    return _LAYOUTS[name]


def pack_data(array, etype) -> np.ndarray:
    """Packs one value per element into bytes: u1 8 per byte (first element in the highest
    bit), u2/i2 4 and u4/i4/nf4 2 per byte (first element in the lowest bits), as OpenVINO and
    ONNX lay them out."""
    name = _layout(etype)
    bits = as_type(etype).bitwidth
    arr = np.asarray(array)
    if arr.dtype.kind not in "iub":
        raise InputError(f"pack_data needs integer data, got dtype {arr.dtype}")
    flat = arr.reshape(-1).astype(np.int64)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if name in _SIGNED else (0, (1 << bits) - 1)
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise InputError(
            f"values must lie in [{lo}, {hi}] for {as_type(etype).get_type_name()}, got [{flat.min()}, {flat.max()}]"
        )
    return pack_codes((flat & ((1 << bits) - 1)).astype(np.uint8), name)


def unpack_data(array, etype, shape) -> np.ndarray:
    """Inverse of pack_data: an int8 (i2, i4) or uint8 (u1, u2, u4, nf4 codes) array of ``shape``."""
    name = _layout(etype)
    bits = as_type(etype).bitwidth
    vals = unpack_codes(np.asarray(array), name, element_count(shape))
    if name in _SIGNED:
        vals = vals.astype(np.int8)
        vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals).astype(np.int8)
    return vals.reshape(tuple(shape))
