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


def log_built_plans(compiled) -> None:
    """Logs at DEBUG the plans the engine built for ``compiled`` (an ``aiov.CompiledModel``
    compiled while DEBUG was on) since the last call: their input shapes, steps, arena and the
    kernel each node got. The engine only records them (a worker never touches Python); this
    runs on the Python thread that compiled, or that reads the results of a job afterwards."""
    name = compiled._model.get_friendly_name()
    natives = [(compiled._native, "")]
    batching = compiled._batching
    if batching is not None and batching.native is not None and batching.native is not compiled._native:
        natives.append((batching.native, " (batched)"))
    for native, which in natives:
        plans, dropped = native.take_built_plans()
        if dropped:
            logger.debug("model %r%s: %d older plans built were not logged", name, which, dropped)
        for plan in plans:
            logger.debug("%s", _describe_plan(name + which, *plan))


def _describe_plan(name, input_shapes, continuation, node_by_node, arena_bytes, build_ms, steps) -> str:
    shapes = ", ".join("[" + ",".join(map(str, s)) + "]" for s in input_shapes)
    head = f"plan built for model {name!r} on input shapes {shapes or '(none)'} in {build_ms:.1f} ms"
    if node_by_node:
        return head + ": runs node by node (output shapes are known only by running)"
    stage = " (a later stage, after a data-dependent step)" if continuation else ""
    lines = [f"{head}{stage}: {len(steps)} steps, arena {arena_bytes / 1024:.1f} KiB"]
    for node, op, outputs, kernel in steps:
        lines.append(f"  {node} ({op}) -> {outputs}" + (f": {kernel}" if kernel else ""))
    return "\n".join(lines)
