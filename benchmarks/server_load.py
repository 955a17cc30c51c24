"""The inference server under load: ``python -m aiov serve`` next to the same model behind a
hand-written FastAPI app (what users write today: parse the JSON, ``await compiled(x)``,
return JSON), each in its own process, driven by one load generator at a fixed concurrency.

    python benchmarks/server_load.py [--seconds 15] [--rounds 3] [--concurrency 64] [--rows 1]

The load generator keeps ``concurrency`` keep-alive HTTP/1.1 connections busy (a minimal
client on asyncio streams, so the client costs little next to the servers) with the same v2
infer request, and prints requests/s, p50 and p99 per server. Rows: the aiov server with
JSON tensors, with binary tensors, with automatic batching when aiov has it (``--batch``), and
the FastAPI app. On a small machine the load generator and the server share the cores:
compare rows, not absolute numbers. Printed, not asserted."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "tests"))
from _common import print_table  # noqa: E402

SIZES = (784, 512, 512, 10)  # the MLP of issue 21's batching measurements

FASTAPI_APP = r"""
import contextlib, sys
import numpy as np, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from aiov import aio

@contextlib.asynccontextmanager
async def lifespan(app):
    app.state.compiled = await aio.compile_model(sys.argv[1], "CPU")
    yield

app = FastAPI(lifespan=lifespan)

@app.post("/v2/models/mlp/infer")
async def infer(request: Request):
    body = await request.json()
    spec = body["inputs"][0]
    x = np.asarray(spec["data"], np.float32).reshape(spec["shape"])
    y = (await app.state.compiled(x))[0]
    return JSONResponse({"model_name": "mlp", "outputs": [
        {"name": "out", "datatype": "FP32", "shape": list(y.shape), "data": y.ravel().tolist()}]})

@app.get("/v2/health/ready")
async def ready():
    return {"ready": True}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=False, log_level="warning")
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, port):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:4]} exited: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(100):
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd[:4]} did not become ready")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def infer_request(port, x, binary):
    spec = {"name": "x", "shape": list(x.shape), "datatype": "FP32"}
    headers = ["POST /v2/models/mlp/infer HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if binary:
        spec["parameters"] = {"binary_data_size": x.nbytes}
        head = json.dumps({"inputs": [spec], "parameters": {"binary_data_output": True}}).encode()
        body = head + x.tobytes()
        headers.append(f"Inference-Header-Content-Length: {len(head)}")
    else:
        spec["data"] = x.ravel().tolist()
        body = json.dumps({"inputs": [spec]}).encode()
        headers.append("Content-Type: application/json")
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


async def _exchange(reader, writer, request):
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    if status != b"200":
        raise RuntimeError(f"status {status.decode()}")


async def load(port, request, concurrency, seconds):
    """(requests/s, p50 ms, p99 ms, errors) of ``concurrency`` connections sending ``request``."""
    latencies, errors = [], 0
    stop_at = None

    async def connection():
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                try:
                    await _exchange(reader, writer, request)
                except RuntimeError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t)
        finally:
            writer.close()

    # Warm-up: every connection opened and a few requests served before the clock starts.
    stop_at = time.perf_counter() + min(2.0, seconds / 4)
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    latencies.clear()
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return len(latencies) / elapsed, q[49] * 1e3, q[98] * 1e3, errors


def batching_supported():
    import aiov as ov

    import model_builders

    try:
        ov.compile_model(model_builders.add_model(), "BATCH:CPU(2)", {"AUTO_BATCH_TIMEOUT": 1})
    except Exception:
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="load time per server, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rows", type=int, default=1, help="rows per request (the input's first dim)")
    parser.add_argument("--batch", type=int, default=16, help="--batch of the batching row (when supported)")
    args = parser.parse_args()

    import onnx

    import aiov

    import model_builders

    tmp = tempfile.mkdtemp(prefix="server_load_")
    path = os.path.join(tmp, "mlp.onnx")
    onnx.save(model_builders.mlp(SIZES), path)
    x = np.random.default_rng(0).standard_normal((args.rows, SIZES[0])).astype(np.float32)
    serve = [sys.executable, "-m", "aiov", "serve", f"mlp={path}"]
    setups = [
        ("aiov serve, JSON", serve, False),
        ("aiov serve, binary", serve, True),
    ]
    if batching_supported():
        batched = [*serve, "--batch", str(args.batch), "--batch-timeout", "2"]
        setups.append((f"aiov serve --batch {args.batch}, JSON", batched, False))
    else:
        setups.append(("aiov serve --batch (BATCH:CPU not available)", None, False))
    setups.append(("FastAPI by hand, JSON", [sys.executable, "-c", FASTAPI_APP, path], False))

    print(
        f"server load: MLP {'-'.join(map(str, SIZES))}, {args.rows} row(s) per request, concurrency {args.concurrency}"
    )
    print(
        f"{args.rounds} rounds of {args.seconds / args.rounds:.1f} s per server, interleaved; "
        f"aiov {aiov.__version__}, cpus={os.cpu_count()}"
    )
    # Every server runs for the whole measurement (idle ones cost nothing) and the rounds
    # alternate between them, so a change in the machine's load hits every row alike.
    running = []
    try:
        for label, cmd, binary in setups:
            if cmd is None:
                running.append((label, None, None, None))
                continue
            port = free_port()
            cmd = [*cmd, str(port)] if cmd[1] == "-c" else [*cmd, "--port", str(port)]
            running.append((label, start(cmd, port), infer_request(port, x, binary), port))
        results = {label: [] for label, *_ in running}
        for _ in range(args.rounds):
            for label, proc, request, *port in running:
                if proc is not None:
                    results[label].append(
                        asyncio.run(load(port[0], request, args.concurrency, args.seconds / args.rounds))
                    )
    finally:
        for _, proc, *_ in running:
            if proc is not None:
                stop(proc)
    rows = []
    for label, runs in results.items():
        if not runs:
            rows.append([label, "n/a", "n/a", "n/a", ""])
            continue
        rps = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        errors = sum(r[3] for r in runs)
        rows.append([label, f"{rps:,.0f} req/s", f"{p50:.2f} ms", f"{p99:.2f} ms", str(errors) if errors else ""])
    print_table(["server (median of rounds)", "throughput", "p50", "p99", "errors"], rows)


if __name__ == "__main__":
    main()
