"""LSTM, GRU and RNN read from ONNX match onnxruntime: every direction, both layouts, per-entry
sequence lengths, initial states, peepholes, clip, input_forget, linear_before_reset, the
parameterised activation lists, omitted outputs, and one compiled model run at several batch
sizes and sequence lengths."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OUTPUTS = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}


def _model(
    op,
    *,
    hidden=5,
    inputs=4,
    direction="forward",
    layout=0,
    with_bias=True,
    with_lens=False,
    with_initial=False,
    with_peepholes=False,
    weights_as_inputs=False,
    empty_entry=False,
    outputs=None,
    seed=0,
    opset=14,
    **attrs,
):
    """An ONNX model of one recurrent node with dynamic batch and sequence, the weights it takes
    as inputs (with ``weights_as_inputs``), and a function making its other inputs."""
    rng = np.random.default_rng(seed)
    nd = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    weights = {
        "W": rng.standard_normal((nd, g * hidden, inputs)).astype(np.float32) * 0.6,
        "R": rng.standard_normal((nd, g * hidden, hidden)).astype(np.float32) * 0.6,
    }
    if with_bias:
        weights["B"] = rng.standard_normal((nd, 2 * g * hidden)).astype(np.float32) * 0.3
    if with_peepholes:
        weights["P"] = rng.standard_normal((nd, 3 * hidden)).astype(np.float32) * 0.5
    node_inputs = [
        "X",
        "W",
        "R",
        "B" if with_bias else "",
        "sequence_lens" if with_lens else "",
        "initial_h" if with_initial else "",
    ]
    if op == "LSTM":
        node_inputs += ["initial_c" if with_initial else "", "P" if with_peepholes else ""]
    while node_inputs[-1] == "":
        node_inputs.pop()
    xdims = ["batch", "seq", inputs] if layout else ["seq", "batch", inputs]
    state = ["batch", nd, hidden] if layout else [nd, "batch", hidden]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, xdims)]
    if with_lens:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]))
    if with_initial:
        graph_inputs.append(helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, state))
        if op == "LSTM":
            graph_inputs.append(helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, state))
    initializers = []
    for name, value in weights.items():
        if weights_as_inputs:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
        else:
            initializers.append(numpy_helper.from_array(value, name))
    outputs = outputs or OUTPUTS[op]
    node_outputs = [name if name in outputs else "" for name in OUTPUTS[op]]
    while node_outputs[-1] == "":
        node_outputs.pop()
    if opset >= 14:
        attrs["layout"] = layout
    node = helper.make_node(op, node_inputs, node_outputs, hidden_size=hidden, direction=direction, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        graph_inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])

    def feeds(batch, seq):
        """Inputs for one run of ``batch`` entries of ``seq`` steps (the weights fed separately)."""
        rng = np.random.default_rng(1)
        x_shape = (batch, seq, inputs) if layout else (seq, batch, inputs)
        values = {"X": rng.standard_normal(x_shape).astype(np.float32)}
        if with_lens:
            values["sequence_lens"] = rng.integers(1, seq + 1, size=batch).astype(np.int32)
            values["sequence_lens"][0] = seq
            if empty_entry:
                values["sequence_lens"][-1] = 0
        if with_initial:
            shape = (batch, nd, hidden) if layout else (nd, batch, hidden)
            values["initial_h"] = rng.standard_normal(shape).astype(np.float32)
            if op == "LSTM":
                values["initial_c"] = rng.standard_normal(shape).astype(np.float32)
        return values

    return model, (weights if weights_as_inputs else {}), feeds


def _compare(tmp_path, op, sizes=((3, 6),), **options):
    model, weight_feeds, feeds_for = _model(op, **options)
    path = str(tmp_path / "rnn.onnx")
    onnx.save(model, path)
    compiled = ov.Core().compile_model(path, "CPU")
    # onnxruntime runs only layout 0: for layout 1 it runs the same model in layout 0 on
    # transposed inputs, and its outputs are transposed back.
    batch_first = options.get("layout", 0) == 1
    reference, _, _ = _model(op, **dict(options, layout=0))
    ref_path = str(tmp_path / "reference.onnx")
    onnx.save(reference, ref_path)
    session = ort.InferenceSession(ref_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    for batch, seq in sizes:
        feeds = dict(feeds_for(batch, seq), **weight_feeds)
        ref_feeds = {
            k: (v.transpose(1, 0, 2) if batch_first and k in ("X", "initial_h", "initial_c") else v)
            for k, v in feeds.items()
        }
        want = session.run(None, ref_feeds)
        got = compiled(feeds)
        for name, expected in zip(names, want):
            if batch_first:
                expected = expected.transpose(2, 0, 1, 3) if name == "Y" else expected.transpose(1, 0, 2)
            assert got[name].shape == expected.shape, name
            np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-5, err_msg=f"{op} {name}")


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_every_direction_and_layout_with_sequence_lengths(tmp_path, op, direction, layout):
    # Entries shorter than the sequence: outputs past their end are zero and Y_h (Y_c) holds
    # their last valid step, which for the reverse direction is time 0.
    _compare(tmp_path, op, direction=direction, layout=layout, with_lens=True, with_initial=True)


@pytest.mark.parametrize("op", list(GATES))
def test_one_compiled_model_runs_at_several_batches_and_lengths(tmp_path, op):
    _compare(tmp_path, op, sizes=((1, 1), (3, 7), (2, 2), (4, 12)), direction="bidirectional", with_lens=True)


@pytest.mark.parametrize("op", list(GATES))
def test_weights_fed_at_run_time_take_the_unpacked_path(tmp_path, op):
    _compare(tmp_path, op, sizes=((2, 5),), direction="bidirectional", weights_as_inputs=True, with_initial=True)


@pytest.mark.parametrize("op", list(GATES))
def test_clip_and_no_bias(tmp_path, op):
    _compare(tmp_path, op, clip=0.7, with_bias=False, direction="bidirectional", layout=1)


def test_lstm_peepholes_and_input_forget(tmp_path):
    _compare(tmp_path, "LSTM", with_peepholes=True, with_initial=True, direction="bidirectional")
    _compare(tmp_path, "LSTM", with_peepholes=True, input_forget=1, with_lens=True)


@pytest.mark.parametrize("lbr", [0, 1])
def test_gru_linear_before_reset(tmp_path, lbr):
    _compare(tmp_path, "GRU", linear_before_reset=lbr, with_initial=True, with_lens=True, direction="reverse")


# Activation lists onnxruntime runs, with their alpha/beta taken in order.
ACTIVATIONS = [
    ("LSTM", ["HardSigmoid", "Tanh", "Softsign"], [0.3], [0.4]),
    ("LSTM", ["Sigmoid", "ScaledTanh", "Affine", "Sigmoid", "LeakyRelu", "Tanh"], [0.8, 1.5, 0.1, 0.2], [1.2, 0.3]),
    ("GRU", ["Sigmoid", "Relu", "HardSigmoid", "Softsign"], [], []),
    ("GRU", ["Sigmoid", "Elu"], [0.5], []),
    ("RNN", ["ThresholdedRelu"], [0.2], []),
    ("RNN", ["Softplus", "Tanh"], [], []),
]


@pytest.mark.parametrize("op,names,alpha,beta", ACTIVATIONS, ids=["-".join(a[1]) for a in ACTIVATIONS])
def test_activation_lists(tmp_path, op, names, alpha, beta):
    per_dir = {"LSTM": 3, "GRU": 2, "RNN": 1}[op]
    attrs = {"activations": names, "direction": "bidirectional" if len(names) > per_dir else "forward"}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    _compare(tmp_path, op, with_initial=True, **attrs)


@pytest.mark.parametrize("op,outputs", [("LSTM", ["Y_c"]), ("LSTM", ["Y_h"]), ("GRU", ["Y_h"]), ("RNN", ["Y"])])
def test_omitted_outputs(tmp_path, op, outputs):
    _compare(tmp_path, op, outputs=outputs, with_lens=True)


@pytest.mark.parametrize("op", list(GATES))
def test_an_empty_sequence_gives_zero_outputs_and_states(tmp_path, op):
    _compare(tmp_path, op, direction="bidirectional", with_lens=True, with_initial=True, empty_entry=True)


def test_opset_7_model(tmp_path):
    _compare(tmp_path, "LSTM", opset=7, direction="bidirectional", with_lens=True)


def test_wrong_activation_count_and_name_are_named(tmp_path):
    model, _, _ = _model("GRU", activations=["Sigmoid"])
    with pytest.raises(ov.InputError, match="activations needs 2 functions"):
        ov.Core().read_model(model.SerializeToString())
    model, _, _ = _model("RNN", activations=["Gelu"])
    with pytest.raises(Exception, match="activation 'Gelu' is not supported"):
        ov.Core().read_model(model.SerializeToString())


def test_sequence_length_past_the_sequence_is_an_error(tmp_path):
    model, _, feeds_for = _model("RNN", with_lens=True)
    compiled = ov.Core().compile_model(model.SerializeToString(), "CPU")
    feeds = feeds_for(2, 3)
    feeds["sequence_lens"][1] = 4
    with pytest.raises(ov.InputError, match=r"sequence_lens\[1\] = 4"):
        compiled(feeds)


def test_ir_round_trip_and_opset_builder(tmp_path):
    # aiov.LSTM in IR (OpenVINO's LSTMSequence takes other inputs in another order); the
    # builder takes absent optional inputs as None.
    import aiov.opset as ops

    rng = np.random.default_rng(3)
    x = ops.parameter([-1, -1, 4], np.float32, name="x")
    lens = ops.parameter([-1], np.int32, name="lens")
    weights = [ops.constant(rng.standard_normal(s).astype(np.float32)) for s in ((2, 20, 4), (2, 20, 5), (2, 40))]
    node = ops.lstm(
        x,
        *weights,
        lens,
        None,
        None,
        ops.constant(rng.standard_normal((2, 15)).astype(np.float32)),
        direction="bidirectional",
        clip=2.0,
        activations=["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Tanh", "Softsign"],
        activation_alpha=[0.3],
        activation_beta=[0.6],
    )
    model = ov.Model(node.outputs(), [x, lens], "lstm")
    ov.save_model(model, str(tmp_path / "lstm.xml"))
    assert 'type="aiov.LSTM"' in (tmp_path / "lstm.xml").read_text()
    reread = ov.Core().read_model(str(tmp_path / "lstm.xml"))
    feeds = {"x": rng.standard_normal((5, 3, 4)).astype(np.float32), "lens": np.array([5, 2, 4], np.int32)}
    first = ov.Core().compile_model(model, "CPU")(feeds)
    again = ov.Core().compile_model(reread, "CPU")(feeds)
    for i in range(3):
        np.testing.assert_array_equal(first[i], again[i])
    assert not first[0][4, :, 1].any() and first[0][1, :, 1].any()  # entry 1 ends after 2 steps


def test_inputs_of_the_wrong_shape_are_named():
    import aiov.opset as ops

    x = ops.parameter([3, 2, 4], np.float32, name="x")
    w = ops.constant(np.zeros((1, 15, 4), np.float32))
    r = ops.constant(np.zeros((1, 15, 5), np.float32))
    with pytest.raises(ov.InputError, match=r"needs 3 x hidden_size rows \(hidden_size 4\)"):
        ops.gru(x, w, r, hidden_size=4)
    node = ops.gru(x, w, r, ops.constant(np.zeros((2, 30), np.float32)))
    with pytest.raises(ov.InputError, match=r"B must be \[1,30\], got \[2,30\]"):
        ov.Core().compile_model(ov.Model(node.outputs(), [x]), "CPU")({"x": np.zeros((3, 2, 4), np.float32)})
