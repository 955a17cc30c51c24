"""Serving many concurrent callers: throughput and latency with and without automatic batching.

    python benchmarks/serving.py [--seconds 2] [--concurrency 1,8,64,256] [--batch 32] [--models mlp,bert]

Closed loop: ``concurrency`` coroutines each await one inference of a batch-1 input after
another for ``--seconds``. Per model and concurrency: inferences per second and p50/p99 latency
for

* ``aiov``: ``await compiled(x)``, unbatched (device "CPU");
* ``aiov batch``: the same on device "BATCH:CPU(N)" (aiov's automatic batching);
* ``onnxruntime``: ``await asyncio.to_thread(session.run, ...)`` (when installed);
* ``openvino batch``: OpenVINO's own "BATCH:CPU(N)" device through its AsyncInferQueue, each
  completion handed to the loop with ``call_soon_threadsafe`` (when installed).

Models: the 784-512-512-10 MLP and a small BERT-style encoder (2 layers, hidden 128, 4 heads,
sequence 32). Each cell also gives the process's CPU time per inference (loop, workers and
threads together), steadier than the rate on a machine shared with other work. Printed, never
asserted; the batch-size histogram of each aiov batching run is printed below the table
(``compiled.get_property("AIOV_BATCH_STATS")``). ``--plot FILE`` also draws throughput per
concurrency, a panel per model (matplotlib, ``pip install 'aiov[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "tests"))

from _common import closed_loop, try_import  # noqa: E402

import aiov as ov  # noqa: E402
from aiov import aio  # noqa: E402

import model_builders  # noqa: E402

ort = try_import("onnxruntime")
ovo = try_import("openvino")


def models(names):
    """[(name, onnx bytes, one batch-1 feed)] for the names asked for ("mlp", "bert")."""
    rng = np.random.default_rng(0)
    out = []
    if "mlp" in names:
        onnx_bytes = model_builders.mlp((784, 512, 512, 10)).SerializeToString()
        out.append(("mlp 784-512-512-10", onnx_bytes, {"x": rng.standard_normal((1, 784)).astype(np.float32)}))
    if "bert" in names:
        onnx_bytes = model_builders.bert_encoder(128, 4, 2).SerializeToString()
        out.append(("bert-style h128 l2 s32", onnx_bytes, model_builders.bert_feeds(1, 32, 128)))
    return out


def aiov_service(onnx_bytes, device):
    compiled = ov.Core().compile_model(ov.Core().read_model(onnx_bytes), device)
    served = aio.CompiledModel(compiled)
    return served, compiled


def ort_service(onnx_bytes):
    options = ort.SessionOptions()
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    async def infer(feed):
        return await asyncio.to_thread(session.run, None, feed)

    return infer


def openvino_batch_service(onnx_bytes, feed, batch):
    core = ovo.Core()
    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    with open(path, "wb") as f:
        f.write(onnx_bytes)
    model = core.read_model(path)
    model.reshape({name: list(value.shape) for name, value in feed.items()})
    for param in model.get_parameters():  # the BATCH device batches along the layout's N
        param.set_layout(ovo.Layout("N" + "?" * (len(param.get_output_partial_shape(0)) - 1)))
    compiled = core.compile_model(model, f"BATCH:CPU({batch})", {"AUTO_BATCH_TIMEOUT": 1})
    queue = ovo.AsyncInferQueue(compiled, max(batch * 2, 64))
    state = {}

    def done(request, fut):
        result = request.get_output_tensor(0).data.copy()
        state["loop"].call_soon_threadsafe(lambda: fut.done() or fut.set_result(result))

    queue.set_callback(done)

    async def infer(feed):
        loop = state["loop"] = asyncio.get_running_loop()
        fut = loop.create_future()
        while not queue.is_ready():  # never block the loop on start_async
            await asyncio.sleep(0)
        queue.start_async(feed, fut)
        return await fut

    return infer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--concurrency", default="1,8,64,256")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--models", default="mlp,bert", help="mlp, bert or both")
    parser.add_argument("--plot", metavar="FILE", help="also draw throughput per concurrency (needs matplotlib)")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"aiov {ov.__version__}, {ov._core.pool_size()} workers; {args.seconds:.1f} s per cell; batch {args.batch}")
    header = f"{'model':24} {'service':15} " + " ".join(f"{f'c={c}':>28}" for c in levels)
    print(header)
    print(f"{'':24} {'':15} " + " ".join(f"{'inf/s  p50  p99 ms  cpu us':>28}" for _ in levels))
    histograms = []
    panels = {}  # model -> (concurrency levels, {service: inferences/s}), for --plot
    for name, onnx_bytes, feed in models(args.models.split(",")):
        panels[name] = (levels, {})
        services = []
        plain, _ = aiov_service(onnx_bytes, "CPU")
        services.append(("aiov", lambda f, s=plain: s(f)))
        batched, sync = aiov_service(onnx_bytes, f"BATCH:CPU({args.batch})")
        services.append(("aiov batch", lambda f, s=batched: s(f)))
        if ort is not None:
            services.append(("onnxruntime", ort_service(onnx_bytes)))
        if ovo is not None:
            services.append(("openvino batch", openvino_batch_service(onnx_bytes, feed, args.batch)))
        for label, infer in services:
            cells = []
            rates = panels[name][1][label] = []
            for c in levels:
                rate, p50, p99, cpu = asyncio.run(closed_loop(infer, feed, c, args.seconds))
                rates.append(rate)
                cells.append(f"{rate:8.0f} {p50:6.2f} {p99:6.2f} {cpu:6.0f}")
            print(f"{name[:24]:24} {label:15} " + " ".join(f"{cell:>28}" for cell in cells), flush=True)
        stats = sync.get_property("AIOV_BATCH_STATS")
        histograms.append((name, stats))
    for name, stats in histograms:
        sizes = ", ".join(f"{k}:{v}" for k, v in sorted(stats["sizes"].items()))
        print(f"{name}: aiov batch sizes (size:count) {sizes}; retried {stats['retried']}")
    if args.plot:
        from _plot import lines

        lines(
            args.plot,
            "Serving concurrent callers: throughput (higher is better)",
            panels,
            "concurrent callers",
            "inferences / s",
            note=f"{args.seconds:g} s per point, batch {args.batch}, {os.cpu_count()} CPUs; benchmarks/serving.py",
        )
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
