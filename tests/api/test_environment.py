"""The machine and the environment as aiov sees them: AIOV_* variables are checked when aiov is
imported (a bad value is an error naming it, a near-miss name a warning), the default worker
count follows the CPUs the process may use, the pipe completion port serves event loops as the
eventfd does, and ``aiov.info()`` / ``python -m aiov info`` say what the engine runs with."""

import os
import subprocess
import sys

import anyio
import numpy as np
import pytest

import aiov as ov
from aiov import aio

from model_builders import medium_reference


def _python(code, **env):
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("AIOV_")}
    run_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env, timeout=120)


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("AIOV_NUM_THREADS", "abc", "an integer from 1 to 4096"),
        ("AIOV_NUM_THREADS", "0", "an integer from 1 to 4096"),
        ("AIOV_WORKER_NICE", "-5", "an integer from 0 to 19"),
        ("AIOV_PLAN_CACHE_BYTES", "1GB", "an integer >= 0"),
        ("AIOV_GEMM_ISA", "sse", "one of scalar, avx2, avx512"),
        ("AIOV_COMPLETION_PORT", "socket", "one of eventfd, pipe"),
    ],
)
def test_a_bad_value_fails_the_import_naming_variable_and_value(name, value, expected):
    result = _python("import aiov", **{name: value})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: invalid aiov environment")
    assert name in last and expected in last and repr(value) in last


def test_a_misspelt_variable_is_a_warning_naming_the_real_one():
    result = _python("import aiov", AIOV_NUM_THREAD="2", PYTHONWARNINGS="error")
    assert result.returncode != 0
    assert "AIOV_NUM_THREAD is not an aiov variable (did you mean AIOV_NUM_THREADS?)" in result.stderr


def test_valid_values_are_used():
    code = "import aiov; i = aiov.info(); print(i['workers'], i['gemm_isa'], i['completion_port'])"
    result = _python(code, AIOV_NUM_THREADS="3", AIOV_GEMM_ISA="scalar", AIOV_COMPLETION_PORT="pipe")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "scalar", "pipe"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_default_workers_follow_the_cpu_affinity():
    code = "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); import aiov; print(aiov.info()['workers'])"
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]


def test_info_describes_the_engine():
    engine = ov.info()
    assert engine["version"] == ov.__version__
    assert 1 <= engine["workers"] and 1 <= engine["usable_cpus"] <= (os.cpu_count() or 1)
    assert engine["gemm_isa"] in ("scalar", "avx2", "avx512")
    assert engine["completion_port"] in ("eventfd", "pipe")


def test_cli_info_without_a_model_prints_the_engine():
    result = subprocess.run([sys.executable, "-m", "aiov", "info"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "workers:" in result.stdout and "gemm_isa:" in result.stdout


@pytest.mark.anyio
async def test_the_pipe_completion_port_carries_every_completion(monkeypatch, medium):
    # Ports are made per event loop: one made now is a pipe.
    monkeypatch.setenv("AIOV_COMPLETION_PORT", "pipe")
    compiled, weights = aio.CompiledModel(medium[0]), medium[1]
    assert aio.current_bridge().port.kind == "pipe"
    xs = [np.random.default_rng(i).standard_normal((2, 256), dtype=np.float32) for i in range(400)]
    results = [None] * len(xs)

    async def one(i):
        results[i] = (await compiled(xs[i]))[0]

    async with anyio.create_task_group() as tg:
        for i in range(len(xs)):
            tg.start_soon(one, i)
            if i % 7 == 0:
                with anyio.move_on_after(0):  # some callers give up at once: their jobs must not jam the port
                    await compiled(xs[i])
    for x, got in zip(xs, results):
        np.testing.assert_allclose(got, medium_reference(weights, x), rtol=1e-4, atol=1e-4)


def test_the_docs_list_every_variable_the_engine_reads():
    from pathlib import Path

    from aiov._environment import known_variables

    docs = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for name, what in known_variables().items():
        assert f"| `{name}` | {what} |" in docs, name
