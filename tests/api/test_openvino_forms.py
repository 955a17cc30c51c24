"""OpenVINO behaviours that code written for it relies on: shared Constants, read-only and
array-like inputs, owned output copies, default tensor names, OpenVINO's type names, rt_info
that survives save_model/read_model, and the exception types of wrong keys and inputs."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov.op import Constant


def _identity(shape=(4,), dtype=np.float32):
    p = ops.parameter(list(shape), dtype, name="x")
    return ov.Model(ops.relu(p), [p])


# ---- Constant(shared_memory=True) ------------------------------------------------------------


def test_shared_constant_is_the_callers_memory():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    const = Constant(arr, shared_memory=True)
    assert np.shares_memory(arr, const.data)
    arr[0, 0] = 42
    assert const.data[0, 0] == 42


def test_shared_constant_of_a_tensor_shares_the_tensors_memory():
    tensor = ov.Tensor(np.ones((2, 2), np.int32))
    const = Constant(tensor=tensor, shared_memory=True)
    assert np.shares_memory(tensor.data, const.data)
    assert not np.shares_memory(tensor.data, Constant(tensor=tensor).data)


def test_compiled_model_copies_a_shared_constant_when_compiled():
    weights = np.full((3,), 2.0, np.float32)
    p = ops.parameter([3], np.float32, name="x")
    model = ov.Model(ops.multiply(p, Constant(weights, shared_memory=True)), [p])
    compiled = ov.compile_model(model)
    weights[:] = 100.0  # after compile: the compiled model keeps what it was compiled with
    np.testing.assert_array_equal(compiled(np.ones(3, np.float32))[0], [2.0, 2.0, 2.0])
    # A model compiled now sees the new values (the node's value is the caller's memory).
    np.testing.assert_array_equal(ov.compile_model(model)(np.ones(3, np.float32))[0], [100.0] * 3)


def test_shared_constant_keeps_its_array_alive():
    const = Constant(np.arange(1000, dtype=np.int64), shared_memory=True)
    import gc

    gc.collect()
    np.testing.assert_array_equal(const.data, np.arange(1000))


def test_shared_constant_of_a_fortran_array_is_refused():
    with pytest.raises(RuntimeError, match="C contiguous"):
        Constant(np.asfortranarray(np.ones((2, 3), np.float32)), shared_memory=True)
    with pytest.raises(RuntimeError, match="C contiguous"):
        ov.Tensor(np.asfortranarray(np.ones((2, 3), np.float32)), shared_memory=True)


# ---- inputs and outputs ----------------------------------------------------------------------


@pytest.mark.parametrize("share_inputs", [True, False])
def test_read_only_input_is_copied_even_when_sharing(share_inputs):
    request = ov.compile_model(_identity()).create_infer_request()
    data = np.arange(4, dtype=np.float32)
    data.setflags(write=False)
    request.infer({0: data}, share_inputs=share_inputs)
    assert not np.shares_memory(request.get_input_tensor(0).data, data)


def test_writable_input_is_shared_when_asked():
    request = ov.compile_model(_identity()).create_infer_request()
    data = np.arange(4, dtype=np.float32)
    request.infer({0: data}, share_inputs=True)
    assert np.shares_memory(request.get_input_tensor(0).data, data)


def test_outputs_not_shared_own_their_data():
    request = ov.compile_model(_identity()).create_infer_request()
    copied = request.infer(np.ones(4, np.float32), share_outputs=False)[0]
    assert copied.flags["OWNDATA"]
    shared = request.infer(np.ones(4, np.float32), share_outputs=True)[0]
    assert not shared.flags["OWNDATA"]
    assert np.shares_memory(shared, request.get_output_tensor(0).data)


def test_compiled_models_infer_request_is_the_one_its_calls_run_on():
    compiled = ov.compile_model(_identity())
    data = np.arange(4, dtype=np.float32)
    compiled(data, share_inputs=True)
    assert np.shares_memory(compiled._infer_request.get_input_tensor(0).data, data)


class _ArrayLike:
    def __init__(self, values):
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return np.array(self.values, dtype=dtype)


def test_array_like_inputs_are_accepted():
    compiled = ov.compile_model(_identity())
    want = np.array([0, 1, 0, 3], np.float32)
    for inputs in (_ArrayLike([-1, 1, -2, 3]), [_ArrayLike([-1, 1, -2, 3])], {0: _ArrayLike([-1, 1, -2, 3])}):
        np.testing.assert_array_equal(compiled(inputs)[0], want)
        np.testing.assert_array_equal(compiled.create_infer_request().infer(inputs)[0], want)


def test_inputs_of_an_unknown_type_are_a_type_error():
    with pytest.raises(TypeError, match="Incompatible inputs of type: object"):
        ov.compile_model(_identity()).create_infer_request().infer(object())


def test_results_of_one_model_feed_the_next_by_tensor_name():
    a = ops.parameter([1], np.int32, name="a")
    first = ov.Model([ops.add(a, np.int32(1)), ops.add(a, np.int32(5))], [a])
    first.output(0).tensor.set_names({"left"})
    first.output(1).tensor.set_names({"right"})
    left, right = ops.parameter([1], np.int32, name="right"), ops.parameter([1], np.int32, name="left")
    second = ov.Model(ops.subtract(left, right), [left, right])
    results = ov.compile_model(first)(np.array([1], np.int32))
    assert ov.compile_model(second)(results)[0].tolist() == [4]  # right (6) - left (2)


def test_a_port_key_of_a_wrong_type_is_a_type_error_and_a_key_error():
    compiled = ov.compile_model(_identity())
    results = compiled(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="Incompatible key type for output: 2.0"):
        results[2.0]
    with pytest.raises(KeyError):
        results[2.0]
    with pytest.raises(TypeError, match="Incompatible key type for input: 0.0"):
        compiled.infer_new_request({0.0: np.ones(4, np.float32)})


def test_ovdict_refuses_assignment_as_a_mapping_does():
    results = ov.compile_model(_identity())(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="'OVDict' object does not support item assignment"):
        results[0] = 1


# ---- names -----------------------------------------------------------------------------------


def test_unnamed_inputs_and_outputs_get_their_nodes_names():
    p = ops.parameter([2], np.float32)
    model = ov.Model(ops.relu(p), [p])
    assert model.input(0).get_names() == {p.get_friendly_name()}
    result = model.get_results()[0]
    assert model.output(0).get_names() == {result.get_friendly_name()}
    compiled = ov.compile_model(model)
    out = compiled(np.ones(2, np.float32))
    assert out.names() == ({result.get_friendly_name()},)
    np.testing.assert_array_equal(out[result.get_friendly_name()], [1, 1])


def test_given_names_are_kept():
    p = ops.parameter([2], np.float32, name="x")
    relu = ops.relu(p)
    relu.output(0).get_tensor().set_names({"y"})
    model = ov.Model(relu, [p])
    assert model.input(0).get_names() == {"x"}
    assert model.output(0).get_names() == {"y"}


def test_transposed_convolution_has_openvinos_type_name():
    data = ops.parameter([1, 2, 4, 4], np.float32)
    filters = ops.constant(np.ones((2, 3, 3, 3), np.float32))
    node = ops.convolution_backprop_data(data, filters, [1, 1])
    assert node.get_type_name() == "ConvolutionBackpropData"
    assert node.get_type_info().name == "ConvolutionBackpropData"
    model = ov.Model(node, [data])
    supported = ov.Core().query_model(model, "CPU")
    assert node.get_friendly_name() in supported


def test_compiled_model_reports_its_name():
    model = _identity()
    model.set_friendly_name("net")
    assert ov.compile_model(model).get_property(ov.properties.model_name) == "net"


def test_profiling_status_is_an_enum():
    compiled = ov.Core().compile_model(_identity(), "CPU", {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    request.infer(np.ones(4, np.float32))
    assert {p.status for p in request.get_profiling_info()} == {ov.ProfilingInfo.Status.EXECUTED}


def test_comparing_a_dynamic_rank_shape_with_a_list_is_a_type_error():
    with pytest.raises(TypeError, match="Cannot compare dynamic shape with <class 'list'>"):
        ov.PartialShape.dynamic() == []  # noqa: B015
    assert ov.PartialShape([1, 2]) == [1, 2]


def test_broadcast_mismatch_names_inconsistent_shapes():
    a = ops.parameter([3, 7], np.float32)
    b = ops.parameter([2, 1], np.float32)
    with pytest.raises(RuntimeError, match="Argument shapes are inconsistent"):
        ops.add(a, b)


# ---- rt_info through save_model / read_model -------------------------------------------------


def test_rt_info_of_model_nodes_and_ports_round_trips(tmp_path):
    p = ops.parameter([2], np.float32, name="x")
    relu = ops.relu(p, name="relu")
    model = ov.Model(relu, [p], "net")
    model.set_rt_info("1", ["framework", "batch"])
    model.set_rt_info([1.5, 2.5], ["config", "mean_values"])
    model.set_rt_info(True, ["config", "reverse"])
    model.set_rt_info("plain", "note")
    relu.get_rt_info()["origin"] = "onnx"
    relu.output(0).get_rt_info()["layout"] = "N"
    ov.save_model(model, tmp_path / "m.xml")

    back = ov.Core().read_model(tmp_path / "m.xml")
    assert back.get_rt_info(["framework", "batch"]) == "1"
    assert back.get_rt_info(["config", "mean_values"]).aslist(float) == [1.5, 2.5]
    assert back.get_rt_info(["config", "reverse"]).astype(bool) is True
    assert back.get_rt_info("note") == "plain"
    assert isinstance(back.get_rt_info()["config"], dict)
    node = next(n for n in back.get_ordered_ops() if n.get_friendly_name() == "relu")
    assert node.get_rt_info()["origin"] == "onnx"
    assert node.output(0).get_rt_info()["layout"] == "N"


def test_rt_info_key_that_is_no_xml_name_is_refused(tmp_path):
    model = _identity()
    model.set_rt_info("v", "not a name")
    with pytest.raises(ValueError, match="not a valid XML element name"):
        ov.save_model(model, tmp_path / "m.xml")


def test_false_and_empty_rt_info_read_back():
    any_false = ov.OVAny("false")
    assert any_false.astype(bool) is False
    assert ov.OVAny("").aslist() == []
    with pytest.raises(ValueError):
        ov.OVAny("maybe").astype(bool)


@pytest.mark.parametrize("mode", ["numpy", "bidirectional"])
def test_broadcast_round_trips_as_openvinos_broadcast_3(tmp_path, mode):
    p = ops.parameter([1, 3], np.float32, name="x")
    model = ov.Model(ops.broadcast(p, np.array([2, 3], np.int64), broadcast_spec=mode), [p])
    ov.save_model(model, tmp_path / "b.xml")
    text = (tmp_path / "b.xml").read_text()
    assert 'type="Broadcast" version="opset3"' in text
    back = ov.Core().read_model(tmp_path / "b.xml")
    x = np.array([[1, 2, 3]], np.float32)
    np.testing.assert_array_equal(ov.compile_model(back)(x)[0], np.broadcast_to(x, (2, 3)))


@pytest.mark.parametrize(
    "mode,calc,values",
    [
        ("nearest", "sizes", np.array([6, 8], np.int64)),
        ("linear_onnx", "scales", np.array([1.5, 2.0], np.float32)),
        ("cubic", "sizes", np.array([5, 3], np.int32)),
    ],
)
def test_openvinos_interpolate_11_reads_and_matches(tmp_path, mode, calc, values):
    openvino = pytest.importorskip("openvino")
    import openvino.opset11 as ovops

    x = np.random.default_rng(0).random((1, 2, 4, 4), dtype=np.float32)
    p = ovops.parameter([1, 2, 4, 4], np.float32, name="x")
    attrs = {"mode": mode, "shape_calculation_mode": calc, "coordinate_transformation_mode": "half_pixel"}
    node = ovops.interpolate(p, values, attrs["mode"], attrs["shape_calculation_mode"], axes=[2, 3])
    node.set_attribute("coordinate_transformation_mode", "half_pixel")
    ref_model = openvino.Model(node, [p])
    openvino.save_model(ref_model, str(tmp_path / "i.xml"), compress_to_fp16=False)
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    want = openvino.compile_model(ref_model, "CPU", f32)(x)[0]

    ours = ov.Core().read_model(tmp_path / "i.xml")
    got = ov.compile_model(ours)(x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # written back as Interpolate-11, which OpenVINO reads and runs the same
    ov.save_model(ours, tmp_path / "again.xml")
    assert 'type="Interpolate" version="opset11"' in (tmp_path / "again.xml").read_text()
    again = openvino.Core().read_model(str(tmp_path / "again.xml"))
    np.testing.assert_allclose(openvino.compile_model(again, "CPU", f32)(x)[0], want, rtol=1e-5, atol=1e-5)


def test_reduction_builders_carry_their_openvino_names():
    # pytest ids, reprs and tracebacks of code parametrized over builders show these names
    for name in ("reduce_sum", "reduce_mean", "reduce_l2", "reduce_logical_and", "reduce_log_sum_exp"):
        assert getattr(ops, name).__name__ == name


def test_full_device_name_starts_with_the_processors_name():
    name = ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
    assert "aiov" in name
    try:
        with open("/proc/cpuinfo") as f:
            brand = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pytest.skip("no processor name in /proc/cpuinfo here")
    assert name.startswith(brand)
