"""Symbol: a name for an unknown dimension, so that two dimensions can be known equal."""

from __future__ import annotations


class Symbol:
    """A fresh symbol is distinct from every other; dimensions sharing one are equal. A dimension
    without a symbol reports a null symbol (false in a boolean context)."""

    __slots__ = ("_null", "__weakref__")

    def __init__(self):
        self._null = False

    @classmethod
    def _null_symbol(cls) -> "Symbol":
        s = cls()
        s._null = True
        return s

    def __bool__(self):
        return not self._null

    def __eq__(self, other):
        if not isinstance(other, Symbol):
            return NotImplemented
        return self is other or (self._null and other._null)

    def __hash__(self):
        return 0 if self._null else id(self)

    def __repr__(self):
        return "<Symbol: null>" if self._null else f"<Symbol: {id(self):#x}>"
