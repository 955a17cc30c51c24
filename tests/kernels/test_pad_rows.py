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
