"""The engine's workers run at the caller's priority unless AIOV_WORKER_NICE lowers them
(docs/configuration.md has the measurements behind the default)."""

import os
import subprocess
import sys

import pytest

# Prints the niceness of the main thread, then of every other thread, once one inference has
# started the pool and a worker has lowered itself (or argv[1] seconds have passed: none has).
# A worker lowers its priority as it starts, which under load may be after the inference.
_PROBE = """
import os, sys, time, numpy as np, aiov as ov
from model_builders import tiny_model
ov.compile_model(tiny_model())({"a": np.ones(8, np.float32), "b": np.ones(8, np.float32)})
def nice(tid):
    with open(f"/proc/self/task/{tid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])
main = os.getpid()
deadline = time.monotonic() + float(sys.argv[1])
while True:
    others = sorted(nice(int(t)) for t in os.listdir("/proc/self/task") if int(t) != main)
    if any(n != nice(main) for n in others) or time.monotonic() > deadline:
        break
    time.sleep(0.02)
print(nice(main), *others)
"""


def _niceness(env_value, wait_s):
    env = {k: v for k, v in os.environ.items() if k != "AIOV_WORKER_NICE"}
    if env_value is not None:
        env["AIOV_WORKER_NICE"] = env_value
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.dirname(__file__)), env.get("PYTHONPATH")])
    )
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(wait_s)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    main, *others = map(int, out.stdout.split())
    return main, others


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads thread niceness from /proc")
def test_workers_run_at_the_callers_priority_by_default():
    main, others = _niceness(None, 1)
    assert others and all(n == main for n in others), (main, others)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads thread niceness from /proc")
def test_aiov_worker_nice_lowers_the_workers_only():
    main, others = _niceness("3", 30)
    if main > 16:
        pytest.skip("the suite runs at too low a priority to see a lower one")
    lowered = main + 3
    assert lowered in others and all(n in (main, lowered) for n in others), (main, others)
