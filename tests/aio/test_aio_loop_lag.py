"""The first ``await aio.compile_model("x.onnx")`` of a process keeps the event loop running: a
heartbeat task measures the longest gap between its ticks. Each case runs in a fresh process,
so the ONNX reader's imports really happen for the first time there.

A gap is measured twice: in wall time, and in the CPU time the process used meanwhile. A loop
blocked by this process (a thread holding the GIL through an import, the compile running on the
loop) burns CPU for the whole gap; a busy machine that simply does not schedule the process for
a while (two cores shared by many builds: gaps of 400 ms seen) burns none. Both are printed; the
CPU gap is asserted, far below the seconds that importing ``onnx`` (ml_dtypes) used to freeze
the loop for."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

SCRIPT = r"""
import sys, time
from aiov import aio

backend, path = sys.argv[1], sys.argv[2]
state = {"worst": 0.0, "worst_cpu": 0.0, "done": False}


async def heartbeat(sleep):
    last, last_cpu = time.perf_counter(), time.process_time()
    while not state["done"]:
        await sleep(0.001)
        now, cpu = time.perf_counter(), time.process_time()
        state["worst"] = max(state["worst"], now - last - 0.001)
        state["worst_cpu"] = max(state["worst_cpu"], cpu - last_cpu)
        last, last_cpu = now, cpu


async def compile_it(sleep):
    await sleep(0.02)
    compiled = await aio.compile_model(path, "CPU")
    state["done"] = True
    return compiled


if backend == "trio":
    import trio

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat, trio.sleep)
            await compile_it(trio.sleep)
    trio.run(main)
else:
    import asyncio

    async def main():
        beat = asyncio.ensure_future(heartbeat(asyncio.sleep))
        await compile_it(asyncio.sleep)
        await beat
    if backend == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
print(f"{state['worst'] * 1000:.1f}", f"{state['worst_cpu'] * 1000:.1f}", "ml_dtypes" in sys.modules)
"""


def _model(path):
    w = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 64])],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_first_compile_of_an_onnx_file_keeps_the_loop_running(tmp_path, backend):
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    path = tmp_path / "m.onnx"
    _model(path)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, backend, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.returncode == 0, out.stderr
    lag_ms, busy_lag_ms, imported_ml_dtypes = out.stdout.split()
    print(
        f"{backend}: longest event-loop lag during the first aio.compile_model: {lag_ms} ms wall, {busy_lag_ms} ms CPU"
    )
    assert imported_ml_dtypes == "False"  # the import that held the GIL for ~2 s
    assert float(busy_lag_ms) < 300, (
        f"the loop was blocked while the process ran for {busy_lag_ms} ms ({lag_ms} ms wall)"
    )
