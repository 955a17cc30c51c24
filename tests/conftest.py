"""What every test folder shares: the tests directory on sys.path (so ``import model_builders``
works from tests/api, tests/aio, ... and from the scripts tests run in subprocesses), the
event-loop backends async tests run on, and the compiled models several modules use.

Test files live in one folder per layer (api, aio, engine, kernels, frontends) without
``__init__.py``: their basenames must stay unique across folders."""

import os
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import aiov as ov  # noqa: E402

from model_builders import failing_model, medium_model, tiny_model  # noqa: E402

try:
    import uvloop  # noqa: F401

    _HAVE_UVLOOP = True
except ImportError:  # pragma: no cover
    _HAVE_UVLOOP = False

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(
        ("asyncio", {"use_uvloop": True}),
        id="uvloop",
        marks=pytest.mark.skipif(not _HAVE_UVLOOP, reason="uvloop is not installed"),
    ),
    pytest.param("trio", id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request):
    """Every ``@pytest.mark.anyio`` test runs on asyncio, asyncio with uvloop, and trio."""
    return request.param


@pytest.fixture(scope="module")
def tiny():
    return ov.compile_model(tiny_model(), "CPU")


@pytest.fixture(scope="module")
def medium():
    model, weights = medium_model()
    return ov.compile_model(model, "CPU"), weights


@pytest.fixture(scope="module")
def failing():
    """A compiled model whose every inference fails in the engine."""
    return ov.compile_model(failing_model(), "CPU")
