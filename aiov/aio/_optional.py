"""Optional imports of the aio layer, each failing with the extra that provides it.

trio support needs ``trio``, its ``outcome`` (to reschedule a task with a result) and
``sniffio`` (to tell a trio run from no loop at all): ``pip install 'aiov[trio]'``.
"""

from __future__ import annotations

_trio = None


def _missing(module, exc):
    return ImportError(
        f"aiov.aio on trio needs the module {module!r}, which is not installed: pip install 'aiov[trio]'"
    )


def trio_modules():
    """``(trio, outcome)``, imported once."""
    global _trio
    if _trio is None:
        try:
            import trio
        except ImportError as exc:
            raise _missing("trio", exc) from exc
        try:
            import outcome
        except ImportError as exc:
            raise _missing("outcome", exc) from exc
        _trio = (trio, outcome)
    return _trio


def current_async_library():
    """The name sniffio gives the running async library, or None (none, or no sniffio)."""
    try:
        import sniffio
    except ImportError:
        return None
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def require_sniffio():
    try:
        import sniffio  # noqa: F401
    except ImportError as exc:
        raise _missing("sniffio", exc) from exc
