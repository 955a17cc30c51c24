"""Where compiling a model goes, and what a compiled-model cache saves (printed, never asserted).

Models: four of the zoo (tests/zoo: bert, resnet, whisper_encoder, swin; small, with dynamic
input shapes) and two big ones built by tests/model_builders.py: ResNet-50 (25M weights, dynamic
batch) and a BERT encoder (hidden 384, 6 layers). Each is an ONNX file on disk.

Table 1, aiov cold, by phase (ms): ``read`` (the ONNX frontend: ``Core.read_model``),
``compile`` (``compile_model`` of the read model: graph optimization, and the plan of a model
whose inputs are all static), ``plans`` (the plans the first inference builds, as the engine's
DEBUG log times them: shape inference, folding and weight packing for the GEMM kernels),
``infer`` (the rest of the first inference), and the blob a cache stores (exported after the
first inference: the model, its optimized graph and its packed weights).

Table 2, cold vs cache hit, per framework: ``compile`` is path -> compiled model, ``first
result`` adds the first inference (aiov plans dynamic-shape models then; OpenVINO and
onnxruntime prepare at compile time). Cold: no cache. Hit: the cache written by an earlier
cold compile.

* aiov         ``compile_model(path, config={"CACHE_DIR": dir})``: a hit loads the stored
               optimized graph and packed weights (aiov/_blob.py), skipping the frontend,
               the optimizer and the packing. A model with dynamic inputs packs at its first
               inference, which starts writing the cache entry again with the weights on a
               thread of its own: the run waits for it (untimed) before the hit.
* onnxruntime  cold: ``InferenceSession(path)`` (all graph optimizations), writing
               ``SessionOptions.optimized_model_filepath``; hit: a session of that optimized
               file with graph optimizations off.
* openvino     ``Core().compile_model(path, "CPU", {"CACHE_DIR": dir})``.

Table 3, the first call at a new sequence length: a BERT-base-shaped encoder (hidden 768, 12
heads, 12 layers) and a MiniLM-L12-shaped one (hidden 384, 12 heads, 12 layers), both with
dynamic batch and sequence axes and a padding mask input, compiled once and warmed up at
sequence 128 (batch 1); then each of ``--repeats`` lengths never seen before is called twice.
``first`` is the first call at the new length, ``again`` the second, ``new length costs`` their
difference (aiov builds a plan for the new shapes, reusing the packed weights; onnxruntime and
OpenVINO do their own per-shape work), ``plan`` the part of it aiov's DEBUG log gives to
building the plan. aiov and OpenVINO run with ``INFERENCE_PRECISION_HINT=f32``.

Every number is the median of ``--repeats`` (default 3) measurements, each in a fresh cache
directory for cold ones. Run: ``python benchmarks/compile_time.py`` (a few minutes) or
``--quick`` (the zoo models only, one repeat; table 3 with the MiniLM-shaped encoder only);
``--new-length-only`` prints table 3 alone.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS = os.path.join(os.path.dirname(_HERE), "tests")
sys.path.insert(0, _HERE)
sys.path.insert(0, _TESTS)  # model_builders
from _common import print_table, print_versions, try_import  # noqa: E402

ZOO = ["bert", "resnet", "whisper_encoder", "swin"]
FRAMEWORKS = ["aiov", "onnxruntime", "openvino"]


def _models(workdir, quick):
    """(name, onnx path, feeds) for every model measured."""
    for name in ZOO:
        data = np.load(os.path.join(_TESTS, "zoo", name + ".npz"))
        feeds = {k[len("in0.") :]: data[k] for k in data.files if k.startswith("in0.")}
        yield name, os.path.join(_TESTS, "zoo", name + ".onnx"), feeds
    if quick:
        return
    import onnx

    import model_builders as z

    rng = np.random.default_rng(0)
    big = [
        ("resnet50", z.resnet50, {"x": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}),
        ("bert_h384_6L", z.bert_encoder, z.bert_feeds(1, 128, 384)),
    ]
    for name, build, feeds in big:
        path = os.path.join(workdir, name, name + ".onnx")  # a directory each: aiov's cache key reads it
        os.makedirs(os.path.dirname(path), exist_ok=True)
        onnx.save(build(), path)
        yield name, path, feeds


def _ms(fn):
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - t0) * 1e3


class _PlanTimes(logging.Handler):
    """Sums the build times of the plans aiov's DEBUG log reports."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.ms = 0.0

    def emit(self, record):
        found = re.search(r"plan built .* in ([\d.]+) ms", record.getMessage())
        if found:
            self.ms += float(found.group(1))


def aiov_phases(path, feeds, workdir):
    """ms of (read, compile, plans, rest of the first inference) and the blob's size in MB."""
    import aiov

    logger = logging.getLogger("aiov")
    plans = _PlanTimes()
    logger.addHandler(plans)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        model, read = _ms(lambda: aiov.Core().read_model(path))
        compiled, compile_ms = _ms(lambda: aiov.compile_model(model))
        compile_plans, plans.ms = plans.ms, 0.0
        _, first = _ms(lambda: compiled(feeds))
    finally:
        logger.setLevel(level)
        logger.removeHandler(plans)
    blob = compiled.export_model()
    return read, compile_ms - compile_plans, plans.ms + compile_plans, first - plans.ms, len(blob) / 1e6


def _aiov(path, feeds, cache):
    import aiov

    compiled, compile_ms = _ms(lambda: aiov.compile_model(path, "CPU", {"CACHE_DIR": cache}))
    _, infer = _ms(lambda: compiled(feeds))
    aiov._blob.wait_for_cache_rewrites()  # the hit after this run reads the rewritten entry
    return compile_ms, compile_ms + infer


def _onnxruntime(path, feeds, cache):
    import onnxruntime as ort

    optimized = os.path.join(cache, "optimized.onnx")
    options = ort.SessionOptions()
    if os.path.exists(optimized):
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        source = optimized
    else:
        options.optimized_model_filepath = optimized
        source = path
    session, compile_ms = _ms(lambda: ort.InferenceSession(source, options, providers=["CPUExecutionProvider"]))
    names = {i.name for i in session.get_inputs()}
    _, infer = _ms(lambda: session.run(None, {k: v for k, v in feeds.items() if k in names}))
    return compile_ms, compile_ms + infer


def _openvino(path, feeds, cache):
    import openvino

    compiled, compile_ms = _ms(lambda: openvino.Core().compile_model(path, "CPU", {"CACHE_DIR": cache}))
    _, infer = _ms(lambda: compiled(feeds))
    return compile_ms, compile_ms + infer


RUNNERS = {"aiov": _aiov, "onnxruntime": _onnxruntime, "openvino": _openvino}

# Table 3's encoders (tests/model_builders.py's bert_encoder), the length they are warmed up at,
# and the new lengths, one per repeat, each never seen before by any framework.
ENCODERS = [("bert_base", dict(hidden=768, heads=12, layers=12)), ("minilm_l12", dict(hidden=384, heads=12, layers=12))]
WARM_LENGTH = 128
NEW_LENGTHS = [97, 111, 64, 120, 77, 100, 33, 125, 50]


def _infer_fn(framework, path):
    """A compiled model of `path` as a function of the feeds (one sync call each)."""
    if framework == "aiov":
        import aiov

        compiled = aiov.compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return compiled
    if framework == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)
    import openvino

    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled


def new_length_cost(framework, path, hidden, repeats):
    """Medians in ms of (first call at a new length, second call there, their difference, and
    the plan-building part of the first as aiov's DEBUG log times it; None for the peers)."""
    import model_builders as z

    plans = _PlanTimes()
    logger = logging.getLogger("aiov")
    level = logger.level
    if framework == "aiov":  # before compiling: the engine reads the level then
        logger.addHandler(plans)
        logger.setLevel(logging.DEBUG)
    firsts, agains, costs, plan_ms = [], [], [], []
    try:
        infer = _infer_fn(framework, path)
        warm = z.bert_feeds(1, WARM_LENGTH, hidden)
        for _ in range(3):
            infer(warm)
        for length in NEW_LENGTHS[:repeats]:
            feeds = z.bert_feeds(1, length, hidden)
            plans.ms = 0.0
            _, first = _ms(lambda: infer(feeds))
            plan_ms.append(plans.ms)
            again = min(_ms(lambda: infer(feeds))[1] for _ in range(2))
            firsts.append(first)
            agains.append(again)
            costs.append(first - again)
    finally:
        logger.setLevel(level)
        logger.removeHandler(plans)
    med = statistics.median
    return med(firsts), med(agains), med(costs), med(plan_ms) if framework == "aiov" else None


def new_length_table(wanted, workdir, repeats, quick):
    """Table 3's rows: per encoder and framework, what the first call at a new length costs."""
    import onnx

    import model_builders as z

    rows = []
    for name, shape in ENCODERS[1:] if quick else ENCODERS:
        path = os.path.join(workdir, name + ".onnx")
        onnx.save(z.bert_encoder(**shape), path)
        for framework in wanted:
            first, again, cost, plan = new_length_cost(framework, path, shape["hidden"], repeats)
            plan_cell = f"{plan:.1f}" if plan is not None else "-"
            rows.append([name, framework, f"{first:.1f}", f"{again:.1f}", f"{cost:+.1f}", plan_cell])
            print(f"  {name} {framework}: new lengths done", file=sys.stderr, flush=True)
    return rows


def cold_and_hit(run, path, feeds, workdir, repeats):
    """Medians of (cold compile, hit compile, cold first result, hit first result) in ms."""
    cold, hit = [], []
    for _ in range(repeats):
        cache = tempfile.mkdtemp(dir=workdir)
        cold.append(run(path, feeds, cache))
        hit.append(run(path, feeds, cache))
        shutil.rmtree(cache, ignore_errors=True)
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    return med(cold, 0), med(hit, 0), med(cold, 1), med(hit, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the zoo models only, one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="measurements per number (default 3)")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma list of: " + ", ".join(FRAMEWORKS))
    parser.add_argument("--new-length-only", action="store_true", help="only table 3 (a new sequence length)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    modules = {f: try_import(f) for f in FRAMEWORKS}
    asked = args.frameworks.split(",")
    available = {f: f in asked and modules[f] is not None for f in FRAMEWORKS}
    wanted = [f for f in FRAMEWORKS if available[f]]
    print_versions("compile time: cold vs cache hit", FRAMEWORKS, modules, available)
    workdir = tempfile.mkdtemp(prefix="aiov-compile-time-")
    try:
        models = [] if args.new_length_only else list(_models(workdir, args.quick))
        phases, results = [], []
        for name, path, feeds in models:
            if "aiov" in wanted:
                read, compile_ms, plans, infer, blob_mb = aiov_phases(path, feeds, workdir)
                phases.append([name, f"{os.path.getsize(path) / 1e6:.1f}", f"{read:.0f}", f"{compile_ms:.0f}"])
                phases[-1] += [f"{plans:.0f}", f"{infer:.0f}", f"{blob_mb:.1f}"]
            for framework in wanted:
                c, h, fc, fh = cold_and_hit(RUNNERS[framework], path, feeds, workdir, repeats)
                results.append([name, framework, f"{c:.0f}", f"{h:.0f}", f"{c / h:.1f}x", f"{fc:.0f}", f"{fh:.0f}"])
                results[-1].append(f"{fc / fh:.1f}x")
                print(f"  {name} {framework}: done", file=sys.stderr, flush=True)
        if phases:
            print("\naiov cold, by phase (ms):")
            header = ["model", "onnx MB", "read", "compile", "plans", "infer", "blob MB"]
            print_table(header, phases)
        if results:
            print("\ncold vs cache hit (ms):")
            header = ["model", "framework", "compile cold", "hit", "faster", "first result cold", "hit", "faster"]
            print_table(header, results, left=2)
        new_lengths = new_length_table(wanted, workdir, args.repeats or (1 if args.quick else 5), args.quick)
        print(f"\nfirst call at a new sequence length after warm-up at {WARM_LENGTH}, batch 1 (ms):")
        header = ["model", "framework", "first", "again", "new length costs", "aiov plan"]
        print_table(header, new_lengths, left=2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
