"""Stateful models under aiov.aio: an aio.InferRequest keeps its variables between awaited
inferences and jobs, and reaches them (query_state, reset_state) without awaiting, as the
sync request does; awaiting a pooled call on a stateful model is refused."""

import numpy as np
import pytest

import aiov as ov
from aiov import aio

from model_builders import accumulator_model

pytestmark = pytest.mark.anyio

ONES = np.ones(4, np.float32)


@pytest.fixture
def compiled():
    return aio.CompiledModel(ov.compile_model(accumulator_model()))


async def test_an_aio_request_keeps_its_state_across_infers_and_jobs(compiled):
    request = compiled.create_infer_request()
    await request.infer([ONES])
    results = await request.start_async([ONES])
    np.testing.assert_array_equal(results[0], ONES * 2)
    (state,) = request.query_state()
    np.testing.assert_array_equal(state.state.data, ONES * 2)
    request.reset_state()
    np.testing.assert_array_equal((await request.infer([ONES]))[0], ONES)
    state.state = ov.Tensor(np.full(4, 9, np.float32))
    np.testing.assert_array_equal((await request.infer([ONES]))[0], ONES * 10)


async def test_aio_requests_keep_separate_states(compiled):
    a, b = compiled.create_infer_request(), compiled.create_infer_request()
    for _ in range(3):
        await a.infer([ONES])
    np.testing.assert_array_equal((await b.infer([ONES]))[0], ONES)
    np.testing.assert_array_equal(a.query_state()[0].state.data, ONES * 3)


async def test_a_pooled_call_on_a_stateful_model_is_refused(compiled):
    with pytest.raises(ov.InputError, match="keeps its state per request"):
        await compiled([ONES])
