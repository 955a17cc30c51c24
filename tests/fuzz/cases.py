"""What a child process does with one fuzz case: read, compile and run a mutated model
(aiov, or a peer for comparison), or push one hostile input value through one API."""

from __future__ import annotations

import os

import numpy as np

MAX_INPUT_ELEMENTS = 1 << 22  # bigger declared inputs are not run (the model still compiles)


def _dtype_of(etype_name: str):
    table = {
        "f32": np.float32,
        "f16": np.float16,
        "f64": np.float64,
        "bf16": np.uint16,
        "i64": np.int64,
        "i32": np.int32,
        "i16": np.int16,
        "i8": np.int8,
        "u64": np.uint64,
        "u32": np.uint32,
        "u16": np.uint16,
        "u8": np.uint8,
        "boolean": np.bool_,
    }
    return table.get(etype_name)


def _value(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 4, shape).astype(dtype)  # small: index- and shape-like inputs stay meaningful


def aiov_feeds(compiled, rng):
    """Values for every input of a compiled aiov model, or None when one is too large."""
    feeds = {}
    for i, port in enumerate(compiled.inputs):
        dims = (
            [d.get_length() if not d.is_dynamic else int(rng.integers(1, 4)) for d in port.get_partial_shape()]
            if not port.get_partial_shape().rank.is_dynamic
            else [2]
        )
        if int(np.prod(dims, dtype=np.float64)) > MAX_INPUT_ELEMENTS:
            return None
        dtype = _dtype_of(port.get_element_type().get_type_name())
        if dtype is None:
            return None
        feeds[i] = _value(rng, dims, dtype)
    return feeds


def run_aiov_model(read, seed: int, config=None):
    """read() -> aiov Model; compile (with ``config``: a precision hint, say), then run once
    through __call__ and once as a job."""
    import aiov as ov

    return run_compiled(ov.compile_model(read(), "CPU", config), seed)


def run_compiled(compiled, seed: int):
    """Runs a compiled model once through __call__ and once as a job."""
    rng = np.random.default_rng(seed)
    feeds = aiov_feeds(compiled, rng)
    if feeds is None:
        return "not run: an input is too large or has no numpy type"
    compiled(feeds)
    request = compiled.create_infer_request()
    request.start_async(feeds)
    request.wait()
    return None


def onnx_case(data: bytes, workdir: str, by_path: bool, seed: int, config=None):
    """The fuzz case for aiov: the model read from bytes, or from a file in a directory that
    also holds a weights.bin (so external-data mutations have something to find)."""
    import aiov as ov

    os.chdir(workdir)

    def read():
        if by_path:
            path = os.path.join(workdir, "model", "model.onnx")
            with open(path, "wb") as f:
                f.write(data)
            return ov.Core().read_model(path)
        return ov.Core().read_model(data)

    return run_aiov_model(read, seed, config)


def ir_case(xml: str, bin_data: bytes, workdir: str, seed: int, config=None):
    import aiov as ov

    os.chdir(workdir)
    xml_path = _write_ir(workdir, xml, bin_data)
    return run_aiov_model(lambda: ov.Core().read_model(xml_path), seed, config)


def blob_case(blob: bytes, seed: int):
    """A mutated compiled-model blob: imported, then run."""
    import aiov as ov

    return run_compiled(ov.Core().import_model(blob), seed)


def cached_blob_case(blob: bytes, source: bytes, workdir: str, seed: int, config=None):
    """A mutated blob found in CACHE_DIR under the key of the model file it was exported from:
    the compile loads it (or, refusing it, compiles the file and rewrites the entry), then runs."""
    import aiov as ov
    from aiov import _blob

    os.chdir(workdir)
    directory = os.path.join(workdir, "cached")
    cache_dir = os.path.join(workdir, "cache")
    os.makedirs(directory, exist_ok=True)
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(directory, "model.onnx")
    with open(path, "wb") as f:
        f.write(source)
    config = dict(config or {}, CACHE_DIR=cache_dir)
    with open(os.path.join(cache_dir, _blob.cache_key(path, config) + ".blob"), "wb") as f:
        f.write(blob)
    compiled = ov.compile_model(path, "CPU", config)
    not_run = run_compiled(compiled, seed)
    if not compiled.get_property("LOADED_FROM_CACHE"):
        return "the cached blob was refused: compiled afresh"
    return not_run


def _write_ir(workdir, xml, bin_data):
    xml_path = os.path.join(workdir, "model", "model.xml")
    with open(xml_path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(xml)
    with open(os.path.join(workdir, "model", "model.bin"), "wb") as f:
        f.write(bin_data)
    return xml_path


# ---- peers (for comparison only) ------------------------------------------------------------


def _peer_feeds(inputs, rng):
    feeds = {}
    for name, shape, dtype in inputs:
        dims = [d if isinstance(d, int) and d >= 0 else int(rng.integers(1, 4)) for d in shape]
        if int(np.prod(dims, dtype=np.float64)) > MAX_INPUT_ELEMENTS or dtype is None:
            return None
        feeds[name] = _value(rng, dims, dtype)
    return feeds


def onnxruntime_case(data: bytes, workdir: str, seed: int):
    import onnxruntime as ort

    os.chdir(workdir)
    path = os.path.join(workdir, "model", "model.onnx")
    with open(path, "wb") as f:
        f.write(data)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    kinds = {
        "tensor(float)": np.float32,
        "tensor(double)": np.float64,
        "tensor(float16)": np.float16,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(int8)": np.int8,
        "tensor(uint8)": np.uint8,
        "tensor(bool)": np.bool_,
    }
    inputs = [(i.name, i.shape or [], kinds.get(i.type)) for i in session.get_inputs()]
    feeds = _peer_feeds(inputs, np.random.default_rng(seed))
    if feeds is None:
        return "not run"
    session.run(None, feeds)
    return None


def openvino_case(kind: str, payload, workdir: str, seed: int):
    import openvino as ov

    os.chdir(workdir)
    if kind == "onnx":
        path = os.path.join(workdir, "model", "model.onnx")
        with open(path, "wb") as f:
            f.write(payload)
    else:
        path = _write_ir(workdir, *payload)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_NUM_THREADS": 1})
    inputs = []
    for port in compiled.inputs:
        pshape = port.get_partial_shape()
        dims = [-1] * 1 if pshape.rank.is_dynamic else [d.get_length() if d.is_static else -1 for d in pshape]
        inputs.append((port, dims, _dtype_of(port.get_element_type().get_type_name())))
    feeds = _peer_feeds(inputs, np.random.default_rng(seed))
    if feeds is None:
        return "not run"
    compiled(feeds)
    return None
