"""Mutators for compiled-model blobs (aiov/_blob.py): mostly inside the serialized graphs with
the frame made sound again (lengths and checksum), so the bytes reach the native graph reader
(native/plan/serialize.cpp) instead of stopping at the checksum; sometimes the frame itself.
``mutate`` returns (blob bytes, mutator, notes)."""

from __future__ import annotations

import json
import random
import struct
import zlib

from .mutate_onnx import INTERESTING_FLOATS, INTERESTING_INTS

_PREFIX = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
_U32 = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


def split(blob: bytes):
    """(header dict, graph bytes) of a sound blob."""
    _, _, header_len = _PREFIX.unpack_from(blob)
    start = _PREFIX.size + header_len
    return json.loads(blob[_PREFIX.size : start]), blob[start : -_CRC.size]


def version(blob: bytes) -> int:
    """The blob format version a blob declares."""
    return _PREFIX.unpack_from(blob)[1]


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


class Stream:
    """Where the fields of a serialized graph stream are (native/plan/serialize.cpp's layout):
    each attribute value, each constant's buffer with its element type, each shape. A mutation
    at one of them keeps the stream readable, so it reaches make_node's validation and the
    planner and kernels after it, not only the reader's bounds checks."""

    def __init__(self, data):
        self.data, self.at = data, 16  # magic, version, byte-order mark
        self.attrs = []  # (kind, value start, value end)
        self.buffers = []  # (start, end), in order
        self.constants = []  # (element type, buffer index)
        self.shapes = []  # (start of the dims' count, rank)
        self.weights = None  # (start, end) of the packed weights' entries, if written
        while self.at < len(data):
            tag = self._u8()
            if tag == 0:
                break
            if tag == 1:
                size = self._take("<Q")
                self.buffers.append((self.at, self.at + size))
                self.at += size
            elif tag == 2:
                self._node()
            elif tag in (3, 4):
                self._refs()
            elif tag == 5:  # packed weights: a packing key, then their size and bytes
                self._str()
                self.weights = (self.at + 8, self.at + 8 + self._take("<Q"))
                self.at = self.weights[1]
            else:
                raise ValueError(f"tag {tag}")

    def _take(self, fmt):
        value = struct.unpack_from(fmt, self.data, self.at)[0]
        self.at += struct.calcsize(fmt)
        return value

    def _u8(self):
        return self._take("<B")

    def _skip(self, item_bytes):
        """Past a u32 count of items of ``item_bytes`` each."""
        count = self._take("<I")
        self.at += item_bytes * count

    def _str(self):
        n = self._take("<I")
        self.at += n
        return bytes(self.data[self.at - n : self.at]).decode("utf-8", "replace")

    def _dims(self):
        start = self.at
        self._skip(8)
        return start, (self.at - start - 4) // 8

    def _port(self):
        self._str()
        self.at += 2  # kind, rank known
        self.shapes.append(self._dims())

    def _node(self):
        op = self._str()
        self._str()
        if op == "Parameter":
            self._port()
        elif op == "Constant":
            etype = self._str()
            self.shapes.append(self._dims())
            self.constants.append((etype, self._take("<I")))
        else:
            self._skip(8)  # inputs
            for _ in range(self._take("<I")):
                self._str()
                kind = self._u8()
                start = self.at
                if kind in (0, 1):
                    self.at += 8
                elif kind == 2:
                    self._str()
                else:
                    self._skip(8)
                self.attrs.append((kind, start, self.at))
            for _ in range(self._take("<I")):
                self._str()
                self.at += 4
            for _ in range(self._take("<I")):
                self._port()
        for _ in range(self._take("<I")):
            for _ in range(self._take("<I")):
                self._str()

    def _refs(self):
        self._skip(4)  # parameters
        self._skip(8)  # outputs
        self._skip(4)  # sinks


_STRINGS = [b"", b"NCHW", b"nearest", b"constant", b"i8", b"ij,jk->ik", b"\xff", b"x" * 300]
_ETYPE_VALUES = {
    "f32": ("<f", INTERESTING_FLOATS),
    "f16": ("<e", [0.0, -0.0, 65504.0, float("inf"), float("nan")]),
    "f64": ("<d", INTERESTING_FLOATS),
    "i64": ("<q", INTERESTING_INTS),
    "i32": ("<i", [0, -1, 1, 2**31 - 1, -(2**31)]),
    "i8": ("<b", [0, -128, 127, -1]),
    "u8": ("<B", [0, 255, 128]),
}


def _attribute(data, rng):
    """One attribute value (an int, a float, a list's entry or length, a string) of a node."""
    stream = Stream(data)
    if not stream.attrs:
        return _count(data, rng)
    kind, start, end = rng.choice(stream.attrs)
    if kind == 0:
        struct.pack_into("<q", data, start, max(min(rng.choice(INTERESTING_INTS), 2**63 - 1), -(2**63)))
    elif kind == 1:
        struct.pack_into("<d", data, start, rng.choice(INTERESTING_FLOATS))
    elif kind == 2:
        text = rng.choice(_STRINGS)
        data[start:end] = struct.pack("<I", len(text)) + text
    else:
        count = struct.unpack_from("<I", data, start)[0]
        if count and rng.random() < 0.7:
            at = start + 4 + 8 * rng.randrange(count)
            if kind == 3:
                struct.pack_into("<q", data, at, max(min(rng.choice(INTERESTING_INTS), 2**63 - 1), -(2**63)))
            else:
                struct.pack_into("<d", data, at, rng.choice(INTERESTING_FLOATS))
        else:  # another length: entries dropped or repeated
            n = rng.choice([0, 1, 2, 3, 5, 8])
            entries = bytes(data[start + 4 : end]) or b"\0" * 8
            data[start:end] = struct.pack("<I", n) + (entries * 8)[: 8 * n]
    return f"attribute kind {kind} at {start}"


def _constant_values(data, rng):
    """Values inside a constant (a weight, a scale, a zero point, a shape or axes), written in
    its element type: the extremes, NaN and infinities, a zero scale."""
    stream = Stream(data)
    usable = [(t, stream.buffers[b]) for t, b in stream.constants if t in _ETYPE_VALUES and b < len(stream.buffers)]
    usable = [(t, span) for t, span in usable if span[1] > span[0]]
    if not usable:
        return _bit_flips(data, rng)
    etype, (start, end) = rng.choice(usable)
    fmt, values = _ETYPE_VALUES[etype]
    width = struct.calcsize(fmt)
    slots = (end - start) // width
    for _ in range(rng.choice([1, 1, 2, slots])):
        at = start + width * rng.randrange(slots)
        value = rng.choice(values)
        if fmt in ("<q", "<i", "<b", "<B"):
            bits = 8 * width
            value = int(value) % (1 << bits)
            value = value - (1 << bits) if fmt != "<B" and value >= 1 << (bits - 1) else value
        struct.pack_into(fmt, data, at, value)
    return f"{etype} constant at {start}"


def _shape(data, rng):
    """A dimension of a parameter's or constant's shape (its buffer left as it was)."""
    stream = Stream(data)
    shapes = [(start, rank) for start, rank in stream.shapes if rank]
    if not shapes:
        return _i64(data, rng)
    start, rank = rng.choice(shapes)
    at = start + 4 + 8 * rng.randrange(rank)
    struct.pack_into("<q", data, at, max(min(rng.choice(INTERESTING_INTS + [-1, 0, 1]), 2**63 - 1), -(2**63)))
    return f"dim at {at}"


def _packed_weights(data, rng):
    """Inside the packed weights' record (entry counts, constant indices, offsets, recipes,
    kinds, panel dimensions and bytes): the loaders in native/plan/packed_weights.cpp."""
    span = Stream(data).weights
    if not span or span[1] - span[0] < 8:
        return _u32(data, rng)
    start, end = span
    at = rng.randrange(start, end - 4)
    edit = rng.randrange(3)
    if edit == 0:
        struct.pack_into("<I", data, at, rng.choice(_U32))
    elif edit == 1 and at + 8 <= end:
        struct.pack_into("<q", data, at, rng.choice(INTERESTING_INTS))
    else:
        data[at] ^= 1 << rng.randrange(8)
    return f"packed weights at {at - start} of {end - start}"


GRAPH_MUTATORS = {
    "attribute": _attribute,
    "packed_weights": _packed_weights,
    "constant_values": _constant_values,
    "shape": _shape,
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
    declared = version(blob)
    if rng.random() < 0.1:  # the frame: stops at the frame's checks
        data = bytearray(blob)
        _bit_flips(data, rng)
        return bytes(data), "frame", "bits anywhere, checksum left as it was"
    if rng.random() < 0.15:  # the header, then framed soundly (frame() sets "graphs" again)
        header, notes = _header(header, rng)
        body = json.dumps(header).encode()
        if notes == "header graphs":  # keep the hostile length: the frame's own check must catch it
            prefix = _PREFIX.pack(b"AIOVBLOB", declared, len(body)) + body + graphs
            return prefix + _CRC.pack(zlib.crc32(prefix)), "header", notes
        return frame(header, graphs, declared), "header", notes
    name = rng.choice(sorted(GRAPH_MUTATORS))
    data = bytearray(graphs)
    notes = GRAPH_MUTATORS[name](data, rng)
    return frame(header, bytes(data), declared), name, notes
