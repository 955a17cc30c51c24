"""Model file readers: OpenVINO IR (.xml/.bin) and ONNX."""

from __future__ import annotations

import os

from .._errors import InputError


def read_model(model, weights=None, weights_dir=None):
    """`weights_dir`: where an ONNX model's external data lives (default: next to the model
    file; required for a model given as bytes that has external data)."""
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

        return read_ir(path, weights)
    if suffix == ".onnx":
        from .onnx import read_onnx

        return read_onnx(path, weights_dir=weights_dir)
    raise InputError(f"cannot tell the format of {path!r}: expected a .xml (OpenVINO IR) or .onnx file")
