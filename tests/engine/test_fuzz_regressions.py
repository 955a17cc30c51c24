"""Every crash, hang or unclear error the fuzzer (tests/fuzz) found, as a regression test.

Each case runs in a child process (tests/fuzz/harness.py), so a native crash fails the test
instead of killing pytest. Native bugs not fixed yet are xfail(strict=True): when the fix
lands the test passes unexpectedly and the mark must go."""

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.fuzz import harness  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fuzz harness forks a child per case")


class NativeCrash(AssertionError):
    """The case crashed or hung: what the xfail marks below expect (raises=NativeCrash), so
    a mistake in a reproducer (a NameError, say) still fails its test."""


def _run(body, timeout=120.0):
    cls, detail = harness.run_fresh(body, timeout)
    if cls in ("crash", "hang"):
        raise NativeCrash(f"{cls}: {detail}")
    assert cls in ("success", "clean"), f"{cls}: {detail}"
    return cls, detail


RESHAPE_TO_A_WRAPPING_SHAPE = """
import numpy as np
import aiov as ov
import aiov.opset13 as ops
x = ops.parameter([2, 3, 4], np.float32, name="x")
target = ops.constant(np.array([2, 2 ** 61 + 3, 4], np.int64))
r = ops.reshape(x, target, special_zero=False)
y = ops.transpose(r, [2, 0, 1])
ov.compile_model(ov.Model(y, [x]))(np.ones((2, 3, 4), np.float32))
"""


def test_reshape_to_a_wrapping_shape_then_transpose():
    # Found by the fuzzer: seed reshape_transpose, initializer mutated to [2, 2**61+3, 4].
    _run(RESHAPE_TO_A_WRAPPING_SHAPE)


EXPAND_TO_RANK_70 = """
import numpy as np
import aiov as ov
import aiov.opset13 as ops
x = ops.parameter([3, 1], np.float32, name="x")
try:
    y = ops.broadcast(x, ops.constant(np.ones(70, np.int64)), broadcast_spec="BIDIRECTIONAL")
    ov.compile_model(ov.Model(y, [x]))(np.ones((3, 1), np.float32))
except ov.InputError as exc:
    assert "rank 70 is above the 64" in str(exc), exc
else:
    raise AssertionError("a rank-70 output was made")
"""


def test_an_expand_target_longer_than_the_rank_limit():
    # Found by the fuzzer: seed expand_tile, its shape initializer grown to 70 entries; the
    # output (rank 70) reached numpy, which made an object array of it and crashed freeing it.
    _run(EXPAND_TO_RANK_70)


def test_onnx_elem_type_mutations_give_clean_errors():
    # Found by the fuzzer: graph inputs of complex/float8/int4 types were a bare TypeError.
    assert (
        _run("""
import aiov as ov
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT4E2M1, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
ov.Core().read_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
""")[0]
        == "clean"
    )


CONSTANT_OF_SHAPE_FROM_INPUT = """
import numpy as np
import aiov as ov
from onnx import TensorProto, helper
graph = helper.make_graph(
    [helper.make_node("ConstantOfShape", ["shape"], ["c"]), helper.make_node("ReduceSum", ["c"], ["y"], keepdims=0)],
    "g", [helper.make_tensor_value_info("shape", TensorProto.INT64, [3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
compiled = ov.compile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
shape = np.array({shape!r}, np.int64)   # as a client could send it
API = {api!r}
if API == "sync":
    compiled({{"shape": shape}})
elif API == "request":
    compiled.create_infer_request().infer([shape])
elif API == "queue":
    queue = ov.AsyncInferQueue(compiled, 2)
    queue.start_async({{"shape": shape}})
    queue.wait_all()
else:
    import asyncio
    from aiov import aio
    asyncio.run(aio.CompiledModel(compiled)({{"shape": shape}}))
"""


@pytest.mark.parametrize("api", ["sync", "request", "queue", "aio"])
@pytest.mark.parametrize("shape", [[3, 2**61 + 3, 2**62], [2**61 + 3, 1, 1]], ids=["count-wraps", "bytes-wrap"])
def test_a_client_shape_value_that_wraps_int64(api, shape):
    # Found by the fuzzer's input cases (constant_of_shape_input model, every API); the
    # second shape has an element count that fits int64 and a byte size that does not.
    _run(CONSTANT_OF_SHAPE_FROM_INPUT.format(api=api, shape=shape))


CONV_PADS_THAT_WRAP = """
import numpy as np
import aiov as ov
from onnx import TensorProto, helper, numpy_helper
w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")
nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 2 ** 62]),
         helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
ov.compile_model(model)(np.ones((1, 2, 6, 6), np.float32))
"""


def test_conv_pads_that_make_the_output_shape_wrap():
    # Found by the fuzzer: seed conv_pool, Conv.pads mutated to [1, 1, 1, 2**62]; the Conv
    # output [1, 4, 6, 2**62+5] wraps and the MaxPool after it segfaults.
    _run(CONV_PADS_THAT_WRAP)


# A ConvTranspose of filters [4, 1, 3, 3] over x [1, 4, 3, 3] with the given attributes; `more`
# edits the node further (what the fuzzer mutated that make_node cannot say).
CONV_TRANSPOSE = """
import numpy as np
import aiov as ov
from onnx import TensorProto, helper, numpy_helper
w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], {attributes})
{more}
graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
ov.compile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())(
    np.ones((1, 4, 3, 3), np.float32))
"""


def test_conv_transpose_with_empty_pads():
    # Found by the fuzzer: seed conv_transpose, pads mutated to [].
    _run(
        CONV_TRANSPOSE.format(
            attributes="dilations=[1, 1], group=2, kernel_shape=[3, 3], output_padding=[1, 1], strides=[2, 2]",
            more='node.attribute.append(helper.make_attribute("pads", [], attr_type=helper.AttributeProto.INTS))',
        )
    )


EMPTY_SEQUENCE_THROUGH_BERT = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import aiov as ov
import model_builders as model_zoo
compiled = ov.compile_model(model_zoo.bert_encoder(hidden=16, heads=2, layers=1).SerializeToString())
compiled({{"x": np.zeros((1, 0, 16), np.float32), "mask": np.ones((1, 0), np.int64)}})
"""


def test_a_zero_length_sequence_through_an_encoder():
    # Found by the fuzzer: seed zoo_bert, the sequence dimension mutated to 0; any client
    # of a dynamic-length model can send it.
    _run(EMPTY_SEQUENCE_THROUGH_BERT.format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_conv_transpose_with_group_zero():
    # Found by the CI fuzz slice: seed conv_transpose, group mutated to 0.
    _run(CONV_TRANSPOSE.format(attributes="kernel_shape=[3, 3], strides=[2, 2], group=0", more=""))


# Found by the 65-minute campaign (seed 22467): a graph input declared as a shape tensor of
# 2**31 entries gave its consumer a rank of 2**31, allocated as a list of dimensions (bad_alloc
# under the fuzzer's memory cap; without a cap, the OOM killer). Each consumer that takes its
# output rank or output count from such a length must refuse it by name.
HUGE_SHAPE_INPUT = """
import onnx
from onnx import TensorProto, helper
import aiov as ov
op = {op!r}
inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])] if op != "ConstantOfShape" else []
inputs.append(helper.make_tensor_value_info("s", TensorProto.INT64, [2 ** 31]))
node = helper.make_node(op, [i.name for i in inputs], ["y"], **({{"axis": 0}} if op == "Split" else {{}}))
graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
try:
    ov.Core().read_model(model.SerializeToString())
except ov.InputError as exc:
    assert {fragment!r} in str(exc), str(exc)
else:
    raise AssertionError("a shape input of 2**31 entries was accepted")
"""


@pytest.mark.parametrize(
    "op, fragment",
    [
        ("ConstantOfShape", "2147483648 dimensions"),
        ("Reshape", "2147483648 dimensions"),
        ("Split", "2147483648 entries"),
    ],
)
def test_a_shape_input_of_two_billion_entries(op, fragment):
    cls, detail = _run(HUGE_SHAPE_INPUT.format(op=op, fragment=fragment))
    assert cls == "success", detail


def _mlp_blob():
    import aiov as ov

    from tests import model_builders

    return ov.compile_model(model_builders.mlp((4, 8, 2)).SerializeToString()).export_model()


@pytest.mark.parametrize(
    "where, key, value, message",
    [
        ("header", "config", None, "header's 'config' should be an object, got nothing"),
        ("header", "model", [], "header's 'model' should be an object, got list"),
        ("header", "encrypted", "no", "header's 'encrypted' should be true or false, got str"),
        ("model", "input_layouts", None, "model header's 'input_layouts' should be a list, got nothing"),
        ("model", "results", [3], "model header's 'results' should list strings"),
        ("model", "name", 1.5, "model header's 'name' should be a string, got float"),
    ],
)
def test_a_blob_header_field_of_another_type_is_named(where, key, value, message):
    # Found by the fuzzer's header mutations (checksum made good): a null or mistyped field was
    # "its header cannot be read ('NoneType' object is not iterable)".
    import aiov as ov

    from tests.fuzz import mutate_blob

    blob = _mlp_blob()
    header, graphs = mutate_blob.split(blob)
    (header if where == "header" else header["model"])[key] = value
    with pytest.raises(ov.InputError, match=re.escape(message)):
        ov.Core().import_model(mutate_blob.frame(header, graphs, mutate_blob.version(blob)))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("INFERENCE_NUM_THREADS", "bf16", "expected a thread count (0: every core), got 'bf16'"),
        ("INFERENCE_NUM_THREADS", float("inf"), "expected a thread count (0: every core), got inf"),
        (
            "INFERENCE_NUM_THREADS",
            2**63,
            "expected a thread count (0: every core) of at most 2147483647, got 9223372036854775808",
        ),
        ("NUM_STREAMS", float("inf"), "expected a count, AUTO or NUMA, got inf"),
        ("AIOV_PLAN_CACHE_BYTES", "lots", "expected a byte budget, got 'lots'"),
        ("PERFORMANCE_HINT_NUM_REQUESTS", 2**64, "expected a count (0: no limit) of at most 9223372036854775807"),
    ],
)
def test_an_integer_property_out_of_its_type_is_named(key, value, message):
    # Found by the fuzzer's blob-header mutations (the header's config is compiled with): these
    # were a bare ValueError/OverflowError from int(), or a nanobind TypeError at compile.
    import aiov as ov

    with pytest.raises(ov.InputError, match=re.escape(f"{key}: {message}")):
        ov.Core().set_property({key: value})


INTEGER_PRODUCT_PAST_INT32 = """
import numpy as np
import aiov as ov
from onnx import TensorProto, helper, numpy_helper
k = 70000  # 255 * -128 * k is past int32: the s32 accumulator wraps, as ONNX's int32 output does
w = numpy_helper.from_array(np.full((k, 2), -128, np.int8), "w")
node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, k])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, None)], [w])
compiled = ov.compile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
got = compiled([np.full((1, k), 255, np.uint8)])[0]
want = np.array(255 * -128 * k, np.int64).astype(np.int32)
assert ov._core.gemm_int8_isa() == {isa!r}, ov._core.gemm_int8_isa()
assert got.tolist() == [[int(want)] * 2], (got, want)
"""


@pytest.mark.parametrize("isa", ["scalar", "native"])
def test_an_integer_product_past_int32_wraps_on_every_path(isa, monkeypatch):
    # The portable int8 kernel summed into int32: past K = 65793 that overflowed, undefined
    # behaviour (UBSan aborts under tools/sanitize.sh) where VNNI and AMX wrap.
    import aiov as ov

    if isa == "scalar":
        monkeypatch.setenv("AIOV_INT8_ISA", "scalar")
    else:
        monkeypatch.delenv("AIOV_INT8_ISA", raising=False)
        isa = ov._core.gemm_int8_isa()
    cls, detail = _run(INTEGER_PRODUCT_PAST_INT32.format(isa=isa))
    assert cls == "success", detail
