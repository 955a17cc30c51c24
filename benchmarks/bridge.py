"""The event-loop bridge, side by side: awaited inferences per second and event-loop lag.

    python benchmarks/bridge.py [--seconds 0.6]

Throughput: the tiny model (Add of two [8] vectors) awaited at concurrency 1, 16 and 256, on
asyncio and uvloop, through ``await compiled(x)`` and through ``aio.AsyncInferQueue``; and,
when openvino is installed, the usual ways: OpenVINO's AsyncInferQueue whose callback calls
``loop.call_soon_threadsafe``, and ``asyncio.to_thread(compiled.infer_new_request, x)``.
Lag: a heartbeat coroutine's oversleep (p50/p99/max) while a heavier model keeps every core
busy; and the longest oversleep while each aio verb runs over and over (and, in a fresh process,
while the first ``aio.compile_model`` of an ONNX file reads it). Printed, never asserted."""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None
try:
    import openvino as ovo
    import openvino.opset13 as ovops
except ImportError:  # pragma: no cover
    ovo = None

X = np.arange(8, dtype=np.float32)
CONCURRENCY = (1, 16, 256)


def _tiny_graph():
    a, b = ops.parameter([8], np.float32, name="a"), ops.parameter([8], np.float32, name="b")
    return ops.add(a, b), [a, b]


def tiny_aiov():
    return ov.compile_model(ov.Model(*_tiny_graph()), "CPU")


def tiny_openvino():
    a, b = ovops.parameter([8], np.float32, name="a"), ovops.parameter([8], np.float32, name="b")
    return ovo.compile_model(ovo.Model([ovops.add(a, b)], [a, b]), "CPU")


def heavy_weights(layers=6, size=384):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32) for _ in range(layers)]


def heavy_aiov(weights):
    x = ops.parameter([-1, weights[0].shape[0]], np.float32, name="x")
    h = x
    for w in weights:
        h = ops.relu(ops.matmul(h, ops.constant(w)))
    return ov.compile_model(ov.Model(h, [x]), "CPU")


def heavy_openvino(weights):
    x = ovops.parameter([-1, weights[0].shape[0]], np.float32, name="x")
    h = x
    for w in weights:
        h = ovops.relu(ovops.matmul(h, ovops.constant(w), False, False))
    return ovo.compile_model(ovo.Model([h], [x]), "CPU")


# -- throughput: each coroutine returns inferences/s --
async def _workers(concurrency, seconds, one):
    count = 0
    stop = time.perf_counter() + seconds

    async def worker():
        nonlocal count
        while time.perf_counter() < stop:
            await one()
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - t0)


async def aio_call(sync, concurrency, seconds):
    compiled = aio.CompiledModel(sync)
    inputs = [X, X]
    await _workers(concurrency, 0.05, lambda: compiled(inputs))  # warm the pool
    return await _workers(concurrency, seconds, lambda: compiled(inputs))


async def aio_queue(sync, concurrency, seconds):
    queue = aio.AsyncInferQueue(sync, jobs=concurrency)
    done = 0

    def callback(request, userdata):
        nonlocal done
        done += 1

    queue.set_callback(callback)
    inputs = [X, X]
    start_async = queue.start_async
    t0 = time.perf_counter()
    stop = t0 + seconds
    submitted = 0
    while time.perf_counter() < stop:
        for _ in range(64):
            await start_async(inputs)
        submitted += 64
    await queue.wait_all()
    return done / (time.perf_counter() - t0)


async def openvino_queue(compiled, concurrency, seconds):
    loop = asyncio.get_running_loop()
    queue = ovo.AsyncInferQueue(compiled, concurrency)
    queue.set_callback(lambda request, fut: loop.call_soon_threadsafe(fut.set_result, None))
    inputs = [X, X]

    async def one():
        fut = loop.create_future()
        queue.start_async(inputs, fut)
        await fut

    rate = await _workers(concurrency, seconds, one)
    queue.wait_all()
    return rate


async def openvino_to_thread(compiled, concurrency, seconds):
    inputs = [X, X]
    return await _workers(concurrency, seconds, lambda: asyncio.to_thread(compiled.infer_new_request, inputs))


async def bare_future(seconds):
    loop = asyncio.get_running_loop()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(1000):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut
        n += 1000
    return (time.perf_counter() - t0) / n * 1e6


# -- loop lag under load --
async def heartbeat_lag(seconds, interval=0.002):
    lags = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        await asyncio.sleep(interval)
        lags.append(time.perf_counter() - t - interval)
    lags.sort()
    ms = [v * 1e3 for v in lags]
    return statistics.median(ms), ms[int(len(ms) * 0.99)], ms[-1]


async def lag_aio(sync, seconds):
    queue = aio.AsyncInferQueue(sync, jobs=2 * os.cpu_count())
    batch = np.ones((32, 384), np.float32)
    done = 0

    def callback(request, userdata):
        nonlocal done
        done += 1

    queue.set_callback(callback)
    running = True

    async def feed():
        while running:
            await queue.start_async(batch)

    feeder = asyncio.ensure_future(feed())
    await asyncio.sleep(0.1)
    lag = await heartbeat_lag(seconds)
    running = False
    await feeder
    await queue.wait_all()
    return lag + (done / (seconds + 0.1),)


async def lag_openvino(compiled, seconds):
    loop = asyncio.get_running_loop()
    queue = ovo.AsyncInferQueue(compiled, 2 * os.cpu_count())
    batch = np.ones((32, 384), np.float32)
    done = 0

    def on_loop():
        nonlocal done
        done += 1

    queue.set_callback(lambda request, userdata: loop.call_soon_threadsafe(on_loop))
    running = True

    async def feed():
        while running:
            if queue.is_ready():
                queue.start_async(batch)
            else:
                await asyncio.sleep(0)

    feeder = asyncio.ensure_future(feed())
    await asyncio.sleep(0.1)
    lag = await heartbeat_lag(seconds)
    running = False
    await feeder
    queue.wait_all()
    return lag + (done / (seconds + 0.1),)


# -- the lag of each aio verb --
async def _with_heartbeat(seconds, body, interval=0.001):
    """Runs ``body()`` over and over for ``seconds`` next to a heartbeat; (max lag ms, runs)."""
    worst = 0.0
    running = True

    async def beat():
        nonlocal worst
        while running:
            t = time.perf_counter()
            await asyncio.sleep(interval)
            worst = max(worst, time.perf_counter() - t - interval)

    beater = asyncio.ensure_future(beat())
    await asyncio.sleep(0.01)
    worst = 0.0
    runs = 0
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        await body()
        runs += 1
    running = False
    await beater
    return worst * 1e3, runs


def _verbs(sync, model, xml):
    """(name, async body) for every aio verb; each body runs the verb once (or one round)."""
    compiled = aio.CompiledModel(sync)
    request = compiled.create_infer_request()
    queue = aio.AsyncInferQueue(compiled, jobs=4)
    inputs = [X, X]

    async def queue_round():
        for _ in range(8):
            await queue.start_async(inputs)
        await queue.wait_all()

    async def as_completed_round():
        q = aio.AsyncInferQueue(compiled, jobs=4)

        async def produce():  # concurrently: the iterator holds each request until yielded
            for i in range(8):
                await q.start_async(inputs, i)
            await q.wait_all()
            q.close()

        producer = asyncio.ensure_future(produce())
        async for _ in q.as_completed():
            pass
        await producer

    async def imap_round():
        async for _ in aio.imap(compiled, [inputs] * 16, concurrency=4):
            pass

    async def start_and_await():
        await request.start_async(inputs)

    async def close_round():
        c = aio.CompiledModel(sync)
        await c(inputs)
        await c.aclose()

    return [
        ("aio.read_model(x.xml)", lambda: aio.read_model(xml)),
        ("aio.compile_model(Model)", lambda: aio.compile_model(model, "CPU")),
        ("await compiled(x)", lambda: compiled(inputs)),
        ("await request.infer(x)", lambda: request.infer(inputs)),
        ("await request.start_async(x)", start_and_await),
        ("queue.start_async x8 + wait_all", queue_round),
        ("queue.as_completed() of 8 jobs", as_completed_round),
        ("aio.imap, 16 items", imap_round),
        ("compiled(x) + compiled.aclose()", close_round),
    ]


async def verb_lags(sync, model, seconds):
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "tiny.xml")
        ov.save_model(model, xml)
        return [(name, *(await _with_heartbeat(seconds, body))) for name, body in _verbs(sync, model, xml)]


_FIRST_COMPILE = r"""
import asyncio, sys, time
from aiov import aio
async def main():
    worst, running = 0.0, True
    async def beat():
        nonlocal worst
        while running:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t - 0.001)
    b = asyncio.ensure_future(beat())
    await asyncio.sleep(0.01)
    t = time.perf_counter()
    await aio.compile_model(sys.argv[1], "CPU")
    took = time.perf_counter() - t
    running = False
    await b
    print(f"{worst * 1e3:.1f} {took * 1e3:.0f}")
asyncio.run(main())
"""


def first_onnx_compile_lag():
    """(max lag ms, compile ms) of the first aio.compile_model of an ONNX file, in a fresh
    process (so its imports happen for the first time); None without onnx."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:  # pragma: no cover
        return None
    w = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", 1, [1, 64])],
        [helper.make_tensor_value_info("z", 1, [1, 64])],
        [w],
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        out = subprocess.run([sys.executable, "-c", _FIRST_COMPILE, path], capture_output=True, text=True, check=True)
    lag, took = out.stdout.split()
    return float(lag), float(took)


def run_on(loop_kind, coro):
    if loop_kind == "uvloop":
        return uvloop.run(coro)
    return asyncio.run(coro)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.6)
    args = parser.parse_args()
    s = args.seconds
    loops = ["asyncio"] + (["uvloop"] if uvloop else [])
    sync = tiny_aiov()
    ov_tiny = tiny_openvino() if ovo else None

    print(
        f"aiov {ov.__version__}; openvino {ovo.__version__ if ovo else 'not installed'}; "
        f"{os.cpu_count()} cores; engine pool {ov._core.pool_size()} workers"
    )
    for kind in loops:
        print(f"bare future round trip on {kind}: {run_on(kind, bare_future(0.3)):.2f} us")
    print()
    print("awaited inferences/s, tiny model (Add of two [8] vectors)")
    header = f"{'loop':8} {'path':38}" + "".join(f"{'c=' + str(c):>11}" for c in CONCURRENCY)
    print(header)
    print("-" * len(header))
    rows = [
        ("aiov  await compiled(x)", lambda c: aio_call(sync, c, s)),
        ("aiov  aio.AsyncInferQueue + callback", lambda c: aio_queue(sync, c, s)),
    ]
    if ovo:
        rows += [
            ("openvino AsyncInferQueue+call_soon_ts", lambda c: openvino_queue(ov_tiny, c, s)),
            ("openvino to_thread(infer_new_request)", lambda c: openvino_to_thread(ov_tiny, c, s)),
        ]
    for kind in loops:
        for name, make in rows:
            rates = [run_on(kind, make(c)) for c in CONCURRENCY]
            print(f"{kind:8} {name:38}" + "".join(f"{r:>11,.0f}" for r in rates))
    print()
    print("event-loop lag (heartbeat oversleep, ms) while a heavier model keeps every core busy")
    print(f"{'loop':8} {'path':38}{'p50':>9}{'p99':>9}{'max':>9}{'jobs/s':>10}")
    weights = heavy_weights()
    heavy = heavy_aiov(weights)
    ov_heavy = heavy_openvino(weights) if ovo else None
    for kind in loops:
        p50, p99, mx, rate = run_on(kind, lag_aio(heavy, 2 * s))
        print(f"{kind:8} {'aiov  aio.AsyncInferQueue':38}{p50:>9.3f}{p99:>9.3f}{mx:>9.3f}{rate:>10,.0f}")
        if ovo:
            p50, p99, mx, rate = run_on(kind, lag_openvino(ov_heavy, 2 * s))
            print(
                f"{kind:8} {'openvino AsyncInferQueue+call_soon_ts':38}{p50:>9.3f}{p99:>9.3f}{mx:>9.3f}{rate:>10,.0f}"
            )
    print()
    print("event-loop lag per aio verb (longest heartbeat oversleep, ms, while the verb runs over and over)")
    print(f"{'loop':8} {'verb':38}{'max lag':>9}{'runs':>9}")
    model = ov.Model(*_tiny_graph())
    for kind in loops:
        for name, lag, runs in run_on(kind, verb_lags(sync, model, s / 2)):
            print(f"{kind:8} {name:38}{lag:>9.2f}{runs:>9}")
    first = first_onnx_compile_lag()
    if first is not None:
        print(
            f"{'asyncio':8} {'first aio.compile_model(x.onnx), fresh':38}{first[0]:>9.2f}"
            f"{'':>9}  (compile took {first[1]:.0f} ms)"
        )


if __name__ == "__main__":
    main()
