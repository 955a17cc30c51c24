"""Worker niceness (``AIOV_WORKER_NICE``): aiov's throughput and latency with its workers at the
caller's priority (0) and below it (the default), idle and next to busy neighbours.

    python benchmarks/niceness.py [--rounds 5] [--seconds 2] [--nice 0,2] [--concurrency 8]

The niceness is read when the worker pool starts, so every measurement is a child process of
its own. A child compiles a small convnet (``conv_stack`` on 1x3x64x64) and runs a closed
loop of ``--concurrency`` coroutines awaiting ``compiled(x)`` for ``--seconds``; it reports
inferences/s, p50 and p99 latency, and the event loop's lag (how late a 1 ms sleep wakes,
p99). Neighbourhoods:

* ``idle``: nothing added (on a shared machine, whatever else runs there);
* ``busy procs``: one pure-Python spinning process per core, at normal priority;
* ``spinning peer``: an onnxruntime session in the same process, run back to back by a thread
  (the issue's case: peers whose threads spin next to aiov's).

The niceness values alternate within each round (A, B, A, B ...), so a change in the machine's
load falls on both alike; the table gives the medians over the rounds, and the median over the
rounds of each run's throughput divided by that of the first niceness in the same round
(steadier on a shared machine). Printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
from _common import print_table  # noqa: E402

NEIGHBOURHOODS = ["idle", "busy procs", "spinning peer"]

CHILD = r"""
import asyncio, json, os, sys, threading, time
import numpy as np
sys.path[:0] = sys.argv[1].split(os.pathsep)
import model_builders
from _common import closed_loop
import aiov as ov
from aiov import aio

seconds, concurrency, peer = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
onnx_bytes = model_builders.conv_stack().SerializeToString()
x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
compiled = aio.CompiledModel(ov.compile_model(onnx_bytes, "CPU"))
stop_peer = threading.Event()
if peer:
    import onnxruntime as ort
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    def spin():
        while not stop_peer.is_set():
            session.run(None, {"x": x})
    peer_thread = threading.Thread(target=spin)
    peer_thread.start()

async def main():
    lags = []
    async def ticker(stop):  # how late a 1 ms sleep wakes while the callers run
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t0 - 0.001)
    rate, p50, p99, _ = await closed_loop(compiled, x, concurrency, seconds, alongside=ticker)
    return {"rate": rate, "p50": p50, "p99": p99, "lag99": float(np.percentile(np.array(lags) * 1e3, 99))}

try:
    print(json.dumps(asyncio.run(main())))
finally:  # a peer still running at interpreter exit aborts it
    stop_peer.set()
    if peer:
        peer_thread.join()
"""

SPINNER = "while True: pass"


def run_child(nice, seconds, concurrency, peer):
    env = dict(os.environ, AIOV_WORKER_NICE=str(nice))
    paths = os.pathsep.join([os.path.join(os.path.dirname(_HERE), "tests"), _HERE])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, paths, str(seconds), str(concurrency), "1" if peer else "0"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(neighbourhood, nice, seconds, concurrency):
    spinners = []
    if neighbourhood == "busy procs":
        spinners = [subprocess.Popen([sys.executable, "-c", SPINNER]) for _ in range(os.cpu_count() or 1)]
        time.sleep(0.2)
    try:
        return run_child(nice, seconds, concurrency, neighbourhood == "spinning peer")
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--nice", default="0,2", help="comma list of AIOV_WORKER_NICE values to compare")
    parser.add_argument("--neighbourhoods", default=",".join(NEIGHBOURHOODS), help=", ".join(NEIGHBOURHOODS))
    parser.add_argument("--json", help="also write the raw samples to this file")
    args = parser.parse_args()
    nices = [int(n) for n in args.nice.split(",")]
    hoods = [h.strip() for h in args.neighbourhoods.split(",")]
    samples = {(h, n): [] for h in hoods for n in nices}
    for r in range(args.rounds):
        for h in hoods:
            order = nices if r % 2 == 0 else nices[::-1]
            for n in order:
                samples[(h, n)].append(measure(h, n, args.seconds, args.concurrency))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"cpus={os.cpu_count()}  concurrency={args.concurrency}  {args.seconds:g} s x {args.rounds} rounds (medians)")
    rows = []
    base = nices[0]
    for h in hoods:
        for n in nices:
            s = samples[(h, n)]

            def med(key, s=s):
                return statistics.median(x[key] for x in s)

            # Each round's runs are neighbours in time: their ratio cancels most of the
            # machine's drifting load, which the medians alone do not.
            paired = statistics.median(x["rate"] / b["rate"] for x, b in zip(s, samples[(h, base)]))
            rows.append(
                [h, str(n), f"{med('rate'):,.0f}", f"{paired:.2f}", f"{med('p50'):.2f}", f"{med('p99'):.2f}"]
                + [f"{med('lag99'):.2f}"]
            )
    header = ["neighbours", "nice", "inf/s", f"inf/s / nice {base}", "p50 ms", "p99 ms", "loop lag p99 ms"]
    print_table(header, rows, left=2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{h}|{n}": v for (h, n), v in samples.items()}, f, indent=1)


if __name__ == "__main__":
    main()
