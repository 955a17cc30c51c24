"""A running request's memory belongs to the worker: every API that reads its outputs or
input tensors raises BusyError until wait() has returned (reading them raced the worker on
the output tables: heap corruption and an abort)."""

import numpy as np
import pytest

import aiov as ov

from model_builders import heavy_model

ROUNDS = 200


@pytest.fixture(scope="module")
def compiled():
    model, _ = heavy_model(layers=6, size=256, dynamic_batch=True)
    return ov.compile_model(model)


def _x(rows):
    return np.full((rows, 256), 0.01, np.float32)


READERS = {
    "get_output_tensor": lambda r: r.get_output_tensor(),
    "get_output_tensor_0": lambda r: r.get_output_tensor(0),
    "output_tensors": lambda r: r.output_tensors,
    "results": lambda r: r.results,
    "get_tensor_output": lambda r: r.get_tensor(r.model_outputs[0]),
    "get_input_tensor": lambda r: r.get_input_tensor(),
    "input_tensors": lambda r: r.input_tensors,
    "get_tensor_input": lambda r: r.get_tensor(r.model_inputs[0]),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_reading_a_running_request_raises_busy_and_never_corrupts(compiled, reader):
    read = READERS[reader]
    request = compiled.create_infer_request()
    busy_seen = 0
    for i in range(ROUNDS):
        rows = 1 + i % 7  # shapes change, so the worker reallocates its output tables
        request.start_async(_x(rows))
        try:
            read(request)
        except ov.BusyError as exc:
            assert "wait()" in str(exc)
            busy_seen += 1
        request.wait()
        out = request.get_output_tensor().data
        assert out.shape == (rows, 256)
        assert np.all(np.isfinite(out))
    # With 200 jobs of six 256x256 layers, the reader meets a running job essentially always.
    assert busy_seen > 0


def test_outputs_read_after_wait_are_the_finished_results(compiled):
    request = compiled.create_infer_request()
    expected = compiled(_x(3))[0]
    request.start_async(_x(3))
    request.wait()
    np.testing.assert_allclose(request.get_output_tensor().data, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(request.results[0], expected, rtol=1e-5, atol=1e-6)
