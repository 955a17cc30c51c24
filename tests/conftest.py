"""What every test folder shares: the tests directory on sys.path (so ``import model_builders``
works from tests/api, tests/aio, ... and from the scripts tests run in subprocesses), the
event-loop backends async tests run on, and the compiled models several modules use.

Test files live in one folder per layer (api, aio, engine, kernels, frontends) without
``__init__.py``: their basenames must stay unique across folders."""

import os
import subprocess
import sys

import pytest

# Tests compare results with f32 references: on CPUs with bf16 instructions aiov's default
# precision is bf16 (as OpenVINO's), so the suite pins f32 unless a test asks for bf16 itself
# (an explicit INFERENCE_PRECISION_HINT wins over this). Subprocesses inherit it.
os.environ.setdefault("AIOV_INFERENCE_PRECISION", "f32")

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


@pytest.fixture
def run_capped():
    """``run_capped(script, timeout, VAR=value, ...)``: runs ``script`` in a fresh interpreter with
    those environment variables (``None`` unsets one), asserts it succeeds and returns the last
    line it printed. How the kernel tests force one ISA path: aiov reads its caps at import."""

    def run(script, timeout, **env):
        run_env = dict(os.environ, AIOV_TESTS=TESTS_DIR)
        for name, value in env.items():
            if value is None:
                run_env.pop(name, None)
            else:
                run_env[name] = value
        proc = subprocess.run(
            [sys.executable, "-c", script], env=run_env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    return run
