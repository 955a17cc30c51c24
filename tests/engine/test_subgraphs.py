"""Engine subgraphs (Node bodies) built through aiov._core directly, as a reader other than
ONNX's would: the nesting bound holds whoever builds the graph."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov import _core


def _if_over(body):
    """A body whose If (condition constant true) runs `body` on the body's one input."""
    x = ops.parameter([2], np.float32)
    cond = ops.constant(np.array(True))
    node = _core.make_node(
        "If", [(cond._native, 0), (x._native, 0)], {}, "", {"then_branch": body, "else_branch": body}
    )
    return _core.make_body([x._native], [(node, 0)]), node


def test_bodies_nested_deeper_than_the_engine_runs_are_refused():
    x = ops.parameter([2], np.float32)
    body = _core.make_body([x._native], [(ops.relu(x)._native, 0)])
    with pytest.raises(ov.InputError, match="nested 33 deep; aiov runs at most 32"):
        for _ in range(40):
            body, _ = _if_over(body)


def test_a_node_with_bodies_runs_after_a_clone():
    x = ops.parameter([2], np.float32)
    body = _core.make_body([x._native], [(ops.relu(x)._native, 0)])
    for _ in range(3):
        body, _ = _if_over(body)
    _, node = _if_over(body)
    outer = ov.Model([ov.Node(node).output(0)], [ov.Node(node.input_value(1)[0])])
    compiled = ov.compile_model(outer.clone())  # compile clones again: bodies travel with nodes
    np.testing.assert_array_equal(compiled(np.array([-1.0, 2.0], np.float32))[0], [0.0, 2.0])
