"""``python -m aiov info`` and ``python -m aiov benchmark``, run as a user runs them (in a
subprocess) on a small ONNX model: what they print, their --json, and their errors (one line,
never a traceback)."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def _save(path, nodes, inputs, outputs, inits=(), extra_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in extra_opsets]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    static = _save(
        tmp / "static.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        [w],
    )
    dynamic = _save(
        tmp / "dynamic.onnx",
        [
            helper.make_node("Relu", ["x"], ["y"]),
            helper.make_node("Cast", ["k"], ["kf"], to=1),
            helper.make_node("Add", ["y", "kf"], ["z"]),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [8]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 8])],
    )
    unsupported = _save(
        tmp / "unsupported.onnx",
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("FancyOp", ["y"], ["z"], domain="com.acme")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        extra_opsets=["com.acme"],
    )
    return {"static": static, "dynamic": dynamic, "unsupported": unsupported, "dir": tmp}


def aiov_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "aiov", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_info_lists_inputs_outputs_and_ops(models):
    out = aiov_cli("info", models["static"])
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "  x: f32 [1,8]" in text and "  z: f32 [1,4]" in text
    assert "MatMul" in text and "Relu" in text
    assert "supported: yes" in text


def test_info_of_an_unsupported_model_names_what_is_missing(models):
    out = aiov_cli("info", models["unsupported"])
    assert out.returncode == 1
    assert "supported: no" in out.stdout
    assert "missing ops: com.acme.FancyOp" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize("api", ["sync", "queue", "aio"])
def test_benchmark_reports_throughput_and_latency(models, api):
    report = models["dir"] / f"{api}.json"
    out = aiov_cli(
        "benchmark",
        models["static"],
        "-t",
        "1",
        "--api",
        api,
        "--concurrency",
        "2",
        "--hint",
        "throughput",
        "--json",
        report,
    )
    assert out.returncode == 0, out.stderr
    for label in (
        "count",
        "throughput (inf/s)",
        "latency min (ms)",
        "latency median (ms)",
        "latency mean (ms)",
        "latency p90 (ms)",
        "latency p99 (ms)",
        "latency max (ms)",
    ):
        assert label in out.stdout
    assert out.stderr == ""  # progress goes to stderr only on a terminal
    data = json.loads(report.read_text())
    result = data["results"][0]
    assert result["engine"] == "aiov" and result["api"] == api
    assert result["concurrency"] == (1 if api == "sync" else 2)
    assert result["count"] > 0 and result["throughput_fps"] > 0
    lat = result["latency_ms"]
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert data["inputs"] == {"x": {"shape": [1, 8], "dtype": "float32"}}


def test_dynamic_inputs_need_a_shape_named_in_the_error(models):
    out = aiov_cli("benchmark", models["dynamic"], "-t", "0.5")
    assert out.returncode == 2
    assert "input 'x' has a dynamic shape" in out.stderr and "--shape x=" in out.stderr
    assert "Traceback" not in out.stderr
    report = models["dir"] / "dynamic.json"
    out = aiov_cli("benchmark", models["dynamic"], "-t", "0.5", "--shape", "x=3,8", "--json", report)
    assert out.returncode == 0, out.stderr
    assert json.loads(report.read_text())["inputs"] == {
        "x": {"shape": [3, 8], "dtype": "float32"},
        "k": {"shape": [8], "dtype": "int64"},
    }


@pytest.mark.parametrize(
    "shape, message", [("x=3", "rank 2"), ("x=3,9", "dim 1"), ("nope=1,8", "model's inputs are"), ("x", "NAME=D0,D1")]
)
def test_bad_shapes_are_explained(models, shape, message):
    out = aiov_cli("benchmark", models["dynamic"], "-t", "0.5", "--shape", shape)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_benchmark_of_an_unsupported_model_is_one_line(models):
    out = aiov_cli("benchmark", models["unsupported"], "-t", "0.5")
    assert out.returncode == 1
    assert "com.acme.FancyOp" in out.stderr and "Traceback" not in out.stderr


def test_compare_runs_the_peers_side_by_side(models):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    report = models["dir"] / "compare.json"
    out = aiov_cli("benchmark", models["static"], "-t", "0.5", "--compare", "--json", report)
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[1]
    assert "aiov" in header and "openvino" in header and "onnxruntime" in header
    engines = [r["engine"] for r in json.loads(report.read_text())["results"]]
    assert engines == ["aiov", "openvino", "onnxruntime"]
