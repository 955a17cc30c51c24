"""Compiled-model blobs: ``CompiledModel.export_model``, ``Core.import_model`` and the
``CACHE_DIR`` model cache.

A blob holds the model and the graph its compile optimized it into, in the engine's own
serialization (native/plan/serialize.hpp: nodes, attributes, constants, subgraphs; a constant
the two graphs share is stored once), and the compile config, framed so that what is read
back is checked before any of it is used:

    b"AIOVBLOB" | format u32 | header length u32 | header (JSON) | graphs | crc32 u32

The header gives the aiov version that wrote it, the config, the length of the graphs and
what the Python model keeps besides its graph (its name, its results' names, layouts); the
CRC-32 covers every byte before it. It is there to catch damage (a disk error, a truncated
copy), which it does at twice the speed of a SHA-256; nothing unkeyed stops a hand-made blob,
so the reader below never relies on it. A blob of another format version, truncated, with extra
bytes or a wrong checksum is refused with an InputError naming what is wrong; the graphs are
then read by a native reader that checks every count, index and size and rebuilds each node
through the op registry, as for any untrusted model file.

Loading a blob skips the frontend and the optimizer: the compiled model plans straight from
the stored optimized graph. The weights its plans derived from constants when it was written
(packed GEMM panels, Winograd filters, depthwise taps, integer panels) follow the graphs, under
a packing key naming the kernels they were packed for (the CPU's ISA, AIOV_*_ISA overrides,
the layouts' version): read back on a machine with the same key, the plans take them instead of
packing again; under another key they are skipped and the plans pack as after a cold compile.
Each one read back is checked against the dimensions its kernel expects before it is used.

The cache (``CACHE_DIR``) keys a blob by the model file and the files beside it (name, size,
time, inode) plus the config: compiling the same file again loads the blob instead of reading
and optimizing the source. A cache file that fails any check is ignored and rewritten. A model
with dynamic inputs packs its weights at its first inference, after the compile wrote its
entry: its first inference that packs starts writing the entry again, on a thread of its own
(refresh_after_first_run)."""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import os
import struct
import tempfile
import threading
import time
import weakref
import zlib

from . import _log
from ._errors import InputError

MAGIC = b"AIOVBLOB"
FORMAT_VERSION = 3  # 1: the model as IR, optimized again on load; 2: without packed weights
_PREFIX = struct.Struct("<8sII")  # magic, format version, header length
_DIGEST = struct.Struct("<I")  # CRC-32 of everything before it
_MAX_HEADER = 1 << 20
ENCRYPTION = "CACHE_ENCRYPTION_CALLBACKS"


def _plain_config(config: dict) -> dict:
    """The config entries a blob keeps: plain values (callbacks and paths stay out). The
    encryption callbacks (OpenVINO's CACHE_ENCRYPTION_CALLBACKS) take and return bytes and
    apply to the stored graphs."""
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


def _model_header(model) -> dict:
    """What the Python model holds besides its engine graph."""
    from ._layout import node_layout

    return {
        "name": model._name,
        "friendly_name": model._friendly_name,
        "results": [r.get_friendly_name() for r in model._results],
        "input_layouts": [node_layout(p).to_string() for p in model._parameters],
        "output_layouts": [node_layout(r).to_string() for r in model._results],
    }


def pack(compiled) -> bytes:
    """The blob of ``compiled`` (an aiov.CompiledModel): its model and optimized graph."""
    return b"".join(_pack_parts(compiled))


def _pack_parts(compiled):
    """The blob in three parts (frame, graphs, checksum): a cache writes them as they are,
    without joining a model's weights into one more copy."""
    from . import __version__, _core

    model = compiled._model
    graphs = _core.serialize_compiled(*model._engine_graph(), compiled._native)
    encrypt, _ = _callbacks(compiled._config)
    if encrypt is not None:
        graphs = _as_bytes(encrypt(graphs), "the encrypt callback")
    header = {
        "aiov": __version__,
        "config": _plain_config(compiled._config),
        "encrypted": encrypt is not None,
        "graphs": len(graphs),
        "model": _model_header(model),
    }
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(text)) + text
    return prefix, graphs, _DIGEST.pack(zlib.crc32(graphs, zlib.crc32(prefix)))


class Loaded:
    """A blob read back: the model, its optimized graph (engine nodes), its config and the
    packed weights (an opaque engine object, empty when packed for other kernels)."""

    def __init__(self, model, optimized, config, packed=None):
        self.model, self.optimized, self.config, self.packed = model, optimized, config, packed


def unpack(data, config=None, source: str = "the blob") -> Loaded:
    """The blob's model, optimized graph and compile config; InputError for anything but a
    sound blob."""
    from . import _core

    data = bytes(data) if not isinstance(data, bytes) else data
    if len(data) < _PREFIX.size + _DIGEST.size:
        raise InputError(f"{source} is not an aiov compiled-model blob: {len(data)} bytes is too short")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise InputError(f"{source} is not an aiov compiled-model blob (it starts with {magic!r}, not {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise InputError(f"{source} has blob format {version}; this aiov reads format {FORMAT_VERSION}")
    view = memoryview(data)
    body_len = len(data) - _DIGEST.size
    if zlib.crc32(view[:body_len]) != _DIGEST.unpack_from(data, body_len)[0]:
        raise InputError(f"{source} is corrupted or truncated: its checksum does not match")
    if header_len > _MAX_HEADER or _PREFIX.size + header_len > body_len:
        raise InputError(f"{source} is malformed: header length {header_len} does not fit the blob")
    try:
        header = json.loads(bytes(view[_PREFIX.size : _PREFIX.size + header_len]).decode("utf-8"))
    except ValueError as exc:
        raise InputError(f"{source} is malformed: its header cannot be read as JSON ({exc})") from None
    graphs_len = _field(header, "graphs", int, source)
    stored_config = _field(header, "config", dict, source)
    encrypted = _field(header, "encrypted", bool, source)
    about = _field(header, "model", dict, source)
    start = _PREFIX.size + header_len
    if graphs_len < 0 or start + graphs_len != body_len:
        raise InputError(f"{source} is malformed: the lengths in its header do not add up to its size")
    if encrypted:
        _, decrypt = _callbacks(config)
        if decrypt is None:
            raise InputError(f"{source} is encrypted: import it with {ENCRYPTION} in the config")
        data, start = _as_bytes(decrypt(bytes(view[start:body_len])), "the decrypt callback"), 0
        graphs_len = len(data)
    try:
        parts, packed = _core.deserialize_graphs(data, start, graphs_len)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    if len(parts) != 2:
        raise InputError(f"{source} is malformed: it holds {len(parts)} graphs, not a model and its optimized graph")
    return Loaded(_rebuild_model(parts[0], about, source), parts[1], stored_config, packed)


_JSON_NAMES = {int: "an integer", bool: "true or false", dict: "an object", list: "a list", str: "a string"}


def _field(header, key: str, kind: type, source: str, where: str = "header"):
    """``header[key]`` when it is a JSON value of ``kind``, else an InputError naming the field."""
    value = header.get(key) if isinstance(header, dict) else None
    if kind is int and isinstance(value, bool):  # JSON true is not a length
        value = None
    if not isinstance(value, kind):
        given = "nothing" if value is None else type(value).__name__
        raise InputError(f"{source} is malformed: its {where}'s {key!r} should be {_JSON_NAMES[kind]}, got {given}")
    return value


def _strings(about: dict, key: str, source: str):
    values = _field(about, key, list, source, "model header")
    if not all(isinstance(v, str) for v in values):
        raise InputError(f"{source} is malformed: its model header's {key!r} should list strings")
    return values


def _rebuild_model(parts, about: dict, source: str):
    """The Python model over the engine graph read back, named as it was written."""
    from ._graph import Node, Output, make_result
    from ._layout import set_node_layout
    from ._model import Model

    params, outputs, sinks = parts
    result_names = _strings(about, "results", source)
    input_layouts = _strings(about, "input_layouts", source)
    output_layouts = _strings(about, "output_layouts", source)
    name = _field(about, "name", str, source, "model header")
    friendly = _field(about, "friendly_name", str, source, "model header")
    if len(result_names) != len(outputs) or len(output_layouts) != len(outputs) or len(input_layouts) != len(params):
        raise InputError(f"{source} is malformed: its model header does not list the graph's inputs and outputs")
    results = []
    for (node, index), result_name in zip(outputs, result_names):
        result = make_result(Output(Node(node), index))
        result.set_friendly_name(result_name)
        results.append(result)
    parameters = [Node(p) for p in params]
    for node, layout in zip(parameters + results, input_layouts + output_layouts):
        try:
            if layout:
                set_node_layout(node, layout)
        except RuntimeError as exc:
            raise InputError(f"{source} is malformed: {exc}") from None
    model = Model(results, [Node(s) for s in sinks], parameters, name)
    model._friendly_name = friendly
    return model


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
    aiov version. Hashing the files' bytes would cost about as much as reading the model. The
    engine's build (its library file) and AIOV_GRAPH_OPT decide the stored optimized graph:
    they key it too, so a rebuilt engine optimizes afresh."""
    from . import __version__, _core

    digest = hashlib.sha256()
    digest.update(f"aiov {__version__} blob {FORMAT_VERSION}\n{os.path.realpath(path)}\n".encode())
    engine = os.stat(_core.__file__)
    digest.update(f"{engine.st_size}\0{engine.st_mtime_ns}\0{os.environ.get('AIOV_GRAPH_OPT', '')}\n".encode())
    digest.update(json.dumps(_plain_config(config), sort_keys=True, default=str).encode())
    directory = os.path.dirname(os.path.realpath(path))
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            digest.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return digest.hexdigest()


def load_cached(cache_dir, key, config):
    """The cached blob for ``key`` (a Loaded), or None when there is no sound one."""
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


def refresh_after_first_run(cache_dir, key, compiled) -> None:
    """A model with dynamic inputs plans, and packs its weights, at its first inference, after
    its cache entry was written (at compile time): the first inference that packed writes the
    entry again, with those weights, so the next hit packs nothing. Once: later shapes' plans
    would rewrite a whole blob for each. The rewrite (a whole blob: 150 MB for ResNet-50) runs
    on a thread of its own, not in the inference that triggered it: on aiov.aio that inference
    completes on the event loop's thread, which aiov never blocks."""
    if compiled._native.cached_plans:  # planned at compile time: the entry has its weights
        return
    spec, native, ref = compiled._spec, compiled._native, weakref.ref(compiled)
    lock = threading.Lock()

    def after_run():
        if not lock.acquire(blocking=False):
            return  # another thread's first run started it
        spec.after_run = None
        owner = ref()
        if owner is not None and native.weights_packed:
            _start_rewrite(cache_dir, key, owner)

    spec.after_run = after_run


_rewrites_lock = threading.Lock()
_rewrites: set = set()  # the rewrite threads not yet finished
_EXIT_WAIT_S = 30.0


def _start_rewrite(cache_dir, key, compiled) -> None:
    thread = threading.Thread(target=_rewrite, args=(cache_dir, key, compiled), name="aiov-cache-rewrite", daemon=True)
    with _rewrites_lock:
        _rewrites.add(thread)
    try:
        thread.start()
    except RuntimeError as exc:  # no thread can start (the interpreter is exiting): no rewrite
        with _rewrites_lock:
            _rewrites.discard(thread)
        _log.logger.warning("aiov could not start rewriting the cache entry %r: %s", key, exc)


def _rewrite(cache_dir, key, compiled) -> None:
    """The rewrite thread's body. An error is the cache's, not any request's: it is logged and
    the entry stays as the compile wrote it (sound, only without the packed weights)."""
    try:
        with _log.timed(f"rewriting the cache entry {key[:16]} with its packed weights"):
            _write_cached(cache_dir, key, compiled)
    except Exception as exc:  # noqa: BLE001 - nothing above this thread to raise it to
        _log.logger.warning("aiov could not rewrite the cache entry %r in %r: %s", key, cache_dir, exc)
    finally:
        with _rewrites_lock:
            _rewrites.discard(threading.current_thread())


def wait_for_cache_rewrites(timeout=None) -> bool:
    """Waits for the cache rewrites in flight (refresh_after_first_run) to end; False if some
    still run after ``timeout`` seconds. For tests that read a cache right after a first
    inference, and for the interpreter's exit (so a short script's rewrite is not cut off,
    leaving its temporary file)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _rewrites_lock:
            pending = next(iter(_rewrites), None)
        if pending is None:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        pending.join(left)


atexit.register(wait_for_cache_rewrites, _EXIT_WAIT_S)


def store_cached(cache_dir, key, compiled) -> None:
    """Writes the blob of ``compiled`` into the cache; a cache that cannot be written is
    skipped, not an error of the compile."""
    try:
        _write_cached(cache_dir, key, compiled)
    except OSError as exc:
        _log.logger.debug("aiov did not write the cache entry %r in %r: %s", key, cache_dir, exc)


def _write_cached(cache_dir, key, compiled) -> None:
    """Writes the blob atomically: into a temporary file of the cache directory (named
    ``.aiov-*.tmp``: a listing of the cache can tell it from an entry), then renamed over the
    entry, so a reader never sees half of one."""
    os.makedirs(cache_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".aiov-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for part in _pack_parts(compiled):
                f.write(part)
        os.replace(tmp, os.path.join(cache_dir, key + ".blob"))
    except BaseException:
        os.unlink(tmp)
        raise
