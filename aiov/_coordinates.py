"""OpenVINO's small integer-vector types (strides, axes, coordinates), as mutable int lists."""

from __future__ import annotations


class _IntVector(list):
    _signed = False

    def __init__(self, values=()):
        super().__init__(self._check(v) for v in values)

    def _check(self, value) -> int:
        value = int(value)
        if value < 0 and not self._signed:
            raise ValueError(f"{type(self).__name__} values are non-negative, got {value}")
        return value

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            super().__setitem__(index, [self._check(v) for v in value])
        else:
            super().__setitem__(index, self._check(value))

    def __repr__(self):
        return f"<{type(self).__name__}: ({', '.join(str(v) for v in self)})>"


class Strides(_IntVector):
    """Steps between consecutive elements per axis (convolution and pooling strides)."""


class AxisVector(_IntVector):
    """A list of axes."""


class Coordinate(_IntVector):
    """An index into a tensor, one value per axis."""


class CoordinateDiff(_IntVector):
    """Signed offsets per axis (paddings)."""

    _signed = True
