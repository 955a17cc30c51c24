"""Mutators for compiled-model blobs (aiov/_blob.py): mostly inside the serialized graphs with
the frame made sound again (lengths and checksum), so the bytes reach the native graph reader
(native/plan/serialize.cpp) instead of stopping at the checksum; sometimes the frame itself.
``mutate`` returns (blob bytes, mutator, notes)."""

from __future__ import annotations

import json
import random
import struct
import zlib

from .mutate_onnx import INTERESTING_INTS

_PREFIX = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
_U32 = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


def split(blob: bytes):
    """(header dict, graph bytes) of a sound blob."""
    _, _, header_len = _PREFIX.unpack_from(blob)
    start = _PREFIX.size + header_len
    return json.loads(blob[_PREFIX.size : start]), blob[start : -_CRC.size]


def frame(header: dict, graphs: bytes, version: int) -> bytes:
    """A blob around ``graphs`` whose lengths and checksum agree with it."""
    header = dict(header, graphs=len(graphs))
    text = json.dumps(header).encode()
    body = _PREFIX.pack(b"AIOVBLOB", version, len(text)) + text + graphs
    return body + _CRC.pack(zlib.crc32(body))


def _spot(data, rng, width=1):
    return rng.randrange(max(1, len(data) - width))


def _bit_flips(data, rng):
    for _ in range(rng.randint(1, 8)):
        at = _spot(data, rng)
        data[at] ^= 1 << rng.randrange(8)
    return "bits"


def _u32(data, rng):
    at = _spot(data, rng, 4)
    data[at : at + 4] = struct.pack("<I", rng.choice(_U32))
    return f"u32 at {at}"


def _i64(data, rng):
    at = _spot(data, rng, 8)
    data[at : at + 8] = struct.pack("<q", rng.choice(INTERESTING_INTS))
    return f"i64 at {at}"


def _truncate(data, rng):
    del data[rng.randrange(len(data)) :]
    return f"cut to {len(data)}"


def _delete_span(data, rng):
    at = _spot(data, rng)
    del data[at : at + rng.randint(1, 64)]
    return f"span at {at}"


def _duplicate_span(data, rng):
    at = _spot(data, rng)
    span = data[at : at + rng.randint(1, 64)]
    data[at:at] = span
    return f"span at {at}"


def _splice(data, rng):
    src, dst = _spot(data, rng), _spot(data, rng)
    data[dst : dst + 16] = data[src : src + 16]
    return f"{src} -> {dst}"


GRAPH_MUTATORS = {
    "bit_flips": _bit_flips,
    "u32": _u32,
    "i64": _i64,
    "truncate": _truncate,
    "delete_span": _delete_span,
    "duplicate_span": _duplicate_span,
    "splice": _splice,
}


def mutate(blob: bytes, rng: random.Random):
    header, graphs = split(blob)
    version = _PREFIX.unpack_from(blob)[1]
    if rng.random() < 0.1:  # the frame: stops at the frame's checks
        data = bytearray(blob)
        _bit_flips(data, rng)
        return bytes(data), "frame", "bits anywhere, checksum left as it was"
    name = rng.choice(sorted(GRAPH_MUTATORS))
    data = bytearray(graphs)
    notes = GRAPH_MUTATORS[name](data, rng)
    return frame(header, bytes(data), version), name, notes
