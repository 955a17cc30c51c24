"""The bytes of compiled-model blobs (aiov/_blob.py) for tests that damage what lies inside a
sound frame: the graph section, put back with its lengths and checksum made right again."""

import json
import struct
import zlib

from aiov import _blob

INTERESTING = [0, 1, 2, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]


def graph_bytes(blob):
    """(where the graph section starts, its bytes)."""
    header_len = struct.unpack_from("<8sII", blob)[2]
    return 16 + header_len, blob[16 + header_len : -4]


def with_graphs(blob, graphs):
    """The blob around other graph bytes, its frame (lengths, checksum) made sound again."""
    start, _ = graph_bytes(blob)
    header = json.loads(blob[16:start])
    header["graphs"] = len(graphs)
    text = json.dumps(header).encode()
    body = struct.pack("<8sII", b"AIOVBLOB", _blob.FORMAT_VERSION, len(text)) + text + graphs
    return body + struct.pack("<I", zlib.crc32(body))


def mutated(data, rng, lo=0, hi=None):
    """A copy of ``data`` with one to three bit flips or interesting words within [lo, hi)."""
    data = bytearray(data)
    hi = len(data) - 4 if hi is None else hi
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(lo, hi)
        if rng.random() < 0.5:
            data[at] ^= 1 << rng.randrange(8)
        else:
            data[at : at + 4] = struct.pack("<I", rng.choice(INTERESTING))
    return bytes(data)
