"""numpy's view of the element types numpy lacks (bf16, the 8- and 4-bit floats, 2- and 4-bit
integers): ml_dtypes' dtypes, imported only when such a type is used (importing ml_dtypes holds
the GIL for a long time), and the engine's packed storage of the sub-byte types."""

from __future__ import annotations

import numpy as np

from ._errors import InputError

# aiov type name -> ml_dtypes dtype name
ML_DTYPE_NAMES = {
    "bf16": "bfloat16",
    "f8e4m3": "float8_e4m3fn",
    "f8e5m2": "float8_e5m2",
    "f8e4m3fnuz": "float8_e4m3fnuz",
    "f8e5m2fnuz": "float8_e5m2fnuz",
    "f8e8m0": "float8_e8m0fnu",
    "f4e2m1": "float4_e2m1fn",
    "i4": "int4",
    "u4": "uint4",
    "i2": "int2",
    "u2": "uint2",
}
_TYPE_OF_DTYPE_NAME = {v: k for k, v in ML_DTYPE_NAMES.items()}
# The engine's representation of the types at least one byte wide: the same bits as an
# unsigned integer of their width.
_RAW = {"bf16": np.dtype(np.uint16)}
_SUB_BYTE_BITS = {"u1": 1, "i2": 2, "u2": 2, "i4": 4, "u4": 4, "f4e2m1": 4}


def type_name_of_dtype(dt: np.dtype):
    """The aiov type name of an ml_dtypes dtype, or None."""
    return _TYPE_OF_DTYPE_NAME.get(dt.name) if dt.kind in "Vf" else None  # float8_e5m2 says "f"


def ml_dtype(type_name: str) -> np.dtype:
    import ml_dtypes

    return np.dtype(getattr(ml_dtypes, ML_DTYPE_NAMES[type_name]))


def raw_dtype(type_name: str) -> np.dtype:
    return _RAW.get(type_name, np.dtype(np.uint8))


def is_sub_byte(type_name: str) -> bool:
    return type_name in _SUB_BYTE_BITS


def _shifts(bits: int) -> np.ndarray:
    # u1 fills a byte from its high bit down (OpenVINO's order); the others from the low bits.
    per_byte = 8 // bits
    order = np.arange(per_byte - 1, -1, -1) if bits == 1 else np.arange(per_byte)
    return (order * bits).astype(np.uint8)


def pack_codes(codes: np.ndarray, type_name: str) -> np.ndarray:
    """Element codes (one uint8 each, in the low bits) packed into bytes."""
    bits = _SUB_BYTE_BITS[type_name]
    per_byte = 8 // bits
    flat = codes.reshape(-1).astype(np.uint8) & ((1 << bits) - 1)
    flat = np.concatenate([flat, np.zeros((-flat.size) % per_byte, np.uint8)])
    return np.bitwise_or.reduce(flat.reshape(-1, per_byte) << _shifts(bits), axis=1).astype(np.uint8)


def unpack_codes(packed: np.ndarray, type_name: str, count: int) -> np.ndarray:
    """The first `count` element codes of packed bytes, one uint8 each."""
    bits = _SUB_BYTE_BITS[type_name]
    raw = np.asarray(packed).reshape(-1).view(np.uint8)
    if raw.size * (8 // bits) < count:
        raise InputError(f"{raw.size} packed bytes hold {raw.size * (8 // bits)} {type_name} values, {count} needed")
    return ((raw[:, None] >> _shifts(bits)) & ((1 << bits) - 1)).reshape(-1)[:count].astype(np.uint8)


def to_engine(values, type_name: str) -> np.ndarray:
    """Values (an ml_dtypes array, or numbers numpy converts) in the engine's storage: the raw
    bits of 8- and 16-bit types, packed bytes of sub-byte ones (flat: the caller keeps the shape)."""
    dt = ml_dtype(type_name)
    arr = np.asarray(values)
    if arr.dtype != dt:
        if arr.dtype.kind in "USOVcmM" and type_name_of_dtype(arr.dtype) is None:
            raise InputError(f"cannot convert an array of dtype {arr.dtype} to {type_name}")
        arr = arr.astype(dt)
    arr = np.ascontiguousarray(arr)
    if is_sub_byte(type_name):
        return pack_codes(arr.view(np.uint8), type_name)
    return arr.view(raw_dtype(type_name))


def from_engine(raw: np.ndarray, type_name: str, shape) -> np.ndarray:
    """The engine's storage of `shape` elements as an ml_dtypes array (a view when the type is
    byte-wide, unpacked otherwise)."""
    dt = ml_dtype(type_name)
    shape = tuple(int(d) for d in shape)
    if is_sub_byte(type_name):
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        return unpack_codes(raw, type_name, count).view(dt).reshape(shape)
    return np.asarray(raw).view(dt).reshape(shape)
