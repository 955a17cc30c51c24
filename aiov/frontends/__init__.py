"""Model file readers: OpenVINO IR (.xml/.bin) and ONNX."""

from __future__ import annotations

import os

from .._errors import InputError


def _in_memory_weights(weights):
    """Weights given in memory (bytes, a numpy array, a Tensor) as bytes-like, or None for a path."""
    if weights is None or isinstance(weights, (str, os.PathLike)):
        return None
    data = getattr(weights, "data", weights)  # a Tensor's array
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    import numpy as np

    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    raise InputError(f"weights are a path, bytes, a numpy array or a Tensor, got {type(weights).__name__}")


def _is_xml(model) -> bool:
    head = model[:64].lstrip()
    return head.startswith(b"<" if isinstance(model, (bytes, bytearray)) else "<")


def read_model(model, weights=None, weights_dir=None, mmap=True):
    """`model`: a path, the bytes of an ONNX model, or an IR's xml as str/bytes (then `weights` are
    bytes, an array or a Tensor). `weights_dir`: where an ONNX model's external data lives (default:
    next to the model file; required for a model given as bytes that has external data). `mmap`:
    an IR's .bin file is mapped, else read into memory."""
    if hasattr(model, "read") and not isinstance(model, (str, os.PathLike)):
        model = model.read()  # a file object
    memory_weights = _in_memory_weights(weights)
    if isinstance(model, (str, bytes, bytearray)) and _is_xml(model):
        from .ir import read_ir_text

        if weights is not None and memory_weights is None:
            with open(weights, "rb") as f:
                memory_weights = f.read()
        return read_ir_text(model, memory_weights)
    if memory_weights is not None:
        raise InputError("weights given in memory go with an IR xml given in memory, not with a model path")
    if isinstance(model, (bytes, bytearray)):
        from .onnx import read_onnx

        return read_onnx(model, weights_dir=weights_dir)
    path = os.fspath(model)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".xml":
        if weights_dir is not None:
            raise InputError("weights_dir is for ONNX external data; an IR model takes its .bin as `weights`")
        from .ir import read_ir

        return read_ir(path, weights, mmap)
    if suffix == ".onnx":
        from .onnx import read_onnx

        return read_onnx(path, weights_dir=weights_dir)
    raise InputError(f"cannot tell the format of {path!r}: expected a .xml (OpenVINO IR) or .onnx file")
