"""Ops whose output sizes come from input values (NonZero, Unique, Compress,
NonMaxSuppression) and the detection/vision ops: results against numpy, and hostile values
give clear errors."""

from __future__ import annotations

import numpy as np

import aiov as ov
import aiov.opset13 as ops


def _compile(params, outputs):
    return ov.Core().compile_model(ov.Model(outputs, params), "CPU")


def test_pad_with_computed_pads_keeps_the_rank_of_its_input():
    x = ops.parameter([-1, 3, -1], ov.Type.f32, name="x")
    amount = ops.parameter([1], ov.Type.i64, name="amount")
    zero = ops.constant(np.zeros(2, np.int64))
    pads = ops.concat([zero, amount], 0)
    padded = ops.pad(x, pads, pads, "constant")
    assert padded.get_output_partial_shape(0).rank.get_length() == 3
    data = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    got = _compile([x, amount], [padded])({"x": data, "amount": np.array([1], np.int64)})[0]
    np.testing.assert_array_equal(got, np.pad(data, ((0, 0), (0, 0), (1, 1))))
