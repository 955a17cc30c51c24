"""Tensor: typed memory, either a copy or shared with a numpy array."""

from __future__ import annotations

import math

import numpy as np

from . import _core
from ._errors import InputError
from ._narrow import ML_DTYPE_NAMES, from_engine, is_sub_byte, raw_dtype, to_engine, type_name_of_dtype
from ._types import PartialShape, Shape, Type, as_type


def element_count(shape, what: str = "Tensor") -> int:
    """Elements in ``shape``, in exact integer arithmetic (numpy's int64 product wraps), checked
    against the engine's limit on one tensor."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise InputError(f"{what}: shape {dims} has a negative dimension")
    if math.prod(d for d in dims if d) > _core.max_tensor_elements:
        raise InputError(
            f"{what}: shape {dims} is too large for one tensor (more than {_core.max_tensor_elements} elements)"
        )
    return math.prod(dims)


_WHOLE, _STRIDED = object(), object()  # Tensor._shared's markers


def _bytes_of(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array's memory as flat bytes (the same memory)."""
    return array.reshape(-1).view(np.uint8)


def _packed_bytes(etype: Type, shape) -> int:
    return (element_count(shape) * etype.bitwidth + 7) // 8


class Tensor:
    """``Tensor(array)`` copies; ``Tensor(array, shared_memory=True)`` shares both ways;
    ``Tensor(Type, shape)`` allocates; ``Tensor(packed_uint8, shape, Type.u4)`` wraps packed
    low-precision data (u1, u4, i4)."""

    # _shared: None when the tensor owns its memory (set_shape may reallocate it); else memory it
    # shares with its creator, which set_shape cannot grow: _WHOLE when _array is all of it, _STRIDED
    # when _array is a strided view (its shape is fixed), else all of it as flat bytes (_array is its
    # start). _WHOLE holds no second reference to the creator's array.
    __slots__ = ("_array", "_type", "_shape", "_shared", "__weakref__")

    def __init__(self, *args, shared_memory: bool = False, **kwargs):
        self._shared = None
        if "array" in kwargs:
            args = (kwargs.pop("array"),) + args
        if "type" in kwargs or "shape" in kwargs:
            # Tensor(type=..., shape=...): OpenVINO's keyword form of Tensor(type, shape)
            if args or "type" not in kwargs or "shape" not in kwargs:
                raise TypeError("Tensor(type=..., shape=...) needs both keywords and no other argument")
            args = (kwargs.pop("type"), kwargs.pop("shape"))
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if not args:
            raise TypeError("Tensor() needs an array, or an element type and a shape")
        first = args[0]
        from ._graph import _PortBase

        if isinstance(first, _PortBase):
            self._init_port(first, *args[1:])
            return
        if isinstance(first, Tensor) and len(args) == 3:
            self._init_roi(first, args[1], args[2])
            return
        if isinstance(first, str) or (isinstance(first, type) and not issubclass(first, np.ndarray)):
            first = Type(first)  # a type name ("f32", "float32") or a Python/numpy scalar type
            args = (first,) + tuple(args[1:])
        if (
            isinstance(first, Type)
            or (isinstance(first, type) and issubclass(first, np.generic))
            or isinstance(first, np.dtype)
        ):
            # Tensor(type, shape): fresh zeroed memory.
            if len(args) != 2:
                raise TypeError("Tensor(type, shape) takes exactly an element type and a shape")
            etype = as_type(first)
            shape = Shape(args[1])
            self._init_alloc(etype, shape)
            return
        if isinstance(first, Tensor):
            self._array, self._type, self._shape = first._array, first._type, first._shape
            self._shared = first._shared
            return
        if len(args) == 3 or (len(args) == 2 and not isinstance(args[1], bool)):
            # Tensor(packed_or_raw_array, shape, type)
            shape = Shape(args[1])
            etype = as_type(args[2]) if len(args) == 3 else Type(np.asarray(first).dtype)
            self._init_view(np.asarray(first), shape, etype, shared_memory)
            return
        if len(args) == 2:
            shared_memory = args[1]
        self._init_array(first, shared_memory)

    def _init_port(self, port, array=None):
        """Tensor(port): memory for the port's type and shape (empty when the shape is dynamic);
        Tensor(port, array): the array's memory seen with the port's type and shape (shared)."""
        etype = port.get_element_type()
        pshape = port.get_partial_shape()
        shape = pshape.to_shape() if pshape.is_static else Shape([0])
        if array is None:
            self._init_alloc(etype, shape)
            return
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Tensor(port, array) needs a numpy array, got {type(array).__name__}")
        if not array.flags.c_contiguous:
            raise InputError("Tensor(port, array) shares the array: it must be C-contiguous")
        dtype = etype._storage_dtype()
        if not pshape.is_static:
            self._array, self._type, self._shape = array.reshape(-1)[:0].view(np.uint8).view(dtype), etype, shape
            return
        need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if need > array.nbytes:
            raise RuntimeError(
                f"Shape of the port exceeds shape of the array. Port {port.get_partial_shape()} "
                f"{etype.get_type_name()} needs {need} bytes, the array has {array.nbytes}"
            )
        if array.dtype != dtype or need != array.nbytes:
            import warnings

            warnings.warn(
                f"Tensor(port, array): the array ({array.dtype}, {array.nbytes} bytes) is seen as "
                f"{etype.get_type_name()} {shape}",
                RuntimeWarning,
                stacklevel=3,
            )
        memory = _bytes_of(array)
        self._shared = _WHOLE if need == memory.nbytes else memory
        self._array = memory[:need].view(dtype).reshape(tuple(shape))
        self._type, self._shape = etype, shape

    def _init_roi(self, source: "Tensor", begin, end):
        """Tensor(tensor, begin, end): a region of interest, sharing the source's memory."""
        if source._type.bitwidth < 8:
            # OpenVINO's wording kept: its tests match on it
            raise RuntimeError(
                f"cannot create a region of interest of a packed {source._type.get_type_name()} tensor: "
                "not possible for types with bitwidths less then 8 bit (several elements share a byte)"
            )
        begin, end = [int(v) for v in begin], [int(v) for v in end]
        dims = list(source._shape)
        if len(begin) != len(dims) or len(end) != len(dims):
            raise InputError(f"region of interest: begin {begin} and end {end} need {len(dims)} values each")
        for axis, (b, e, d) in enumerate(zip(begin, end, dims)):
            if not 0 <= b < e <= d:
                raise InputError(f"region of interest: axis {axis} range {b}..{e} is not inside 0..{d}")
        view = source._array[tuple(slice(b, e) for b, e in zip(begin, end))]
        self._array, self._type, self._shape = view, source._type, Shape(view.shape)
        self._shared = _WHOLE if view.flags.c_contiguous else _STRIDED

    def _init_alloc(self, etype: Type, shape: Shape):
        if etype.bitwidth < 8:
            self._array = np.zeros(_packed_bytes(etype, shape), dtype=np.uint8)
        else:
            element_count(shape)
            self._array = np.zeros(tuple(shape), dtype=etype._storage_dtype())
        self._type, self._shape = etype, shape

    def _init_array(self, data, shared: bool):
        if isinstance(data, np.ma.MaskedArray) and np.ma.getmaskarray(data).any():
            raise InputError(
                "cannot make a Tensor from a masked array with masked elements (a Tensor has no "
                "mask): pass arr.filled(value) explicitly"
            )
        if shared:
            if not isinstance(data, np.ndarray):
                raise InputError(f"shared_memory=True needs a numpy array, got {type(data).__name__}")
            if not data.flags.c_contiguous:
                raise InputError(
                    "SHARED MEMORY MODE FOR THIS TENSOR IS NOT APPLICABLE! Passed numpy array must be C contiguous: "
                    "shared_memory=True needs a C-contiguous array; the given array has "
                    f"strides {data.strides} for shape {data.shape}"
                )
            if not data.flags.writeable:
                raise InputError("shared_memory=True needs a writeable array: a Tensor shares both ways")
            if not data.dtype.isnative:
                raise InputError(
                    f"shared_memory=True needs native byte order, got dtype {data.dtype.str}; "
                    "pass arr.astype(arr.dtype.newbyteorder('=')) or shared_memory=False"
                )
            arr = data
        else:
            arr = np.array(data, copy=True, order="C")
            if not arr.dtype.isnative:  # a copy anyway: in the engine's byte order
                arr = arr.astype(arr.dtype.newbyteorder("="))
        narrow = type_name_of_dtype(arr.dtype)
        if arr.dtype.kind in "USOc" or (arr.dtype.kind == "V" and narrow is None):
            raise InputError(f"cannot make a Tensor from an array of dtype {arr.dtype}")
        self._type = Type(arr.dtype)
        self._shape = Shape(arr.shape)
        if narrow is not None and is_sub_byte(narrow):
            if shared:
                raise InputError(
                    f"shared_memory=True cannot share a {arr.dtype} array: the engine packs {narrow} values "
                    f"{8 // self._type.bitwidth} to a byte; pass shared_memory=False"
                )
            self._array = to_engine(arr, narrow)
        elif narrow is not None:
            self._array = arr.view(raw_dtype(narrow))  # the same memory, as the engine's raw bits
        else:
            self._array = arr
        if shared:
            self._shared = _WHOLE

    def _init_view(self, data: np.ndarray, shape: Shape, etype: Type, shared: bool):
        given = data
        if etype.bitwidth < 8:
            need = _packed_bytes(etype, shape)
            if data.nbytes != need:
                raise InputError(
                    f"a {etype.get_type_name()} tensor of shape {shape} needs {need} packed "
                    f"bytes, got an array of {data.nbytes} bytes"
                )
            flat = data.reshape(-1).view(np.uint8)
            self._array = flat if shared else flat.copy()
            if shared and np.may_share_memory(flat, given):
                self._shared = _WHOLE
        else:
            want = etype._storage_dtype()
            if data.dtype != want:
                count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
                if data.flags.c_contiguous and data.nbytes == count * want.itemsize:
                    # OpenVINO's Tensor(buffer, shape, type) reinterprets the buffer's bytes
                    data = data.reshape(-1).view(np.uint8).view(want)
                else:
                    data = data.astype(want)
            count = element_count(shape)
            if data.size != count:
                raise InputError(f"shape {shape} needs {count} elements, the array has {data.size}")
            arr = data.reshape(tuple(shape))
            self._array = arr if shared else arr.copy()
            if shared and np.may_share_memory(arr, given):
                self._shared = _WHOLE
        self._type, self._shape = etype, shape

    @classmethod
    def _wrap(cls, array: np.ndarray, etype: Type, shape=None) -> "Tensor":
        """A tensor over existing memory (the request's), no checks, no copy."""
        t = object.__new__(cls)
        t._array = array
        t._shared = None
        t._type = etype
        t._shape = Shape(array.shape if shape is None else shape)
        return t

    def __copy__(self):  # the same memory, as OpenVINO's
        twin = Tensor._wrap(self._array, self._type, self._shape)
        twin._shared = self._shared
        return twin

    def __deepcopy__(self, memo):
        return Tensor._wrap(self._array.copy(), self._type, self._shape)  # memory of its own

    def __reduce__(self):  # a pickled tensor comes back with memory of its own
        return (_unpickle_tensor, (np.ascontiguousarray(self._array), self._type, self._shape))

    # -- data --
    @property
    def data(self) -> np.ndarray:
        """A numpy view on the tensor's memory: raw bits for bf16 (uint16) and the 8-bit floats
        (uint8), packed bytes for the sub-byte types (u1, u2, i2, u4, i4, f4e2m1), as in
        OpenVINO; ``values()`` shows them as ml_dtypes arrays."""
        return self._array

    def values(self) -> np.ndarray:
        """The elements as a numpy array of their own type: ml_dtypes' for the types numpy lacks
        (a view of the memory for bf16 and the 8-bit floats, an unpacked copy for the sub-byte
        types); the memory itself otherwise."""
        name = self._type.get_type_name()
        if name in ML_DTYPE_NAMES:
            return from_engine(self._array, name, self._shape)
        return self._array

    @property
    def bytes_data(self) -> bytes:
        return self._array.tobytes()

    def get_element_type(self) -> Type:
        return self._type

    element_type = property(get_element_type)

    @property
    def shape(self) -> Shape:
        return Shape(self._shape)

    @shape.setter
    def shape(self, value):
        self.set_shape(value)

    def get_shape(self) -> Shape:
        return Shape(self._shape)

    def set_shape(self, shape):
        """A new shape: the same memory when it has room (a tensor on shared memory cannot grow
        past it), else fresh zeroed memory."""
        shape = Shape(shape)
        packed = self._type.bitwidth < 8
        need = _packed_bytes(self._type, shape) if packed else element_count(shape) * self._array.itemsize
        if self._shared is not None:
            self._reshape_shared(shape, need, packed)
        elif need == self._array.nbytes:
            self._array = self._array if packed else self._array.reshape(tuple(shape))
        else:
            self._array = np.zeros(need if packed else tuple(shape), dtype=self._array.dtype)
        self._shape = shape

    def _reshape_shared(self, shape: Shape, need: int, packed: bool):
        if self._shared is _STRIDED:
            if tuple(shape) != self._array.shape:
                raise InputError(
                    f"Tensor.set_shape failed: a region of interest of shape {list(self._array.shape)} is "
                    f"strided memory of its source and cannot take shape {list(shape)}"
                )
            return
        memory = _bytes_of(self._array) if self._shared is _WHOLE else self._shared
        if need > memory.nbytes:
            raise InputError(
                f"Tensor.set_shape failed: shape {list(shape)} needs {need} bytes, the memory this tensor "
                f"shares (shared_memory=True or a view) has {memory.nbytes} and cannot grow; make a new Tensor"
            )
        self._array = memory[:need] if packed else memory[:need].view(self._array.dtype).reshape(tuple(shape))
        self._shared = _WHOLE if need == memory.nbytes else memory

    def get_partial_shape(self) -> PartialShape:
        return PartialShape(self._shape)

    @property
    def size(self) -> int:
        return math.prod(int(d) for d in self._shape)

    def get_size(self) -> int:
        return self.size

    @property
    def byte_size(self) -> int:
        return self._array.nbytes

    def get_byte_size(self) -> int:
        return self._array.nbytes

    @property
    def strides(self):
        if self._type.bitwidth < 8:
            # OpenVINO's wording kept: its tests match on it
            raise RuntimeError(
                "Could not get strides for types with bitwidths less then 8 bit. A "
                f"{self._type.get_type_name()} tensor packs {8 // self._type.bitwidth} elements to a byte"
            )
        return list(self._array.strides)

    def get_strides(self):
        return self.strides

    def is_continuous(self) -> bool:
        return bool(self._array.flags.c_contiguous)

    def copy_to(self, other: "Tensor"):
        other._array[...] = self._array.reshape(other._array.shape)

    def copy_from(self, source):
        src = source._array if isinstance(source, Tensor) else np.asarray(source)
        self._array[...] = src.reshape(self._array.shape)

    def __repr__(self):
        return f"<Tensor: shape{self._shape.to_string()} type: {self._type.get_type_name()}>"

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


def _unpickle_tensor(array, etype, shape) -> Tensor:
    return Tensor._wrap(array, etype, shape)
