"""aiov logs through ``logging.getLogger("aiov")``: silent by default, model reads and compiles
with their times at DEBUG, and the plans the engine builds with the kernel each node got."""

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

import aiov as ov
from aiov import _core, aio

from model_builders import mlp, tiny_model


def test_compile_and_read_are_logged_at_debug(caplog, tmp_path):
    path = tmp_path / "tiny.xml"
    ov.save_model(tiny_model(), str(path))
    with caplog.at_level(logging.DEBUG, logger="aiov"):
        model = ov.Core().read_model(str(path))
        ov.Core().compile_model(model, "CPU")
    messages = [r.getMessage() for r in caplog.records if r.name == "aiov"]
    assert any(m.startswith(f"read_model {path} took ") for m in messages), messages
    assert any(m.startswith("compile_model ") and "GEMM ISA" in m for m in messages), messages


def test_nothing_is_printed_at_the_default_level():
    tests = str(Path(__file__).parents[1])
    code = (
        f"import sys; sys.path.insert(0, {tests!r}); import aiov as ov; from model_builders import tiny_model;"
        "ov.compile_model(tiny_model(), 'CPU')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


F32 = {"INFERENCE_PRECISION_HINT": "f32"}  # the kernels' names say the precision: f32 on any CPU


def _plans(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "aiov" and r.getMessage().startswith("plan built")]


def test_plans_built_are_logged_with_their_shapes_and_kernels(caplog):
    """A dynamic batch: one plan per batch size, built at its first run (on a worker thread
    for async calls) and logged by the Python thread that reads the results; a cached plan
    is not logged again."""
    x2, x3, x5 = (np.ones((n, 16), np.float32) for n in (2, 3, 5))
    with caplog.at_level(logging.DEBUG, logger="aiov"):
        compiled = ov.compile_model(mlp(sizes=(16, 32, 4)).SerializeToString(), "CPU", F32)
        assert _plans(caplog) == []  # nothing static to plan at compile time
        compiled(x2)
        compiled(x3)
        compiled(x2)
        request = compiled.create_infer_request()
        request.start_async({"x": x5})
        request.wait()

        async def awaited():
            return await aio.CompiledModel(compiled)(np.ones((7, 16), np.float32))

        asyncio.run(awaited())
    plans = _plans(caplog)
    assert len(plans) == 4, plans
    for plan, n in zip(plans, (2, 3, 5, 7)):
        assert f"on input shapes [{n},16]" in plan, plan
        # The dense layers' kernel: a GEMM on the ISA the engine picked.
        assert f"-> [{n},32]: packed-weight GEMM f32 {_core.gemm_isa()}" in plan, plan


def test_a_static_model_logs_its_plan_at_compile_time(caplog):
    with caplog.at_level(logging.DEBUG, logger="aiov"):
        ov.compile_model(tiny_model(), "CPU")
    plans = _plans(caplog)
    assert len(plans) == 1 and "on input shapes [8], [8]" in plans[0] and "steps" in plans[0], plans


def test_plans_are_not_recorded_unless_debug_was_on_at_compile_time(caplog):
    with caplog.at_level(logging.INFO, logger="aiov"):
        compiled = ov.compile_model(mlp(sizes=(16, 32, 4)).SerializeToString(), "CPU")
        compiled(np.ones((2, 16), np.float32))
    assert _plans(caplog) == []
    assert compiled._native.take_built_plans() == ([], 0)
