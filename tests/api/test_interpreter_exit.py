"""The interpreter may exit while daemon threads are inside aiov: blocked in an inference,
a wait or the callback dispatcher. The process ends with its own exit code and no
"terminate called" abort, for every blocking call (each case in a child process)."""

import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import sys, threading, time
import numpy as np
import aiov as ov
import aiov.opset13 as ops

def heavy(size=1024, layers=8):
    rng = np.random.default_rng(0)
    x = ops.parameter([-1, size], np.float32, name="x")
    h = x
    for _ in range(layers):
        h = ops.relu(ops.matmul(h, ops.constant((rng.standard_normal((size, size)) / 32).astype(np.float32))))
    return ov.compile_model(ov.Model(h, [x]))

compiled = heavy()
X = np.ones((256, 1024), np.float32)
started = threading.Event()

def daemon(fn):
    def body():
        started.set()
        while True:
            fn()
    threading.Thread(target=body, daemon=True).start()
    started.wait()
    time.sleep(0.05)
"""

CASES = {
    "compiled_call": "daemon(lambda: compiled(X))",
    "infer_new_request": "daemon(lambda: compiled.infer_new_request(X))",
    "request_infer": "r = compiled.create_infer_request()\ndaemon(lambda: r.infer(X))",
    "request_wait": "r = compiled.create_infer_request()\ndaemon(lambda: (r.start_async(X), r.wait()))",
    "request_wait_for": "r = compiled.create_infer_request()\ndaemon(lambda: (r.start_async(X), r.wait_for(10)) and r.wait())",
    "queue_wait_all": "q = ov.AsyncInferQueue(compiled, 2)\n"
    "daemon(lambda: ([q.start_async(X) for _ in range(4)], q.wait_all()))",
    "callback_running": "r = compiled.create_infer_request()\n"
    "r.set_callback(lambda _: time.sleep(0.01))\n"
    "daemon(lambda: (r.start_async(X), r.wait()))",
    "compile_model": "m = compiled.get_runtime_model()\ndaemon(lambda: ov.compile_model(m))",
    "dispatcher_idle": "r = compiled.create_infer_request()\nr.set_callback(lambda _: None)\n"
    "r.start_async(X)\nr.wait()",
    "exit_code_kept": "daemon(lambda: compiled(X))\nsys.exit(3)",
    # The kernels run directly (aiov._core._testing), each with the GIL released.
    "testing_run_op": "from aiov._core import _testing\nW = np.ones((1024, 1024), np.float32)\n"
    "daemon(lambda: _testing.run_op('MatMul', [X, W], threads=0))",
    "testing_gemm": "from aiov._core import _testing\nW = np.ones((1024, 1024), np.float32)\n"
    "daemon(lambda: (_testing.gemm(X, W, threads=0), _testing.gemm_packed(X, W, threads=0)))",
    # Automatic batching: jobs queued in the batcher and a thread driving batches at exit.
    "batched_jobs": "b = ov.compile_model(compiled.get_runtime_model(), 'BATCH:CPU(8)')\n"
    "x1 = np.ones((1, 1024), np.float32)\nq = ov.AsyncInferQueue(b, 32)\n"
    "threading.Thread(target=lambda: [b(x1) for _ in iter(int, 1)], daemon=True).start()\n"
    "daemon(lambda: ([q.start_async(x1) for _ in range(32)], q.wait_all()))",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exit_with_a_daemon_thread_inside_aiov(case):
    code = PRELUDE + "\n" + CASES[case] + "\nprint('exiting', flush=True)\n"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    expected = 3 if case == "exit_code_kept" else 0
    assert "terminate called" not in proc.stderr, proc.stderr[-2000:]
    assert "Fatal Python error" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == expected, f"exit code {proc.returncode}\nstderr: {proc.stderr[-2000:]}"
    assert "exiting" in proc.stdout or case == "exit_code_kept"


def test_exit_with_an_aio_call_in_flight_on_a_daemon_thread():
    code = PRELUDE + textwrap.dedent("""
        import asyncio
        from aiov import aio

        async def loop_forever():
            c = aio.CompiledModel(compiled.get_runtime_model())
            while True:
                await c(X)

        daemon(lambda: asyncio.run(loop_forever()))
        print("exiting", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "terminate called" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 0, f"exit code {proc.returncode}\nstderr: {proc.stderr[-2000:]}"
