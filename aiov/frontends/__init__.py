"""Model file readers: OpenVINO IR (.xml/.bin) and ONNX."""
from __future__ import annotations

import os

from .._errors import InputError


def read_model(model, weights=None):
    if isinstance(model, (bytes, bytearray)):
        from .onnx import read_onnx
        return read_onnx(model)
    path = os.fspath(model)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".xml":
        from .ir import read_ir
        return read_ir(path, weights)
    if suffix == ".onnx":
        from .onnx import read_onnx
        return read_onnx(path)
    raise InputError(f"cannot tell the format of {path!r}: expected a .xml (OpenVINO IR) or .onnx file")
