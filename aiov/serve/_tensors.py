"""Tensors of the Open Inference Protocol v2 (KServe v2 REST) to and from numpy arrays: JSON
``data`` and the binary tensor data extension (raw little-endian bytes after the JSON object,
``Inference-Header-Content-Length`` giving the JSON's length).

Everything here checks untrusted request bodies: a bad tensor raises ``ProtocolError`` whose
message names the input and what was expected and given; the server answers it with a 400."""

from __future__ import annotations

import json
import math

import numpy as np

# aiov element type name -> the protocol's datatype.
_DATATYPES = {
    "boolean": "BOOL",
    "u8": "UINT8",
    "u16": "UINT16",
    "u32": "UINT32",
    "u64": "UINT64",
    "i8": "INT8",
    "i16": "INT16",
    "i32": "INT32",
    "i64": "INT64",
    "f16": "FP16",
    "f32": "FP32",
    "f64": "FP64",
    "bf16": "BF16",
    "string": "BYTES",
}
# The datatypes this server converts, as numpy types of their wire bytes. BF16 travels as its
# 16 bits (aiov's tensors hold bf16 as uint16); its JSON numbers are rounded through ml_dtypes.
# BYTES (strings) is listed in metadata only: aiov's engine takes no string inputs.
NUMPY_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),
}
_BY_NUMPY = {dtype.newbyteorder("="): name for name, dtype in NUMPY_DTYPES.items() if name != "BF16"}


class ProtocolError(ValueError):
    """A request the server cannot run: answered with ``status`` (400 unless said otherwise)
    and ``{"error": message}``."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def datatype_of(element_type) -> str:
    return _DATATYPES.get(element_type.get_type_name(), element_type.get_type_name().upper())


def port_datatype(dtype) -> str:
    return _BY_NUMPY[dtype.newbyteorder("=")]


def datatype_of_array(array: np.ndarray) -> str:
    name = _BY_NUMPY.get(array.dtype.newbyteorder("="))
    if name is None:
        raise ProtocolError(f"the model returned a {array.dtype} tensor, which the protocol has no datatype for", 500)
    return name


class Port:
    """One input or output as the protocol describes it: name, datatype and shape (-1 for a
    dynamic dim; ``None`` for a dynamic rank, shown as [-1])."""

    __slots__ = ("name", "index", "datatype", "shape")

    def __init__(self, port, index, prefix):
        try:
            self.name = port.get_any_name()
        except RuntimeError:  # a port without tensor names is known by its position
            self.name = f"{prefix}_{index}"
        self.index = index
        self.datatype = datatype_of(port.get_element_type())
        pshape = port.get_partial_shape()
        if pshape.rank.is_dynamic:
            self.shape = None
        else:
            self.shape = [d.get_length() if d.is_static else -1 for d in pshape]

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape if self.shape is not None else [-1]}


# ---- requests ------------------------------------------------------------------------------


def split_body(body: bytes, header_length):
    """The JSON object of a request and the binary data after it (``header_length``: the
    ``Inference-Header-Content-Length`` header, or None when the body is all JSON)."""
    if header_length is None:
        json_part, binary = body, memoryview(b"")
    else:
        try:
            n = int(header_length)
        except ValueError:
            n = -1
        if not 0 <= n <= len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length must be a byte count from 0 to the body's {len(body)}, "
                f"got {header_length!r}"
            )
        json_part, binary = body[:n], memoryview(body)[n:]
    try:
        request = json.loads(json_part)
    except (ValueError, RecursionError) as e:  # RecursionError: nesting deeper than the parser goes
        raise ProtocolError(f"the request is not a JSON object: {e}") from None
    if not isinstance(request, dict):
        raise ProtocolError(f"the request must be a JSON object, got {type(request).__name__}")
    return request, binary


def _shape(spec, where):
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(f"{where}: 'shape' must be a list of ints >= 0, got {shape!r}")
    return shape


def _check_against(port, shape, datatype, where):
    if port.datatype == "BYTES":
        raise ProtocolError(f"{where}: the model takes strings (BYTES) there, which aiov's engine cannot run")
    if datatype != port.datatype:
        if datatype == "BYTES":
            raise ProtocolError(f"{where}: datatype {port.datatype} expected, got BYTES (strings): it takes no strings")
        raise ProtocolError(f"{where}: datatype {port.datatype} expected, got {datatype!r}")
    if port.datatype not in NUMPY_DTYPES:
        raise ProtocolError(f"{where}: datatype {port.datatype} is not supported by this server")
    expected = port.shape
    if expected is not None and (
        len(shape) != len(expected) or any(e != -1 and e != d for e, d in zip(expected, shape))
    ):
        raise ProtocolError(f"{where}: shape {expected} expected (-1: any), got {shape}")


def _from_json(data, dtype, shape, where):
    count = math.prod(shape)
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError(
            f"{where}: 'data' must be a (nested) list of numbers with the same length per row"
        ) from None
    if array.size != count:
        raise ProtocolError(f"{where}: shape {shape} holds {count} elements, 'data' has {array.size}")
    if count:
        kind = array.dtype.kind
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            # Python ints beyond int64 make numpy pick float64 or object: out of range either way.
            if kind not in "iu" or array.min() < info.min or array.max() > info.max:
                raise ProtocolError(
                    f"{where}: 'data' must hold integers in [{info.min}, {info.max}] for {port_datatype(dtype)}"
                )
        elif dtype.kind == "b" and kind != "b":
            raise ProtocolError(f"{where}: 'data' must hold true/false, got {array.dtype} values")
        elif dtype.kind == "f" and kind not in "iuf":
            raise ProtocolError(f"{where}: 'data' must hold numbers, got {array.dtype} values")
    return array.astype(dtype, copy=False).reshape(shape)


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError:
        raise ProtocolError(
            "BF16 tensors as JSON numbers need ml_dtypes on the server (pip install 'aiov[serve]'); "
            "binary BF16 tensors need nothing",
            500,
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


def _bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (to nearest even), as the uint16 bits aiov takes."""
    return values.astype(_bfloat16()).view(np.uint16)


def decode_inputs(request: dict, binary: memoryview, inputs: dict, model_name: str) -> dict:
    """The request's input tensors as ``{input index: array}``, checked against ``inputs``
    (name -> Port). Binary inputs are views of the body (read-only, not copied)."""
    specs = request.get("inputs")
    if not isinstance(specs, list) or not specs:
        raise ProtocolError("the request must have a non-empty list 'inputs'")
    feeds = {}
    offset = 0
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise ProtocolError(f"inputs[{i}] must be an object, got {type(spec).__name__}")
        name = spec.get("name")
        port = inputs.get(name) if isinstance(name, str) else None
        if port is None:
            raise ProtocolError(f"model {model_name!r} has no input {name!r}; its inputs are {sorted(inputs)}")
        where = f"input {name!r}"
        if port.index in feeds:
            raise ProtocolError(f"{where} is given twice")
        shape = _shape(spec, where)
        _check_against(port, shape, spec.get("datatype"), where)
        dtype = NUMPY_DTYPES[port.datatype]
        parameters = spec.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ProtocolError(f"{where}: 'parameters' must be an object")
        size = parameters.get("binary_data_size")
        if size is not None:
            expected = math.prod(shape) * dtype.itemsize
            if isinstance(size, bool) or not isinstance(size, int) or size != expected:
                raise ProtocolError(
                    f"{where}: binary_data_size must be {expected} for {port.datatype} {shape}, got {size!r}"
                )
            if offset + size > len(binary):
                raise ProtocolError(
                    f"{where}: its binary data ends at byte {offset + size}, the body has {len(binary)} after the JSON"
                )
            feeds[port.index] = np.frombuffer(binary[offset : offset + size], dtype).reshape(shape)
            offset += size
        elif "data" in spec and port.datatype == "BF16":
            feeds[port.index] = _bf16_bits(_from_json(spec["data"], np.dtype(np.float32), shape, where))
        elif "data" in spec:
            feeds[port.index] = _from_json(spec["data"], dtype, shape, where)
        else:
            raise ProtocolError(f"{where} has neither 'data' nor a binary_data_size parameter")
    if offset != len(binary):
        raise ProtocolError(f"the body has {len(binary)} bytes of binary data after the JSON, the inputs use {offset}")
    missing = [port.name for port in inputs.values() if port.index not in feeds]
    if missing:
        raise ProtocolError(f"model {model_name!r} needs inputs {sorted(inputs)}; missing {missing}")
    return feeds


def requested_outputs(request: dict, outputs: dict, model_name: str):
    """``[(Port, binary?)]``: the outputs the request names, or all; an output is binary if its
    ``binary_data`` parameter says so, else as the request's ``binary_data_output`` says."""
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("the request's 'parameters' must be an object")
    default_binary = parameters.get("binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise ProtocolError(f"binary_data_output must be true or false, got {default_binary!r}")
    specs = request.get("outputs")
    if specs is None:
        return [(port, default_binary) for port in outputs.values()]
    if not isinstance(specs, list):
        raise ProtocolError("the request's 'outputs' must be a list")
    chosen = []
    for i, spec in enumerate(specs):
        name = spec.get("name") if isinstance(spec, dict) else None
        port = outputs.get(name) if isinstance(name, str) else None
        if port is None:
            raise ProtocolError(f"model {model_name!r} has no output {name!r}; its outputs are {sorted(outputs)}")
        binary = (spec.get("parameters") or {}).get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise ProtocolError(f"outputs[{i}]: binary_data must be true or false, got {binary!r}")
        chosen.append((port, binary))
    return chosen


# ---- responses -----------------------------------------------------------------------------


def encode_response(response: dict, results, chosen):
    """The response body: ``(bytes, JSON length or None when all JSON)``. ``results`` are the
    model's outputs (an OVDict), ``chosen`` what ``requested_outputs`` returned."""
    blobs = []
    outputs = []
    for port, binary in chosen:
        array = np.asarray(results[port.index])
        bf16 = port.datatype == "BF16" and array.dtype.itemsize == 2  # its bits, as uint16
        if bf16:
            array = array.view(np.uint16)
        entry = {
            "name": port.name,
            "datatype": "BF16" if bf16 else datatype_of_array(array),
            "shape": list(array.shape),
        }
        if binary:
            blob = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif bf16:
            entry["data"] = array.view(_bfloat16()).astype(np.float32).ravel().tolist()
        else:
            entry["data"] = array.ravel().tolist()
        outputs.append(entry)
    response["outputs"] = outputs
    head = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
