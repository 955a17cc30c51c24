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


def _count(data, rng):
    """A u32 that looks like a count, index, port or string length (a small value), made
    one more or less, zero or huge: the fields the reader must check against what is left."""
    spots = [at for at in range(0, len(data) - 4) if 0 < struct.unpack_from("<I", data, at)[0] <= 64]
    if not spots:
        return _u32(data, rng)
    at = rng.choice(spots)
    old = struct.unpack_from("<I", data, at)[0]
    new = rng.choice([old + 1, old - 1, old * 2, 0, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])
    struct.pack_into("<I", data, at, new)
    return f"count at {at}: {old} -> {new}"


def _constant_size(data, rng):
    """A constant's byte size (a u64 after the buffer tag, 1): one more or less, halved,
    or past the stream's end."""
    spots = [
        at
        for at in range(1, len(data) - 8)
        if data[at - 1] == 1 and 0 < struct.unpack_from("<Q", data, at)[0] <= len(data) - at - 8
    ]
    if not spots:
        return _i64(data, rng)
    at = rng.choice(spots)
    old = struct.unpack_from("<Q", data, at)[0]
    new = rng.choice([old + 1, old - 1, old // 2, 0, 2**63, 2**64 - 1, len(data)])
    struct.pack_into("<Q", data, at, new)
    return f"size at {at}: {old} -> {new}"


GRAPH_MUTATORS = {
    "count": _count,
    "constant_size": _constant_size,
    "bit_flips": _bit_flips,
    "u32": _u32,
    "i64": _i64,
    "truncate": _truncate,
    "delete_span": _delete_span,
    "duplicate_span": _duplicate_span,
    "splice": _splice,
}


_HOSTILE_VALUES = [None, "", "bf16", "f16", "u1", 0, -1, 2**31, 2**63, 1e308, float("nan"), [], {}, "x" * 1000]
_CONFIG_KEYS = [
    "INFERENCE_PRECISION_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "PERFORMANCE_HINT",
    "PERFORMANCE_HINT_NUM_REQUESTS",
    "EXECUTION_MODE_HINT",
    "CACHE_ENCRYPTION_CALLBACKS",
    "AIOV_NO_SUCH_KEY",
]


def _header(header, rng):
    """The JSON header (a sound frame around it): the compile config it carries, the model's
    names and layouts, the encrypted flag; a value of another type or none at all."""
    header = json.loads(json.dumps(header))
    model = header.setdefault("model", {})
    choice = rng.random()
    if choice < 0.35:
        key = rng.choice(_CONFIG_KEYS)
        header.setdefault("config", {})[key] = rng.choice(_HOSTILE_VALUES)
        return header, f"config {key}"
    if choice < 0.7 and isinstance(model, dict) and model:
        key = rng.choice(sorted(model))
        value = model[key]
        if isinstance(value, list) and value and rng.random() < 0.5:
            value = value[:-1] if rng.random() < 0.5 else value + value[:1]
            if rng.random() < 0.5:
                value = [rng.choice(["NCHW", "N?", "[N,C]", "...", "\ud800", "", "x" * 300])] * len(value)
        else:
            value = rng.choice(_HOSTILE_VALUES)
        model[key] = value
        return header, f"model {key}"
    key = rng.choice(["config", "model", "encrypted", "aiov", "graphs", "extra"])
    header[key] = rng.choice(_HOSTILE_VALUES + [True])
    return header, f"header {key}"


def mutate(blob: bytes, rng: random.Random):
    header, graphs = split(blob)
    version = _PREFIX.unpack_from(blob)[1]
    if rng.random() < 0.1:  # the frame: stops at the frame's checks
        data = bytearray(blob)
        _bit_flips(data, rng)
        return bytes(data), "frame", "bits anywhere, checksum left as it was"
    if rng.random() < 0.15:  # the header, then framed soundly (frame() sets "graphs" again)
        header, notes = _header(header, rng)
        body = json.dumps(header).encode()
        if notes == "header graphs":  # keep the hostile length: the frame's own check must catch it
            prefix = _PREFIX.pack(b"AIOVBLOB", version, len(body)) + body + graphs
            return prefix + _CRC.pack(zlib.crc32(prefix)), "header", notes
        return frame(header, graphs, version), "header", notes
    name = rng.choice(sorted(GRAPH_MUTATORS))
    data = bytearray(graphs)
    notes = GRAPH_MUTATORS[name](data, rng)
    return frame(header, bytes(data), version), name, notes
