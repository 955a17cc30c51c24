"""Shapes and sizes from models and callers are untrusted: element counts that overflow int64
(or exceed the engine's limit on one tensor) are a clear InputError naming the shape, from a
model constant, an ONNX or IR file, a packed Tensor, and an input value sent at run time
through every API; never a wrapped count, a crash or a bad_alloc."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

# Wraps to 24 in int64: [2**61 + 3, 2, 4] "equals" a 24-element shape modulo 2**64.
WRAPS_TO_24 = [2**61 + 3, 2, 4]
LIMIT = ov._core.max_tensor_elements

# kind -> (int64 value of the hostile shape operand, its length)
HOSTILE = {
    "reshape": WRAPS_TO_24,
    "expand": [2**61 + 3, 2, 1],  # broadcast with x[24]: [2**61 + 3, 2, 24]
    "constant_of_shape": WRAPS_TO_24,
    "tile": [2**62],  # 24 * 2**62 wraps
    "pad": [2**62 + 1],  # 24 + 2 * (2**62 + 1) wraps
    "too_large": [LIMIT, 2],  # no wrap, but beyond the limit on one tensor
}


def _consumer(kind, x, operand):
    if kind == "reshape":
        return ops.reshape(x, operand, False)
    if kind == "expand":
        return ops.broadcast(x, operand, broadcast_spec="BIDIRECTIONAL")
    if kind in ("constant_of_shape", "too_large"):
        return ops.broadcast(ops.constant(np.float32(1)), operand)
    if kind == "tile":
        return ops.tile(x, operand)
    if kind == "pad":
        return ops.pad(x, operand, operand, "constant")
    raise AssertionError(kind)


def _runtime_model(kind):
    """x[24] and the hostile operand as a model input; a reduction reads the result."""
    x = ops.parameter([24], np.float32, name="x")
    operand = ops.parameter([len(HOSTILE[kind])], np.int64, name="shape")
    out = ops.reduce_sum(_consumer(kind, x, operand), [0], keep_dims=False)
    return ov.Model([out], [x, operand])


def _inputs(kind):
    return [np.ones(24, np.float32), np.array(HOSTILE[kind], np.int64)]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_overflowing_shape_from_a_model_constant_is_an_input_error(kind):
    x = ops.parameter([24], np.float32, name="x")
    with pytest.raises(ov.InputError, match=r"overflows|too large"):
        _consumer(kind, x, ops.constant(np.array(HOSTILE[kind], np.int64)))


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_overflowing_shape_sent_at_run_time_through_compiled_call(kind):
    compiled = ov.compile_model(_runtime_model(kind))
    with pytest.raises(ov.InputError, match=r"overflows|too large"):
        compiled(_inputs(kind))
    request = compiled.create_infer_request()
    with pytest.raises(ov.InputError, match=r"overflows|too large"):
        request.infer(_inputs(kind))
    # The model still works for a sane value afterwards.
    sane = {
        "reshape": [24, 1, 1],
        "expand": [1, 2, 1],
        "constant_of_shape": [3, 2, 1],
        "tile": [2],
        "pad": [1],
        "too_large": [3, 2],
    }[kind]
    result = compiled([np.ones(24, np.float32), np.array(sane, np.int64)])[0]
    assert np.all(np.isfinite(result))


@pytest.mark.parametrize("kind", ["reshape", "tile", "too_large"])
def test_overflowing_shape_through_async_infer_queue(kind):
    compiled = ov.compile_model(_runtime_model(kind))
    queue = ov.AsyncInferQueue(compiled, 2)
    for _ in range(4):
        queue.start_async(_inputs(kind))
    with pytest.raises(ov.JobError) as info:
        queue.wait_all()
    assert len(info.value.errors) == 4
    assert all(isinstance(e, ov.InputError) for _, _, e in info.value.errors)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["reshape", "pad", "too_large"])
async def test_overflowing_shape_through_aio(kind):
    compiled = await aio.compile_model(_runtime_model(kind), "CPU")
    with pytest.raises(ov.InputError, match=r"overflows|too large"):
        await compiled(_inputs(kind))
    request = compiled.create_infer_request()
    with pytest.raises(ov.InputError, match=r"overflows|too large"):
        await request.infer(_inputs(kind))


def _onnx_operand(kind):
    value = HOSTILE[kind] * 2 if kind == "pad" else HOSTILE[kind]  # ONNX pads: begins, then ends
    return np.array(value, np.int64)


def _onnx_model(kind, runtime):
    """An ONNX graph whose shape operand is an initializer (runtime=False) or an input."""
    nodes, inits = [], []
    value = _onnx_operand(kind)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [24])]
    if runtime:
        inputs.append(helper.make_tensor_value_info("s", TensorProto.INT64, [len(value)]))
    else:
        inits.append(onnx.numpy_helper.from_array(value, "s"))
    if kind == "reshape":
        nodes.append(helper.make_node("Reshape", ["x", "s"], ["y"]))
    elif kind == "expand":
        nodes.append(helper.make_node("Expand", ["x", "s"], ["y"]))
    elif kind in ("constant_of_shape", "too_large"):
        nodes.append(helper.make_node("ConstantOfShape", ["s"], ["y"]))
    elif kind == "tile":
        nodes.append(helper.make_node("Tile", ["x", "s"], ["y"]))
    elif kind == "pad":
        nodes.append(helper.make_node("Pad", ["x", "s"], ["y"]))
    graph = helper.make_graph(
        nodes, "hostile", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_overflowing_shape_in_an_onnx_file(kind):
    with pytest.raises(ov.InputError, match=r"overflows|too large"):
        ov.compile_model(ov.Core().read_model(_onnx_model(kind, runtime=False)))


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_overflowing_shape_sent_to_an_onnx_model(kind):
    compiled = ov.compile_model(ov.Core().read_model(_onnx_model(kind, runtime=True)))
    with pytest.raises(ov.InputError, match=r"overflows|too large"):
        compiled([np.ones(24, np.float32), _onnx_operand(kind)])


def _ir_with_const(tmp_path, shape, size):
    xml = f"""<?xml version="1.0"?>
<net name="c" version="11">
  <layers>
    <layer id="0" name="w" type="Const" version="opset1">
      <data element_type="f32" shape="{",".join(map(str, shape))}" offset="0" size="{size}"/>
      <output><port id="0" precision="FP32"/></output>
    </layer>
    <layer id="1" name="out" type="Result" version="opset1">
      <input><port id="0"/></input>
    </layer>
  </layers>
  <edges><edge from-layer="0" from-port="0" to-layer="1" to-port="0"/></edges>
</net>"""
    (tmp_path / "m.xml").write_text(xml)
    (tmp_path / "m.bin").write_bytes(bytes(96))
    return str(tmp_path / "m.xml")


def test_ir_const_whose_size_agrees_with_its_shape_only_modulo_2_64(tmp_path):
    # 2**62 + 6 f32 elements need 2**64 + 24 bytes: 24 modulo 2**64.
    path = _ir_with_const(tmp_path, [2**62 + 6], 24)
    with pytest.raises(ov.InputError, match="too large"):
        ov.Core().read_model(path)
    # The honest version of the file still loads.
    ok = _ir_with_const(tmp_path, [6], 24)
    np.testing.assert_array_equal(ov.compile_model(ov.Core().read_model(ok))([])[0], np.zeros(6, np.float32))


def test_packed_tensor_whose_shape_overflows():
    with pytest.raises(ov.InputError, match="too large"):
        ov.Tensor(np.zeros(4, np.uint8), [2**61 + 1, 8], ov.Type.u4)
    with pytest.raises(ov.InputError, match="too large"):
        ov.Tensor(ov.Type.u4, [2**61 + 1, 8])
    with pytest.raises(ov.InputError, match="too large"):
        ov.Tensor(np.zeros(4, np.float32), [2**62 + 1, 4], ov.Type.f32)
    t = ov.Tensor(np.zeros(4, np.uint8), [8], ov.Type.u4)
    assert t.get_byte_size() == 4


def test_packed_input_whose_shape_overflows_is_refused_by_the_request():
    x = ops.parameter([-1, 8], ov.Type.u4, name="x")
    compiled = ov.compile_model(ov.Model([ops.convert(x, "f32")], [x]))
    request = compiled.create_infer_request()
    tensor = ov.Tensor(np.zeros(4, np.uint8), [1, 8], ov.Type.u4)
    tensor._shape = ov.Shape([2**61 + 1, 8])  # a Tensor lying about its shape
    with pytest.raises(ov.InputError, match=r"too large|needs"):
        request.set_input_tensor(tensor)


def test_a_huge_but_valid_dimension_with_zero_elements_is_fine():
    x = ops.parameter([0, 2**40], np.float32, name="x")
    compiled = ov.compile_model(ov.Model([ops.relu(x)], [x]))
    assert compiled(np.zeros((0, 2**40), np.float32))[0].shape == (0, 2**40)


@pytest.mark.parametrize("start,stop,step", [(0, 2**62, 1), (0.0, 1e30, 1e-30)])
def test_range_with_too_many_elements_is_an_input_error(start, stop, step):
    dtype = np.int64 if isinstance(start, int) else np.float32
    with pytest.raises(ov.InputError, match="too many elements"):
        ops.range(ops.constant(dtype(start)), ops.constant(dtype(stop)), ops.constant(dtype(step)))


def test_limit_is_exposed_and_sane():
    assert 2**32 <= LIMIT < 2**62


@pytest.mark.parametrize(
    "pads,strides,dilations",
    [
        ([2**62, 2**62], [1, 1], [1, 1]),  # the padded size overflows
        ([0, 0], [1, 1], [2**62, 2**62]),  # the window's extent overflows
        ([2**62, 0], [2**62, 2**62], [1, 1]),  # huge everything, no overflow: a clean result or error
    ],
)
def test_window_attributes_whose_sizes_overflow(pads, strides, dilations):
    x = ops.parameter([1, 1, 8, 8], np.float32, name="x")
    try:
        pool = ops.max_pool(x, strides, dilations, pads, pads, [3, 3])
    except ov.InputError as exc:
        assert "overflows" in str(exc) or "too large" in str(exc) or "larger than" in str(exc)
        return
    shape = pool.get_output_partial_shape(0).to_shape()
    assert all(0 <= d <= LIMIT for d in shape)
