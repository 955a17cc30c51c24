"""examples/fastapi_service.py runs as a user runs it (a process serving on a port), answers
over HTTP like the model run directly, and stops cleanly on SIGTERM."""

import pathlib
import signal
import subprocess
import sys

import httpx
import numpy as np
import pytest

from conftest import free_socket, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _probs(x, w1, w2):
    logits = np.maximum(x @ w1, 0) @ w2
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_fastapi_service_example(tmp_path):
    pytest.importorskip("fastapi")
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-X", "dev", str(ROOT / "examples" / "fastapi_service.py"), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def up():
            assert proc.poll() is None, proc.stdout.read()
            try:
                return httpx.get(url + "/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, "the example to serve")
        sys.path.insert(0, str(ROOT / "examples"))
        try:
            import fastapi_service  # the weights, seeded as the process seeds them
        finally:
            sys.path.remove(str(ROOT / "examples"))
        x = np.random.default_rng(5).standard_normal((3, 784)).astype(np.float32)
        response = httpx.post(url + "/predict", json={"images": x.tolist()}, timeout=60)
        assert response.status_code == 200, response.text
        expected = _probs(x, fastapi_service.W1, fastapi_service.W2)
        np.testing.assert_allclose(response.json()["probs"], expected, rtol=1e-4, atol=1e-6)
        assert response.json()["classes"] == expected.argmax(1).tolist()
        bad = httpx.post(url + "/predict", json={"images": [[1.0, 2.0]]}, timeout=60)
        assert bad.status_code == 400 and "784" in bad.text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out
    # Warnings raised by the example or aiov fail; third-party libraries' own deprecations (the
    # websockets that installs on Python 3.9 warns about itself inside uvicorn) are not ours.
    ours = [line for line in out.splitlines() if "Warning" in line and "site-packages" not in line]
    assert "Traceback" not in out and not ours, out
