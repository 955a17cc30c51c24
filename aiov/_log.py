"""aiov's logger, ``logging.getLogger("aiov")``: silent unless the application configures it
(a NullHandler, as libraries should) or OpenVINO's LOG_LEVEL property sets its level. Model
reads and compiles are logged at INFO with how long they took, and at DEBUG with what the
engine chose for them."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

logger = logging.getLogger("aiov")
logger.addHandler(logging.NullHandler())


@contextmanager
def timed(what: str, detail=None):
    """Logs ``what`` with its wall time at INFO; at DEBUG also ``detail()`` (a callable, asked
    only then)."""
    if not logger.isEnabledFor(logging.INFO):
        yield
        return
    start = time.perf_counter()
    yield
    ms = (time.perf_counter() - start) * 1e3
    if detail is not None and logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s took %.1f ms: %s", what, ms, detail())
    else:
        logger.info("%s took %.1f ms", what, ms)
