"""``openvino.properties.streams``: the number of execution streams."""

from __future__ import annotations

from ._base import Property


class Num(int):
    """A stream count: a number, or ``Num.AUTO`` (-1) / ``Num.NUMA`` (-2)."""

    def __new__(cls, value: int = -1):
        return super().__new__(cls, int(value))

    def to_integer(self) -> int:
        return int(self)

    def __repr__(self):
        return f"<Num: {int(self)}>"


Num.AUTO = Num(-1)
Num.NUMA = Num(-2)


def _as_num(name, value):
    if isinstance(value, str) and value.upper() in ("AUTO", "NUMA"):
        return int(getattr(Num, value.upper()))
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{name}(): incompatible function arguments; expected an int or streams.Num, got {value!r}")


num = Property("NUM_STREAMS", _as_num)
