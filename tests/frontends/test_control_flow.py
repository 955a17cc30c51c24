"""ONNX control flow (If, Loop, Scan) beyond ONNX's own node cases: nesting, values captured
from enclosing graphs, trip counts and conditions known only at run time, shapes known only
after running, bad subgraphs, cancellation and many threads running one compiled model.
Expected values come from onnx's reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import aiov as ov  # noqa: E402

from aio_helpers import run_in_threads  # noqa: E402
from model_builders import if_node, nonzero_then_if  # noqa: E402

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _conditional_model(nodes, x_size=3, output="y"):
    """A model of ``nodes`` over inputs c (a bool scalar) and x (``x_size`` floats), returning ``output``."""
    return _model(
        nodes,
        [helper.make_tensor_value_info("c", B, []), helper.make_tensor_value_info("x", F, [x_size])],
        [helper.make_tensor_value_info(output, F, None)],
    )


def _scalar(name, value, dtype):
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [], [value]))


def _check(model, feeds, compiled=None):
    expected = ReferenceEvaluator(model).run(None, feeds)
    compiled = compiled or ov.compile_model(model.SerializeToString())
    got = compiled(feeds)
    for i, want in enumerate(expected):
        assert got[i].shape == want.shape
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
    return compiled


def loop_with_nested_if():
    """acc <- acc * 0.5 + (scale if acc.sum() > 0 else -scale) for M steps, M an input; every
    step's acc is a scan output. `scale` is read two scopes up, by the If inside the body."""
    body = helper.make_graph(
        [
            _scalar("half", 0.5, F),
            _scalar("zero", 0.0, F),
            helper.make_node("ReduceSum", ["acc_in"], ["total"], keepdims=0),
            helper.make_node("Greater", ["total", "zero"], ["positive"]),
            if_node(
                "positive",
                "step",
                helper.make_node("Identity", ["scale"], ["then_out"]),
                helper.make_node("Neg", ["scale"], ["else_out"]),
            ),
            helper.make_node("Mul", ["acc_in", "half"], ["scaled"]),
            helper.make_node("Add", ["scaled", "step"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["acc_out"], ["seen"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", I64, []),
            helper.make_tensor_value_info("cond_in", B, []),
            helper.make_tensor_value_info("acc_in", F, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", B, []),
            helper.make_tensor_value_info("acc_out", F, None),
            helper.make_tensor_value_info("seen", F, None),
        ],
    )
    return _model(
        [_scalar("true", True, B), helper.make_node("Loop", ["m", "true", "x"], ["final", "all"], body=body)],
        [
            helper.make_tensor_value_info("x", F, ["n"]),
            helper.make_tensor_value_info("m", I64, []),
            helper.make_tensor_value_info("scale", F, [1]),
        ],
        [helper.make_tensor_value_info("final", F, None), helper.make_tensor_value_info("all", F, None)],
    )


@pytest.mark.parametrize("steps", [0, 1, 5])
def test_loop_with_nested_if_reading_outer_values(steps):
    model = loop_with_nested_if()
    feeds = {
        "x": np.array([1.0, -3.0, 0.5], np.float32),
        "m": np.array(steps, np.int64),
        "scale": np.array([2.0], np.float32),
    }
    if steps == 0:  # no iteration (the reference evaluator cannot): x, and an empty scan output
        got = ov.compile_model(model.SerializeToString())(feeds)
        np.testing.assert_array_equal(got["final"], feeds["x"])
        assert got["all"].shape == (0, 3) and got["all"].dtype == np.float32
        return
    _check(model, feeds)


def test_trip_count_from_an_input_runs_that_many_steps_each_call():
    compiled = ov.compile_model(loop_with_nested_if().SerializeToString())
    for steps in (3, 7, 2):
        feeds = {"x": np.ones(4, np.float32), "m": np.array(steps, np.int64), "scale": np.array([1.0], np.float32)}
        assert compiled(feeds)["all"].shape == (steps, 4)
        _check(loop_with_nested_if(), feeds, compiled)


def test_if_branches_with_different_shapes_at_run_time():
    model = _conditional_model(
        [
            if_node(
                "c",
                "y",
                helper.make_node("Concat", ["x", "x"], ["t"], axis=0),
                helper.make_node("ReduceSum", ["x"], ["e"], keepdims=1),
            )
        ],
    )
    compiled = ov.compile_model(model.SerializeToString())
    x = np.array([1.0, 2.0, 3.0], np.float32)
    assert compiled({"c": np.array(True), "x": x})["y"].shape == (6,)
    assert compiled({"c": np.array(False), "x": x})["y"].shape == (1,)
    for c in (True, False, True):
        _check(model, {"c": np.array(c), "x": x}, compiled)


def test_if_with_a_constant_condition_keeps_only_the_taken_branch():
    model = _model(
        [
            _scalar("c", True, B),
            # The branch not taken uses an op aiov lacks: it is never converted.
            if_node("c", "y", helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Neg", ["x"], ["e"])),
        ],
        [helper.make_tensor_value_info("x", F, [3])],
        [helper.make_tensor_value_info("y", F, None)],
    )
    read = ov.Core().read_model(model.SerializeToString())
    assert "If" not in {op.get_type_name() for op in read.get_ops()}
    _check(model, {"x": np.array([-1.0, 0.0, 2.0], np.float32)})


def test_scan_with_reversed_inputs_and_outputs_on_other_axes():
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "row"], ["s_out"]),
            helper.make_node("Mul", ["row", "col"], ["prod"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("s_in", F, [2]),
            helper.make_tensor_value_info("row", F, [2]),
            helper.make_tensor_value_info("col", F, [2]),
        ],
        [helper.make_tensor_value_info("s_out", F, [2]), helper.make_tensor_value_info("prod", F, [2])],
    )
    model = _model(
        [
            helper.make_node(
                "Scan",
                ["s", "a", "b"],
                ["s_final", "prods"],
                body=body,
                num_scan_inputs=2,
                scan_input_axes=[0, 1],
                scan_input_directions=[1, 0],
                scan_output_axes=[1],
                scan_output_directions=[1],
            )
        ],
        [
            helper.make_tensor_value_info("s", F, [2]),
            helper.make_tensor_value_info("a", F, [4, 2]),
            helper.make_tensor_value_info("b", F, [2, 4]),
        ],
        [helper.make_tensor_value_info("s_final", F, None), helper.make_tensor_value_info("prods", F, None)],
    )
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 2)).astype(np.float32)
    b = rng.standard_normal((2, 4)).astype(np.float32)
    got = ov.compile_model(model.SerializeToString())({"s": np.zeros(2, np.float32), "a": a, "b": b})
    # a is read last row first; b column by column; step t's product lands at column 3 - t.
    np.testing.assert_allclose(got["s_final"], a.sum(axis=0), rtol=1e-6)
    expected = np.stack([a[3 - t] * b[:, t] for t in range(4)][::-1], axis=1)
    np.testing.assert_allclose(got["prods"], expected, rtol=1e-6)


def test_outer_name_that_does_not_resolve_is_named():
    model = _conditional_model(
        [
            if_node(
                "c", "y", helper.make_node("Identity", ["nowhere"], ["t"]), helper.make_node("Identity", ["x"], ["e"])
            )
        ],
    )
    with pytest.raises(ov.InputError, match="'nowhere'"):
        ov.Core().read_model(model.SerializeToString())


def test_subgraphs_nested_too_deep_are_refused():
    inner = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y0"])], "g0", [], [helper.make_tensor_value_info("y0", F, None)]
    )
    for level in range(1, 20):  # protobuf itself refuses about 33 levels
        out = helper.make_tensor_value_info(f"y{level}", F, None)
        other = helper.make_graph(
            [helper.make_node("Identity", ["x"], [f"e{level}"])],
            f"e{level}",
            [],
            [helper.make_tensor_value_info(f"e{level}", F, None)],
        )
        node = helper.make_node("If", ["c"], [f"y{level}"], then_branch=inner, else_branch=other)
        inner = helper.make_graph([node], f"g{level}", [], [out])
    model = _conditional_model(list(inner.node), x_size=1, output="y19")
    with pytest.raises(ov.InputError, match="nest"):
        ov.Core().read_model(model.SerializeToString())


def _endless_loop():
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", I64, []),
            helper.make_tensor_value_info("cond_in", B, []),
            helper.make_tensor_value_info("v_in", F, [1]),
        ],
        [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("v_out", F, [1])],
    )
    return _model(
        [
            _scalar("m", 2**62, I64),
            _scalar("true", True, B),
            helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", F, [1], [1.0])),
            helper.make_node("Loop", ["m", "true", "x"], ["y"], body=body),
        ],
        [helper.make_tensor_value_info("x", F, [1])],
        [helper.make_tensor_value_info("y", F, [1])],
    )


def test_a_loop_that_would_run_for_ages_stops_when_cancelled():
    compiled = ov.compile_model(_endless_loop().SerializeToString())
    request = compiled.create_infer_request()
    for _ in range(3):  # the request is usable again after each cancelled run
        request.start_async({"x": np.zeros(1, np.float32)})
        request.cancel()
        with pytest.raises(ov.CancelledError):
            request.wait()


def test_many_threads_run_one_compiled_model_with_control_flow():
    model = loop_with_nested_if()
    compiled = ov.compile_model(model.SerializeToString())
    reference = ReferenceEvaluator(model)
    rng = np.random.default_rng(1)
    feeds = [
        {
            "x": rng.standard_normal(int(rng.integers(1, 6))).astype(np.float32),
            "m": np.array(int(rng.integers(1, 6)), np.int64),
            "scale": rng.standard_normal(1).astype(np.float32),
        }
        for _ in range(16)
    ]
    expected = [reference.run(None, f) for f in feeds]
    failures = []

    def worker(offset):
        request = compiled.create_infer_request()
        for round_ in range(20):
            k = (offset + round_) % len(feeds)
            got = request.infer(feeds[k])
            for i, want in enumerate(expected[k]):
                if got[i].shape != want.shape or not np.allclose(got[i], want, rtol=1e-5, atol=1e-5):
                    failures.append((k, i))

    run_in_threads(worker, range(6))
    assert failures == []

    queue = ov.AsyncInferQueue(compiled, 4)
    results = {}
    queue.set_callback(lambda req, k: results.__setitem__(k, [req.get_output_tensor(i).data.copy() for i in range(2)]))
    for k in range(len(feeds)):
        queue.start_async(feeds[k], k)
    queue.wait_all()
    for k, outs in results.items():
        for got, want in zip(outs, expected[k]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert len(results) == len(feeds)


@pytest.mark.parametrize("scalar_sum", [False, True])
def test_if_after_nonzero(scalar_sum):
    # NonZero's size is known only by running (a staged plan); the If after it then gives
    # different shapes per branch, which only running it tells: it ends a stage too, or, when
    # the branches differ in rank (a scalar sum), the run starts over node by node.
    model = nonzero_then_if(outputs=("y", "nz"), scalar_sum=scalar_sum)
    compiled = ov.compile_model(model.SerializeToString())
    for c, x in ((True, [0, 1, 0, 2, 3]), (False, [1, 0, 0, 0, 0]), (True, [0, 0, 0, 0, 4]), (True, [0, 1, 0, 2, 3])):
        _check(model, {"c": np.array(c), "x": np.array(x, np.float32)}, compiled)


def test_loop_body_with_nonzero():
    # The body's own plan is staged (NonZero of a captured value): each step runs it node by node.
    body = helper.make_graph(
        [
            helper.make_node("Greater", ["x", "acc_in"], ["above"]),
            helper.make_node("NonZero", ["above"], ["nz"]),
            helper.make_node("Shape", ["nz"], ["count"], start=1),
            _scalar("one", 1.0, F),
            helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", I64, []),
            helper.make_tensor_value_info("cond_in", B, []),
            helper.make_tensor_value_info("acc_in", F, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", B, []),
            helper.make_tensor_value_info("acc_out", F, []),
            helper.make_tensor_value_info("count", I64, None),
        ],
    )
    model = _model(
        [
            _scalar("m", 4, I64),
            _scalar("start", 0.0, F),
            _scalar("go", True, B),
            helper.make_node("Loop", ["m", "go", "start"], ["acc", "counts"], body=body),
        ],
        [helper.make_tensor_value_info("x", F, [6])],
        [helper.make_tensor_value_info("acc", F, None), helper.make_tensor_value_info("counts", I64, None)],
    )
    got = _check(model, {"x": np.array([0.5, 3, 2, 1.5, 5, 0], np.float32)})
    assert got({"x": np.array([0.5, 3, 2, 1.5, 5, 0], np.float32)})["counts"].reshape(-1).tolist() == [5, 4, 2, 1]


def test_an_if_after_nonzero_runs_in_the_plan_not_node_by_node():
    # Its branches give different shapes: the If ends a stage and emits them, so the model keeps
    # its planned run (profiled step by step); only a rank that running alone tells (a scalar
    # sum in one branch) makes the run start over node by node, which has no steps to profile.
    x = {"c": np.array(True), "x": np.array([0, 1, 0, 2, 3], np.float32)}
    for scalar_sum, planned in ((False, True), (True, False)):
        model = nonzero_then_if(scalar_sum=scalar_sum).SerializeToString()
        request = ov.compile_model(model, "CPU", {"PERF_COUNT": True}).create_infer_request()
        np.testing.assert_array_equal(request.infer(x)[0], [1, 3, 4, 1, 3, 4])
        steps = {(p.node_type, p.exec_type) for p in request.get_profiling_info()}
        assert (("If", "aiov_If []->[6]") in steps) == planned, steps
