"""Turning what users pass to infer() into arrays for the engine's input slots."""
from __future__ import annotations

import numpy as np

from ._errors import InputError
from ._graph import _PortBase
from ._tensor import Tensor


class IoSpec:
    """What a compiled model expects, precomputed once for the hot path."""

    __slots__ = ("inputs", "outputs", "in_type_ids", "in_dtypes", "in_types", "in_names", "out_names",
                 "in_labels", "count")

    def __init__(self, inputs, outputs):
        self.inputs = inputs
        self.outputs = outputs
        self.count = len(inputs)
        self.in_types = [p.get_element_type() for p in inputs]
        self.in_type_ids = [t._id for t in self.in_types]
        self.in_dtypes = [None if t.bitwidth < 8 else (np.dtype(np.uint16) if t.get_type_name() == "bf16"
                                                      else t.to_dtype()) for t in self.in_types]
        self.in_names = {}
        for i, p in enumerate(inputs):
            for n in p.get_names():
                self.in_names.setdefault(n, i)
            self.in_names.setdefault(p.get_node().get_friendly_name(), i)
        self.out_names = {}
        for i, p in enumerate(outputs):
            for n in p.get_names():
                self.out_names.setdefault(n, i)
        self.in_labels = ["/".join(sorted(p.get_names())) or p.get_node().get_friendly_name() for p in inputs]

    def index_of(self, key) -> int:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            key = int(key)
            if 0 <= key < self.count:
                return key
            raise InputError(f"input index {key} is out of range: the model has {self.count} input(s) "
                             f"({', '.join(self.in_labels)})")
        if isinstance(key, str):
            if key in self.in_names:
                return self.in_names[key]
            raise InputError(f"the model has no input named {key!r}; inputs: {', '.join(self.in_labels)}")
        if isinstance(key, _PortBase):
            for i, p in enumerate(self.inputs):
                if p == key:
                    return i
            for n in key.get_names():
                if n in self.in_names:
                    return self.in_names[n]
            raise InputError(f"{key!r} is not an input of this model; inputs: {', '.join(self.in_labels)}")
        raise InputError(f"inputs are selected by index, name or port, got a {type(key).__name__}")

    def pairs(self, inputs):
        """[(index, value)] from a dict, list, tuple, single array or Tensor."""
        if isinstance(inputs, dict):
            return [(self.index_of(k), v) for k, v in inputs.items()]
        if isinstance(inputs, (list, tuple)):
            if len(inputs) > self.count:
                raise InputError(f"expected at most {self.count} input(s) ({', '.join(self.in_labels)}), "
                                 f"got {len(inputs)}")
            return list(enumerate(inputs))
        if isinstance(inputs, (np.ndarray, Tensor, np.generic, int, float, bool)):
            if self.count != 1:
                raise InputError(f"a single value was given but the model has {self.count} inputs "
                                 f"({', '.join(self.in_labels)}); pass a dict or a list")
            return [(0, inputs)]
        raise InputError(f"inputs must be a dict, list, tuple, numpy array or Tensor, got {type(inputs).__name__}")

    def convert(self, index: int, value):
        """-> (array, converted): `converted` means the array is a private copy."""
        want = self.in_dtypes[index]
        if isinstance(value, np.ndarray):
            arr = value
        elif isinstance(value, Tensor):
            arr = value.data
        else:
            arr = np.asarray(value)
        if want is None:
            return arr, False
        if arr.dtype != want:
            if arr.dtype.kind in "USOVM" or arr.dtype == object:
                raise InputError(f"input '{self.in_labels[index]}': expected {self.in_types[index].get_type_name()} "
                                 f"({want}) data, got an array of dtype {arr.dtype} that cannot be converted")
            try:
                return np.array(arr, dtype=want, order="C"), True  # 0-d stays 0-d
            except (TypeError, ValueError) as exc:
                raise InputError(f"input '{self.in_labels[index]}': cannot convert dtype {arr.dtype} to "
                                 f"{want}: {exc}") from None
        if not arr.flags.c_contiguous:
            return np.ascontiguousarray(arr), True
        return arr, False
