"""aiov's logger, ``logging.getLogger("aiov")``: silent unless the application configures it
(a NullHandler, as libraries should); model reads and compiles are logged at DEBUG with how
long they took and what the engine chose."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

logger = logging.getLogger("aiov")
logger.addHandler(logging.NullHandler())


@contextmanager
def timed(what: str, detail=None):
    """Logs ``what`` (and ``detail``, a callable giving a string, asked only when DEBUG is on)
    with its wall time, at DEBUG."""
    if not logger.isEnabledFor(logging.DEBUG):
        yield
        return
    start = time.perf_counter()
    yield
    ms = (time.perf_counter() - start) * 1e3
    logger.debug("%s took %.1f ms%s", what, ms, f": {detail()}" if detail else "")
