"""Turning what users pass to infer() into arrays for the engine's input slots."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._errors import InputError, InputTypeError
from ._narrow import ML_DTYPE_NAMES, is_sub_byte, ml_dtype, to_engine, type_name_of_dtype
from ._ports import PortTable
from ._results import OVDict
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
        "in_kinds",
        "fast_dtypes",
        "count",
        "narrow_outputs",
        "plans_to_log",
        "after_run",
    )

    def __init__(self, inputs, outputs):
        self.inputs = inputs
        self.outputs = outputs
        self.in_ports = PortTable(inputs, "input")
        self.out_ports = PortTable(outputs, "output")
        self.count = len(inputs)
        self.in_types = [p.get_element_type() for p in inputs]
        self.in_type_ids = [t._id for t in self.in_types]
        self.in_dtypes = [None if t.bitwidth < 8 else t._storage_dtype() for t in self.in_types]
        # Outputs numpy lacks a type for: (index, type name), shown as ml_dtypes arrays.
        self.narrow_outputs = [
            (i, p.get_element_type().get_type_name())
            for i, p in enumerate(outputs)
            if p.get_element_type().get_type_name() in ML_DTYPE_NAMES
        ]
        self.in_names = self.in_ports.names  # name -> index, for the native one-call path
        self.in_labels = self.in_ports.labels
        # aiov's own: a sequence input takes a list of arrays, an optional one None or a value.
        self.in_kinds = [p.get_value_kind() for p in inputs]
        # The native one-call path takes arrays for tensor inputs only (None: the Python path).
        self.fast_dtypes = [d if k == "tensor" else None for d, k in zip(self.in_dtypes, self.in_kinds)]
        # The compiled model whose newly built plans are logged where results are read (set
        # when DEBUG logging was on at compile time; see _log.log_built_plans).
        self.plans_to_log = None
        # Called (without arguments) where results are read, while set: a CACHE_DIR entry
        # written before the first inference packed its weights is rewritten then, on a thread
        # of its own (_blob.refresh_after_first_run).
        self.after_run = None

    def results(self, values) -> OVDict:
        """The request's output arrays as the caller sees them: ml_dtypes arrays for the types
        numpy lacks (views of the raw bits; sub-byte outputs arrive as one code per element)."""
        if self.narrow_outputs:
            values = list(values)
            for i, name in self.narrow_outputs:
                values[i] = values[i].view(ml_dtype(name))
        return OVDict(self.outputs, values, self.out_ports)

    def narrow_input(self, index: int, value):
        """A value for an input of a type numpy lacks, as a Tensor of the engine's storage:
        ml_dtypes arrays and numbers are converted; raw bits of the storage dtype (uint16 for
        bf16, uint8 for the 8-bit floats) are taken as they are. For bf16 only ml_dtypes and
        f32/f64 arrays are converted; others keep the raw-bits path they always had."""
        etype = self.in_types[index]
        name = etype.get_type_name()
        if isinstance(value, Tensor):
            return value
        arr = value.data if isinstance(value, np.ma.MaskedArray) else np.asarray(value)
        if name == "bf16" and type_name_of_dtype(arr.dtype) is None and arr.dtype not in (np.float32, np.float64):
            return value  # uint16 (and OpenVINO's float16) arrays: bf16's raw bits, as before
        if not is_sub_byte(name) and arr.dtype == etype._storage_dtype():
            return Tensor(np.ascontiguousarray(arr), arr.shape, etype)
        try:
            raw = to_engine(arr, name)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"input '{self.in_labels[index]}': expected {name} data, got an array of dtype {arr.dtype} that "
                f"cannot be converted: {exc}"
            ) from None
        return Tensor(raw, arr.shape, etype, shared_memory=True)

    def index_of(self, key) -> int:
        return self.in_ports.index(key)

    def pairs(self, inputs, complete: bool = False):
        """[(index, value)] from a dict, list, tuple, single array or Tensor. An input given
        twice (by name and by index, say) is an error, not "the last one wins". `complete`:
        every input must be given (a pooled request must not run on an earlier caller's data)."""
        if inputs is None:
            pairs = []
        elif isinstance(inputs, Mapping):  # a dict, or the OVDict of another model's results
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
                hint = ""
                if "sequence" in self.in_kinds or "optional_sequence" in self.in_kinds:
                    hint = "; a list gives the inputs in order: give a sequence input as a list inside it, or by name"
                raise InputError(
                    f"expected at most {self.count} input(s) ({', '.join(self.in_labels)}), got {len(inputs)}{hint}"
                )
            pairs = list(enumerate(inputs))
        elif isinstance(inputs, (np.ndarray, Tensor, np.generic, int, float, bool)) or hasattr(inputs, "__array__"):
            if self.count != 1:
                raise InputError(
                    f"a single value was given but the model has {self.count} inputs "
                    f"({', '.join(self.in_labels)}); pass a dict or a list"
                )
            pairs = [(0, inputs)]
        else:
            raise InputTypeError(
                f"Incompatible inputs of type: {type(inputs).__name__}; inputs are a dict, list, tuple, "
                "numpy array (or an object with __array__) or Tensor"
            )
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

    def convert_composite(self, index: int, value):
        """A sequence or optional input -> (arrays, present): a sequence from a list or tuple of
        arrays, an optional from None (empty) or what it holds."""
        kind, label = self.in_kinds[index], self.in_labels[index]
        if kind.startswith("optional_"):
            if value is None:
                return [], False
            kind = kind[len("optional_") :]
        if kind == "sequence":
            if not isinstance(value, (list, tuple)):
                raise InputError(
                    f"input '{label}' is {_KIND_NAMES[self.in_kinds[index]]}: pass a list of arrays, "
                    f"got {type(value).__name__}"
                )
            return [self.convert(index, v)[0] for v in value], True
        if isinstance(value, (list, tuple)) or value is None:
            raise InputError(
                f"input '{label}' is an optional tensor: pass an array or None, got {type(value).__name__}"
            )
        return [self.convert(index, value)[0]], True


_KIND_NAMES = {
    "sequence": "a sequence",
    "optional_tensor": "an optional tensor",
    "optional_sequence": "an optional sequence",
}
