"""Element types, dimensions and shapes (OpenVINO's Type, Dimension, Shape, PartialShape)."""

from __future__ import annotations

import numpy as np

from . import _core
from ._errors import InputError
from ._narrow import ML_DTYPE_NAMES, raw_dtype, type_name_of_dtype

# Ids follow aiov::ElementType in native/core/types.hpp.
_TYPE_IDS = {
    "undefined": 0,
    "dynamic": 1,
    "boolean": 2,
    "bf16": 3,
    "f16": 4,
    "f32": 5,
    "f64": 6,
    "i4": 7,
    "i8": 8,
    "i16": 9,
    "i32": 10,
    "i64": 11,
    "u1": 12,
    "u4": 13,
    "u8": 14,
    "u16": 15,
    "u32": 16,
    "u64": 17,
    "f8e4m3": 18,
    "f8e5m2": 19,
    "f8e4m3fnuz": 20,
    "f8e5m2fnuz": 21,
    "f4e2m1": 22,
    "f8e8m0": 23,
    "i2": 24,
    "u2": 25,
}
# Element types OpenVINO names that the engine does not compute in: they exist so that code naming
# them works (Tensor storage, type checks); ids stay clear of the native range.
_HOST_ONLY_TYPES = {
    "string": (100, 8 * np.dtype(object).itemsize),
    "nf4": (101, 4),
    "u3": (107, 3),
    "u6": (108, 6),
}
_TYPE_IDS.update({name: tid for name, (tid, _) in _HOST_ONLY_TYPES.items()})
_QUANTIZED = ("i4", "i8", "i32", "u4", "u8")
_NUMPY = {
    "boolean": np.bool_,
    "bf16": np.float16,
    "f16": np.float16,
    "f32": np.float32,
    "f64": np.float64,
    "i4": np.int8,
    "i8": np.int8,
    "i16": np.int16,
    "i32": np.int32,
    "i64": np.int64,
    "u1": np.uint8,
    "u4": np.uint8,
    "u8": np.uint8,
    "u16": np.uint16,
    "u32": np.uint32,
    "u64": np.uint64,
    # OpenVINO's dtypes for these (their raw bits); aiov's numpy I/O uses ml_dtypes' (aiov._narrow)
    "f8e4m3": np.uint8,
    "f8e5m2": np.uint8,
    "f8e4m3fnuz": np.uint8,
    "f8e5m2fnuz": np.uint8,
    "f8e8m0": np.uint8,
    "f4e2m1": np.uint8,
    "i2": np.int8,
    "u2": np.uint8,
}


class Type:
    """An element type. ``Type.f32``, ``Type(np.float32)`` and ``Type("f32")`` are equal."""

    __slots__ = ("_id", "_name")
    _by_id: dict = {}

    def __new__(cls, value=None):
        if value is None:
            return cls._by_id[0]
        if isinstance(value, Type):
            return value
        if isinstance(value, str) and value in _TYPE_IDS:
            return cls._by_id[_TYPE_IDS[value]]
        if value in (str, bytes, np.str_, np.bytes_) or value in ("str", "str_", "bytes", "bytes_"):
            return cls._by_id[_TYPE_IDS["string"]]
        try:
            dt = np.dtype(value)
        except TypeError:
            raise TypeError(f"cannot make an element type from {value!r}") from None
        found = _DTYPE_TO_TYPE.get(dt)
        if found is None and type_name_of_dtype(dt) is not None:  # ml_dtypes: bfloat16, int4, ...
            found = cls._by_id[_TYPE_IDS[type_name_of_dtype(dt)]]
        if found is None and dt.kind in "SU":
            found = cls._by_id[_TYPE_IDS["string"]]
        if found is None:
            raise TypeError(f"numpy dtype {dt} has no aiov element type")
        return found

    @classmethod
    def _make(cls, name: str) -> "Type":
        self = object.__new__(cls)
        self._id = _TYPE_IDS[name]
        self._name = name
        cls._by_id[self._id] = self
        return self

    # OpenVINO's spellings
    def get_type_name(self) -> str:
        return self._name

    type_name = property(get_type_name)

    @property
    def bitwidth(self) -> int:
        if self._name in _HOST_ONLY_TYPES:
            return _HOST_ONLY_TYPES[self._name][1]
        if self._name in ("undefined", "dynamic"):
            return 0
        return _core.type_bits(self._id)

    def get_bitwidth(self) -> int:
        return self.bitwidth

    @property
    def size(self) -> int:
        return (self.bitwidth + 7) // 8

    def get_size(self) -> int:
        return self.size

    def is_real(self) -> bool:
        return self._name in (
            "bf16",
            "f16",
            "f32",
            "f64",
            "nf4",
            "f8e4m3",
            "f8e5m2",
            "f8e4m3fnuz",
            "f8e5m2fnuz",
            "f4e2m1",
            "f8e8m0",
        )

    def is_integral(self) -> bool:
        # OpenVINO counts the dynamic type and boolean as integral: "not real".
        return not self.is_real()

    def is_integral_number(self) -> bool:
        return self.is_integral() and self._name not in ("boolean", "dynamic", "undefined", "string")

    def is_signed(self) -> bool:
        return self._name in (
            "boolean",
            "bf16",
            "f16",
            "f32",
            "f64",
            "i2",
            "i4",
            "i8",
            "i16",
            "i32",
            "i64",
            "f8e4m3",
            "f8e5m2",
            "f8e4m3fnuz",
            "f8e5m2fnuz",
            "f4e2m1",
        )

    def is_quantized(self) -> bool:
        return self._name in _QUANTIZED

    real = property(is_real)
    integral = property(is_integral)
    integral_number = property(is_integral_number)
    signed = property(is_signed)
    quantized = property(is_quantized)

    def is_static(self) -> bool:
        return self._name not in ("dynamic", "undefined")

    def is_dynamic(self) -> bool:
        return not self.is_static()

    def compatible(self, other) -> bool:
        other = Type(other)
        return self.is_dynamic() or other.is_dynamic() or self == other

    def merge(self, other):
        """The type both agree on (the static one when the other is dynamic), or None."""
        other = Type(other)
        if self.is_dynamic():
            return other
        if other.is_dynamic() or self == other:
            return self
        return None

    def _storage_dtype(self) -> np.dtype:
        """The numpy dtype of one element of engine memory: raw bits for the byte-wide types
        numpy lacks (bf16, the 8-bit floats); sub-byte types are packed bytes."""
        return raw_dtype(self._name) if self._name in ML_DTYPE_NAMES else self.to_dtype()

    def to_dtype(self) -> np.dtype:
        if self._name == "string":
            return np.dtype(np.bytes_)
        if self._name not in _NUMPY:
            raise TypeError(f"element type {self._name} has no numpy dtype")
        return np.dtype(_NUMPY[self._name])

    def __eq__(self, other):
        if isinstance(other, Type):
            return self._id == other._id
        if isinstance(other, str):
            return other == self._name
        return NotImplemented

    def __hash__(self):
        return hash(self._id)

    def __repr__(self):
        return f"<Type: '{_DISPLAY.get(self._name, self._name)}'>"

    def __str__(self):
        return _DISPLAY.get(self._name, self._name)

    def __reduce__(self):
        return (Type, (self._name,))


_DISPLAY = {
    "f32": "float32",
    "f64": "double64",
    "f16": "float16",
    "bf16": "bfloat16",
    "boolean": "char",
    "i4": "int4_t",
    "i8": "int8_t",
    "i16": "int16_t",
    "i32": "int32_t",
    "i64": "int64_t",
    "u1": "uint1_t",
    "u4": "uint4_t",
    "u8": "uint8_t",
    "u16": "uint16_t",
    "u32": "uint32_t",
    "u64": "uint64_t",
}

for _name in _TYPE_IDS:
    setattr(Type, _name, Type._make(_name))
Type.bool = Type.boolean

_DTYPE_TO_TYPE = {
    np.dtype(np.float32): Type.f32,
    np.dtype(np.float64): Type.f64,
    np.dtype(np.float16): Type.f16,
    np.dtype(np.int8): Type.i8,
    np.dtype(np.int16): Type.i16,
    np.dtype(np.int32): Type.i32,
    np.dtype(np.int64): Type.i64,
    np.dtype(np.uint8): Type.u8,
    np.dtype(np.uint16): Type.u16,
    np.dtype(np.uint32): Type.u32,
    np.dtype(np.uint64): Type.u64,
    np.dtype(np.bool_): Type.boolean,
}


def as_type(value) -> Type:
    """Type from a Type, a numpy dtype (or scalar type) or a type name."""
    return value if isinstance(value, Type) else Type(value)


def type_from_id(type_id: int) -> Type:
    return Type._by_id[type_id]


class Dimension:
    """One dimension: static (``Dimension(3)``), dynamic (``Dimension()`` or -1), or an
    interval (``Dimension(1, 10)``). The engine treats intervals as dynamic."""

    __slots__ = ("_min", "_max", "_symbol")

    def __init__(self, min_or_value=None, max_value=None):
        self._symbol = None
        if isinstance(min_or_value, Dimension):
            self._min, self._max = min_or_value._min, min_or_value._max
            self._symbol = min_or_value._symbol
            return
        if isinstance(min_or_value, str):
            parsed = _parse_dim(min_or_value)
            self._min, self._max = parsed._min, parsed._max
            return
        if min_or_value is None or (max_value is None and min_or_value == -1):
            self._min, self._max = 0, -1
        elif max_value is None:
            v = int(min_or_value)
            if v < 0:
                raise ValueError(f"dimension must be >= 0 or -1 (dynamic), got {v}")
            self._min = self._max = v
        else:
            lo, hi = int(min_or_value), int(max_value)
            lo = 0 if lo == -1 else lo  # OpenVINO spells "no lower bound" -1 too
            if lo < 0 or (hi != -1 and hi < lo):
                raise ValueError(f"invalid dimension interval {lo}..{hi}")
            self._min, self._max = lo, hi

    @property
    def is_static(self) -> bool:
        return self._min == self._max

    @property
    def is_dynamic(self) -> bool:
        return not self.is_static

    def get_length(self) -> int:
        if not self.is_static:
            raise RuntimeError("cannot get the length of a dynamic dimension")
        return self._min

    def get_min_length(self) -> int:
        return self._min

    def get_max_length(self) -> int:
        return self._max

    min_length = property(get_min_length)
    max_length = property(get_max_length)

    def compatible(self, other) -> bool:
        other = Dimension(other) if not isinstance(other, Dimension) else other
        hi = lambda d: float("inf") if d._max == -1 else d._max  # noqa: E731
        return max(self._min, other._min) <= min(hi(self), hi(other))

    def _engine(self) -> int:
        return self._min if self.is_static else -1

    def _hi(self) -> float:
        return float("inf") if self._max == -1 else self._max

    def refines(self, other) -> bool:
        """Every value this dimension allows, ``other`` allows too (this one is at least as precise)."""
        other = other if isinstance(other, Dimension) else Dimension(other)
        return other._min <= self._min and self._hi() <= other._hi()

    def relaxes(self, other) -> bool:
        """The reverse of refines: this dimension allows every value ``other`` does."""
        other = other if isinstance(other, Dimension) else Dimension(other)
        return other.refines(self)

    def same_scheme(self, other) -> bool:
        """Both dynamic, or both static and equal."""
        other = other if isinstance(other, Dimension) else Dimension(other)
        if self.is_static and other.is_static:
            return self._min == other._min
        return self.is_dynamic and other.is_dynamic

    def merge(self, other):
        """The intersection of the two dimensions, or None when they are incompatible."""
        other = other if isinstance(other, Dimension) else Dimension(other)
        if not self.compatible(other):
            return None
        lo, hi = max(self._min, other._min), min(self._hi(), other._hi())
        return Dimension(lo, -1 if hi == float("inf") else int(hi))

    def to_string(self) -> str:
        return str(self)

    def __len__(self):
        return self.get_length()

    # symbols: dimensions that share one are known to be equal
    def has_symbol(self) -> bool:
        return self._symbol is not None

    def get_symbol(self):
        from ._symbol import Symbol

        return self._symbol if self._symbol is not None else Symbol._null_symbol()

    def set_symbol(self, symbol) -> None:
        from ._symbol import Symbol

        if not isinstance(symbol, Symbol):
            raise TypeError(f"set_symbol() takes a Symbol, got {symbol!r}")
        self._symbol = symbol if symbol else None

    def __copy__(self):
        return Dimension(self)

    def __deepcopy__(self, memo):
        return Dimension(self)

    def __eq__(self, other):
        if isinstance(other, int) and other == -1:
            return self._min == 0 and self._max == -1
        if isinstance(other, int):
            return self.is_static and self._min == other
        if isinstance(other, Dimension):
            return (self._min, self._max) == (other._min, other._max)
        return NotImplemented

    def __hash__(self):
        return hash((self._min, self._max))

    def __str__(self):
        if self.is_static:
            return str(self._min)
        if self._min == 0 and self._max == -1:
            return "?"
        return f"{self._min}..{'' if self._max == -1 else self._max}"

    def __repr__(self):
        return f"<Dimension: {self}>"

    @staticmethod
    def dynamic() -> "Dimension":
        return Dimension()


_NO_UPPER_BOUND = 2**63 - 1  # what OpenVINO's max shapes report for an unbounded dimension


def _dim_from(value) -> Dimension:
    """A Dimension from the forms PartialShape takes: int, str, Dimension, (lower, upper)."""
    if isinstance(value, Dimension):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return Dimension(int(value))
    if isinstance(value, str):
        return _parse_dim(value)
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise TypeError(
                "Two elements are expected in tuple(lower, upper) for dynamic dimension, "
                f"but {len(value)} elements were given."
            )
        if not all(isinstance(v, (int, np.integer)) for v in value):
            raise TypeError(
                f"Incorrect pair of types ({type(value[0])}, {type(value[1])}) for dynamic "
                "dimension, ints are expected."
            )
        return Dimension(int(value[0]), int(value[1]))
    raise TypeError(
        f"Incorrect type {type(value)} for dimension. Expected types are: int, str, "
        "openvino.Dimension, list/tuple with lower and upper values for dynamic dimension."
    )


def _parse_dim(text: str) -> Dimension:
    part = text.strip()
    if part in ("?", "-1"):
        return Dimension()
    if ".." in part:
        lo, hi = part.split("..", 1)
        try:
            low = int(lo) if lo else 0
        except ValueError:
            raise InputError(f'Cannot parse min bound: "{lo}"') from None
        try:
            high = int(hi) if hi else -1
        except ValueError:
            raise InputError(f'Cannot parse max bound: "{hi}"') from None
        return Dimension(low, high)
    try:
        value = int(part)
    except ValueError:
        raise InputError(f'Cannot parse dimension: "{text}"') from None
    return Dimension(value)


class Shape(list):
    """A static shape: a list of non-negative ints."""

    def __init__(self, dims=()):
        values = [int(d) for d in dims]
        for d in values:
            if d < 0:
                raise ValueError(f"a static shape cannot have dimension {d}")
        super().__init__(values)

    def to_string(self) -> str:
        return "[" + ",".join(str(d) for d in self) + "]"

    def __eq__(self, other):
        if isinstance(other, tuple):
            other = list(other)
        return list.__eq__(self, other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __str__(self):
        return self.to_string()

    def __repr__(self):
        return f"<Shape: {self}>"


class PartialShape:
    """A shape whose rank or dimensions may be dynamic."""

    __slots__ = ("_dims",)  # list of Dimension, or None for dynamic rank

    def __init__(self, dims=()):
        if isinstance(dims, PartialShape):
            self._dims = None if dims._dims is None else list(dims._dims)
        elif isinstance(dims, str):
            self._dims = _parse_shape(dims)
        elif dims is None:
            self._dims = None
        else:
            self._dims = [_dim_from(d) for d in dims]

    @staticmethod
    def dynamic(rank=None) -> "PartialShape":
        if rank is None:
            return PartialShape(None)
        if isinstance(rank, Dimension):
            if rank.is_dynamic:
                return PartialShape(None)
            rank = rank.get_length()
        return PartialShape([Dimension() for _ in range(int(rank))])

    def get_dimension(self, index: int) -> Dimension:
        return self[index]

    @property
    def all_non_negative(self) -> bool:
        return True  # aiov's dimensions cannot be negative

    def same_scheme(self, other) -> bool:
        other = other if isinstance(other, PartialShape) else PartialShape(other)
        if self._dims is None or other._dims is None:
            return self._dims is None and other._dims is None
        return len(self._dims) == len(other._dims) and all(a.same_scheme(b) for a, b in zip(self._dims, other._dims))

    def refines(self, other) -> bool:
        """Every shape this one allows, ``other`` allows too."""
        other = other if isinstance(other, PartialShape) else PartialShape(other)
        if other._dims is None:
            return True
        if self._dims is None:
            return False
        return len(self._dims) == len(other._dims) and all(a.refines(b) for a, b in zip(self._dims, other._dims))

    def relaxes(self, other) -> bool:
        other = other if isinstance(other, PartialShape) else PartialShape(other)
        return other.refines(self)

    def to_string(self) -> str:
        return str(self)

    def __setitem__(self, index, value):
        if self._dims is None:
            raise RuntimeError("a shape of dynamic rank has no dimensions to set")
        self._dims[index] = _dim_from(value)

    def __copy__(self):
        return PartialShape(self)

    def __deepcopy__(self, memo):
        return PartialShape(None if self._dims is None else [Dimension(d) for d in self._dims])

    @property
    def rank(self) -> Dimension:
        return Dimension() if self._dims is None else Dimension(len(self._dims))

    @property
    def is_static(self) -> bool:
        return self._dims is not None and all(d.is_static for d in self._dims)

    @property
    def is_dynamic(self) -> bool:
        return not self.is_static

    def to_shape(self) -> Shape:
        if not self.is_static:
            raise RuntimeError(f"shape {self} is dynamic and has no static form")
        return Shape(d.get_length() for d in self._dims)

    def get_shape(self) -> Shape:
        return self.to_shape()

    def compatible(self, other) -> bool:
        other = other if isinstance(other, PartialShape) else PartialShape(other)
        if self._dims is None or other._dims is None:
            return True
        return len(self._dims) == len(other._dims) and all(a.compatible(b) for a, b in zip(self._dims, other._dims))

    def get_min_shape(self):
        return Shape(() if self._dims is None else (d.get_min_length() for d in self._dims))

    def get_max_shape(self):
        if self._dims is None:
            return Shape()
        return Shape(_NO_UPPER_BOUND if d.get_max_length() == -1 else d.get_max_length() for d in self._dims)

    def _engine(self):
        """Dims for the engine: -1 for anything not static; None for dynamic rank."""
        return None if self._dims is None else [d._engine() for d in self._dims]

    def __len__(self):
        if self._dims is None:
            raise RuntimeError("a shape of dynamic rank has no length")
        return len(self._dims)

    def __iter__(self):
        if self._dims is None:
            raise RuntimeError("a shape of dynamic rank cannot be iterated")
        return iter(self._dims)

    def __getitem__(self, i):
        if self._dims is None:
            raise RuntimeError("a shape of dynamic rank has no dimensions")
        return self._dims[i]

    def __eq__(self, other):
        if isinstance(other, (list, tuple)) and self._dims is None:
            # A list has a rank; "equal" to no rank at all would be a silent False.
            raise TypeError(f"Cannot compare dynamic shape with {type(other)}: its rank is dynamic")
        if isinstance(other, (list, tuple, Shape)):
            other = PartialShape(other)
        if not isinstance(other, PartialShape):
            return NotImplemented
        return self._dims == other._dims

    def __hash__(self):
        return hash(None if self._dims is None else tuple(self._dims))

    def __str__(self):
        if self._dims is None:
            return "[...]"
        return "[" + ",".join(str(d) for d in self._dims) + "]"

    def __repr__(self):
        return f"<PartialShape: {self}>"


def _parse_shape(text: str):
    original = text
    text = text.strip()
    if text in ("...", "[...]"):
        return None
    text = text.strip("[]")
    if not text.strip():
        return []
    dims = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise InputError(f'Cannot get vector of dimensions! "{original}" is incorrect')
        dims.append(_parse_dim(part))
    return dims


def as_partial_shape(value) -> PartialShape:
    if isinstance(value, PartialShape):
        return value
    if isinstance(value, (int, np.integer)):
        return PartialShape([int(value)])
    return PartialShape(value)


def shape_from_engine(dims) -> PartialShape:
    return PartialShape(None if dims is None else [Dimension(d) for d in dims])
