"""examples/ray_serve.py: Ray started locally, two replicas each running aiov's v2 app, and
requests over HTTP through Ray's proxy answered correctly by both replicas. Runs where ray is
installed (the aiov[ray] extra; about 40 s on two cores), skipped elsewhere."""

import pathlib
import subprocess
import sys

import pytest

from conftest import free_socket

pytest.importorskip("ray.serve")

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_two_ray_serve_replicas_answer_over_http():
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "ray_serve.py"),
            "--replicas",
            "2",
            "--port",
            str(port),
            "--requests",
            "100",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "{'RUNNING': 2}" in proc.stdout, proc.stdout
    # Every answer was checked against the model (the example asserts it); both replicas served.
    assert "100 requests answered by 2 replicas" in proc.stdout, proc.stdout
