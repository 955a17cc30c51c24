"""ONNX sequences and optionals: a Loop that collects a sequence the way torch exports list
appends, sequence and optional model inputs and outputs (Python lists and None) through the
sync API, aiov.aio and many threads, and clear errors for a value of the wrong kind."""

from __future__ import annotations

import threading

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import aiov as ov  # noqa: E402
from aiov import aio  # noqa: E402


def _model(nodes, inputs, outputs, initializers=(), opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _compile(proto):
    return ov.compile_model(ov.Core().read_model(proto.SerializeToString()), "CPU")


def _seq_info(name, shape=None, elem=TensorProto.FLOAT):
    return helper.make_tensor_sequence_value_info(name, elem, shape)


def _sequence_loop_body(*updates):
    """A Loop body carrying one float sequence: each step makes row = x * i (x from outside),
    and `updates` turn "seq_in" and "row" into "seq_out"."""
    return helper.make_graph(
        [
            helper.make_node("Cast", ["i"], ["i_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["x", "i_f"], ["row"]),
            *updates,
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            _seq_info("seq_in"),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _seq_info("seq_out")],
    )


def _appending_loop():
    """for i in range(n): rows.append(x * i); return torch.stack(rows, 1), rows (as torch
    exports it: a Loop carrying a sequence that starts empty, ConcatFromSequence after it)."""
    body = _sequence_loop_body(helper.make_node("SequenceInsert", ["seq_in", "row"], ["seq_out"]))
    nodes = [
        helper.make_node("SequenceEmpty", [], ["empty"], dtype=TensorProto.FLOAT),
        helper.make_node("Loop", ["n", "", "empty"], ["rows"], body=body),
        helper.make_node("ConcatFromSequence", ["rows"], ["stacked"], axis=1, new_axis=1),
    ]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3]),
            helper.make_tensor_value_info("n", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("stacked", TensorProto.FLOAT, None),
            _seq_info("rows"),
        ],
    )


@pytest.mark.parametrize("steps, batch", [(1, 1), (4, 2), (7, 3)])
def test_a_loop_appending_to_a_sequence_gives_the_list_and_its_stack(steps, batch):
    proto = _appending_loop()
    x = np.random.default_rng(steps).standard_normal((batch, 3)).astype(np.float32)
    feeds = {"x": x, "n": np.array(steps, np.int64)}
    want_rows = [x * i for i in range(steps)]
    want_stacked = np.stack(want_rows, 1)
    got = _compile(proto)(feeds)
    np.testing.assert_allclose(got["stacked"], want_stacked, rtol=1e-6)
    assert got["stacked"].shape == (batch, steps, 3)
    assert isinstance(got["rows"], list) and len(got["rows"]) == steps
    for g, w in zip(got["rows"], want_rows):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_concatenating_an_empty_sequence_is_a_clear_error():
    compiled = _compile(_appending_loop())
    with pytest.raises(ov.InputError, match="ConcatFromSequence.*cannot concatenate an empty sequence"):
        compiled({"x": np.ones((1, 3), np.float32), "n": np.array(0, np.int64)})


def _sequence_in_model():
    """A sequence input: its length, its tensors joined along axis 0, and itself with one more."""
    nodes = [
        helper.make_node("SequenceLength", ["seq"], ["length"]),
        helper.make_node("ConcatFromSequence", ["seq"], ["joined"], axis=0),
        helper.make_node("SequenceInsert", ["seq", "extra", "zero"], ["longer"]),
    ]
    zero = helper.make_tensor("zero", TensorProto.INT64, [], [0])
    return _model(
        nodes,
        [_seq_info("seq", ["n", 2]), helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, 2])],
        [
            helper.make_tensor_value_info("length", TensorProto.INT64, []),
            helper.make_tensor_value_info("joined", TensorProto.FLOAT, None),
            _seq_info("longer"),
        ],
        [zero],
    )


def _check_sequence_results(results, seq, extra):
    assert int(results["length"]) == len(seq)
    np.testing.assert_array_equal(results["joined"], np.concatenate(seq))
    assert len(results["longer"]) == len(seq) + 1
    np.testing.assert_array_equal(results["longer"][0], extra)
    for g, w in zip(results["longer"][1:], seq):
        np.testing.assert_array_equal(g, w)


SEQ = [np.arange(4, dtype=np.float32).reshape(2, 2), np.ones((3, 2), np.float32)]
EXTRA = np.full((1, 2), 7, np.float32)


def test_sequence_inputs_from_the_sync_api_as_lists():
    compiled = _compile(_sequence_in_model())
    assert compiled.input(0).get_value_kind() == "sequence"
    assert compiled.output("longer").get_value_kind() == "sequence"
    _check_sequence_results(compiled({"seq": SEQ, "extra": EXTRA}), SEQ, EXTRA)
    _check_sequence_results(compiled([SEQ, EXTRA]), SEQ, EXTRA)  # positional: the list inside
    request = compiled.create_infer_request()
    _check_sequence_results(request.infer({"seq": tuple(SEQ), "extra": EXTRA}), SEQ, EXTRA)
    # Converted like a tensor input's values: float64 lists and arrays become f32.
    results = request.infer({"seq": [[[1.0, 2.0]]], "extra": EXTRA.astype(np.float64)})
    _check_sequence_results(results, [np.array([[1, 2]], np.float32)], EXTRA)


def test_the_sequence_given_is_not_changed_by_later_edits_of_the_arrays():
    compiled = _compile(_sequence_in_model())
    request = compiled.create_infer_request()
    seq = [a.copy() for a in SEQ]
    request.start_async({"seq": seq, "extra": EXTRA})
    seq[0][:] = -1  # the request copied its sequence in when it was given
    request.wait()
    _check_sequence_results(request.results, SEQ, EXTRA)


@pytest.mark.anyio
async def test_sequence_inputs_from_aiov_aio(anyio_backend):
    compiled = aio.CompiledModel(_compile(_sequence_in_model()))
    _check_sequence_results(await compiled({"seq": SEQ, "extra": EXTRA}), SEQ, EXTRA)
    request = compiled.create_infer_request()
    _check_sequence_results(await request.infer({"seq": SEQ[:1], "extra": EXTRA}), SEQ[:1], EXTRA)


def test_many_threads_run_one_sequence_model():
    compiled = _compile(_sequence_in_model())
    errors = []

    def work(k):
        try:
            seq = [np.full((k % 3 + 1, 2), k, np.float32) for _ in range(k % 4 + 1)]
            for _ in range(20):
                _check_sequence_results(compiled({"seq": seq, "extra": EXTRA}), seq, EXTRA)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_the_wrong_kind_of_value_is_named():
    compiled = _compile(_sequence_in_model())
    with pytest.raises(ov.InputError, match="input 'seq' is a sequence: pass a list of arrays, got ndarray"):
        compiled({"seq": SEQ[0], "extra": EXTRA})
    with pytest.raises(ov.InputError, match="input 'seq' is a sequence.*got NoneType"):
        compiled({"seq": None, "extra": EXTRA})
    with pytest.raises(ov.InputError, match="expected element type|shape"):
        compiled({"seq": [np.ones((2, 3), np.float32)], "extra": EXTRA})  # tensors of [n, 2]
    with pytest.raises(ov.InputError, match="expected at most 2 input.*a sequence input as a list inside it"):
        compiled([SEQ[0], SEQ[1], EXTRA])
    with pytest.raises(ov.InputError, match="'seq' is a sequence, not a tensor"):
        compiled.create_infer_request().get_input_tensor(0)


def test_a_tensor_op_given_a_sequence_names_the_input():
    proto = _model(
        [helper.make_node("Relu", ["seq"], ["y"])],
        [_seq_info("seq", [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(ov.InputError, match="Relu.*input 0 must be a tensor, got a sequence"):
        ov.Core().read_model(proto.SerializeToString())


def _optional_model():
    """An optional tensor input: whether it holds one, and itself back."""
    opt = helper.make_tensor_type_proto(TensorProto.FLOAT, [2])
    info = helper.make_value_info("maybe", helper.make_optional_type_proto(opt))
    out = helper.make_value_info("same", helper.make_optional_type_proto(opt))
    return _model(
        [
            helper.make_node("OptionalHasElement", ["maybe"], ["has"]),
            helper.make_node("Identity", ["maybe"], ["same"]),
        ],
        [info],
        [helper.make_tensor_value_info("has", TensorProto.BOOL, []), out],
    )


def test_optional_inputs_and_outputs_are_none_or_the_value():
    compiled = _compile(_optional_model())
    assert compiled.input(0).get_value_kind() == "optional_tensor"
    empty = compiled({"maybe": None})
    assert not empty["has"] and empty["same"] is None
    full = compiled({"maybe": np.array([1.0, 2.0], np.float32)})
    assert full["has"]
    np.testing.assert_array_equal(full["same"], [1.0, 2.0])
    with pytest.raises(ov.InputError, match="'maybe' is an optional tensor: pass an array or None, got list"):
        compiled({"maybe": [np.ones(2, np.float32)]})


def test_getting_the_element_of_an_empty_optional_is_a_clear_error():
    opt = helper.make_tensor_type_proto(TensorProto.FLOAT, [2])
    proto = _model(
        [helper.make_node("OptionalGetElement", ["maybe"], ["value"])],
        [helper.make_value_info("maybe", helper.make_optional_type_proto(opt))],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, [2])],
    )
    compiled = _compile(proto)
    np.testing.assert_array_equal(compiled({"maybe": np.ones(2, np.float32)})["value"], [1, 1])
    with pytest.raises(ov.InputError, match="OptionalGetElement.*the optional input is empty"):
        compiled({"maybe": None})


def test_split_to_sequence_and_sequence_at_with_out_of_range_position():
    proto = _model(
        [
            helper.make_node("SplitToSequence", ["x", "two"], ["parts"], axis=1),
            helper.make_node("SequenceAt", ["parts", "pos"], ["part"]),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5]),
            helper.make_tensor_value_info("pos", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("part", TensorProto.FLOAT, None)],
        [helper.make_tensor("two", TensorProto.INT64, [], [2])],
    )
    compiled = _compile(proto)
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(compiled({"x": x, "pos": np.array(-1, np.int64)})["part"], x[:, 4:])
    np.testing.assert_array_equal(compiled({"x": x, "pos": np.array(1, np.int64)})["part"], x[:, 2:4])
    with pytest.raises(ov.InputError, match="position 3 is out of range for a sequence of 3 tensors"):
        compiled({"x": x, "pos": np.array(3, np.int64)})


def _rolling_loop():
    """A Loop of n steps whose carried sequence keeps one tensor: each step inserts x * i at the
    back and erases the front, so a loop of any length runs in constant memory."""
    body = _sequence_loop_body(
        helper.make_node("SequenceInsert", ["seq_in", "row"], ["grown"]),
        helper.make_node("SequenceErase", ["grown", "front"], ["seq_out"]),
    )
    return _model(
        [
            helper.make_node("SequenceConstruct", ["x"], ["start"]),
            helper.make_node("Loop", ["n", "", "start"], ["last"], body=body),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("n", TensorProto.INT64, []),
        ],
        [_seq_info("last")],
        [helper.make_tensor("front", TensorProto.INT64, [], [0])],
    )


def test_a_loop_over_a_sequence_stops_when_cancelled_and_runs_again():
    compiled = _compile(_rolling_loop())
    request = compiled.create_infer_request()
    x = np.array([1.0, 2.0], np.float32)
    for _ in range(3):  # the request is usable again after each cancelled run
        request.start_async({"x": x, "n": np.array(2**62, np.int64)})
        request.cancel()
        with pytest.raises(ov.CancelledError):
            request.wait()
        (last,) = request.infer({"x": x, "n": np.array(5, np.int64)})["last"]
        np.testing.assert_array_equal(last, x * 4)
