"""Shared helpers for the benchmarks: optional imports, timing, closed loops, table printing."""

from __future__ import annotations

import asyncio
import gc
import resource
import statistics
import time

import numpy as np


def try_import(name):
    """The module, or None when it is not installed (or fails to import)."""
    try:
        return __import__(name)
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None


def calibrate(fn, budget_s: float, min_iters: int = 5, max_iters: int = 1_000_000) -> int:
    """How many calls of ``fn`` fit in about ``budget_s`` seconds (runs ``fn`` a few times)."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= budget_s / 4 or n >= max_iters:
            per_call = dt / n
            return max(min_iters, min(max_iters, int(budget_s / max(per_call, 1e-9))))
        n *= 4


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def closed_loop(infer, feed, concurrency: int, seconds: float, alongside=None):
    """(inferences per second, p50 ms, p99 ms, CPU us per inference) of `concurrency` callers
    looping on infer(feed). The CPU time is the whole process's (loop, workers, threads): on a
    machine shared with other work it tells more than the rate. `alongside(stop)`, when given,
    is a coroutine run next to the callers until time.perf_counter() reaches `stop`."""
    latencies = []

    async def caller():
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await infer(feed)
            latencies.append(time.perf_counter() - t0)

    for _ in range(3):  # warm-up
        await infer(feed)
    stop = time.perf_counter() + seconds
    extra = [alongside(stop)] if alongside is not None else []
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    await asyncio.gather(*extra, *[caller() for _ in range(concurrency)])
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    lat = np.array(latencies) * 1e3
    p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    return len(lat) / elapsed, p50, p99, cpu / len(lat) * 1e6


def median_latency_us(fn, repeats: int, budget_s: float) -> float:
    """Median over ``repeats`` runs of the mean time of one ``fn()`` call, in microseconds.
    Each run lasts about ``budget_s``; a calibration pass doubles as the warm-up."""
    n = calibrate(fn, budget_s)
    for _ in range(max(1, n // 10)):
        fn()
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - t0) / n * 1e6)
    finally:
        if gc_was:
            gc.enable()
    return statistics.median(samples)


def median_throughput(run_batch, repeats: int, budget_s: float) -> float:
    """``run_batch(n)`` performs n inferences and returns when all are done. Returns the median
    over ``repeats`` runs of n / elapsed (inferences per second); n is sized to ``budget_s``."""
    n = 16
    while True:
        t0 = time.perf_counter()
        run_batch(n)
        dt = time.perf_counter() - t0
        if dt >= budget_s / 4 or n >= 4_000_000:
            break
        n *= 4
    n = max(16, int(n * budget_s / max(dt, 1e-9)))
    run_batch(max(16, n // 10))  # warm-up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_batch(n)
        samples.append(n / (time.perf_counter() - t0))
    return statistics.median(samples)


def add_run_options(parser, frameworks, budget: float, quick_budget: float, repeats: int = 7):
    """The options every side-by-side benchmark takes: --quick, --repeats, --budget, --frameworks."""
    parser.add_argument("--quick", action="store_true", help="fast smoke mode (3 short repeats, tiny budget)")
    parser.add_argument("--repeats", type=int, default=None, help=f"runs per measurement (default {repeats}; quick 3)")
    parser.add_argument(
        "--budget", type=float, default=None, help=f"seconds per run (default {budget:g}; quick {quick_budget:g})"
    )
    parser.add_argument("--frameworks", default=",".join(frameworks), help="comma list of: " + ", ".join(frameworks))
    parser.set_defaults(_budgets=(budget, quick_budget), _repeats=repeats)


def run_settings(args):
    """(repeats, seconds per run, frameworks asked for) from the options of add_run_options."""
    budget, quick_budget = args._budgets
    repeats = args.repeats or (3 if args.quick else args._repeats)
    budget = args.budget or (quick_budget if args.quick else budget)
    wanted = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    return repeats, budget, wanted


def fmt(value, kind: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if kind == "us":
        return f"{value:,.1f} us" if value < 1000 else f"{value / 1000:,.2f} ms"
    return f"{value:,.0f} /s"


def print_table(header, rows, left: int = 1):
    """rows: lists of cells; the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        return "  ".join(str(c).ljust(widths[i]) if i < left else str(c).rjust(widths[i]) for i, c in enumerate(cells))

    text = line(header)
    print(text)
    print("-" * len(text))
    for r in rows:
        print(line(r))


def print_versions(title: str, frameworks, modules: dict, available: dict):
    """The header every benchmark prints: what ran, on what."""
    import os
    import platform

    import numpy as np

    print(title)
    print(f"python {platform.python_version()}  cpus={os.cpu_count()}  numpy {np.__version__}")
    for f in frameworks:
        mod = modules[f]
        ver = getattr(mod, "__version__", "?") if mod else "not installed"
        extra = ""
        if f == "aiov" and mod:
            extra = f"  (pool={mod._core.pool_size()} threads, gemm={mod._core.gemm_isa()})"
        print(f"  {f:12s} {ver if available[f] or not mod else 'skipped'}{extra}")
    print()
