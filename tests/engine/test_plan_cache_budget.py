"""Plans are cached per value of shape-like inputs and keep the constants folded for that
value; the cache has a byte budget (AIOV_PLAN_CACHE_BYTES) so that clients sending distinct
values cannot grow memory without bound. Evicted plans stay valid for jobs still running
them."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

MIB = 1 << 20


def _constant_of_shape_model():
    """ConstantOfShape(shape) + 1, the shape a model input: each distinct value folds a new
    constant of that shape into its plan."""
    shape = ops.parameter([2], np.int64, name="shape")
    filled = ops.broadcast(ops.constant(np.float32(2)), shape)
    return ov.Model([ops.add(filled, ops.constant(np.float32(1)))], [shape])


def test_distinct_values_stay_within_the_byte_budget():
    budget = 16 * MIB
    compiled = ov.compile_model(_constant_of_shape_model(), config={"AIOV_PLAN_CACHE_BYTES": budget})
    native = compiled._native
    for i in range(40):
        rows = 1024 + i  # 4 MiB and a bit per distinct value
        out = compiled([np.array([rows, 1024], np.int64)])[0]
        assert out.shape == (rows, 1024)
        assert out[0, 0] == 3.0 and out[-1, -1] == 3.0
        assert native.cached_plan_bytes <= budget + 5 * MIB  # the newest plan may be the one over
    assert native.cached_plans < 40
    assert native.cached_plan_bytes > 0


def test_a_plan_larger_than_the_budget_is_still_used():
    compiled = ov.compile_model(_constant_of_shape_model(), config={"AIOV_PLAN_CACHE_BYTES": 0})
    for rows in (3, 5, 3):
        out = compiled([np.array([rows, 7], np.int64)])[0]
        np.testing.assert_array_equal(out, np.full((rows, 7), 3.0, np.float32))
    assert compiled._native.cached_plans == 1


def test_evicted_plans_stay_valid_for_running_jobs():
    compiled = ov.compile_model(_constant_of_shape_model(), config={"AIOV_PLAN_CACHE_BYTES": 0})
    queue = ov.AsyncInferQueue(compiled, 4)
    results = {}
    queue.set_callback(lambda request, rows: results.__setitem__(rows, request.get_output_tensor().data.copy()))
    for round_ in range(5):
        for rows in range(1, 40):
            queue.start_async([np.array([rows, 64 + round_], np.int64)], rows)
        queue.wait_all()
        for rows in range(1, 40):
            np.testing.assert_array_equal(results[rows], np.full((rows, 64 + round_), 3.0, np.float32))


def test_the_budget_is_a_compile_time_property():
    compiled = ov.compile_model(_constant_of_shape_model(), config={"AIOV_PLAN_CACHE_BYTES": 123})
    assert compiled.get_property("AIOV_PLAN_CACHE_BYTES") == 123
    with pytest.raises(ov.InputError):
        compiled.set_property({"AIOV_PLAN_CACHE_BYTES": 5})
    with pytest.raises(ov.InputError):
        ov.compile_model(_constant_of_shape_model(), config={"AIOV_PLAN_CACHE_BYTES": -1})
