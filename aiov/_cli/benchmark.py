"""``python -m aiov benchmark MODEL``: inferences per second and latency of a model on random
inputs, like OpenVINO's benchmark_app; ``--compare`` runs the same model on openvino and
onnxruntime (when installed) and prints them side by side."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import numpy as np

APIS = ("sync", "queue", "aio")


def add_parser(commands):
    parser = commands.add_parser(
        "benchmark", help="throughput and latency of a model", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model", help="an .onnx or .xml (OpenVINO IR) file")
    parser.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="the shape of an input's random data (needed for dynamic dims); repeatable",
    )
    parser.add_argument(
        "-t", "--time", type=float, default=10.0, metavar="SECONDS", help="how long to run (default 10)"
    )
    parser.add_argument(
        "--hint", choices=("latency", "throughput"), default=None, help="PERFORMANCE_HINT the model is compiled with"
    )
    parser.add_argument(
        "--api",
        choices=APIS,
        default="queue",
        help="sync: one request in a loop; queue: AsyncInferQueue; aio: await compiled(x)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="jobs in flight for queue/aio (default: the model's optimal number of requests)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--compare", action="store_true", help="also run the model on openvino and onnxruntime, when installed"
    )
    parser.add_argument("--device", default="CPU")
    parser.set_defaults(run=run)


# The peers' compiled models, sessions and queues: never destroyed (see run()).
_PEERS = []


class UsageError(Exception):
    """A bad argument: printed as one line, exit status 2."""


# -- inputs --
def parse_shapes(specs):
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.split(",") if d.strip() != "")
        except ValueError:
            raise UsageError(f"--shape takes NAME=D0,D1,... (e.g. input=1,3,224,224), got {spec!r}") from None
        if any(d < 0 for d in shapes[name]):
            raise UsageError(f"--shape {spec!r}: dims must be >= 0")
    return shapes


def random_inputs(ports, shapes, seed=0):
    """{name: random array} for each input, of its dtype and static shape (or the --shape one)."""
    rng = np.random.default_rng(seed)
    names = {}
    for port in ports:
        names[port.get_any_name()] = port
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise UsageError(f"--shape names {', '.join(unknown)}, but the model's inputs are {', '.join(names)}")
    feeds = {}
    for name, port in names.items():
        pshape = port.get_partial_shape()
        if name in shapes:
            shape = shapes[name]
            if pshape.rank.is_static and len(shape) != pshape.rank.get_length():
                raise UsageError(
                    f"--shape {name}: the input has rank {pshape.rank.get_length()} ({pshape}), got {len(shape)} dims"
                )
            for i, (dim, given) in enumerate(zip(pshape, shape)):
                if dim.is_static and dim.get_length() != given:
                    raise UsageError(f"--shape {name}: dim {i} of {pshape} is {dim.get_length()}, got {given}")
        elif pshape.is_dynamic:
            raise UsageError(
                f"input '{name}' has a dynamic shape {pshape}; give its shape with --shape {name}=D0,D1,..."
            )
        else:
            shape = tuple(d.get_length() for d in pshape)
        dtype = np.dtype(port.get_element_type().to_dtype())
        if dtype.kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.integers(0, 2, shape).astype(bool)
        elif dtype.kind in "iu":
            feeds[name] = rng.integers(0, 8, shape).astype(dtype)
        else:
            raise UsageError(
                f"input '{name}' is {dtype}: the benchmark makes random data for numbers and booleans only"
            )
    return feeds


# -- progress (stderr, only on a terminal) --
class Progress:
    def __init__(self, label, seconds):
        self.label = label
        self.seconds = seconds
        self.enabled = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.next = self.start

    def update(self, count, now):
        if not self.enabled or now < self.next:
            return
        self.next = now + 0.25
        done = min(1.0, (now - self.start) / self.seconds)
        bar = "#" * int(done * 30)
        sys.stderr.write(
            f"\r{self.label:<12} [{bar:<30}] {now - self.start:5.1f}/{self.seconds:.1f} s {count:>9,} inferences"
        )
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


# -- runners: each returns (latencies in seconds, wall time) --
def run_sync(request_infer, feeds, seconds, progress):
    latencies = []
    start = time.perf_counter()
    stop = start + seconds
    now = start
    while now < stop:
        t = time.perf_counter()
        request_infer(feeds)
        now = time.perf_counter()
        latencies.append(now - t)
        progress.update(len(latencies), now)
    return latencies, time.perf_counter() - start


def run_queue(queue_class, compiled, feeds, seconds, concurrency, progress):
    queue = queue_class(compiled, concurrency)
    _PEERS.append(queue)
    latencies = []
    queue.set_callback(lambda request, started: latencies.append(time.perf_counter() - started))
    start = time.perf_counter()
    stop = start + seconds
    now = start
    while now < stop:
        queue.start_async(feeds, time.perf_counter())
        now = time.perf_counter()
        progress.update(len(latencies), now)
    queue.wait_all()
    return latencies, time.perf_counter() - start


def run_aio(compiled, feeds, seconds, concurrency, progress):
    import asyncio

    from .. import aio

    async def main():
        model = aio.CompiledModel(compiled, max_requests=concurrency)
        latencies = []
        start = time.perf_counter()
        stop = start + seconds

        async def worker():
            while True:
                t = time.perf_counter()
                if t >= stop:
                    return
                await model(feeds)
                now = time.perf_counter()
                latencies.append(now - t)
                progress.update(len(latencies), now)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        await model.aclose()
        return latencies, wall

    return asyncio.run(main())


def summarize(engine, api, concurrency, latencies, wall):
    ms = sorted(v * 1e3 for v in latencies)
    if not ms:
        raise RuntimeError("no inference finished; run longer (-t)")

    def pct(p):
        return ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))]

    return {
        "engine": engine,
        "api": api,
        "concurrency": concurrency,
        "count": len(ms),
        "duration_s": wall,
        "throughput_fps": len(ms) / wall,
        "latency_ms": {
            "min": ms[0],
            "median": statistics.median(ms),
            "mean": statistics.fmean(ms),
            "p90": pct(90),
            "p99": pct(99),
            "max": ms[-1],
        },
    }


# -- engines --
def _config(hint):
    return {"PERFORMANCE_HINT": hint.upper()} if hint else {}


def bench_aiov(args, shapes):
    import aiov as ov

    compiled = ov.Core().compile_model(args.model, args.device, _config(args.hint))
    feeds = random_inputs(compiled.inputs, shapes)
    concurrency = _concurrency(args, compiled)
    progress = Progress("aiov", args.time)
    try:
        if args.api == "sync":
            concurrency = 1
            request = compiled.create_infer_request()
            lat, wall = run_sync(request.infer, feeds, args.time, progress)
        elif args.api == "queue":
            lat, wall = run_queue(ov.AsyncInferQueue, compiled, feeds, args.time, concurrency, progress)
        else:
            lat, wall = run_aio(compiled, feeds, args.time, concurrency, progress)
    finally:
        progress.close()
    return summarize("aiov", args.api, concurrency, lat, wall), feeds


def _concurrency(args, compiled):
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise UsageError(f"--concurrency must be >= 1, got {args.concurrency}")
        return args.concurrency
    return max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))


def bench_openvino(args, feeds, concurrency):
    try:
        import openvino
    except ImportError:
        return None
    compiled = openvino.Core().compile_model(args.model, args.device, _config(args.hint))
    _PEERS.append(compiled)
    api = "sync" if args.api == "sync" else "queue"
    concurrency = 1 if api == "sync" else concurrency  # aiov's, for a like-for-like run
    progress = Progress("openvino", args.time)
    try:
        if api == "sync":
            request = compiled.create_infer_request()
            lat, wall = run_sync(request.infer, feeds, args.time, progress)
        else:
            lat, wall = run_queue(openvino.AsyncInferQueue, compiled, feeds, args.time, concurrency, progress)
    finally:
        progress.close()
    return summarize("openvino", api, concurrency, lat, wall)


def bench_onnxruntime(args, feeds, concurrency):
    if not args.model.lower().endswith(".onnx"):
        return None
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    _PEERS.append(session)
    progress = Progress("onnxruntime", args.time)
    try:
        lat, wall = run_sync(lambda f: session.run(None, f), feeds, args.time, progress)
    finally:
        progress.close()
    return summarize("onnxruntime", "sync", 1, lat, wall)


# -- report --
ROWS = [("count", "count", "{:,}"), ("throughput (inf/s)", "throughput_fps", "{:,.1f}")] + [
    (f"latency {k} (ms)", k, "{:.3f}") for k in ("min", "median", "mean", "p90", "p99", "max")
]


def _cell(result, key, fmt):
    value = result["latency_ms"][key] if key in result["latency_ms"] else result[key]
    return fmt.format(value)


def print_results(results):
    head = [f"{r['engine']} ({r['api']}, c={r['concurrency']})" for r in results]
    width = max(16, *(len(h) + 2 for h in head))
    print(f"{'':<20}" + "".join(f"{h:>{width}}" for h in head))
    for label, key, fmt in ROWS:
        print(f"{label:<20}" + "".join(f"{_cell(r, key, fmt):>{width}}" for r in results))


def run(args) -> int:
    try:
        if not os.path.exists(args.model):
            raise UsageError(f"model file not found: {args.model}")
        if args.time <= 0:
            raise UsageError(f"-t must be > 0, got {args.time}")
        shapes = parse_shapes(args.shape)
        result, feeds = bench_aiov(args, shapes)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a model aiov cannot run: one line, no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    results = [result]
    if args.compare:
        for bench in (bench_openvino, bench_onnxruntime):
            try:
                other = bench(args, feeds, result["concurrency"])
            except Exception as exc:  # noqa: BLE001 - the peer's failure is reported, aiov's result stands
                print(
                    f"note: {bench.__name__[6:]} could not run the model: {type(exc).__name__}: {exc}", file=sys.stderr
                )
                continue
            if other is not None:
                results.append(other)
    print(
        f"model: {args.model}  device: {args.device}  hint: {args.hint or 'default'}  "
        f"inputs: " + ", ".join(f"{k}{list(v.shape)}:{v.dtype}" for k, v in feeds.items())
    )
    print_results(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "model": args.model,
                    "device": args.device,
                    "hint": args.hint,
                    "inputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in feeds.items()},
                    "results": results,
                },
                f,
                indent=2,
            )
    return 0
