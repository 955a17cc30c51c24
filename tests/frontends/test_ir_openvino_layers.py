"""OpenVINO IR as OpenVINO writes it: the layers CNN exports use (Convolution,
GroupConvolution, ConvolutionBackpropData, MaxPool-8 with its indices output, AvgPool's
exclude-pad, HardSigmoid with input alphas) and the stateful layers (ReadValue/Assign).
IR saved by the real openvino (skipped when it is not installed) and by aiov's own writer is
read back by aiov and compared with what produced it; aiov's IR is also run by openvino."""

import os

import numpy as np
import pytest

import aiov

from model_builders import accumulator_model

ZOO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
CNNS = ["resnet", "mobilenet_v2", "mobilenet_v3", "shufflenet", "densenet", "efficientnet"]


def _openvino():
    return pytest.importorskip("openvino")


def _zoo(name):
    npz = np.load(os.path.join(ZOO, name + ".npz"))
    return os.path.join(ZOO, name + ".onnx"), npz["in0.pixels"], npz["out0.logits"]


def _openvino_run(ov, xml, feeds):
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(feeds)[0]


def _close(got, want, rtol=1e-4):
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("name", CNNS)
def test_cnn_ir_saved_by_openvino_reads_and_matches_openvino(tmp_path, name):
    ov = _openvino()
    onnx_path, x, _ = _zoo(name)
    xml = str(tmp_path / f"{name}.xml")
    ov.save_model(ov.convert_model(onnx_path), xml)  # f16-compressed weights, as usual
    got = aiov.compile_model(aiov.Core().read_model(xml))([x])[0]
    _close(got, _openvino_run(ov, xml, [x]))


@pytest.mark.parametrize("name", CNNS)
def test_cnn_ir_saved_by_aiov_reads_back_in_aiov_and_openvino(tmp_path, name):
    onnx_path, x, want = _zoo(name)
    xml = str(tmp_path / f"{name}.xml")
    aiov.save_model(aiov.Core().read_model(onnx_path), xml)
    _close(aiov.compile_model(aiov.Core().read_model(xml))([x])[0], want)
    ov = pytest.importorskip("openvino")
    _close(_openvino_run(ov, xml, [x]), want)


def _save_openvino_graph(ov, tmp_path, build, shape):
    """A one-input model built with openvino's opset, saved as IR; returns (xml, input)."""
    ops = ov.opset14
    x = ops.parameter(shape, np.float32, name="x")
    model = ov.Model([build(ops, x)], [x])
    xml = str(tmp_path / "layer.xml")
    ov.save_model(model, xml, compress_to_fp16=False)
    data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return xml, data


def _filters(*shape):
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32) * 0.3


LAYERS = {
    "group_convolution": (
        [1, 4, 7, 7],
        lambda ops, x: ops.group_convolution(x, _filters(2, 3, 2, 3, 3), [2, 1], [1, 0], [0, 1], [1, 2]),
    ),
    "convolution_backprop_data": (
        [1, 3, 5, 5],
        lambda ops, x: ops.convolution_backprop_data(
            x, _filters(3, 2, 3, 3), [2, 2], pads_begin=[1, 1], pads_end=[0, 0], dilations=[1, 1]
        ),
    ),
    "group_convolution_backprop_data": (
        [1, 4, 5, 5],
        lambda ops, x: ops.group_convolution_backprop_data(
            x, _filters(2, 2, 3, 3, 3), [2, 2], pads_begin=[0, 1], pads_end=[1, 0], output_padding=[1, 1]
        ),
    ),
    "max_pool_8_ceil": (
        [1, 2, 8, 8],
        lambda ops, x: ops.max_pool(x, [2, 2], [1, 1], [0, 0], [1, 1], [3, 3], "ceil").output(0),
    ),
    "max_pool_14_ceil_torch": (
        [1, 2, 9, 9],
        lambda ops, x: ops.max_pool(x, [2, 2], [1, 1], [1, 1], [1, 1], [3, 3], "ceil_torch").output(0),
    ),
    "avg_pool_exclude_pad": (
        [1, 2, 7, 7],
        lambda ops, x: ops.avg_pool(x, [2, 2], [1, 1], [1, 1], [3, 3], True),
    ),
    "avg_pool_include_pad": (
        [1, 2, 7, 7],
        lambda ops, x: ops.avg_pool(x, [2, 2], [1, 1], [1, 1], [3, 3], False),
    ),
    "hard_sigmoid": (
        [2, 5],
        lambda ops, x: ops.hard_sigmoid(x, np.float32(0.3), np.float32(0.4)),
    ),
    "multiply_add_broadcast_reshape_special_zero": (
        [2, 3, 4],
        lambda ops, x: ops.reshape(
            ops.add(ops.multiply(x, _filters(3, 1)), _filters(4)), np.array([0, -1], np.int64), True
        ),
    ),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_openvino_layer_reads_and_matches(tmp_path, layer):
    ov = _openvino()
    shape, build = LAYERS[layer]
    xml, x = _save_openvino_graph(ov, tmp_path, build, shape)
    got = aiov.compile_model(aiov.Core().read_model(xml))([x])[0]
    want = _openvino_run(ov, xml, [x])
    assert got.shape == want.shape
    _close(got, want, 1e-5)
    # aiov writes it back in a form both read the same way.
    again = str(tmp_path / "again.xml")
    aiov.save_model(aiov.Core().read_model(xml), again)
    _close(aiov.compile_model(aiov.Core().read_model(again))([x])[0], want, 1e-5)
    _close(_openvino_run(ov, again, [x]), want, 1e-5)


@pytest.mark.parametrize("axis, index_type", [(0, "i64"), (2, "i32"), (1, "i64")])
def test_max_pool_indices_read_and_match(tmp_path, axis, index_type):
    ov = _openvino()
    ops = ov.opset14
    x = ops.parameter([2, 3, 5, 5], np.float32, name="x")
    pool = ops.max_pool(x, [2, 2], [1, 1], [1, 0], [0, 1], [3, 3], "ceil", index_element_type=index_type, axis=axis)
    model = ov.Model([pool.output(0), pool.output(1)], [x])
    xml = str(tmp_path / "pool.xml")
    ov.save_model(model, xml)
    data = np.random.default_rng(3).standard_normal((2, 3, 5, 5)).astype(np.float32)
    want = ov.compile_model(xml, "CPU")([data])
    got = aiov.compile_model(aiov.Core().read_model(xml))([data])
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1].dtype == np.dtype(index_type.replace("i", "int"))
    np.testing.assert_array_equal(got[1], want[1])


# ---- stateful IR -----------------------------------------------------------------------------


def _run_three(compiled):
    request = compiled.create_infer_request()
    return [request.infer([np.full(4, i, np.float32)])[0].copy() for i in (1, 2, 3)]


def test_stateful_ir_round_trip_in_aiov(tmp_path):
    xml = str(tmp_path / "state.xml")
    aiov.save_model(accumulator_model(), xml)
    model = aiov.Core().read_model(xml)
    assert [s.get_type_name() for s in model.get_sinks()] == ["Assign"]
    assert [v.info.variable_id for v in model.get_variables()] == ["acc"]
    outs = _run_three(aiov.compile_model(model))
    np.testing.assert_array_equal(outs[-1], np.full(4, 6, np.float32))


def test_stateful_ir_saved_by_openvino_runs_like_openvino(tmp_path):
    ov = _openvino()
    ops = ov.opset13
    x = ops.parameter([4], np.float32, name="x")
    state = ops.read_value(ops.constant(np.full(4, 0.5, np.float32)), "acc", np.float32, [4])
    total = ops.multiply(ops.add(state, x), np.float32(0.5))
    model = ov.Model([ops.result(total)], [ops.assign(total, "acc")], [x])
    xml = str(tmp_path / "ov_state.xml")
    ov.save_model(model, xml, compress_to_fp16=False)
    want = _run_three(ov.Core().compile_model(xml, "CPU"))
    got = _run_three(aiov.compile_model(aiov.Core().read_model(xml)))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_stateful_ir_saved_by_aiov_runs_in_openvino(tmp_path):
    ov = _openvino()
    xml = str(tmp_path / "state.xml")
    aiov.save_model(accumulator_model(), xml)
    want = _run_three(aiov.compile_model(aiov.Core().read_model(xml)))
    got = _run_three(ov.Core().compile_model(xml, "CPU"))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize(
    "rounding, size, want",
    # kernel 2, stride 2, pads 1/1: 'ceil' keeps a last window starting in the end padding,
    # 'ceil_torch' drops it (as ONNX's ceil_mode does).
    [("floor", 4, 3), ("ceil", 4, 3), ("ceil_torch", 4, 3), ("floor", 5, 3), ("ceil", 5, 4), ("ceil_torch", 5, 3)],
)
def test_pool_rounding_modes_follow_openvino(rounding, size, want):
    import aiov.opset14 as ops

    x = ops.parameter([1, 1, size, size], np.float32, name="x")
    pool = ops.max_pool(x, [2, 2], [1, 1], [1, 1], [1, 1], [2, 2], rounding)
    assert list(pool.get_output_partial_shape(0).to_shape()) == [1, 1, want, want]
