"""The op registry is the one description of an op: its traits, names and enums agree with
each other and with what the frontends and the optimizer use, and attributes are checked
once, centrally, with errors naming node, attribute, what was expected and what was given."""

import pathlib

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov import _core
from aiov.frontends import ir as ir_frontend
from aiov.frontends import onnx as onnx_frontend

NATIVE = pathlib.Path(__file__).resolve().parents[2] / "native"
SCHEMA = {d["type"]: d for d in _core.op_schema()}


def test_registry_self_check_finds_no_disagreement():
    assert _core.registry_problems() == []


def test_every_epilogue_activation_is_produced_by_an_op():
    produced = {"none"} | {k for d in SCHEMA.values() for k in d["activation"]}
    assert produced == set(_core.activation_kinds())


def test_fusable_activations_are_chain_steps_and_layout_blind():
    for d in SCHEMA.values():
        if d["activation"]:
            assert d["chainable"] and d["layout_blind"] == "unary", d["type"]


def test_every_ir_name_maps_back_to_its_op():
    table = ir_frontend._ops_by_ir_type()
    for d in SCHEMA.values():
        for ir_type in d["ir_types"]:
            assert table[ir_type]["type"] == d["type"]
            assert ir_type in ir_frontend.supported_layer_types()


def test_every_onnx_name_has_a_converter():
    supported = set(onnx_frontend.supported_ops())
    for d in SCHEMA.values():
        for name, since, until in d["onnx"]:
            assert name in supported, (d["type"], name)
            assert since >= 1 and (until == 0 or until >= since)


def test_every_builder_is_in_the_opset():
    for d in SCHEMA.values():
        if d["builder"]:
            assert callable(getattr(ops, d["builder"])) and d["builder"] in ops.__all__


def test_attribute_defaults_are_declared_once():
    assert SCHEMA["Softmax"]["attrs"][0]["default"] == 1
    assert {a["name"]: a["default"] for a in SCHEMA["LeakyRelu"]["attrs"]} == {"alpha": pytest.approx(0.01)}


# ---- central attribute validation ----------------------------------------------------------


def _conv_transpose(attrs, channels=4):
    x = ops.parameter([1, channels, 5, 5], np.float32)
    w = ops.constant(np.ones((channels, 2, 3, 3), np.float32))
    return ops._make("ConvTranspose", [x, w], attrs, "up")


@pytest.mark.parametrize(
    "attrs, fragment",
    [
        ({"group": 0}, "attribute 'group' must be positive, got 0"),
        ({"group": 3}, "attribute 'group' must be a divisor of the data's 4 channels, got 3"),
        ({"strides": [2]}, "attribute 'strides' must be 2 values"),
        ({"pads_begin": [0, 0, 0]}, "attribute 'pads_begin' must be 2 values"),
        ({"pads_end": [1]}, "attribute 'pads_end' must be 2 values"),
        ({"dilations": [1, 1, 1, 1]}, "attribute 'dilations' must be 2 values"),
        ({"output_padding": [1]}, "attribute 'output_padding' must be 2 values"),
        ({"strides": [0, 1]}, "attribute 'strides' must be positive, got [0, 1]"),
        ({"group": "two"}, "attribute 'group' must be an integer, got 'two'"),
    ],
)
def test_conv_transpose_attributes_are_checked_before_infer(attrs, fragment):
    with pytest.raises(ov.InputError) as info:
        _conv_transpose(attrs)
    message = str(info.value)
    assert "ConvTranspose 'up'" in message and fragment in message


def test_pooling_kernel_of_zero_is_rejected():
    x = ops.parameter([1, 2, 6, 6], np.float32)
    with pytest.raises(ov.InputError, match=r"MaxPool 'p': attribute 'kernel' must be positive, got \[0, 2\]"):
        ops.max_pool(x, [1, 1], [1, 1], [0, 0], [0, 0], [0, 2], name="p")


def test_missing_required_attribute_and_unknown_choice():
    x = ops.parameter([2, 3], np.float32)
    with pytest.raises(ov.InputError, match="Reshape 'r': attribute 'special_zero' is required"):
        ops._make("Reshape", [x, ops.constant(np.array([3, 2], np.int64))], {}, "r")
    with pytest.raises(ov.InputError, match=r"attribute 'auto_broadcast' must be one of 'numpy', 'none', got 'pdpd'"):
        ops._make("Add", [x, x], {"auto_broadcast": "pdpd"}, "a")
    with pytest.raises(ov.InputError, match=r"Convert 'c': attribute 'destination_type' must be an element type name"):
        ops._make("Convert", [x], {"destination_type": "float128"}, "c")


def test_convolution_group_must_divide_channels():
    x = ops.parameter([1, 6, 5, 5], np.float32)
    w = ops.constant(np.ones((4, 2, 3, 3), np.float32))
    with pytest.raises(ov.InputError, match="attribute 'group' must be a divisor of the data's 6 channels, got 4"):
        ops._make(
            "Convolution",
            [x, w],
            {"group": 4, "strides": [1, 1], "pads_begin": [0, 0], "pads_end": [0, 0], "dilations": [1, 1]},
            "conv",
        )


def test_onnx_conv_transpose_with_bad_attributes_is_a_clear_error():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")
    for attrs in ({"group": 0}, {"pads": [1, 1]}, {"strides": [1, 1, 1]}, {"output_padding": [1]}):
        node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [w],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        with pytest.raises(ov.InputError, match="ConvTranspose"):
            ov.compile_model(model.SerializeToString())
