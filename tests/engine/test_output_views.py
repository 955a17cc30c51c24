"""Model outputs that are views of another value (a same-type Convert, as an ONNX Identity
becomes, a Reshape, a Gather of the leading block, a Concat of one input): the value is written straight into the
output buffer, with no copying step, and every output and every reader of the value still sees
the right numbers."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

RNG = np.random.default_rng(5)


def param(shape):
    return ops.parameter(shape, np.float32, name="x")


def run_profiled(model, x):
    request = ov.compile_model(model, "CPU", {"PERF_COUNT": True}).create_infer_request()
    results = [np.array(r) for r in request.infer({"x": x}).values()]
    return results, [p.node_type for p in request.get_profiling_info()], request


def test_same_type_convert_on_an_output_runs_no_step_and_gives_its_input():
    x = param([2, 3, 8])
    out = ops.convert(ops.relu(x), "f32")
    x_val = RNG.standard_normal((2, 3, 8)).astype(np.float32)
    (y,), steps, request = run_profiled(ov.Model([out], [x]), x_val)
    assert "Convert" not in steps
    np.testing.assert_array_equal(y, np.maximum(x_val, 0))
    # A second run with other numbers writes them (the output buffer is the value's storage).
    x2 = RNG.standard_normal((2, 3, 8)).astype(np.float32)
    (y2,) = [np.array(r) for r in request.infer({"x": x2}).values()]
    np.testing.assert_array_equal(y2, np.maximum(x2, 0))


def test_a_value_read_by_later_steps_and_viewed_as_an_output():
    x = param([4, 16])
    a = ops.relu(x)
    viewed = ops.convert(a, "f32")
    doubled = ops.multiply(a, ops.constant(np.float32(2.0)))
    x_val = RNG.standard_normal((4, 16)).astype(np.float32)
    (y0, y1), steps, _ = run_profiled(ov.Model([viewed, doubled], [x]), x_val)
    assert "Convert" not in steps
    np.testing.assert_array_equal(y0, np.maximum(x_val, 0))
    np.testing.assert_array_equal(y1, 2 * np.maximum(x_val, 0))


def test_a_value_that_is_an_output_and_viewed_as_another_gives_both():
    x = param([3, 5])
    a = ops.sigmoid(x)
    x_val = RNG.standard_normal((3, 5)).astype(np.float32)
    for outputs in ([a, ops.convert(a, "f32")], [ops.convert(a, "f32"), a], [ops.convert(a, "f32")] * 2):
        ys, _, _ = run_profiled(ov.Model(outputs, [x]), x_val)
        for y in ys:
            np.testing.assert_allclose(y, 1 / (1 + np.exp(-x_val)), rtol=1e-6)


def test_views_of_an_input_and_reshaped_outputs_keep_their_values():
    x = param([2, 6])
    x_val = RNG.standard_normal((2, 6)).astype(np.float32)
    reshaped = ops.reshape(ops.relu(x), ops.constant(np.array([3, 4], np.int64)), False)
    (y0, y1), _, _ = run_profiled(ov.Model([ops.convert(x, "f32"), reshaped], [x]), x_val)
    np.testing.assert_array_equal(y0, x_val)
    np.testing.assert_array_equal(y1, np.maximum(x_val, 0).reshape(3, 4))


def test_a_converting_convert_still_converts():
    x = param([8])
    x_val = np.array([-2.7, -1.5, -0.2, 0.0, 0.4, 1.5, 2.6, 100.9], np.float32)
    (y,), steps, _ = run_profiled(ov.Model([ops.convert(ops.convert(x, "i32"), "f32")], [x]), x_val)
    np.testing.assert_array_equal(y, x_val.astype(np.int32).astype(np.float32))


@pytest.mark.parametrize(
    ("shape", "index", "axis", "view"),
    [
        ((1, 3, 4, 5), 0, 0, True),  # images[0] of a batch of one
        ((1, 3, 4, 5), -1, 0, True),  # the same element counted from the end
        ((1, 1, 4, 5), 0, 1, True),  # only ones before the axis
        ((2, 3, 4, 5), 0, 0, True),  # the first block of a larger batch
        ((2, 3, 4, 5), 1, 0, False),  # not the first block: copied
        ((1, 3, 4, 5), 2, 1, False),
        ((2, 3, 4, 5), 0, 1, False),  # strided: copied
    ],
)
def test_a_gather_of_the_leading_block_is_a_view(shape, index, axis, view):
    x = param(list(shape))
    picked = ops.gather(ops.relu(x), ops.constant(np.array(index, np.int64)), ops.constant(np.array(axis, np.int64)))
    x_val = RNG.standard_normal(shape).astype(np.float32)
    (y, z), steps, _ = run_profiled(ov.Model([picked, ops.multiply(picked, picked)], [x]), x_val)
    want = np.take(np.maximum(x_val, 0), index, axis=axis)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(z, want * want)
    assert ("Gather" in steps) != view, steps


def test_a_concat_of_one_input_is_a_view_and_of_two_still_concatenates():
    x = param([1, 3, 4, 5])
    x_val = RNG.standard_normal((1, 3, 4, 5)).astype(np.float32)
    a = ops.relu(x)
    one = ops.concat([a], axis=0)
    (y, z, w), steps, request = run_profiled(
        ov.Model([one, ops.multiply(one, one), ops.concat([x], axis=1)], [x]), x_val
    )
    assert "Concat" not in steps, steps
    np.testing.assert_array_equal(y, np.maximum(x_val, 0))
    np.testing.assert_array_equal(z, np.maximum(x_val, 0) ** 2)
    np.testing.assert_array_equal(w, x_val)
    x2 = RNG.standard_normal((1, 3, 4, 5)).astype(np.float32)
    results = [np.array(r) for r in request.infer({"x": x2}).values()]
    np.testing.assert_array_equal(results[0], np.maximum(x2, 0))
    np.testing.assert_array_equal(results[2], x2)
    (y2,), _, _ = run_profiled(ov.Model([ops.concat([a, ops.sigmoid(x)], axis=0)], [x]), x_val)
    want = np.concatenate([np.maximum(x_val, 0), 1 / (1 + np.exp(-x_val))], axis=0)
    np.testing.assert_allclose(y2, want, rtol=1e-6)
