"""Turning what users pass to infer() into arrays for the engine's input slots."""

from __future__ import annotations

import numpy as np

from ._errors import InputError
from ._ports import PortTable
from ._tensor import Tensor


class IoSpec:
    """What a compiled model expects, precomputed once for the hot path."""

    __slots__ = (
        "inputs",
        "outputs",
        "in_ports",
        "out_ports",
        "in_type_ids",
        "in_dtypes",
        "in_types",
        "in_names",
        "in_labels",
        "count",
        "plans_to_log",
    )

    def __init__(self, inputs, outputs):
        self.inputs = inputs
        self.outputs = outputs
        self.in_ports = PortTable(inputs, "input")
        self.out_ports = PortTable(outputs, "output")
        self.count = len(inputs)
        self.in_types = [p.get_element_type() for p in inputs]
        self.in_type_ids = [t._id for t in self.in_types]
        self.in_dtypes = [
            None if t.bitwidth < 8 else (np.dtype(np.uint16) if t.get_type_name() == "bf16" else t.to_dtype())
            for t in self.in_types
        ]
        self.in_names = self.in_ports.names  # name -> index, for the native one-call path
        self.in_labels = self.in_ports.labels
        # The compiled model whose newly built plans are logged where results are read (set
        # when DEBUG logging was on at compile time; see _log.log_built_plans).
        self.plans_to_log = None

    def index_of(self, key) -> int:
        return self.in_ports.index(key)

    def pairs(self, inputs, complete: bool = False):
        """[(index, value)] from a dict, list, tuple, single array or Tensor. An input given
        twice (by name and by index, say) is an error, not "the last one wins". `complete`:
        every input must be given (a pooled request must not run on an earlier caller's data)."""
        if inputs is None:
            pairs = []
        elif isinstance(inputs, dict):
            pairs = []
            seen = {}
            for key, value in inputs.items():
                index = self.index_of(key)
                if index in seen:
                    raise InputError(
                        f"input '{self.in_labels[index]}' is given twice, as {seen[index]!r} and "
                        f"as {key!r}; give each input once"
                    )
                seen[index] = key
                pairs.append((index, value))
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) > self.count:
                raise InputError(
                    f"expected at most {self.count} input(s) ({', '.join(self.in_labels)}), got {len(inputs)}"
                )
            pairs = list(enumerate(inputs))
        elif isinstance(inputs, (np.ndarray, Tensor, np.generic, int, float, bool)):
            if self.count != 1:
                raise InputError(
                    f"a single value was given but the model has {self.count} inputs "
                    f"({', '.join(self.in_labels)}); pass a dict or a list"
                )
            pairs = [(0, inputs)]
        else:
            raise InputError(f"inputs must be a dict, list, tuple, numpy array or Tensor, got {type(inputs).__name__}")
        if complete and len(pairs) != self.count:
            given = {i for i, _ in pairs}
            missing = [self.in_labels[i] for i in range(self.count) if i not in given]
            raise InputError(
                f"missing input(s): {', '.join(missing)}; a call on the compiled model takes every "
                f"input ({self.count}: {', '.join(self.in_labels)}). To keep inputs between "
                f"inferences, use an InferRequest of your own"
            )
        return pairs

    def convert(self, index: int, value):
        """-> (array, converted): `converted` means the array is a private copy."""
        want = self.in_dtypes[index]
        if isinstance(value, np.ndarray):
            arr = value
            if isinstance(arr, np.ma.MaskedArray):
                if np.ma.getmaskarray(arr).any():
                    raise InputError(
                        f"input '{self.in_labels[index]}': got a numpy masked array with masked "
                        f"elements; the engine has no masks: pass arr.filled(value) explicitly"
                    )
                arr = arr.data
        elif isinstance(value, Tensor):
            arr = value.data
        else:
            arr = np.asarray(value)
        if arr.dtype.kind == "c" and (want is None or want.kind != "c"):
            raise InputError(
                f"input '{self.in_labels[index]}': expected {self.in_types[index].get_type_name()} "
                f"data, got complex ({arr.dtype}) values whose imaginary part would be lost; pass "
                f"arr.real (or np.abs(arr)) explicitly"
            )
        if want is None:
            return arr, False
        if arr.dtype != want:
            if arr.dtype.kind in "USOVM" or arr.dtype == object:
                raise InputError(
                    f"input '{self.in_labels[index]}': expected {self.in_types[index].get_type_name()} "
                    f"({want}) data, got an array of dtype {arr.dtype} that cannot be converted"
                )
            try:
                return np.array(arr, dtype=want, order="C"), True  # 0-d stays 0-d
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"input '{self.in_labels[index]}': cannot convert dtype {arr.dtype} to {want}: {exc}"
                ) from None
        if not arr.flags.c_contiguous:
            return np.ascontiguousarray(arr), True
        return arr, False
