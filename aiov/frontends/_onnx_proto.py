"""Reading ONNX protobufs without importing the ``onnx`` package when the model does not need it.

``import onnx`` imports ``ml_dtypes``, whose extension module registers its ufunc loops with
numpy for about two seconds while holding the GIL. Read from ``aio.compile_model`` (in a worker
thread), that froze the event loop for the whole time. The ONNX message classes alone come from
``onnx/onnx_ml_pb2.py``, which needs only protobuf: it is loaded on its own, and ``onnx`` itself
is imported only for what needs it (tensors of types numpy lacks, strings, external data).
Once ``onnx`` is imported anyway, its own module is used (the classes are the same: protobuf
keys them by descriptor).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading

import numpy as np

_lock = threading.Lock()
_pb2 = None

# TensorProto.DataType -> numpy dtype, for the types numpy has natively.
_NATIVE = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
    14: np.complex64,
    15: np.complex128,
}
# Where a tensor without raw_data keeps its values, for those types.
_FIELD = {
    1: "float_data",
    2: "int32_data",
    3: "int32_data",
    4: "int32_data",
    5: "int32_data",
    6: "int32_data",
    7: "int64_data",
    9: "int32_data",
    10: "int32_data",
    11: "double_data",
    12: "uint64_data",
    13: "uint64_data",
}
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def proto_module():
    """The module holding the ONNX message classes (ModelProto, TensorProto, ...)."""
    global _pb2
    if _pb2 is not None:
        return _pb2
    onnx = sys.modules.get("onnx")
    if onnx is not None and hasattr(onnx, "onnx_ml_pb2"):
        _pb2 = onnx.onnx_ml_pb2
        return _pb2
    with _lock:
        if _pb2 is None:
            spec = importlib.util.find_spec("onnx")  # finds the package without running it
            if spec is None or spec.origin is None:
                raise ImportError("reading ONNX models needs the 'onnx' package")
            path = os.path.join(os.path.dirname(spec.origin), "onnx_ml_pb2.py")
            if not os.path.exists(path):  # an onnx layout we do not know: import it whole
                import onnx

                _pb2 = onnx.onnx_ml_pb2
            else:
                pb2_spec = importlib.util.spec_from_file_location("aiov.frontends._onnx_ml_pb2", path)
                module = importlib.util.module_from_spec(pb2_spec)
                pb2_spec.loader.exec_module(module)
                _pb2 = module
    return _pb2


def load_model(model):
    """A ModelProto from serialized bytes or a file path. External data stays where it is:
    the ONNX reader loads it from a directory it has checked (see onnx._load_external_data)."""
    proto = proto_module().ModelProto()
    if isinstance(model, (bytes, bytearray, memoryview)):
        proto.ParseFromString(bytes(model))
        return proto
    with open(os.fspath(model), "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def tensor_dtype(elem_type: int) -> np.dtype:
    """The numpy dtype of an ONNX element type (KeyError if it has none)."""
    native = _NATIVE.get(elem_type)
    if native is not None:
        return np.dtype(native)
    if elem_type == 8:
        return np.dtype(object)
    from onnx import helper  # bfloat16, float8, int4, ...: ml_dtypes types

    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def to_array(tensor) -> np.ndarray:
    """The value of a TensorProto as a numpy array (as ``onnx.numpy_helper.to_array``)."""
    elem_type = tensor.data_type
    native = _NATIVE.get(elem_type)
    if native is None or elem_type in (14, 15) or tensor.data_location == EXTERNAL:
        from onnx import numpy_helper  # strings, complex, ml_dtypes types: onnx's own reader

        return numpy_helper.to_array(tensor)
    dtype = np.dtype(native)
    dims = tuple(tensor.dims)
    if tensor.HasField("raw_data"):
        array = np.frombuffer(tensor.raw_data, dtype=dtype.newbyteorder("<"))
        if sys.byteorder == "big":
            array = array.astype(dtype)
        return array.reshape(dims)
    values = getattr(tensor, _FIELD[elem_type])
    if elem_type == 10:  # float16 bit patterns, kept in int32_data
        return np.asarray(values, dtype=np.uint16).view(np.float16).reshape(dims)
    return np.asarray(values, dtype=dtype).reshape(dims)


_ATTRIBUTE_FIELD = {
    1: "f",
    2: "i",
    3: "s",
    4: "t",
    5: "g",
    11: "sparse_tensor",
    13: "tp",
    6: "floats",
    7: "ints",
    8: "strings",
    9: "tensors",
    10: "graphs",
    12: "sparse_tensors",
    14: "type_protos",
}


def attribute_value(attr):
    """The value of an AttributeProto (as ``onnx.helper.get_attribute_value``)."""
    field = _ATTRIBUTE_FIELD.get(attr.type)
    if field is None:
        raise ValueError(f"attribute '{attr.name}' has an unknown type {attr.type}")
    value = getattr(attr, field)
    return list(value) if attr.type in (6, 7, 8, 9, 10, 12, 14) else value
