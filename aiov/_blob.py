"""Compiled-model blobs: ``CompiledModel.export_model``, ``Core.import_model`` and the
``CACHE_DIR`` model cache.

A blob holds the model as OpenVINO IR (xml and weights) and the compile config, framed so
that what is read back is checked before any of it is used:

    b"AIOVBLOB" | format u32 | header length u32 | header (JSON) | xml | weights | sha256

The header gives the aiov version that wrote it and the lengths of the xml and weights; the
SHA-256 covers every byte before it. A blob of another format version, truncated, with extra
bytes or a wrong checksum is refused with an InputError naming what is wrong; a model file's
content is untrusted in any case and read by the same checked IR reader as files.

The cache (``CACHE_DIR``) keys a blob by the model file and the files beside it (name, size,
time, inode) plus the config: compiling the same file again reads the model from the blob
instead of converting the source. A cache file that fails any check is ignored and rewritten.
The blob holds the model, not yet its optimized graph and packed weights, so a cache hit still
optimizes and plans the model."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile

from ._errors import InputError

MAGIC = b"AIOVBLOB"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")  # magic, format version, header length
_DIGEST = 32
_MAX_HEADER = 1 << 20
ENCRYPTION = "CACHE_ENCRYPTION_CALLBACKS"


def _plain_config(config: dict) -> dict:
    """The config entries a blob keeps: plain values (callbacks and paths stay out). The
    encryption callbacks (OpenVINO's CACHE_ENCRYPTION_CALLBACKS) take and return bytes and
    apply to the model's xml."""
    skip = {"CACHE_DIR", ENCRYPTION, "LOADED_FROM_CACHE"}
    return {k: v for k, v in config.items() if k not in skip and isinstance(v, (str, int, float, bool))}


def _callbacks(config):
    pair = (config or {}).get(ENCRYPTION)
    if pair is None:
        return None, None
    if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(callable(f) for f in pair):
        raise InputError(f"{ENCRYPTION} is a pair of callables (encrypt, decrypt), got {pair!r}")
    return pair


def _as_bytes(value, what) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InputError(f"{what} must return str or bytes, got {type(value).__name__}")


def pack(model, config: dict) -> bytes:
    """The blob of ``model`` compiled with ``config``."""
    from . import __version__
    from .frontends.ir import ir_bytes

    xml, weights = ir_bytes(model)
    encrypt, _ = _callbacks(config)
    if encrypt is not None:
        xml = _as_bytes(encrypt(xml), "the encrypt callback")
    header = {
        "aiov": __version__,
        "config": _plain_config(config),
        "encrypted": encrypt is not None,
        "xml": len(xml),
        "weights": len(weights),
    }
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(text)) + text + xml + weights
    return body + hashlib.sha256(body).digest()


def unpack(data, config=None, source: str = "the blob"):
    """(model, compile config) from a blob; InputError for anything but a sound blob."""
    from .frontends.ir import read_ir_bytes

    data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if len(data) < _PREFIX.size + _DIGEST:
        raise InputError(f"{source} is not an aiov compiled-model blob: {len(data)} bytes is too short")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise InputError(f"{source} is not an aiov compiled-model blob (it starts with {magic!r}, not {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise InputError(f"{source} has blob format {version}; this aiov reads format {FORMAT_VERSION}")
    view = memoryview(data)
    body, digest = view[:-_DIGEST], bytes(view[-_DIGEST:])
    if hashlib.sha256(body).digest() != digest:
        raise InputError(f"{source} is corrupted or truncated: its checksum does not match")
    if header_len > _MAX_HEADER or _PREFIX.size + header_len > len(body):
        raise InputError(f"{source} is malformed: header length {header_len} does not fit the blob")
    try:
        header = json.loads(bytes(body[_PREFIX.size : _PREFIX.size + header_len]).decode("utf-8"))
        xml_len, weights_len = int(header["xml"]), int(header["weights"])
        stored_config = dict(header["config"])
        encrypted = bool(header["encrypted"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{source} is malformed: its header cannot be read ({exc})") from None
    start = _PREFIX.size + header_len
    if xml_len < 0 or weights_len < 0 or start + xml_len + weights_len != len(body):
        raise InputError(f"{source} is malformed: the lengths in its header do not add up to its size")
    xml = bytes(body[start : start + xml_len])
    weights = body[start + xml_len :]  # a view: the reader copies each constant once
    if encrypted:
        _, decrypt = _callbacks(config)
        if decrypt is None:
            raise InputError(f"{source} is encrypted: import it with {ENCRYPTION} in the config")
        xml = _as_bytes(decrypt(xml), "the decrypt callback")
    return read_ir_bytes(xml, weights, source), stored_config


def read_stream(stream) -> bytes:
    """The bytes of an import_model argument: bytes-like, io.BytesIO (its whole buffer, as
    export_model(stream) leaves its position at the end) or a binary file object."""
    if isinstance(stream, (bytes, bytearray, memoryview)):
        return bytes(stream)
    if isinstance(stream, io.BytesIO):
        return stream.getvalue()
    read = getattr(stream, "read", None)
    if callable(read):
        data = read()
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
    raise InputError(
        f"import_model takes the bytes of an exported model or a binary stream, got {type(stream).__name__}"
    )


def write_stream(blob: bytes, stream):
    if stream is None:
        return blob
    write = getattr(stream, "write", None)
    if not callable(write):
        raise InputError(f"export_model writes to a binary stream, got {type(stream).__name__}")
    write(blob)
    return None


# ---- the CACHE_DIR cache ---------------------------------------------------------------------


def cache_key(path, config: dict) -> str:
    """What decides a cached blob: the model file (its real path) and every file beside it
    (weights, external data) by name, size, modification time and inode, the config and the
    aiov version. Hashing the files' bytes would cost about as much as reading the model."""
    from . import __version__

    digest = hashlib.sha256()
    digest.update(f"aiov {__version__} blob {FORMAT_VERSION}\n{os.path.realpath(path)}\n".encode())
    digest.update(json.dumps(_plain_config(config), sort_keys=True, default=str).encode())
    directory = os.path.dirname(os.path.realpath(path))
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            digest.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return digest.hexdigest()


def load_cached(cache_dir, key, config):
    """(model, config) from the cache, or None when there is no sound blob for ``key``."""
    path = os.path.join(cache_dir, key + ".blob")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return unpack(data, config, f"the cached blob {path!r}")
    except InputError:
        return None  # corrupted, truncated, foreign or old: compiled again and rewritten


def store_cached(cache_dir, key, blob: bytes) -> None:
    """Writes the blob atomically (a reader never sees half of it); a cache that cannot be
    written is skipped, not an error of the compile."""
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".aiov-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, os.path.join(cache_dir, key + ".blob"))
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass
