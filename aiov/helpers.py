"""Packing helpers for the low-precision element types u1, u4 and i4."""

from __future__ import annotations

import numpy as np

from ._errors import InputError
from ._tensor import element_count
from ._types import Type, as_type

_BITS = {"u1": 1, "u4": 4, "i4": 4}


def _bits(etype) -> int:
    etype = as_type(etype)
    name = etype.get_type_name()
    if name not in _BITS:
        raise InputError(f"pack_data/unpack_data handle u1, u4 and i4, got {name}")
    return _BITS[name]


def pack_data(array, etype) -> np.ndarray:
    """Packs one value per element into bytes: u1 8 per byte (first element in the highest
    bit), u4/i4 2 per byte (first element in the low nibble), as OpenVINO lays them out."""
    bits = _bits(etype)
    arr = np.asarray(array)
    if arr.dtype.kind not in "iub":
        raise InputError(f"pack_data needs integer data, got dtype {arr.dtype}")
    flat = arr.reshape(-1).astype(np.int64)
    lo, hi = (-8, 7) if as_type(etype) == Type.i4 else (0, (1 << bits) - 1)
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise InputError(
            f"values must lie in [{lo}, {hi}] for {as_type(etype).get_type_name()}, got [{flat.min()}, {flat.max()}]"
        )
    per_byte = 8 // bits
    pad = (-flat.size) % per_byte
    vals = np.concatenate([flat, np.zeros(pad, np.int64)]).astype(np.uint8) & ((1 << bits) - 1)
    groups = vals.reshape(-1, per_byte)
    if bits == 1:
        shifts = np.arange(7, -1, -1, dtype=np.uint8)
    else:
        shifts = np.array([0, 4], dtype=np.uint8)
    return np.bitwise_or.reduce(groups << shifts, axis=1).astype(np.uint8)


def unpack_data(array, etype, shape) -> np.ndarray:
    """Inverse of pack_data: an int8 (i4) or uint8 (u1, u4) array of ``shape``."""
    bits = _bits(etype)
    raw = np.asarray(array).reshape(-1).view(np.uint8)
    count = element_count(shape)  # exact: an int64 product could wrap to a small count
    per_byte = 8 // bits
    if raw.size * per_byte < count:
        raise InputError(
            f"{raw.size} packed bytes hold {raw.size * per_byte} values, shape {list(shape)} needs {count}"
        )
    if bits == 1:
        shifts = np.arange(7, -1, -1, dtype=np.uint8)
    else:
        shifts = np.array([0, 4], dtype=np.uint8)
    vals = ((raw[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)[:count]
    if as_type(etype) == Type.i4:
        vals = vals.astype(np.int8)
        vals = np.where(vals > 7, vals - 16, vals).astype(np.int8)
    return vals.reshape(tuple(shape))
