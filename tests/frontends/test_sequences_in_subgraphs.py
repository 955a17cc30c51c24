"""Sequences crossing subgraph boundaries: a Scan that reads a sequence from the enclosing
graph or carries one as a state, and an If inside a Loop that puts the loop's values into a
sequence: a sequence keeps its tensors after the subgraph run that made them has ended."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import aiov as ov  # noqa: E402

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _compile(proto):
    return ov.compile_model(ov.Core().read_model(proto.SerializeToString()), "CPU")


def _t(name, shape=None, elem=FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _seq(name):
    return helper.make_tensor_sequence_value_info(name, FLOAT, None)


def _scan_reading_an_outer_sequence():
    """rows = split(x); scan over x: state += row + rows[0]; each step's state collected."""
    body = helper.make_graph(
        [
            helper.make_node("SequenceAt", ["rows", "zero"], ["first"]),
            helper.make_node("Add", ["state_in", "row"], ["partial"]),
            helper.make_node("Add", ["partial", "first"], ["state_out"]),
            helper.make_node("Identity", ["state_out"], ["step"]),
        ],
        "body",
        [_t("state_in", [3]), _t("row", [3])],
        [_t("state_out", [3]), _t("step", [3])],
        [helper.make_tensor("zero", INT64, [], [0])],
    )
    return _model(
        [
            helper.make_node("SplitToSequence", ["x"], ["rows"], axis=0, keepdims=0),
            helper.make_node("Scan", ["init", "x"], ["final", "steps"], body=body, num_scan_inputs=1),
        ],
        [_t("x", ["n", 3]), _t("init", [3])],
        [_t("final"), _t("steps")],
    )


@pytest.mark.parametrize("length", [1, 4])
def test_scan_body_reads_a_sequence_of_the_enclosing_graph(length):
    x = np.arange(3 * length, dtype=np.float32).reshape(length, 3)
    init = np.array([1.0, -2.0, 0.5], np.float32)
    got = _compile(_scan_reading_an_outer_sequence())({"x": x, "init": init})
    want = init + np.cumsum(x + x[0], axis=0)
    np.testing.assert_allclose(got["steps"], want)
    np.testing.assert_allclose(got["final"], want[-1])


def _scan_collecting_rows():
    """A Scan whose state is a sequence: each step appends its row negated and gives the
    row's sum; the sequence is stacked after the scan."""
    body = helper.make_graph(
        [
            helper.make_node("Neg", ["row"], ["negated"]),
            helper.make_node("SequenceInsert", ["rows_in", "negated"], ["rows_out"]),
            helper.make_node("ReduceSum", ["row"], ["total"], keepdims=0),
        ],
        "body",
        [_seq("rows_in"), _t("row", [3])],
        [_seq("rows_out"), _t("total", [])],
    )
    return _model(
        [
            helper.make_node("SequenceEmpty", [], ["empty"], dtype=FLOAT),
            helper.make_node("Scan", ["empty", "x"], ["rows", "totals"], body=body, num_scan_inputs=1),
            helper.make_node("ConcatFromSequence", ["rows"], ["stacked"], axis=0, new_axis=1),
        ],
        [_t("x", ["n", 3])],
        [_t("stacked"), _seq("rows"), _t("totals")],
    )


def test_scan_carries_a_sequence_state():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    compiled = _compile(_scan_collecting_rows())
    for rows in (x, x[:2] * 3):
        got = compiled({"x": rows})
        np.testing.assert_array_equal(got["stacked"], -rows)
        assert len(got["rows"]) == len(rows)
        for g, w in zip(got["rows"], -rows):
            np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(got["totals"], rows.sum(1))


def test_scan_with_a_sequence_where_tensors_go_names_it():
    # A scanned input must be a tensor (it is sliced), and so must a scan output (stacked).
    body = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["s_out"]), helper.make_node("Identity", ["s"], ["piece"])],
        "body",
        [_t("s", [3]), _t("row", [3])],
        [_t("s_out", [3]), _t("piece", [3])],
    )
    proto = _model(
        [
            helper.make_node("SplitToSequence", ["x"], ["rows"], axis=0, keepdims=0),
            helper.make_node("Scan", ["init", "rows"], ["final", "steps"], body=body, num_scan_inputs=1),
        ],
        [_t("x", [4, 3]), _t("init", [3])],
        [_t("final"), _t("steps")],
    )
    with pytest.raises(ov.InputError, match="Scan.*scanned input 0 must be a tensor, got a sequence"):
        ov.Core().read_model(proto.SerializeToString())
    body = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["s_out"]), helper.make_node("SequenceConstruct", ["row"], ["piece"])],
        "body",
        [_t("s", [3]), _t("row", [3])],
        [_t("s_out", [3]), _seq("piece")],
    )
    proto = _model(
        [helper.make_node("Scan", ["init", "x"], ["final", "steps"], body=body, num_scan_inputs=1)],
        [_t("x", [4, 3]), _t("init", [3])],
        [_t("final"), _t("steps")],
    )
    with pytest.raises(ov.InputError, match="Scan.*scan output 0 must be a tensor, the body gives a sequence"):
        ov.Core().read_model(proto.SerializeToString())


def _loop_with_if_inserting():
    """for i in range(n): if i is even: rows.append(x * i) -- the If's branch puts a value
    of the Loop's body (freed when the step ends) into the carried sequence."""
    then_branch = helper.make_graph(
        [helper.make_node("SequenceInsert", ["rows_in", "scaled"], ["with_row"])], "then", [], [_seq("with_row")]
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["rows_in"], ["unchanged"])], "else", [], [_seq("unchanged")]
    )
    body = helper.make_graph(
        [
            helper.make_node("Cast", ["i"], ["i_f"], to=FLOAT),
            helper.make_node("Mul", ["x", "i_f"], ["scaled"]),
            helper.make_node("Mod", ["i", "two"], ["parity"]),
            helper.make_node("Equal", ["parity", "zero"], ["even"]),
            helper.make_node("If", ["even"], ["rows_out"], then_branch=then_branch, else_branch=else_branch),
            helper.make_node("Identity", ["cond"], ["cond_out"]),
        ],
        "body",
        [_t("i", [], INT64), _t("cond", [], BOOL), _seq("rows_in")],
        [_t("cond_out", [], BOOL), _seq("rows_out")],
        [helper.make_tensor("two", INT64, [], [2]), helper.make_tensor("zero", INT64, [], [0])],
    )
    return _model(
        [
            helper.make_node("SequenceEmpty", [], ["empty"], dtype=FLOAT),
            helper.make_node("Loop", ["n", "", "empty"], ["rows"], body=body),
            helper.make_node("ConcatFromSequence", ["rows"], ["stacked"], axis=0, new_axis=1),
        ],
        [_t("x", [3]), _t("n", [], INT64)],
        [_t("stacked")],
    )


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_values_an_if_in_a_loop_puts_into_a_sequence_outlive_the_step(steps):
    compiled = _compile(_loop_with_if_inserting())
    x = np.array([1.0, 2.0, 3.0], np.float32)
    got = compiled({"x": x, "n": np.array(steps, np.int64)})["stacked"]
    np.testing.assert_array_equal(got, np.stack([x * i for i in range(0, steps, 2)]))
