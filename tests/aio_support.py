"""Shared pieces of the aiov.aio tests: models, the backend fixture and small helpers.

Test modules import the fixture (``from aio_support import anyio_backend``) so that every
async test runs on asyncio, asyncio with uvloop, and trio through anyio's pytest plugin."""
import threading
import time

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

try:
    import uvloop  # noqa: F401
    _HAVE_UVLOOP = True
except ImportError:  # pragma: no cover
    _HAVE_UVLOOP = False

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop",
                 marks=pytest.mark.skipif(not _HAVE_UVLOOP, reason="uvloop is not installed")),
    pytest.param("trio", id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request):
    return request.param


def tiny_model():
    """Add of two [8] vectors."""
    a = ops.parameter([8], np.float32, name="a")
    b = ops.parameter([8], np.float32, name="b")
    out = ops.add(a, b)
    model = ov.Model(out, [a, b], "tiny")
    model.outputs[0].tensor.set_names({"sum"})
    return model


def medium_model(layers=4, size=256, seed=0):
    """A chain of matmul+relu: long enough for jobs to be cancelled while running."""
    rng = np.random.default_rng(seed)
    x = ops.parameter([-1, size], np.float32, name="x")
    h = x
    weights = []
    for _ in range(layers):
        w = (rng.standard_normal((size, size)) * (1.0 / np.sqrt(size))).astype(np.float32)
        weights.append(w)
        h = ops.relu(ops.matmul(h, ops.constant(w)))
    return ov.Model(h, [x], "medium"), weights


def medium_reference(weights, x):
    h = x
    for w in weights:
        h = np.maximum(h @ w, 0)
    return h


def failing_model():
    """Fails at run time unless the input has exactly 6 elements."""
    x = ops.parameter([-1], np.float32, name="x")
    return ov.Model(ops.reshape(x, [2, 3]), [x], "failing")


def thread_count_settles(baseline, timeout=5.0):
    """The thread count, once it is back to ``baseline`` (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        n = threading.active_count()
        if n <= baseline or time.monotonic() > deadline:
            return n
        time.sleep(0.01)


class Heartbeat:
    """Counts how often a task that only yields to the loop gets to run."""

    def __init__(self):
        self.ticks = 0
        self.stop = False

    async def run(self):
        import anyio
        while not self.stop:
            self.ticks += 1
            await anyio.sleep(0)


@pytest.fixture(scope="module")
def tiny():
    return ov.compile_model(tiny_model(), "CPU")


@pytest.fixture(scope="module")
def medium():
    model, weights = medium_model()
    return ov.compile_model(model, "CPU"), weights
