"""OpenVINO IR (.xml/.bin) frontend: aiov -> IR -> aiov round trips, and (when the real
openvino is installed) IR exchanged with OpenVINO in both directions."""

import os
import threading

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov.frontends.ir import read_ir, save_ir

RNG = np.random.default_rng(1234)


def _w(*shape, dtype=np.float32, scale=0.1):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def _mlp(batch=-1, sizes=(16, 32, 32, 10)):
    """x[batch, 16] -> (Linear + ReLU) x 2 -> Linear -> Softmax; output named "probs"."""
    x = ops.parameter([batch, sizes[0]], np.float32, name="x")
    x.output(0).set_names({"x"})
    h = x
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        h = ops.add(ops.matmul(h, _w(k, n)), _w(n), name=f"fc{i}")
        if i < len(sizes) - 2:
            h = ops.relu(h, name=f"relu{i}")
    out = ops.softmax(h, -1, name="softmax")
    model = ov.Model(out, [x], "mlp")
    model.outputs[0].tensor.set_names({"probs"})
    return model


def _all_ops_model():
    """Every op the IR frontend maps, on a [?, 4] input (plus f16 weights behind a Convert)."""
    x = ops.parameter([-1, 4], np.float32, name="x")
    x.output(0).set_names({"x"})
    pos = ops.add(ops.absolute(x), 0.5)
    outs = [
        ops.subtract(x, _w(4)),
        ops.multiply(x, _w(1, 4)),
        ops.divide(x, 3.0),
        ops.maximum(x, 0.1),
        ops.minimum(x, -0.1),
        ops.power(pos, 1.5),
        ops.negative(x),
        ops.relu(x),
        ops.sigmoid(x),
        ops.tanh(x),
        ops.exp(x),
        ops.log(pos),
        ops.sqrt(pos),
        ops.matmul(x, ops.convert(ops.constant(_w(3, 4, dtype=np.float16)), "f32"), transpose_b=True),
        ops.reshape(x, [0, 2, 2], special_zero=True),
        ops.reshape(x, [-1], special_zero=False),
        ops.concat([x, ops.negative(x)], -1),
        ops.softmax(x, 1),
        ops.convert(ops.multiply(x, 10.0), "i32"),
    ]
    model = ov.Model(outs, [x], "all_ops")
    for i, port in enumerate(model.outputs):
        port.tensor.set_names({f"out{i}"})
    return model


def _run(model_or_compiled, inputs):
    compiled = (
        model_or_compiled
        if isinstance(model_or_compiled, ov.CompiledModel)
        else ov.compile_model(model_or_compiled, "CPU")
    )
    result = compiled(inputs)
    return [np.array(result[i]) for i in range(len(compiled.outputs))]


def _assert_same(got, want, rtol=1e-5, atol=1e-6):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# ---- aiov -> IR -> aiov (no openvino needed) ------------------------------------------------


def test_round_trip_mlp(tmp_path):
    model = _mlp(batch=2)
    path = tmp_path / "mlp.xml"
    ov.save_model(model, str(path))
    assert path.exists() and (tmp_path / "mlp.bin").exists()
    loaded = ov.Core().read_model(str(path))
    assert loaded.get_friendly_name() == "mlp"
    assert [o.get_type_name() for o in loaded.get_ordered_ops()] == [o.get_type_name() for o in model.get_ordered_ops()]
    assert [o.get_friendly_name() for o in loaded.get_ordered_ops() if o.get_type_name() != "Constant"] == [
        o.get_friendly_name() for o in model.get_ordered_ops() if o.get_type_name() != "Constant"
    ]
    assert loaded.input().get_partial_shape() == ov.PartialShape([2, 16])
    assert loaded.output().get_partial_shape() == ov.PartialShape([2, 10])
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    _assert_same(_run(loaded, x), _run(model, x), rtol=0, atol=0)


def test_round_trip_dynamic_batch(tmp_path):
    model = _mlp(batch=-1)
    path = tmp_path / "dyn.xml"
    ov.serialize(model, str(path))
    loaded = ov.Core().read_model(path)  # a PathLike works too
    assert loaded.is_dynamic()
    assert str(loaded.input().get_partial_shape()) == "[?,16]"
    assert str(loaded.output().get_partial_shape()) == "[?,10]"
    compiled_ref, compiled = ov.compile_model(model), ov.compile_model(loaded)
    for batch in (1, 5, 64):
        x = RNG.standard_normal((batch, 16)).astype(np.float32)
        got = _run(compiled, x)
        _assert_same(got, _run(compiled_ref, x), rtol=0, atol=0)
        assert got[0].shape == (batch, 10)
    # reshape of the loaded model to a static batch
    loaded.reshape([3, 16])
    assert loaded.output().get_partial_shape() == ov.PartialShape([3, 10])


def test_round_trip_every_op(tmp_path):
    model = _all_ops_model()
    save_ir(model, str(tmp_path / "all.xml"))
    loaded = read_ir(str(tmp_path / "all.xml"))
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    _assert_same(_run(loaded, x), _run(model, x), rtol=0, atol=0)
    assert [sorted(o.get_names()) for o in loaded.outputs] == [[f"out{i}"] for i in range(len(model.outputs))]
    types = {o.get_type_name() for o in loaded.get_ordered_ops()}
    assert {
        "Add",
        "Subtract",
        "Multiply",
        "Divide",
        "Maximum",
        "Minimum",
        "Power",
        "Abs",
        "Negative",
        "Relu",
        "Sigmoid",
        "Tanh",
        "Exp",
        "Log",
        "Sqrt",
        "MatMul",
        "Reshape",
        "Convert",
        "Concat",
        "Softmax",
    } <= types
    f16 = [
        o for o in loaded.get_ordered_ops() if o.get_type_name() == "Constant" and o.get_element_type() == ov.Type.f16
    ]
    assert len(f16) == 1


def test_round_trip_attributes_and_explicit_bin_path(tmp_path):
    a = ops.parameter([2, 3], np.int64, name="a")
    b = ops.parameter([3, 2], np.float32, name="b")
    # integer division that truncates (ONNX semantics) must survive as m_pythondiv="false"
    from aiov import _core
    from aiov._graph import Node

    trunc = Node(
        _core.make_node(
            "Divide",
            [(a._native, 0), (ops.constant(np.int64(-2))._native, 0)],
            {"auto_broadcast": "numpy", "pythondiv": False},
            "trunc_div",
        )
    )
    mm = ops.matmul(b, ops.constant(_w(3, 2)), transpose_a=True, transpose_b=False, name="mm")
    model = ov.Model([trunc, mm], [a, b])
    xml, weights = tmp_path / "x" / "model.xml", tmp_path / "weights" / "w.data"
    os.makedirs(weights.parent)
    ov.serialize(model, str(xml), str(weights))
    assert not (tmp_path / "x" / "model.bin").exists()
    loaded = ov.Core().read_model(str(xml), str(weights))
    ops_by_name = {o.get_friendly_name(): o for o in loaded.get_ordered_ops()}
    assert ops_by_name["trunc_div"].get_attributes()["pythondiv"] == 0
    assert ops_by_name["mm"].get_attributes()["transpose_a"] == 1
    assert ops_by_name["mm"].get_attributes()["transpose_b"] == 0
    av = np.array([[-5, 5, 7], [-7, 0, 3]], np.int64)
    bv = _w(3, 2)
    got = _run(loaded, [av, bv])
    np.testing.assert_array_equal(got[0], np.trunc(av / -2).astype(np.int64))
    _assert_same(got, _run(model, [av, bv]), rtol=0, atol=0)


def test_names_preserved(tmp_path):
    a = ops.parameter([4], np.float32, name="left")
    b = ops.parameter([4], np.float32, name="right")
    a.output(0).set_names({"left", "a,with,commas"})
    b.output(0).set_names({"right"})
    s = ops.add(a, b, name="sum_op")
    model = ov.Model([s, ops.multiply(a, b)], [a, b], "named")
    model.outputs[0].tensor.set_names({"sum", "total"})
    model.outputs[1].tensor.set_names({"product"})
    model.get_results()[1].set_friendly_name("product_result")
    ov.save_model(model, str(tmp_path / "named.xml"))
    loaded = ov.Core().read_model(str(tmp_path / "named.xml"))
    assert loaded.inputs[0].get_names() == {"left", "a,with,commas"}
    assert loaded.inputs[1].get_names() == {"right"}
    assert loaded.outputs[0].get_names() == {"sum", "total"}
    assert loaded.outputs[1].get_names() == {"product"}
    assert loaded.get_results()[1].get_friendly_name() == "product_result"
    compiled = ov.compile_model(loaded, "CPU")
    av, bv = np.arange(4, dtype=np.float32), np.full(4, 2, np.float32)
    request = compiled.create_infer_request()
    result = request.infer({"a,with,commas": av, "right": bv})
    np.testing.assert_array_equal(result["sum"], av + bv)
    np.testing.assert_array_equal(result["total"], av + bv)
    np.testing.assert_array_equal(result["product"], av * bv)
    np.testing.assert_array_equal(compiled({"left": av, "right": bv})["product"], av * bv)
    assert compiled.input("left").get_names() == {"left", "a,with,commas"}
    assert compiled.output("total").get_names() == {"sum", "total"}


def test_entry_points(tmp_path):
    model = _mlp(batch=1)
    path = str(tmp_path / "model.xml")
    ov.save_model(model, path)
    x = RNG.standard_normal((1, 16)).astype(np.float32)
    want = _run(model, x)
    _assert_same(_run(ov.compile_model(path), x), want, rtol=0, atol=0)
    _assert_same(_run(ov.Core().compile_model(path, "CPU"), x), want, rtol=0, atol=0)
    _assert_same(_run(ov.Core().read_model(path), x), want, rtol=0, atol=0)
    from aiov.runtime import Core as RuntimeCore

    _assert_same(_run(RuntimeCore().read_model(model=path), x), want, rtol=0, atol=0)


def test_releasing_gil_sample_flow(tmp_path):
    image_param = ops.parameter([1, 3, 4, 4], np.float32, name="image")
    model = ov.Model(ops.sigmoid(image_param), [image_param])
    model.outputs[0].tensor.set_names({"prob"})
    model_path = str(tmp_path / "gil.xml")
    ov.save_model(model, model_path)
    image = np.linspace(-2, 2, 3 * 5 * 5, dtype=np.float32).reshape(3, 5, 5)

    input_data = []

    def prepare_data(input, image):
        shape = list(input.shape)
        input_data.append(np.resize(image, shape))

    core = ov.Core()
    model = core.read_model(model_path)
    thread = threading.Thread(target=prepare_data, args=[model.input(), image])
    thread.start()
    compiled = core.compile_model(model, "CPU")
    request = compiled.create_infer_request()
    thread.join()
    results = request.infer(input_data)
    expected = np.resize(image, [1, 3, 4, 4])
    np.testing.assert_allclose(results["prob"], 1 / (1 + np.exp(-expected)), rtol=1e-5, atol=1e-6)


# ---- errors -----------------------------------------------------------------------------

_IR_TEMPLATE = """<?xml version="1.0"?>
<net name="hand" version="11">
  <layers>
    <layer id="0" name="x" type="Parameter" version="opset1">
      <data shape="{shape}" element_type="f32"/>
      <output><port id="0" precision="FP32" names="x"><dim>2</dim></port></output>
    </layer>
    <layer id="1" name="w" type="Const" version="opset1">
      <data element_type="f32" shape="2" offset="0" size="8"/>
      <output><port id="0" precision="FP32"><dim>2</dim></port></output>
    </layer>
    <layer id="7" name="{op_name}" type="{op}" version="opset1">
      {data}
      <input><port id="0" precision="FP32"><dim>2</dim></port><port id="1" precision="FP32"><dim>2</dim></port></input>
      <output><port id="2" precision="FP32" names="y\\,z,w"><dim>2</dim></port></output>
    </layer>
    <layer id="3" name="out" type="Result" version="opset1">
      <input><port id="0" precision="FP32"><dim>2</dim></port></input>
    </layer>
  </layers>
  <edges>
    <edge from-layer="0" from-port="0" to-layer="7" to-port="0"/>
    <edge from-layer="1" from-port="0" to-layer="7" to-port="1"/>
    <edge from-layer="7" from-port="2" to-layer="3" to-port="0"/>
  </edges>
</net>
"""


def _hand_ir(
    tmp_path,
    op="Add",
    op_name="the_add",
    data='<data auto_broadcast="numpy"/>',
    shape="2",
    weights=np.array([1.5, -2.0], np.float32).tobytes(),
):
    xml = tmp_path / "hand.xml"
    xml.write_text(_IR_TEMPLATE.format(op=op, op_name=op_name, data=data, shape=shape))
    if weights is not None:
        (tmp_path / "hand.bin").write_bytes(weights)
    return str(xml)


def test_hand_written_ir(tmp_path):
    path = _hand_ir(tmp_path)
    model = ov.Core().read_model(path)
    assert model.outputs[0].get_names() == {"y,z", "w"}
    assert model.get_results()[0].get_friendly_name() == "out"
    out = ov.compile_model(model)(np.array([1, 2], np.float32))
    np.testing.assert_array_equal(out["w"], [2.5, 0.0])
    np.testing.assert_array_equal(out["y,z"], [2.5, 0.0])


@pytest.mark.parametrize("shape, expected", [("?", "[?]"), ("-1", "[?]"), ("1..10", "[?]"), ("2", "[2]")])
def test_parameter_shape_strings(tmp_path, shape, expected):
    model = ov.Core().read_model(_hand_ir(tmp_path, shape=shape))
    assert str(model.input().get_partial_shape()) == expected
    out = ov.compile_model(model)(np.array([1, 2], np.float32))
    np.testing.assert_array_equal(out[0], [2.5, 0.0])


def test_unsupported_op_error(tmp_path):
    path = _hand_ir(tmp_path, op="Convolution", op_name="conv1", data='<data strides="1,1"/>')
    with pytest.raises(ov.InputError) as info:
        ov.Core().read_model(path)
    message = str(info.value)
    assert "Convolution" in message and "conv1" in message and "7" in message
    assert isinstance(info.value, RuntimeError)  # what OpenVINO code catches


def test_bad_attribute_errors(tmp_path):
    with pytest.raises(ov.InputError, match="auto_broadcast.*pdpd"):
        ov.Core().read_model(_hand_ir(tmp_path, data='<data auto_broadcast="pdpd"/>'))
    with pytest.raises(ov.InputError, match="transpose_a.*maybe"):
        ov.Core().read_model(_hand_ir(tmp_path, op="MatMul", data='<data transpose_a="maybe"/>'))
    with pytest.raises(ov.InputError, match="special_zero"):
        ov.Core().read_model(_hand_ir(tmp_path, op="Reshape", data=""))


def test_truncated_bin_error(tmp_path):
    path = _hand_ir(tmp_path, weights=np.array([1.5], np.float32).tobytes())
    with pytest.raises(ov.InputError, match=r"truncated.*'w'.*\[0, 8\).*4 bytes"):
        ov.Core().read_model(path)
    # a truncated file written by save_model
    model = _mlp(batch=1)
    xml = tmp_path / "mlp.xml"
    ov.save_model(model, str(xml))
    data = (tmp_path / "mlp.bin").read_bytes()
    (tmp_path / "mlp.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ov.InputError, match="truncated"):
        ov.compile_model(str(xml))


def test_missing_bin_error(tmp_path):
    path = _hand_ir(tmp_path, weights=None)
    with pytest.raises(ov.InputError, match=r"hand\.bin.*does not exist"):
        ov.Core().read_model(path)
    with pytest.raises(FileNotFoundError, match="nowhere.bin"):
        ov.Core().read_model(path, str(tmp_path / "nowhere.bin"))
    with pytest.raises(FileNotFoundError):
        ov.Core().read_model(str(tmp_path / "absent.xml"))


def test_malformed_xml_errors(tmp_path):
    bad = tmp_path / "bad.xml"
    (tmp_path / "bad.bin").write_bytes(b"\0" * 8)
    bad.write_text("<net version='11'><layers><layer id='0'")
    with pytest.raises(ov.InputError, match="cannot parse"):
        ov.Core().read_model(str(bad))
    bad.write_text("<model/>")
    with pytest.raises(ov.InputError, match="<net>"):
        ov.Core().read_model(str(bad))
    bad.write_text(_IR_TEMPLATE.replace('version="11"', 'version="7"'))
    with pytest.raises(ov.InputError, match="IR version"):
        ov.Core().read_model(str(bad))
    bad.write_text(
        _IR_TEMPLATE.format(op="Add", op_name="a", data="", shape="2").replace(
            'from-layer="1" from-port="0"', 'from-layer="9" from-port="0"'
        )
    )
    with pytest.raises(ov.InputError, match="layer id 9"):
        ov.Core().read_model(str(bad))
    bad.write_text(
        _IR_TEMPLATE.format(op="Add", op_name="a", data="", shape="2").replace(
            '<edge from-layer="1" from-port="0" to-layer="7" to-port="1"/>', ""
        )
    )
    with pytest.raises(ov.InputError, match="input port 1 is not connected"):
        ov.Core().read_model(str(bad))
    bad.write_text(_IR_TEMPLATE.format(op="Add", op_name="a", data="", shape="2,x"))
    with pytest.raises(ov.InputError, match="shape"):
        ov.Core().read_model(str(bad))
    bad.write_text(_IR_TEMPLATE.format(op="Concat", op_name="cat", data='<data axis="5"/>', shape="2"))
    with pytest.raises(ov.InputError, match="cat"):
        ov.Core().read_model(str(bad))


# ---- exchange with the real OpenVINO ----------------------------------------------------------


def _ov_model(openvino, compress_weights):
    """The supported ops built with openvino.opset13 (some opset1/opset8 spellings included)."""
    ovops = openvino.opset13
    rng = np.random.default_rng(7)
    x = ovops.parameter([-1, 8], np.float32, name="x")
    w1 = rng.standard_normal((8, 16)).astype(np.float32) * 0.3
    h = ovops.relu(
        ovops.add(
            ovops.matmul(x, ovops.constant(w1), False, False),
            ovops.constant(rng.standard_normal(16).astype(np.float32)),
        )
    )
    w16 = ovops.convert(ovops.constant(rng.standard_normal((4, 16)).astype(np.float16)), "f32")
    logits = ovops.matmul(h, w16, False, True)
    probs = openvino.opset1.softmax(logits, 1)
    probs8 = ovops.softmax(logits, -1)
    pos = ovops.add(ovops.abs(logits), ovops.constant(np.float32(0.5)))
    mixed = ovops.concat(
        [
            ovops.subtract(probs, probs8),
            ovops.multiply(pos, ovops.constant(np.float32(2))),
            ovops.divide(pos, ovops.constant(np.float32(3))),
            ovops.maximum(logits, ovops.constant(np.float32(0))),
            ovops.minimum(logits, ovops.constant(np.float32(0))),
            ovops.power(pos, ovops.constant(np.float32(1.5))),
            ovops.negative(logits),
            ovops.sigmoid(logits),
            ovops.tanh(logits),
            ovops.exp(probs),
            ovops.log(pos),
            ovops.sqrt(pos),
        ],
        1,
    )
    flat = ovops.reshape(mixed, ovops.constant(np.array([0, -1, 4], np.int64)), True)
    as_int = ovops.convert(ovops.multiply(logits, ovops.constant(np.float32(10))), "i32")
    model = openvino.Model([flat, as_int, probs8], [x], "from_openvino")
    model.outputs[0].get_tensor().set_names({"mixed"})
    model.outputs[1].get_tensor().set_names({"as_int"})
    model.outputs[2].get_tensor().set_names({"probs", "probabilities"})
    return model


@pytest.mark.parametrize("compress", [False, True])
def test_read_openvino_saved_ir(tmp_path, compress):
    openvino = pytest.importorskip("openvino")
    ovmodel = _ov_model(openvino, compress)
    path = str(tmp_path / "ovsaved.xml")
    openvino.save_model(ovmodel, path, compress_to_fp16=compress)
    model = ov.Core().read_model(path)
    assert model.get_friendly_name() == "from_openvino"
    assert [o.get_names() for o in model.outputs] == [{"mixed"}, {"as_int"}, {"probs", "probabilities"}]
    assert model.input().get_names() == {"x"}
    assert str(model.input().get_partial_shape()) == "[?,8]"
    ov_compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    compiled = ov.compile_model(model, "CPU")
    for batch in (1, 6):
        x = np.random.default_rng(batch).standard_normal((batch, 8)).astype(np.float32)
        want = ov_compiled({"x": x})
        got = compiled({"x": x})
        for name in ("mixed", "probs", "probabilities"):
            np.testing.assert_allclose(got[name], want[name], rtol=2e-4, atol=2e-5)
        # f32 -> i32 rounding of values right at .5 could differ by one
        assert np.abs(got["as_int"].astype(np.int64) - want["as_int"]).max() <= 1


def test_openvino_reads_aiov_saved_ir(tmp_path):
    openvino = pytest.importorskip("openvino")
    for name, model, shapes in (("mlp", _mlp(batch=-1), [(1, 16), (5, 16)]), ("all", _all_ops_model(), [(3, 4)])):
        path = str(tmp_path / f"{name}.xml")
        ov.save_model(model, path)
        ovmodel = openvino.Core().read_model(path)
        assert [o.get_names() for o in ovmodel.outputs] == [o.get_names() for o in model.outputs]
        assert ovmodel.input(0).get_names() == {"x"}
        assert ovmodel.get_friendly_name() == model.get_friendly_name()
        ov_compiled = openvino.Core().compile_model(ovmodel, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        compiled = ov.compile_model(model)
        for shape in shapes:
            x = RNG.standard_normal(shape).astype(np.float32)
            want, got = ov_compiled({"x": x}), compiled({"x": x})
            for port in model.outputs:
                key = port.get_any_name()
                if got[key].dtype.kind == "i":
                    assert np.abs(got[key].astype(np.int64) - want[key]).max() <= 1
                else:
                    np.testing.assert_allclose(got[key], want[key], rtol=2e-4, atol=2e-5, err_msg=key)


def test_openvino_reads_names_and_dynamic_shapes_from_aiov_ir(tmp_path):
    openvino = pytest.importorskip("openvino")
    a = ops.parameter([-1, 3], np.float32, name="a")
    a.output(0).set_names({"a", "first,input"})
    model = ov.Model(ops.multiply(a, 2.0), [a], "dyn")
    model.outputs[0].tensor.set_names({"doubled"})
    path = str(tmp_path / "dyn.xml")
    ov.save_model(model, path)
    ovmodel = openvino.Core().read_model(path)
    assert ovmodel.input(0).get_names() == {"a", "first,input"}
    assert ovmodel.input(0).get_partial_shape().is_dynamic
    assert str(ovmodel.input(0).get_partial_shape()) == "[?,3]"
    x = np.ones((2, 3), np.float32)
    out = openvino.Core().compile_model(ovmodel, "CPU")({"first,input": x})
    np.testing.assert_array_equal(out["doubled"], x * 2)


def test_openvino_interval_dims_read_as_dynamic(tmp_path):
    openvino = pytest.importorskip("openvino")
    p = openvino.opset13.parameter(openvino.PartialShape([openvino.Dimension(1, 10), 4]), np.float32, name="y")
    path = str(tmp_path / "interval.xml")
    openvino.save_model(openvino.Model([openvino.opset13.relu(p)], [p]), path)
    model = ov.Core().read_model(path)
    assert model.input().get_partial_shape()[0].is_dynamic
    x = np.array([[-1, 2, -3, 4]], np.float32)
    np.testing.assert_array_equal(ov.compile_model(model)(x)[0], np.maximum(x, 0))


def test_unsupported_op_in_openvino_ir(tmp_path):
    openvino = pytest.importorskip("openvino")
    p = openvino.opset13.parameter([1, 6, 4, 1], np.float32, name="x")
    # NV12toRGB: an op aiov does not register (the reader knows every registered op with an IR name).
    fl = openvino.opset13.nv12_to_rgb(p)
    fl.set_friendly_name("my_nv12")
    path = str(tmp_path / "nv12.xml")
    openvino.save_model(openvino.Model([fl], [p]), path)
    with pytest.raises(ov.InputError, match=r"'NV12toRGB'.*'my_nv12' \(id \d+\)"):
        ov.Core().read_model(path)
