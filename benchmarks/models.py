"""Whole-model latency of aiov next to ONNX Runtime and OpenVINO (printed, never asserted).

Models: the architectures of ``tests/engine/test_onnx_models.py`` (imported from there, not copied):
a ResNet-style block stack and a MobileNet-style depthwise stack on [n, 3, 32, 32] at batch 1
and 8, and a BERT-style encoder layer (hidden 64, 4 heads, attention mask) at seq 128 with
batch 1 and 8. Each framework loads the same ONNX model:

* aiov         ``aiov.compile_model(proto.SerializeToString(), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})``
               then ``compiled(feeds)`` (f32, as the peers; bf16 is in benchmarks/engine.py)
* onnxruntime  ``InferenceSession(bytes, providers=["CPUExecutionProvider"])`` + ``sess.run``
* openvino     ``Core().compile_model(<temp .onnx file>, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})``
               then ``compiled(feeds)``

Before timing, the outputs of all available frameworks are checked to agree (np.allclose,
rtol = atol = 1e-3); a mismatch is reported as a note. Every number is the median of
``--repeats`` runs (default 7) of N calls each, N sized per framework so a run lasts about
``--budget`` seconds, after a warm-up. The runs of the frameworks are interleaved (one run of
each, then the next round) so that a change in machine load affects all of them alike.
Frameworks that are not installed show "n/a".
Run: ``python benchmarks/models.py`` (under a minute) or ``--quick`` (a few seconds).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
from _common import add_run_options, calibrate, fmt, print_table, print_versions, run_settings, try_import  # noqa: E402

FRAMEWORKS = ["aiov", "onnxruntime", "openvino"]
BERT_HIDDEN, BERT_HEADS = 64, 4


def _model_builders():
    """The model builders of tests/engine/test_onnx_models.py (needs onnx and pytest importable)."""
    tests = os.path.join(os.path.dirname(_HERE), "tests")
    sys.path[:0] = [tests, os.path.join(tests, "engine")]
    import test_onnx_models as t

    return t


class Spec:
    def __init__(self, key, label, kind, batch, seq=None):
        self.key, self.label, self.kind, self.batch, self.seq = key, label, kind, batch, seq


SPECS = [
    Spec("resnet1", "resnet-style 3x32x32 b1", "resnet", 1),
    Spec("resnet8", "resnet-style 3x32x32 b8", "resnet", 8),
    Spec("mobilenet1", "mobilenet-style 3x32x32 b1", "mobilenet", 1),
    Spec("mobilenet8", "mobilenet-style 3x32x32 b8", "mobilenet", 8),
    Spec("bert1", "bert layer h64 s128 b1", "bert", 1, 128),
    Spec("bert8", "bert layer h64 s128 b8", "bert", 8, 128),
]


def build_proto(builders, kind):
    if kind == "resnet":
        return builders.resnet_model()
    if kind == "mobilenet":
        return builders.mobilenet_model()
    return builders.bert_layer_model(hidden=BERT_HIDDEN, heads=BERT_HEADS)


def make_feeds(spec, seed=1):
    rng = np.random.default_rng(seed)
    if spec.kind in ("resnet", "mobilenet"):
        return {"x": rng.standard_normal((spec.batch, 3, 32, 32)).astype(np.float32)}
    mask = np.ones((spec.batch, spec.seq), np.int64)
    mask[:, spec.seq - spec.seq // 8 :] = 0  # padded tail
    return {"x": rng.standard_normal((spec.batch, spec.seq, BERT_HIDDEN)).astype(np.float32), "mask": mask}


# ---- runners: each returns (callable performing one inference, its first output) -------------


def prepare_aiov(proto_bytes, onnx_path, feeds):
    import aiov

    compiled = aiov.compile_model(proto_bytes, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    fn = lambda: compiled(feeds)  # noqa: E731
    return fn, np.asarray(fn()[0])


def prepare_onnxruntime(proto_bytes, onnx_path, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(proto_bytes, providers=["CPUExecutionProvider"])
    fn = lambda: sess.run(None, feeds)  # noqa: E731
    return fn, np.asarray(fn()[0])


def prepare_openvino(proto_bytes, onnx_path, feeds):
    import openvino

    compiled = openvino.Core().compile_model(onnx_path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    fn = lambda: compiled(feeds)  # noqa: E731
    return fn, np.asarray(fn()[0])


PREPARE = {"aiov": prepare_aiov, "onnxruntime": prepare_onnxruntime, "openvino": prepare_openvino}


def _agree(outputs, notes, spec):
    """Compare every framework's output with the first available one (aiov when present)."""
    names = list(outputs)
    if len(names) < 2:
        return
    ref_name = names[0]
    ref = outputs[ref_name]
    for name in names[1:]:
        got = outputs[name]
        if got.shape != ref.shape:
            notes.append(f"{spec.key}: {name} output shape {got.shape} != {ref_name} {ref.shape}")
        elif not np.allclose(got, ref, rtol=1e-3, atol=1e-3):
            err = float(np.max(np.abs(got.astype(np.float64) - ref)))
            notes.append(f"{spec.key}: {name} differs from {ref_name} by up to {err:.3g}")


def interleaved_median_us(fns, repeats, budget):
    """{name: fn} -> {name: median over ``repeats`` rounds of the mean call time in us}; each round
    runs every fn for about ``budget`` seconds, one after the other."""
    counts = {}
    for name, fn in fns.items():
        counts[name] = calibrate(fn, budget)  # doubles as the warm-up
        for _ in range(max(1, counts[name] // 10)):
            fn()
    samples = {name: [] for name in fns}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in fns.items():
                n = counts[name]
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples[name].append((time.perf_counter() - t0) / n * 1e6)
    finally:
        if gc_was:
            gc.enable()
    return {name: statistics.median(v) for name, v in samples.items()}


# ---- main -----------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser, FRAMEWORKS, budget=0.2, quick_budget=0.03)
    parser.add_argument(
        "--models", default=",".join(s.key for s in SPECS), help="comma list of: " + ", ".join(s.key for s in SPECS)
    )
    args = parser.parse_args(argv)
    repeats, budget, wanted = run_settings(args)
    specs = [s for s in SPECS if s.key in args.models.split(",")]

    modules = {f: try_import(f) for f in FRAMEWORKS}
    available = {f: modules[f] is not None and f in wanted for f in FRAMEWORKS}
    try:
        builders = _model_builders()
    except Exception as exc:  # noqa: BLE001 - without onnx there is nothing to benchmark
        print(f"cannot build the models (tests/engine/test_onnx_models.py needs onnx and pytest): {exc}")
        return []

    title = (
        f"aiov whole-model benchmark  ({'quick' if args.quick else 'full'} mode: median of {repeats} "
        f"runs of ~{budget:g}s each, single request, sync)"
    )
    print_versions(title, FRAMEWORKS, modules, available)

    results = {}  # spec key -> {framework: value or "error"/"mismatch"}
    notes = []
    t_start = time.perf_counter()
    protos = {}
    with tempfile.TemporaryDirectory(prefix="aiov_models_") as tmp:
        for spec in specs:
            if spec.kind not in protos:  # one set of weights per architecture, shared by its batches
                proto = build_proto(builders, spec.kind)
                path = os.path.join(tmp, f"{spec.kind}.onnx")
                with open(path, "wb") as fh:
                    fh.write(proto.SerializeToString())
                protos[spec.kind] = (proto.SerializeToString(), path)
            proto_bytes, path = protos[spec.kind]
            feeds = make_feeds(spec)

            fns, outputs, cells = {}, {}, {}
            for f in FRAMEWORKS:
                if not available[f]:
                    continue
                try:
                    fns[f], outputs[f] = PREPARE[f](proto_bytes, path, feeds)
                except Exception as exc:  # noqa: BLE001 - a failing framework must not stop the table
                    notes.append(f"{f} on {spec.key}: {type(exc).__name__}: {exc}")
                    cells[f] = "error"
            _agree(outputs, notes, spec)
            t0 = time.perf_counter()
            try:
                cells.update(interleaved_median_us(fns, repeats, budget))
            except Exception as exc:  # noqa: BLE001 - keep going with the next model
                notes.append(f"timing {spec.key}: {type(exc).__name__}: {exc}")
                cells.update({f: "error" for f in fns})
            print(
                f"  measured {', '.join(fns) or 'nothing'} on {spec.key} in {time.perf_counter() - t0:5.1f}s",
                file=sys.stderr,
            )
            results[spec.key] = cells
            del fns

    header = ["model", "aiov", "onnxruntime", "openvino", "aiov vs best peer"]
    rows = []
    for spec in specs:
        cells = results.get(spec.key, {})
        row = [spec.label]
        for f in FRAMEWORKS:
            row.append(fmt(cells.get(f), "us") if available[f] else "n/a")
        row.append(_ratio(cells))
        rows.append(row)
    print()
    print_table(header, rows, left=1)
    print()
    print("median latency of one synchronous inference; aiov vs best peer: >1x means aiov is faster.")
    if not notes:
        print("outputs agree across frameworks (np.allclose, rtol=atol=1e-3) for every model.")
    for n in notes:
        print("note:", n)
    print(f"total time {time.perf_counter() - t_start:.1f}s")
    return rows


def _ratio(cells) -> str:
    mine = cells.get("aiov")
    peers = {f: v for f, v in cells.items() if f != "aiov" and isinstance(v, (int, float))}
    if not isinstance(mine, (int, float)) or not peers or mine <= 0:
        return "n/a"
    best = min(peers, key=peers.get)
    return f"{peers[best] / mine:.2f}x ({best})"


if __name__ == "__main__":
    main()
