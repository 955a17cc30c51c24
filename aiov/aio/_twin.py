"""What the aio objects share: delegation to their sync twin, and async-closable behaviour."""

from __future__ import annotations


class SyncTwin:
    """Everything not awaitable is the sync twin's (``.sync``), which stays usable alongside."""

    __slots__ = ()

    @property
    def sync(self):
        """The sync aiov object this wraps (same model or request memory)."""
        return self._sync

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._sync, name)


class AsyncClosable:
    """``closed``, and ``async with`` that closes (and waits) on exit."""

    __slots__ = ()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()
