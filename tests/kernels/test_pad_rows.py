"""Pad runs row by row (one copy for the input's part of each row, a fill or a few mapped
elements for the rest): every mode, negative pads (cropping), fill values and empty axes
against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

RNG = np.random.default_rng(5)
NUMPY_MODE = {"constant": "constant", "edge": "edge", "reflect": "reflect", "wrap": "wrap"}


def run_pad(x, begin, end, mode="constant", value=None):
    p = ops.parameter(list(x.shape), x.dtype, name="x")
    fill = None if value is None else ops.constant(np.array(value, dtype=x.dtype))
    y = ops.pad(p, ops.constant(np.array(begin, np.int64)), ops.constant(np.array(end, np.int64)), mode, fill)
    return ov.compile_model(ov.Model([y], [p]))([x])[0]


def numpy_pad(x, begin, end, mode, value=0):
    # numpy takes non-negative widths: crop the negative ones first.
    crop = tuple(slice(max(0, -b), x.shape[d] - max(0, -e)) for d, (b, e) in enumerate(zip(begin, end)))
    widths = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    if mode == "constant":
        return np.pad(x[crop], widths, mode="constant", constant_values=value)
    return np.pad(x[crop], widths, mode=NUMPY_MODE[mode])


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
@pytest.mark.parametrize(
    ("shape", "begin", "end"),
    [
        ((3, 160, 160), (0, 1, 1), (0, 2, 2)),  # an image padded on both sides
        ((2, 3, 5, 7), (1, 2, 0, 3), (0, 1, 2, 1)),  # every axis, outer ones too
        ((4, 6), (0, 0), (0, 0)),  # nothing to pad: a copy
        ((9,), (4,), (5,)),  # one axis: one row
        ((2, 3, 8), (0, 1, 2), (1, 0, 3)),
    ],
)
def test_pad_matches_numpy_in_every_mode(mode, shape, begin, end):
    x = RNG.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(run_pad(x, begin, end, mode), numpy_pad(x, begin, end, mode))


@pytest.mark.parametrize("mode", ["constant", "edge"])
def test_negative_pads_crop(mode):
    x = RNG.standard_normal((3, 6, 9)).astype(np.float32)
    begin, end = (0, -2, 3), (-1, 1, -4)
    np.testing.assert_array_equal(run_pad(x, begin, end, mode), numpy_pad(x, begin, end, mode))


def test_crop_past_the_whole_row_leaves_only_fill():
    x = RNG.standard_normal((2, 5)).astype(np.float32)
    out = run_pad(x, (0, -7), (0, 4), "constant", 2.5)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, np.full((2, 2), 2.5, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int64, np.float16])
def test_constant_fill_value_of_every_width(dtype):
    x = (RNG.standard_normal((2, 3, 4)) * 10).astype(dtype)
    begin, end = (1, 0, 2), (0, 2, 3)
    out = run_pad(x, begin, end, "constant", 7)
    np.testing.assert_array_equal(out, numpy_pad(x, begin, end, "constant", 7))


def test_empty_input_axis_pads_to_fill():
    x = np.zeros((2, 0, 3), np.float32)
    out = run_pad(x, (0, 1, 1), (0, 2, 0), "constant", -1)
    np.testing.assert_array_equal(out, np.full((2, 3, 4), -1, np.float32))


@pytest.mark.parametrize("width", [0, 1])
def test_pads_known_only_when_planning_pad_by_nothing_as_a_view(width):
    # Pads computed from the input's shape (Swin's pad to a multiple of its window): known
    # when a plan is made for a concrete shape, not when the model is compiled. Zero pads make
    # the output the input's bytes (no Pad step runs); others pad as written.
    p = ops.parameter([-1, 6], np.float32, name="x")
    shape = ops.shape_of(p, "i64")
    pads = ops.add(ops.subtract(shape, shape), ops.constant(np.array([0, width], np.int64)))
    y = ops.pad(p, pads, pads, "constant")
    compiled = ov.compile_model(ov.Model([ops.relu(y)], [p]), "CPU", {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    got = request.infer([x])[0]
    np.testing.assert_array_equal(got, np.maximum(numpy_pad(x, (0, width), (0, width), "constant"), 0))
    ran = {info.node_type for info in request.get_profiling_info()}
    assert ("Pad" in ran) == (width != 0), ran
