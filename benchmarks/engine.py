"""Engine speed: real-shaped models and raw GEMM, aiov next to ONNX Runtime and OpenVINO
(printed, never asserted).

Models (built in code by ``tests/model_builders.py``, seeded weights, nothing downloaded):
  (a) MLP 784-1024-1024-10 at batch 1 and 64
  (b) four 3x3 stride-2 convs 3-32-64-128-256 on 1x3x224x224, global pool, 256-10 Gemm
  (c) ResNet-50 v1.5 on 1x3x224x224
  (d) MobileNetV2 on 1x3x224x224
  (e) BERT-style encoder: hidden 384, 12 heads, 6 layers, seq 128, batch 1 and 8
  (f) MiniLM-L12-shaped encoder: hidden 384, 12 heads, 12 layers, seq 128, batch 1 and 8
  (g) BERT-base-shaped encoder: hidden 768, 12 heads, 12 layers, seq 128, batch 1
  (the encoders have dynamic batch and sequence axes and a padding mask input, 1/8 padded)
plus GEMM GFLOP/s on 1024^3, 2048^3 and 1x784x1024 (aiov's packed-weight path and numpy).

``--zoo`` adds the architectures of tests/zoo (small configs of real models exported by torch:
CNNs, transformers, audio, recurrent; at batch 8, their inputs made static) to every table.

A second table compares reduced precision on the CNNs (the conv stack, ResNet-50, MobileNetV2
above) and the encoders: aiov with
``INFERENCE_PRECISION_HINT=bf16`` next to OpenVINO with its defaults (bf16 on CPUs with AMX or
AVX512_BF16; the column says which precision it ran) and aiov at f32, with the geometric mean
of aiov bf16 / OpenVINO default. Where aiov accepts ``f16`` (AVX512-FP16), each model gets an
f16 row too: aiov with ``INFERENCE_PRECISION_HINT=f16`` next to OpenVINO with the same hint.
Outputs are checked against aiov f32 within a bf16 tolerance (5e-2 of the output's scale).
``--no-bf16`` skips it.

A third table runs int8: the MLP (b64) and the BERT encoder quantized by onnxruntime's
``quantize_dynamic``, ResNet-50 and MobileNetV2 by ``quantize_static`` (QDQ, per-channel
weights, calibrated on random images), and with ``--zoo`` every zoo architecture (its CNNs
static QDQ, the rest dynamic; each quantized once per run); aiov, onnxruntime and OpenVINO (its
defaults) read the same quantized ONNX, with the geometric mean of aiov / the faster peer.
Outputs are checked against onnxruntime's, and against its run with graph optimizations off
(requantization noise: the two differ by whole quanta on some models). ``--no-int8`` skips it.
Each table ends with the geometric mean of aiov / best peer (at bf16: OpenVINO's default).

Every (framework, model) pair runs in a child process of its own, so the peak memory column
is that framework's alone: the high-water resident set (VmHWM) minus the resident set after
the imports and the inputs were made, i.e. weights, compiled plans and scratch. Latency is the
median of ``--repeats`` runs of N sync calls each (N sized to about ``--budget`` seconds)
after a warm-up. The frameworks' runs alternate, one of each per round, so load from
elsewhere on a shared machine falls on all of them alike. aiov and openvino run with
``INFERENCE_PRECISION_HINT=f32`` in the first table; onnxruntime with its default CPU provider and graph
optimisations. Before any timing, each peer's output is checked
against aiov's (rtol = atol = 1e-3 relative to the output's scale).

Run: ``python benchmarks/engine.py`` (a few minutes) or ``--quick``; ``--plot FILE`` also
draws the latency table as a bar chart (matplotlib, ``pip install 'aiov[bench]'``).
Per-node profile of aiov for one model, and per op type next to OpenVINO's (PERF_COUNT):
``python benchmarks/engine.py --profile resnet50 [--precision bf16]`` (zoo models as ``zoo_NAME``,
the int8 table's as ``KEY_int8``: ``zoo_NAME_int8``, against OpenVINO's int8).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "tests"))
from _common import add_run_options, calibrate, fmt, print_table, print_versions, run_settings, try_import  # noqa: E402

FRAMEWORKS = ["aiov", "onnxruntime", "openvino"]
# The reduced-precision table's runners: (runner, module, config); config None is the
# framework's own default.
BF16_RUNNERS = {
    "aiov f32": ("aiov", {"INFERENCE_PRECISION_HINT": "f32"}),
    "aiov bf16": ("aiov", {"INFERENCE_PRECISION_HINT": "bf16"}),
    "openvino default": ("openvino", None),
}
# Added to them where aiov runs f16 on f16 instructions (its hint is refused elsewhere).
F16_RUNNERS = {
    "aiov f16": ("aiov", {"INFERENCE_PRECISION_HINT": "f16"}),
    "openvino f16": ("openvino", {"INFERENCE_PRECISION_HINT": "f16"}),
}
REDUCED_RUNNERS = {**BF16_RUNNERS, **F16_RUNNERS}
# The int8 table's runners: aiov and onnxruntime as in the first table, OpenVINO with its
# defaults (its low-precision transformations run the quantized ops in int8).
INT8_RUNNERS = ["aiov", "onnxruntime", "openvino default"]
ZOO_DIR = os.path.join(os.path.dirname(_HERE), "tests", "zoo")
# tests/zoo's models that are not architectures but control-flow fixtures.
ZOO_SKIPPED = ("if_loop", "list_loop")
# The zoo's CNNs, which the int8 table quantizes statically (QDQ, calibrated); the rest
# (transformers, audio, recurrent) are quantized dynamically, as onnxruntime advises for them.
ZOO_STATIC_INT8 = (
    "convnext",
    "deeplabv3",
    "densenet",
    "efficientnet",
    "fcn",
    "googlenet",
    "lraspp",
    "mobilenet_v2",
    "mobilenet_v3",
    "regnet",
    "resnet",
    "resnet_bottleneck",
    "shufflenet",
    "squeezenet",
    "ssdlite",
)


def zoo_names():
    """The architectures of tests/zoo (small configs of real models, exported by torch)."""
    names = sorted(f[: -len(".onnx")] for f in os.listdir(ZOO_DIR) if f.endswith(".onnx"))
    return [n for n in names if n not in ZOO_SKIPPED and os.path.exists(os.path.join(ZOO_DIR, f"{n}.npz"))]


class Spec:
    def __init__(self, key, label, build, feeds):
        self.key, self.label, self.build, self.feeds = key, label, build, feeds


def _image(batch, size=224, seed=7):
    return {"x": np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)}


def _specs():
    import model_builders as z

    rng = np.random.default_rng(8)
    return [
        Spec(
            "mlp1",
            "(a) MLP 784-1024-1024-10 b1",
            z.mlp,
            lambda: {"x": rng.standard_normal((1, 784)).astype(np.float32)},
        ),
        Spec(
            "mlp64",
            "(a) MLP 784-1024-1024-10 b64",
            z.mlp,
            lambda: {"x": rng.standard_normal((64, 784)).astype(np.float32)},
        ),
        Spec("convs", "(b) 4x conv3x3/s2 3..256 224px", z.conv_stack, lambda: _image(1)),
        Spec("resnet50", "(c) ResNet-50 224px b1", z.resnet50, lambda: _image(1)),
        Spec("mobilenet", "(d) MobileNetV2 224px b1", z.mobilenet_v2, lambda: _image(1)),
        Spec("bert", "(e) BERT h384 12h 6L s128 b1", z.bert_encoder, lambda: z.bert_feeds(1, 128, 384)),
        Spec("bert_b8", "(e) BERT h384 12h 6L s128 b8", z.bert_encoder, lambda: z.bert_feeds(8, 128, 384)),
        Spec("minilm", "(f) MiniLM-L12 h384 12h 12L s128 b1", _minilm, lambda: z.bert_feeds(1, 128, 384)),
        Spec("minilm_b8", "(f) MiniLM-L12 h384 12h 12L s128 b8", _minilm, lambda: z.bert_feeds(8, 128, 384)),
        Spec("bert_base", "(g) BERT-base h768 12h 12L s128 b1", _bert_base, lambda: z.bert_feeds(1, 128, 768)),
    ]


def _minilm():
    import model_builders as z

    return z.bert_encoder(hidden=384, heads=12, layers=12)


def _bert_base():
    import model_builders as z

    return z.bert_encoder(hidden=768, heads=12, layers=12)


def _zoo_spec(name, batch=8):
    path = os.path.join(ZOO_DIR, f"{name}.onnx")
    sample = _zoo_sample(name)
    batched = _zoo_batched(path, sample)
    if not batched:
        batch = 1  # the model takes one sample per call (a detector's single image)

    def build():
        import onnx

        # Static input shapes: OpenVINO compiles a dynamic batch axis into slower generic
        # kernels, where aiov plans per shape anyway.
        model = onnx.load(path)
        shapes = {k: v.shape for k, v in feeds().items()}
        for inp in model.graph.input:
            if inp.name in shapes:
                for dim, size in zip(inp.type.tensor_type.shape.dim, shapes[inp.name]):
                    dim.dim_value = size
        return model

    def feeds():
        sample = _zoo_sample(name)
        return {k: np.repeat(v, batch, axis=0) for k, v in sample.items()} if batched else sample

    first = next(iter(sample.values())).shape
    shape = "x".join(str(d) for d in (first[1:] if batched else first))
    label = f"zoo {name} {shape} b{batch}" if batched else f"zoo {name} {shape} b1 (unbatched input)"
    return Spec(f"zoo_{name}", label, build, feeds)


def _zoo_sample(name):
    """The first recorded case's inputs, by input name."""
    data = np.load(os.path.join(ZOO_DIR, f"{name}.npz"))
    return {k.split(".", 1)[1]: data[k] for k in data.files if k.startswith("in0.")}


def _zoo_batched(path, sample):
    """Whether every fed input has a free leading (batch) axis. An input that leads with a
    fixed size (ssdlite's [3, height, width] image) takes one sample as exported: repeating
    it along its first axis would make a shape every framework refuses."""
    import onnx

    inputs = {i.name: i for i in onnx.load(path, load_external_data=False).graph.input}
    dims = [inputs[n].type.tensor_type.shape.dim for n in sample if n in inputs]
    return all(len(d) > 0 and not d[0].HasField("dim_value") for d in dims)


def _zoo_specs():
    return [_zoo_spec(n) for n in zoo_names()]


def _bf16_specs():
    keep = ("convs", "resnet50", "mobilenet", "bert", "bert_b8", "minilm", "bert_base")
    return [s for s in _specs() if s.key in keep]


# Where _quantized keeps the models it quantized, so that a run quantizes each once (main
# points it at the run's temporary directory; None quantizes afresh).
QUANTIZED_CACHE = {"dir": None}


def _quantized(key, build, static_feeds=None):
    """build's float model quantized by onnxruntime.quantization (model_builders.quantized):
    dynamically (weights s8, activations u8 per call), or statically in QDQ form calibrated on
    four batches of `static_feeds`. Once per run: kept in QUANTIZED_CACHE."""

    def make():
        import onnx

        import model_builders as z

        cache = QUANTIZED_CACHE["dir"]
        cached = os.path.join(cache, f"{key}.int8.onnx") if cache else None
        if cached and os.path.exists(cached):
            return onnx.load(cached)
        calibration = [static_feeds(seed) for seed in range(4)] if static_feeds else None
        model = z.quantized(build(), calibration)
        if cached:
            onnx.save(model, cached)
        return model

    return make


def _int8_specs(zoo=False):
    """The int8 table's models: the built-in four, and with `zoo` every zoo architecture."""
    import model_builders as z

    rng = np.random.default_rng(9)
    zoo_specs = [_zoo_int8_spec(n) for n in zoo_names()] if zoo else []
    return [
        Spec(
            "mlp64_int8",
            "(a) MLP 784-1024-1024-10 b64 dynamic",
            _quantized("mlp", z.mlp),
            lambda: {"x": rng.standard_normal((64, 784)).astype(np.float32)},
        ),
        Spec(
            "bert_int8",
            "(e) BERT h384 12h 6L s128 b1 dynamic",
            _quantized("bert", z.bert_encoder),
            lambda: z.bert_feeds(1, 128, 384),
        ),
        Spec(
            "resnet50_int8",
            "(c) ResNet-50 224px b1 static QDQ",
            _quantized("resnet50", z.resnet50, lambda seed: _image(1, seed=seed)),
            lambda: _image(1),
        ),
        Spec(
            "mobilenet_int8",
            "(d) MobileNetV2 224px b1 static QDQ",
            _quantized("mobilenet", z.mobilenet_v2, lambda seed: _image(1, seed=seed)),
            lambda: _image(1),
        ),
        *zoo_specs,
    ]


def _zoo_int8_spec(name):
    """A zoo architecture as the int8 table runs it: the f32 spec's model (batch 8, static
    shapes) quantized statically in QDQ form when it is a CNN (ZOO_STATIC_INT8), calibrated on
    random batches shaped and scaled like its recorded input, else dynamically."""
    f32 = _zoo_spec(name)
    static_feeds = None
    if name in ZOO_STATIC_INT8:

        def static_feeds(seed):
            rng = np.random.default_rng(seed)
            return {
                k: (rng.standard_normal(v.shape) * v.std() + v.mean()).astype(v.dtype) for k, v in f32.feeds().items()
            }

    how = "static QDQ" if static_feeds else "dynamic"
    return Spec(f"{f32.key}_int8", f"{f32.label} {how}", _quantized(f32.key, f32.build, static_feeds), f32.feeds)


def _all_specs():
    return {s.key: s for s in _specs() + _bf16_specs() + _int8_specs(zoo=True) + _zoo_specs()}


def _chosen(specs, models, zoo):
    """The specs a run measures: those --models names, else the built-in ones (and, with
    --zoo, the zoo's)."""
    if models:
        wanted = models.split(",")
        return [s for s in specs + _zoo_specs() if s.key in wanted]
    return specs + (_zoo_specs() if zoo else [])


def _rss_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _type_name(element_type):
    return getattr(element_type, "get_type_name", lambda: str(element_type))()


def _prepare(framework, proto_bytes, path, feeds):
    if framework in REDUCED_RUNNERS:
        module, config = REDUCED_RUNNERS[framework]
        if module == "aiov":
            import aiov

            compiled = aiov.compile_model(proto_bytes, "CPU", config)
        else:
            import openvino

            compiled = openvino.Core().compile_model(path, "CPU", config or {})
        precision = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        print(json.dumps({"precision": precision}), flush=True)
        return lambda: compiled(feeds)
    if framework == "aiov":
        import aiov

        compiled = aiov.compile_model(proto_bytes, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return lambda: compiled(feeds)
    if framework == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(proto_bytes, providers=["CPUExecutionProvider"])
        return lambda: sess.run(None, feeds)
    import openvino

    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda: compiled(feeds)


def serve(framework, key, path, out_path, budget):
    """One framework on one model, driven by the parent over stdin: after compiling and warming
    up it prints {"n": calls per run}; each "run" line times n calls and prints the seconds per
    call; "quit" prints the peak memory and exits. Idle between commands (blocked on stdin)."""
    spec = _all_specs()[key]
    feeds = spec.feeds()
    with open(path, "rb") as fh:
        proto_bytes = fh.read()
    __import__(REDUCED_RUNNERS[framework][0] if framework in REDUCED_RUNNERS else framework)
    _reset_peak()
    base = _rss_kib("VmRSS")
    fn = _prepare(framework, proto_bytes, path, feeds)
    np.save(out_path, np.asarray(fn()[0]))
    n = calibrate(fn, budget, min_iters=3)
    print(json.dumps({"n": n}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        print(json.dumps({"s": (time.perf_counter() - t0) / n}), flush=True)
    print(json.dumps({"peak_mib": (_rss_kib("VmHWM") - base) / 1024}), flush=True)


def measure_side_by_side(frameworks, key, path, tmp, repeats, budget):
    """Median latency and peak memory of each framework on one model. The frameworks' runs
    alternate (a round is one run of each, in a rotating order), so a burst of load from
    elsewhere on the machine falls on all of them rather than on whichever ran then."""
    procs, cells, notes, precisions = {}, {}, [], {}
    for f in frameworks:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--budget",
            str(budget),
            "--serve",
            f,
            key,
            path,
            os.path.join(tmp, f"{key}-{f}.npy"),
        ]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = proc.stdout.readline()
        if ready and "precision" in ready:
            precisions[f] = json.loads(ready)["precision"]
            ready = proc.stdout.readline()
        if not ready:
            last = proc.stderr.read().strip().splitlines()[-1:]
            code = proc.wait()
            # A crash leaves no message: say how the process ended.
            why = last[0] if last else (f"killed by signal {-code}" if code < 0 else f"exit status {code}")
            notes.append(f"{f} on {key} failed: {why}")
            continue
        procs[f] = proc
    samples = {f: [] for f in procs}
    order = list(procs)
    for r in range(repeats if order else 0):
        for f in order[r % len(order) :] + order[: r % len(order)]:
            # Let the previous framework's spinning threads go idle: onnxruntime's keep one
            # core busy for ~45 ms after a call here (aiov's and openvino's for ~1 ms).
            time.sleep(0.1)
            procs[f].stdin.write("run\n")
            procs[f].stdin.flush()
            samples[f].append(json.loads(procs[f].stdout.readline())["s"])
    for f, proc in procs.items():
        out, _ = proc.communicate("quit\n")
        peak = json.loads(out.strip().splitlines()[-1])["peak_mib"]
        cells[f] = {"us": statistics.median(samples[f]) * 1e6, "best_us": min(samples[f]) * 1e6, "peak_mib": peak}
        if f in precisions:
            cells[f]["precision"] = precisions[f]
    return cells, notes


def _median_seconds(fn, repeats, budget, min_iters):
    """Median over ``repeats`` runs of the mean time of one call; a run lasts about ``budget``."""
    n = calibrate(fn, budget, min_iters=min_iters)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


# Op types as each framework names them, folded into one name per kind of work so that the
# two profiles line up; a type not listed keeps its own name.
OP_FAMILY = {
    "aiov.FusedConv": "Convolution",
    "GroupConvolution": "Convolution",
    "aiov.FusedMatMul": "MatMul",
    "FullyConnected": "MatMul",
    "Gemm": "MatMul",
    "Transpose": "Transpose/Reorder",
    "Reorder": "Transpose/Reorder",
    "aiov.ElementwiseChain": "Eltwise",
    "Subgraph": "Eltwise",
    "aiov.LayerNorm": "LayerNorm/MVN",
    "aiov.GroupNorm": "LayerNorm/MVN",
    "MVN": "LayerNorm/MVN",
    "aiov.Attention": "Attention",
    "ScaledDotProductAttention": "Attention",
}


def _profiled_run(infer, read_profile, samples):
    """One profiled inference whose node times are appended to `samples` (per node: [op
    type, [us per run], what ran]); returns its wall time in us."""
    t0 = time.perf_counter()
    infer()
    wall = (time.perf_counter() - t0) * 1e6
    for name, node_type, us, what in read_profile():
        samples.setdefault(name, [node_type, [], what])[1].append(us)
    return wall


def _node_medians(samples):
    """Per node: [op type, median us, what ran]. The median, not the mean: on a shared
    machine one preempted run would otherwise lift a node a hundredfold."""
    return {name: [t, statistics.median(us), what] for name, (t, us, what) in samples.items()}


def _by_family(totals):
    out = {}
    for node_type, us, _ in totals.values():
        family = OP_FAMILY.get(node_type, node_type)
        out[family] = out.get(family, 0.0) + us
    return out


def _us(delta):
    return delta.total_seconds() * 1e6 if hasattr(delta, "total_seconds") else float(delta)


def profile_nodes(key, precision="f32", runs=10, threads=0):
    """Per-node profiles of one model on aiov and, when installed, OpenVINO (f32 with
    INFERENCE_PRECISION_HINT=f32, else and for int8 models OpenVINO's defaults): each a dict
    node name -> [op type, median us, what ran] over `runs` profiled inferences, alternating
    between the two as in the timing tables. Returns (aiov's, OpenVINO's or None, the mean wall
    us per inference of each (median), the precision OpenVINO ran, the model's ONNX bytes).
    `threads` > 0 caps both frameworks' threads (INFERENCE_NUM_THREADS), else their defaults."""
    import aiov

    spec = _all_specs()[key]
    proto = spec.build().SerializeToString()
    feeds = spec.feeds()
    capped = {"INFERENCE_NUM_THREADS": threads} if threads > 0 else {}
    compiled = aiov.compile_model(proto, "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": precision, **capped})
    request = compiled.create_infer_request()

    def aiov_profile():
        for info in request.get_profiling_info():
            yield info.node_name, info.node_type, _us(info.real_time), info.exec_type

    ov_request, ov_precision = None, None
    openvino = try_import("openvino")
    if openvino is not None:
        config = {"PERF_COUNT": "YES", **capped}
        # A quantized model runs on OpenVINO's defaults, as in the int8 table.
        if precision == "f32" and not key.endswith("_int8"):
            config["INFERENCE_PRECISION_HINT"] = "f32"
        with tempfile.TemporaryDirectory(prefix="aiov_profile_") as tmp:
            path = os.path.join(tmp, f"{key}.onnx")
            with open(path, "wb") as fh:
                fh.write(proto)
            ov_compiled = openvino.Core().compile_model(path, "CPU", config)
        ov_precision = _type_name(ov_compiled.get_property("INFERENCE_PRECISION_HINT"))
        ov_request = ov_compiled.create_infer_request()

    def ov_profile():
        for info in ov_request.profiling_info:
            yield info.node_name, info.node_type, _us(info.real_time), info.exec_type

    for _ in range(3):
        request.infer(feeds)
        if ov_request is not None:
            ov_request.infer(feeds)
    mine, theirs, walls = {}, {}, {"aiov": [], "ov": []}
    # Each profiled run follows an unprofiled one of the same framework: the other's worker
    # threads spin for a while after its inference, and on a small machine the first nodes
    # after a switch would pay for it (a 3 us input quantization measured 2.6 ms).
    for _ in range(runs):
        request.infer(feeds)
        walls["aiov"].append(_profiled_run(lambda: request.infer(feeds), aiov_profile, mine))
        if ov_request is not None:
            ov_request.infer(feeds)
            walls["ov"].append(_profiled_run(lambda: ov_request.infer(feeds), ov_profile, theirs))
    walls = {k: statistics.median(v) if v else 0.0 for k, v in walls.items()}
    return _node_medians(mine), _node_medians(theirs) if ov_request is not None else None, walls, ov_precision, proto


def profile(key, top, precision="f32", runs=10):
    """aiov's per-op-type and per-node profile of one model, and next to it OpenVINO's, both
    summed per op type (profile_nodes)."""
    mine, theirs, walls, ov_precision, _ = profile_nodes(key, precision, runs)
    print(
        f"{key} at {precision}: aiov {walls['aiov'] / 1e3:,.2f} ms per inference (median wall, with profiling),"
        f" {sum(r[1] for r in mine.values()) / 1e3:,.2f} ms in nodes"
    )
    if theirs is not None:
        print(
            f"openvino ({ov_precision}): {walls['ov'] / 1e3:,.2f} ms per inference (median wall, with profiling),"
            f" {sum(r[1] for r in theirs.values()) / 1e3:,.2f} ms in nodes"
        )
    print_table(*_family_table(_by_family(mine), _by_family(theirs) if theirs is not None else None, walls))
    print()
    rows = sorted(mine.items(), key=lambda kv: -kv[1][1])[:top]
    print_table(["aiov node", "us", "what ran"], [[name, f"{us:,.1f}", ex] for name, (t, us, ex) in rows])
    if theirs is not None:
        print()
        rows = sorted(theirs.items(), key=lambda kv: -kv[1][1])[:top]
        print_table(["openvino node", "us", "what ran"], [[name, f"{us:,.1f}", ex] for name, (t, us, ex) in rows])


def _family_table(mine, theirs, walls):
    """Header and rows of the per-op-type comparison, the types costing aiov most first."""
    if theirs is None:
        rows = [
            [t, f"{us / 1e3:,.3f}", f"{us / max(walls['aiov'], 1e-9):.0%}"]
            for t, us in sorted(mine.items(), key=lambda kv: -kv[1])
        ]
        return ["op type", "aiov ms", "share"], rows
    families = sorted(set(mine) | set(theirs), key=lambda f: -(mine.get(f, 0.0) - theirs.get(f, 0.0)))
    rows = []
    for f in families:
        a, o = mine.get(f), theirs.get(f)
        if not a and not o:
            continue
        rows.append(
            [
                f,
                f"{a / 1e3:,.3f}" if a is not None else "-",
                f"{o / 1e3:,.3f}" if o is not None else "-",
                f"{a / o:.2f}" if a and o else "-",
                f"{((a or 0.0) - (o or 0.0)) / 1e3:+,.3f}",
            ]
        )
    return ["op type", "aiov ms", "openvino ms", "aiov/ov", "aiov - ov ms"], rows


def gemm_rows(repeats, budget, aiov):
    rows = []
    for m, k, n in [(1024, 1024, 1024), (2048, 2048, 2048), (1, 784, 1024)]:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        flop = 2.0 * m * n * k
        cells = {}
        out = np.empty((m, n), np.float32)
        cells["numpy"] = lambda: np.matmul(a, b, out=out)
        if aiov is not None:
            compiled = aiov.compile_model(_matmul_model(aiov, b, m))
            req = compiled.create_infer_request()
            req.set_input_tensor(aiov.Tensor(a, shared_memory=True))
            # Output as a view of the request's buffer, as numpy writes into `out`: neither
            # side pays for a fresh result array (page faults on 4-16 MB) in the timing.
            cells["aiov"] = lambda: req.infer(share_outputs=True)
        res = {}
        for name, fn in cells.items():
            res[name] = flop / _median_seconds(fn, repeats, budget, min_iters=2) / 1e9
        rows.append([f"{m}x{k}x{n}", f"{res.get('aiov', 0):,.1f}" if "aiov" in res else "n/a", f"{res['numpy']:,.1f}"])
    return rows


def _matmul_model(ov, b, m):
    from aiov import opset13 as ops

    p = ops.parameter([m, b.shape[0]], np.float32, name="a")
    return ov.Model([ops.matmul(p, ops.constant(b), False, False)], [p], "gemm")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Many short rounds rather than a few long ones: load from elsewhere on a shared machine
    # comes in phases of seconds, and more alternations spread them over all frameworks.
    add_run_options(parser, FRAMEWORKS, budget=0.25, quick_budget=0.1, repeats=15)
    parser.add_argument("--models", default=None, help="comma list of model keys (default all)")
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM table")
    parser.add_argument(
        "--profile",
        metavar="MODEL",
        help="print aiov's per-node profile of one model, per op type next to OpenVINO's, and exit",
    )
    parser.add_argument("--top", type=int, default=25, help="nodes listed by --profile")
    parser.add_argument(
        "--zoo", action="store_true", help="also the architectures of tests/zoo (batch 8), in both tables"
    )
    parser.add_argument("--no-bf16", action="store_true", help="skip the reduced-precision table")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 table")
    parser.add_argument("--bf16-only", action="store_true", help="only the reduced-precision table")
    parser.add_argument("--precision", default="f32", help="the precision --profile compiles with (f32, bf16, f16)")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--plot", metavar="FILE", help="also draw the latency table as a bar chart (needs matplotlib)")
    args = parser.parse_args(argv)
    repeats, budget, wanted = run_settings(args)
    if args.serve:
        framework, key, path, out_path = args.serve
        return serve(framework, key, path, out_path, budget)
    if args.profile:
        return profile(args.profile, args.top, args.precision)

    specs = _chosen(_specs(), args.models, args.zoo)
    modules = {f: try_import(f) for f in FRAMEWORKS}
    available = {f: modules[f] is not None and f in wanted for f in FRAMEWORKS}
    print_versions(
        f"aiov engine benchmark (median of {repeats} runs of ~{budget:g}s; one sync request; "
        f"each framework and model in its own process; the frameworks' runs alternate)",
        FRAMEWORKS,
        modules,
        available,
    )
    rows, notes, ratios = [], [], []
    plotted = {f: [] for f in FRAMEWORKS if available[f]}  # latency in ms per model, for --plot
    t_start = time.perf_counter()
    if args.bf16_only:
        specs = []
    with tempfile.TemporaryDirectory(prefix="aiov_engine_") as tmp:
        QUANTIZED_CACHE["dir"] = tmp
        built = {}
        for spec in specs:
            if spec.build not in built:
                path = os.path.join(tmp, f"{spec.key}.onnx")
                with open(path, "wb") as fh:
                    fh.write(spec.build().SerializeToString())
                built[spec.build] = path
            path = built[spec.build]
            cells, child_notes = measure_side_by_side(
                [f for f in FRAMEWORKS if available[f]], spec.key, path, tmp, repeats, budget
            )
            notes += child_notes
            outs = {f: np.load(os.path.join(tmp, f"{spec.key}-{f}.npy")) for f in cells}
            if "aiov" in outs:
                ref = outs["aiov"]
                scale = max(1.0, float(np.max(np.abs(ref))))
                for f, got in outs.items():
                    if f != "aiov" and (
                        got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-3, atol=1e-3 * scale)
                    ):
                        notes.append(f"{spec.key}: {f} {_difference(got, ref, 'aiov')} (scale {scale:.3g})")
            for f in plotted:
                plotted[f].append(cells[f]["us"] / 1e3 if f in cells else None)
            row = [spec.label]
            for f in FRAMEWORKS:
                c = cells.get(f)
                row.append(fmt(c["us"], "us") if c else "n/a")
            for f in FRAMEWORKS:
                c = cells.get(f)
                row.append(f"{c['peak_mib']:,.0f}" if c else "n/a")
            row.append(_ratio(cells))
            ratios.append(_best_peer_ratio(cells))
            row.append(_ratio(cells, "best_us"))
            rows.append(row)
            print(f"  {spec.key} done at {time.perf_counter() - t_start:.0f}s", file=sys.stderr)
        int8_rows = []
        if not args.no_int8 and available["aiov"] and try_import("onnxruntime.quantization"):
            int8_specs = _int8_specs(zoo=args.zoo or bool(args.models))
            if args.models:
                int8_specs = [s for s in int8_specs if s.key in args.models.split(",")]
            int8_rows = int8_table(int8_specs, available, tmp, repeats, budget, notes, t_start)
        bf16_rows = []
        if not args.no_bf16 and available["aiov"]:
            bf16_specs = _chosen(_bf16_specs(), args.models, args.zoo)
            bf16_rows = bf16_table(bf16_specs, available, tmp, repeats, budget, notes, t_start)
    if rows:
        print_table(
            [
                "model",
                "aiov",
                "onnxruntime",
                "openvino",
                "aiov MiB",
                "ort MiB",
                "ov MiB",
                "aiov/best peer",
                "fastest runs",
            ],
            rows,
        )
        print_geometric_mean("aiov / best peer at f32", ratios)
    print()
    print(
        "latency: median of one synchronous inference. MiB: peak resident memory above the process's"
        " state before compiling."
    )
    print("aiov/best peer: aiov's latency divided by the faster peer's (<= 1.00 means aiov is as fast or faster);")
    print("fastest runs: the same ratio of each framework's fastest run, what a quiet machine gives.")
    if bf16_rows:
        print()
        print_bf16_table(bf16_rows, modules["aiov"])
    if int8_rows:
        print()
        print_int8_table(int8_rows, modules["aiov"])
    for n in notes:
        print("note:", n)
    if not args.no_gemm and not args.bf16_only:
        print()
        print_table(["GEMM MxKxN", "aiov GFLOP/s", "numpy GFLOP/s"], gemm_rows(repeats, budget, modules["aiov"]))
        if modules["aiov"]:
            print(
                f"(aiov: weights packed at compile time, {modules['aiov']._core.gemm_isa()} kernels, "
                f"{modules['aiov']._core.pool_size()} threads)"
            )
    if args.plot and rows:
        from _plot import grouped_bars

        grouped_bars(
            args.plot,
            "Latency of one synchronous inference (lower is better)",
            [r[0] for r in rows],
            plotted,
            "ms (log scale)",
            note=f"median of {repeats} runs, {os.cpu_count()} CPUs, f32; benchmarks/engine.py",
            log=True,
        )
        print(f"plot written to {args.plot}")
    print(f"total time {time.perf_counter() - t_start:.0f}s")
    return rows


def bf16_table(specs, available, tmp, repeats, budget, notes, t_start):
    """aiov bf16, OpenVINO's default and aiov f32 on each spec, interleaved as above; aiov f16 and
    OpenVINO f16 too where aiov accepts f16."""
    import aiov

    candidates = {**BF16_RUNNERS, **(F16_RUNNERS if aiov._core.gemm_f16_isa() != "scalar" else {})}
    runners = [r for r in candidates if available[candidates[r][0]]]
    return _measure_against(specs, runners, "aiov f32", "bf16", tmp, repeats, budget, notes, t_start)


def print_bf16_table(rows, aiov):
    # One row per model and precision: aiov's runner against OpenVINO's (its default for bf16,
    # its f16 hint for f16), both next to aiov f32.
    pairs = [("bf16", "aiov bf16", "openvino default"), ("f16", "aiov f16", "openvino f16")]
    table, ratios = [], {p: [] for p, _, _ in pairs}
    for spec, cells in rows:
        f32 = cells.get("aiov f32")
        for precision, mine_key, ov_key in pairs:
            mine, ov = cells.get(mine_key), cells.get(ov_key)
            if not mine and not ov:
                continue
            ratio = mine["us"] / ov["us"] if mine and ov else None
            if ratio:
                ratios[precision].append(ratio)
            table.append(
                [
                    spec.label,
                    precision,
                    fmt(mine["us"], "us") if mine else "n/a",
                    f"{fmt(ov['us'], 'us')} ({ov.get('precision', '?')})" if ov else "n/a",
                    fmt(f32["us"], "us") if f32 else "n/a",
                    f"{ratio:.2f}" if ratio else "n/a",
                    f"{f32['us'] / mine['us']:.2f}x" if mine and f32 else "n/a",
                ]
            )
    print_table(["model", "precision", "aiov", "openvino", "aiov f32", "aiov/ov", "speedup over f32"], table)
    for precision, _, ov_key in pairs:
        print_geometric_mean(f"aiov {precision} / {ov_key}", ratios[precision])
    if aiov is not None:
        print(
            f"(aiov kernels: bf16 {aiov._core.gemm_bf16_isa()}, f16 {aiov._core.gemm_f16_isa()};"
            " medians of interleaved runs)"
        )


def int8_table(specs, available, tmp, repeats, budget, notes, t_start):
    """aiov, onnxruntime and OpenVINO (its defaults) on the same quantized ONNX, interleaved."""
    runners = [r for r in INT8_RUNNERS if available[r.split()[0]]]
    # Peers quantize activations on their own (rounding, fused scales): a few quanta apart.
    # onnxruntime's run with its QDQ fusions off is as good a reference as its fused one.
    unoptimized = _onnxruntime_unoptimized if available["onnxruntime"] else None
    return _measure_against(specs, runners, "onnxruntime", "int8", tmp, repeats, budget, notes, t_start, unoptimized)


def _measure_against(specs, runners, reference, precision, tmp, repeats, budget, notes, t_start, second_opinion=None):
    """Each spec run by every runner, interleaved; outputs further than 5e-2 of the output's
    scale from `reference`'s are named in the notes. `second_opinion(path, feeds)`, when given,
    is another legitimate output of the model: a runner may match either, and the tolerance
    grows to twice the two references' own disagreement (requantization noise: a tie rounded
    the other way early on moves later tensors by whole quanta)."""
    rows = []
    for spec in specs:
        path = os.path.join(tmp, f"{spec.key}.{precision}.onnx")
        try:
            model = spec.build()
        except Exception as exc:  # noqa: BLE001 - a model the quantizer refuses is a note, not the end of the run
            notes.append(f"{spec.key}: could not be made ({type(exc).__name__}: {exc})")
            rows.append((spec, {}))
            continue
        with open(path, "wb") as fh:
            fh.write(model.SerializeToString())
        cells, child_notes = measure_side_by_side(runners, spec.key, path, tmp, repeats, budget)
        notes += child_notes
        outs = {r: np.load(os.path.join(tmp, f"{spec.key}-{r}.npy")) for r in cells}
        if reference in outs:
            refs = [outs[reference]]
            if second_opinion is not None:
                refs.append(np.asarray(second_opinion(path, spec.feeds())))
            notes += _disagreements(spec.key, outs, reference, refs)
        rows.append((spec, cells))
        print(f"  {spec.key} ({precision}) done at {time.perf_counter() - t_start:.0f}s", file=sys.stderr)
    return rows


def _disagreements(key, outs, reference, refs):
    """Notes naming each output that matches none of `refs` (the reference runner's output
    first) within max(5e-2 of the output's scale, twice the references' own spread)."""
    first = refs[0]
    scale = max(1.0, float(np.max(np.abs(first)))) if first.size else 1.0
    spread = max((_max_error(first, other) for other in refs[1:] if other.shape == first.shape), default=0.0)
    atol = max(5e-2 * scale, 2 * spread)
    notes = []
    for r, got in outs.items():
        if any(got.shape == ref.shape and np.allclose(got, ref, rtol=5e-2, atol=atol) for ref in refs):
            continue
        alone = "" if len(refs) == 1 else f"; its unoptimized run differs from it by {spread:.3g}"
        notes.append(f"{key}: {r} {_difference(got, first, reference)} (scale {scale:.3g}{alone})")
    return notes


def _difference(got, ref, reference):
    """How `got` differs from `ref`: the largest difference, or the shapes when they differ (a
    detector keeping a different number of boxes), which no single number describes."""
    if got.shape != ref.shape:
        return f"gives shape {list(got.shape)} where {reference} gives {list(ref.shape)}"
    return f"differs from {reference} by up to {_max_error(got, ref):.3g}"


def _max_error(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0


def _onnxruntime_unoptimized(path, feeds):
    """The model's first output from onnxruntime with its graph optimizations off: its QDQ
    nodes run as written (float ops between exact (de)quantizations), not fused."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def print_int8_table(rows, aiov):
    table, ratios = [], []
    for spec, cells in rows:
        mine = cells.get("aiov")
        peers = {r: c["us"] for r, c in cells.items() if r != "aiov"}
        best = min(peers, key=peers.get) if peers else None
        ratio = mine["us"] / peers[best] if mine and best else None
        if ratio:
            ratios.append(ratio)
        row = [spec.label]
        for r in INT8_RUNNERS:
            c = cells.get(r)
            row.append(fmt(c["us"], "us") if c else "n/a")
        row.append(f"{ratio:.2f} ({best})" if ratio else "n/a")
        table.append(row)
    print_table(["model (int8)", *INT8_RUNNERS, "aiov/best peer"], table)
    print_geometric_mean("aiov int8 / best peer int8", ratios)
    if aiov is not None:
        print(f"(aiov integer kernels: {aiov._core.gemm_int8_isa()}; models quantized by onnxruntime.quantization)")


def print_geometric_mean(what, ratios):
    ratios = [r for r in ratios if r]
    if ratios:
        geo = float(np.exp(np.mean(np.log(ratios))))
        print(f"geometric mean {what}: {geo:.2f} over {len(ratios)} models (worst {max(ratios):.2f})")


def _best_peer_ratio(cells):
    mine = cells.get("aiov")
    peers = [c["us"] for f, c in cells.items() if f != "aiov" and c]
    return mine["us"] / min(peers) if mine and peers else None


def _ratio(cells, key="us"):
    mine = cells.get("aiov")
    peers = {f: c[key] for f, c in cells.items() if f != "aiov" and c}
    if not mine or not peers:
        return "n/a"
    best = min(peers, key=peers.get)
    return f"{mine[key] / peers[best]:.2f} ({best})"


if __name__ == "__main__":
    main()
