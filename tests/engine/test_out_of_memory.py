"""An allocation that fails is a MemoryError naming what it was for and how many bytes were
asked: a model output (with its shape), the intermediate values of a run (with the node whose
value is the largest) or the node being folded while a plan is built; through every API, and
the model keeps working for sane sizes afterwards.

The sizes come from an input value (a broadcast target shape): 2**38 f32 elements are 1 TiB,
within the engine's limit on one tensor but more than this machine can map."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

HUGE = 2**38
HUGE_BYTES = 4 * HUGE


def _overcommit_always():
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


# With overcommit "always" the kernel grants any mapping and the OOM killer ends the test run.
pytestmark = pytest.mark.skipif(_overcommit_always(), reason="vm.overcommit_memory=1 grants any allocation")


def _broadcast_model(kind):
    """x[?] broadcast to the shape given by the input "shape"; `kind` is where it lands:
    "output" (a model output), "arena" (an intermediate value) or "folded" (x a constant, so
    the broadcast is folded while the plan for that shape value is built)."""
    shape = ops.parameter([1], np.int64, name="shape")
    if kind == "folded":
        x = ops.constant(np.ones(1, np.float32))
        params = [shape]
    else:
        x = ops.parameter([-1], np.float32, name="x")
        params = [x, shape]
    big = ops.broadcast(x, shape)
    big.set_friendly_name("spread")
    out = big if kind == "output" else ops.reduce_sum(ops.exp(big), [0], keep_dims=False)
    model = ov.Model([out], params)
    model.outputs[0].tensor.set_names({"big" if kind == "output" else "total"})
    return ov.compile_model(model)


def _inputs(kind, n):
    shape = np.array([n], np.int64)
    return [shape] if kind == "folded" else [np.ones(1, np.float32), shape]


EXPECTED = {
    "output": rf"could not allocate {HUGE_BYTES} bytes for output 'big' of shape \[{HUGE}\]",
    "arena": rf"could not allocate \d+ bytes for the intermediate values of this run \(the largest: "
    rf"output 0 of Broadcast 'spread', shape \[{HUGE}\], {HUGE_BYTES} bytes\)",
    "folded": rf"could not allocate {HUGE_BYTES} bytes for Broadcast 'spread'",
}
KINDS = sorted(EXPECTED)


def _still_works(compiled, kind):
    result = compiled(_inputs(kind, 3))[0]
    expected = np.ones(3, np.float32) if kind == "output" else np.float32(3 * np.e)
    np.testing.assert_allclose(result, expected, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_call_and_request_name_what_did_not_fit(kind):
    compiled = _broadcast_model(kind)
    with pytest.raises(MemoryError, match=EXPECTED[kind]):
        compiled(_inputs(kind, HUGE))
    request = compiled.create_infer_request()
    with pytest.raises(MemoryError, match=EXPECTED[kind]):
        request.infer(_inputs(kind, HUGE))
    request.start_async(_inputs(kind, HUGE))
    with pytest.raises(MemoryError, match=EXPECTED[kind]):
        request.wait()
    _still_works(compiled, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_async_infer_queue_reports_the_memory_error_of_its_job(kind):
    compiled = _broadcast_model(kind)
    queue = ov.AsyncInferQueue(compiled, jobs=2)
    queue.start_async(_inputs(kind, HUGE), userdata="huge")
    with pytest.raises(ov.JobError) as excinfo:
        queue.wait_all()
    [(_, userdata, error)] = excinfo.value.errors
    assert userdata == "huge"
    assert isinstance(error, MemoryError)
    assert excinfo.match(EXPECTED[kind])
    _still_works(compiled, kind)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_aio_calls_get_the_memory_error(kind):
    sync = _broadcast_model(kind)
    compiled = aio.CompiledModel(sync)
    with pytest.raises(MemoryError, match=EXPECTED[kind]):
        await compiled(_inputs(kind, HUGE))
    queue = aio.AsyncInferQueue(sync, jobs=1)
    job = await queue.start_async(_inputs(kind, HUGE))
    with pytest.raises(MemoryError, match=EXPECTED[kind]):
        await job
    result = (await compiled(_inputs(kind, 3)))[0]
    assert result.shape == ((3,) if kind == "output" else ())
