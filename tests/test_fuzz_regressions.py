"""Every crash, hang or unclear error the fuzzer (tests/fuzz) found, as a regression test.

Each case runs in a child process (tests/fuzz/harness.py), so a native crash fails the test
instead of killing pytest. Native bugs not fixed yet are xfail(strict=True): when the fix
lands the test passes unexpectedly and the mark must go."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fuzz import harness  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fuzz harness forks a child per case")

SHAPE_OVERFLOW = ("native: a shape whose element count wraps int64 ([2, 2**61+3, 4] 'equals' 24) passes the "
                  "size checks and crashes a kernel; checked shape arithmetic is h6's fix (issue 18, item 1)")


def _run(body, timeout=120.0):
    cls, detail = harness.run_fresh(body, timeout)
    assert cls in ("success", "clean"), f"{cls}: {detail}"
    return cls, detail


RESHAPE_TO_A_WRAPPING_SHAPE = """
import aiov as ov
import aiov.opset13 as ops
x = ops.parameter([2, 3, 4], np.float32, name="x")
target = ops.constant(np.array([2, 2 ** 61 + 3, 4], np.int64))
r = ops.reshape(x, target, special_zero=False)
y = ops.transpose(r, [2, 0, 1])
ov.compile_model(ov.Model(y, [x]))(np.ones((2, 3, 4), np.float32))
"""


@pytest.mark.xfail(strict=True, reason=SHAPE_OVERFLOW)
def test_reshape_to_a_wrapping_shape_then_transpose():
    # Found by the fuzzer: seed reshape_transpose, initializer mutated to [2, 2**61+3, 4].
    _run(RESHAPE_TO_A_WRAPPING_SHAPE)


def test_onnx_elem_type_mutations_give_clean_errors():
    # Found by the fuzzer: graph inputs of complex/float8/int4 types were a bare TypeError.
    assert _run("""
import aiov as ov
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT4E2M1, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
ov.Core().read_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
""")[0] == "clean"
