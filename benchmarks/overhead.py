"""Per-call overhead of aiov next to OpenVINO and ONNX Runtime (printed, never asserted).

Models: a tiny model (Add of two [8] f32 vectors), a small MLP 16-16-16-16 at batch 8 (its
compute is a few hundred nanoseconds: the call is all overhead) and a 3-layer MLP
784-1024-1024-10 (bias + ReLU) at batch 1 and 64. Measures, per framework:

* ``compiled(x)``      median sync latency of calling the compiled model (ORT: ``sess.run``)
* ``request.infer(x)`` median sync latency of a reused infer request (ORT: ``sess.run`` with
                       output names given)
* ``queue``            AsyncInferQueue throughput with a Python callback, inferences/s
                       (ORT: ``InferenceSession.run_async`` with a callback, when available)
* ``aio await``        aiov only: median latency of ``await compiled(x)`` (aiov.aio) from one
                       asyncio caller: the job runs on a worker and its completion comes back
                       through the loop's eventfd
* ``aio 16 callers``   aiov only: inferences/s of 16 asyncio callers awaiting ``compiled(x)``

Every number is the median of ``--repeats`` runs (default 7) of N calls each, N sized so a
run lasts about ``--budget`` seconds, after a warm-up. Frameworks that are not installed show
"n/a". Run: ``python benchmarks/overhead.py`` (about a minute) or ``--quick`` (a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    add_run_options,
    fmt,
    median_latency_us,
    median_throughput,
    print_table,
    print_versions,
    run_settings,
    try_import,
)

MEASURES = [
    ("compiled(x)", "us"),
    ("request.infer(x)", "us"),
    ("queue", "tput"),
    ("aio await", "us"),
    ("aio 16 callers", "tput"),
]
AIO_CALLERS = 16
FRAMEWORKS = ["aiov", "openvino", "onnxruntime"]


# ---- models ---------------------------------------------------------------------------------


class Spec:
    def __init__(self, key, label, kind, batch=None):
        self.key, self.label, self.kind, self.batch = key, label, kind, batch


SPECS = [
    Spec("tiny", "tiny: add [8]+[8]", "tiny"),
    Spec("small", "mlp 16-16-16-16 b8", "small", 8),
    Spec("mlp1", "mlp 784-1024-1024-10 b1", "mlp", 1),
    Spec("mlp64", "mlp 784-1024-1024-10 b64", "mlp", 64),
]

MLP_SIZES = (784, 1024, 1024, 10)
SMALL_SIZES = (16, 16, 16, 16)


def sizes_of(spec):
    return SMALL_SIZES if spec.kind == "small" else MLP_SIZES


def mlp_weights(sizes=MLP_SIZES, seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for k, n in zip(sizes[:-1], sizes[1:]):
        w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
        b = (rng.standard_normal(n) * 0.1).astype(np.float32)
        layers.append((w, b))
    return layers


def make_inputs(spec, seed=1):
    rng = np.random.default_rng(seed)
    if spec.kind == "tiny":
        return [rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)]
    return [rng.standard_normal((spec.batch, sizes_of(spec)[0])).astype(np.float32)]


def reference(spec, inputs, weights):
    if spec.kind == "tiny":
        return inputs[0] + inputs[1]
    h = inputs[0].astype(np.float64)
    for i, (w, b) in enumerate(weights):
        h = h @ w + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0)
    return h


def build_ov_style(ov, ops, spec, weights):
    """The same graph through an OpenVINO-style API (aiov or openvino)."""
    if spec.kind == "tiny":
        a = ops.parameter([8], np.float32, name="a")
        b = ops.parameter([8], np.float32, name="b")
        return ov.Model([ops.add(a, b)], [a, b], "tiny")
    x = ops.parameter([spec.batch, sizes_of(spec)[0]], np.float32, name="x")
    h = x
    for i, (w, b) in enumerate(weights):
        h = ops.add(ops.matmul(h, ops.constant(w), False, False), ops.constant(b))
        if i < len(weights) - 1:
            h = ops.relu(h)
    return ov.Model([h], [x], "mlp")


def build_onnx(spec, weights) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if spec.kind == "tiny":
        nodes = [helper.make_node("Add", ["a", "b"], ["y"])]
        inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [8]) for n in ("a", "b")]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])
        inits = []
    else:
        nodes, inits = [], []
        h = "x"
        for i, (w, b) in enumerate(weights):
            inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes.append(helper.make_node("MatMul", [h, f"w{i}"], [f"mm{i}"]))
            last = i == len(weights) - 1
            nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], ["y" if last else f"z{i}"]))
            if not last:
                nodes.append(helper.make_node("Relu", [f"z{i}"], [f"h{i}"]))
                h = f"h{i}"
        sizes = sizes_of(spec)
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [spec.batch, sizes[0]])]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [spec.batch, sizes[-1]])
    graph = helper.make_graph(nodes, spec.key, inputs, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


# ---- runners: each returns {measure: value or None or "note"} --------------------------------


def _check(name, got, want, notes):
    err = float(np.max(np.abs(np.asarray(got, np.float64) - want)))
    if err > 1e-3 * max(1.0, float(np.max(np.abs(want)))):
        notes.append(f"{name}: result differs from numpy by {err:.3g}")


def _ov_style_measures(ov, compiled, inputs, want, name, notes, repeats, budget, jobs=0):
    res = {}
    _check(name, compiled(inputs)[0], want, notes)
    res["compiled(x)"] = median_latency_us(lambda: compiled(inputs), repeats, budget)
    request = compiled.create_infer_request()
    request.infer(inputs)
    res["request.infer(x)"] = median_latency_us(lambda: request.infer(inputs), repeats, budget)

    queue = ov.AsyncInferQueue(compiled, jobs)  # 0: the framework's optimal number
    lock = threading.Lock()
    done = [0]

    def callback(request, userdata):
        with lock:
            done[0] += 1

    queue.set_callback(callback)

    def run_batch(n):
        start = done[0]
        for _ in range(n):
            queue.start_async(inputs)
        queue.wait_all()
        if done[0] - start != n:
            raise RuntimeError(f"{name}: {done[0] - start} callbacks for {n} jobs")

    res["queue"] = median_throughput(run_batch, repeats, budget)
    res["_jobs"] = len(queue)
    return res


def run_aiov(spec, model_builder, inputs, want, notes, repeats, budget, jobs=0):
    import aiov

    model = model_builder(aiov, aiov.opset13)
    compiled = aiov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    res = _ov_style_measures(aiov, compiled, inputs, want, "aiov", notes, repeats, budget, jobs)
    res.update(asyncio.run(_aio_measures(compiled, inputs, want, notes, repeats, budget)))
    return res


async def _aio_measures(compiled, inputs, want, notes, repeats, budget):
    from aiov import aio

    model = aio.CompiledModel(compiled)
    _check("aiov aio", (await model(inputs))[0], want, notes)

    async def one_run(n):
        t0 = time.perf_counter()
        for _ in range(n):
            await model(inputs)
        return time.perf_counter() - t0

    n = 16
    while await one_run(n) < budget / 4:
        n *= 4
    n = max(16, int(n * budget / max(await one_run(n), 1e-9)))
    latency = statistics.median([await one_run(n) / n * 1e6 for _ in range(repeats)])

    async def callers(total):
        left = [total]

        async def caller():
            while left[0] > 0:
                left[0] -= 1
                await model(inputs)

        t0 = time.perf_counter()
        await asyncio.gather(*[caller() for _ in range(AIO_CALLERS)])
        return total / (time.perf_counter() - t0)

    await callers(n)  # warm-up: fills the request pool
    throughput = statistics.median([await callers(n * 2) for _ in range(repeats)])
    return {"aio await": latency, "aio 16 callers": throughput}


def run_openvino(spec, model_builder, inputs, want, notes, repeats, budget, jobs=0):
    import openvino

    model = model_builder(openvino, openvino.opset13)
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return _ov_style_measures(openvino, compiled, inputs, want, "openvino", notes, repeats, budget, jobs)


def run_onnxruntime(spec, onnx_bytes, inputs, want, notes, repeats, budget):
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feed = dict(zip(names, inputs))
    out_names = [o.name for o in sess.get_outputs()]
    res = {}
    _check("onnxruntime", sess.run(None, feed)[0], want, notes)
    res["compiled(x)"] = median_latency_us(lambda: sess.run(None, feed), repeats, budget)
    res["request.infer(x)"] = median_latency_us(lambda: sess.run(out_names, feed), repeats, budget)
    if not hasattr(sess, "run_async"):
        res["queue"] = "n/a (no run_async)"
        return res
    lock = threading.Lock()
    state = {"left": 0, "error": None}
    finished = threading.Event()

    def callback(results, userdata, err):
        with lock:
            if err and state["error"] is None:
                state["error"] = err
            state["left"] -= 1
            if state["left"] == 0:
                finished.set()

    def run_batch(n):
        finished.clear()
        state["left"] = n
        for i in range(n):
            sess.run_async(out_names, feed, callback, i)
        if not finished.wait(120):
            raise RuntimeError("onnxruntime run_async: callbacks did not arrive")
        if state["error"]:
            raise RuntimeError(f"onnxruntime run_async failed: {state['error']}")

    try:
        res["queue"] = median_throughput(run_batch, repeats, budget)
    except Exception as exc:  # noqa: BLE001 - report, keep going
        notes.append(f"onnxruntime run_async: {type(exc).__name__}: {exc}")
        res["queue"] = "n/a"
    return res


# ---- main -----------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser, FRAMEWORKS, budget=0.15, quick_budget=0.02)
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="AsyncInferQueue jobs for aiov and openvino (default 0: each framework's choice)",
    )
    parser.add_argument(
        "--models", default="tiny,small,mlp1,mlp64", help="comma list of: " + ", ".join(s.key for s in SPECS)
    )
    args = parser.parse_args(argv)
    repeats, budget, wanted = run_settings(args)
    specs = [s for s in SPECS if s.key in args.models.split(",")]

    modules = {"aiov": try_import("aiov"), "openvino": try_import("openvino"), "onnxruntime": try_import("onnxruntime")}
    onnx_mod = try_import("onnx")
    available = {f: modules[f] is not None and f in wanted for f in FRAMEWORKS}
    if available["onnxruntime"] and onnx_mod is None:
        available["onnxruntime"] = False

    title = (
        f"aiov overhead benchmark  ({'quick' if args.quick else 'full'} mode: median of {repeats} runs "
        f"of ~{budget:g}s each)"
    )
    print_versions(title, FRAMEWORKS, modules, available)

    results = {}  # (spec key, measure) -> {framework: value}
    jobs = {}
    notes = []
    t_start = time.perf_counter()
    for spec in specs:
        inputs = make_inputs(spec)
        weights = mlp_weights(sizes_of(spec))
        want = reference(spec, inputs, weights)
        builder = lambda ov, ops, spec=spec, weights=weights: build_ov_style(ov, ops, spec, weights)  # noqa: E731
        for f in FRAMEWORKS:
            if not available[f]:
                continue
            t0 = time.perf_counter()
            try:
                if f == "aiov":
                    res = run_aiov(spec, builder, inputs, want, notes, repeats, budget, args.jobs)
                elif f == "openvino":
                    res = run_openvino(spec, builder, inputs, want, notes, repeats, budget, args.jobs)
                else:
                    res = run_onnxruntime(spec, build_onnx(spec, weights), inputs, want, notes, repeats, budget)
            except Exception as exc:  # noqa: BLE001 - a failing framework must not stop the table
                notes.append(f"{f} on {spec.key}: {type(exc).__name__}: {exc}")
                res = {m: "error" for m, _ in MEASURES}
            if "_jobs" in res:
                jobs[(f, spec.key)] = res.pop("_jobs")
            for m, _ in MEASURES:
                results.setdefault((spec.key, m), {})[f] = res.get(m)
            print(f"  measured {f:12s} on {spec.key:6s} in {time.perf_counter() - t0:5.1f}s", file=sys.stderr)

    header = ["model", "measure", "aiov", "openvino", "onnxruntime", "aiov vs best peer"]
    rows = []
    for spec in specs:
        for m, kind in MEASURES:
            cells = results.get((spec.key, m), {})
            row = [spec.label, m + (" [us]" if kind == "us" else " [inf/s]")]
            for f in FRAMEWORKS:
                if not available[f]:
                    row.append("n/a")
                else:
                    row.append(fmt(cells.get(f), kind))
            row.append(_ratio(cells, kind))
            rows.append(row)
    print()
    print_table(header, rows, left=2)
    print()
    print("aiov vs best peer: >1x means aiov is better (lower latency / higher throughput).")
    print(
        "onnxruntime: compiled(x) = sess.run(None, feed); request.infer(x) = sess.run(names, feed); "
        "queue = run_async + callback."
    )
    if jobs:
        print("AsyncInferQueue jobs: " + ", ".join(f"{f}/{k}={n}" for (f, k), n in sorted(jobs.items())))
    for n in notes:
        print("note:", n)
    print(f"total time {time.perf_counter() - t_start:.1f}s")
    return rows


def _ratio(cells, kind) -> str:
    mine = cells.get("aiov")
    peers = {f: v for f, v in cells.items() if f != "aiov" and isinstance(v, (int, float))}
    if not isinstance(mine, (int, float)) or not peers or mine <= 0:
        return "n/a"
    if kind == "us":
        best = min(peers, key=peers.get)
        ratio = peers[best] / mine
    else:
        best = max(peers, key=peers.get)
        ratio = mine / peers[best]
    return f"{ratio:.2f}x ({best})"


if __name__ == "__main__":
    main()
