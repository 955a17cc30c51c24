"""``python -m aiov serve`` as a user runs it: several models named by stem or NAME=PATH,
one-line errors for bad arguments, graceful shutdown on SIGTERM with requests in flight, and
automatic batching from --batch (skipped until aiov has the BATCH device)."""

import json
import signal
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest

import aiov as ov

from conftest import SLOW_SIZE, batching_supported, metric, raw_post, raw_response, wait_for
from model_builders import two_output_model

# Exit statuses after SIGTERM: uvicorn >= 0.29 re-raises the signal once it has shut down cleanly.
STOPPED = (0, -signal.SIGTERM)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "aiov", "serve", *args], capture_output=True, text=True, timeout=120)


def _binary_infer(url, model, x, timeout=300, output=None):
    """The first output (or ``output``) of ``model`` on ``x``, both ways binary."""
    head = json.dumps(
        {
            **({"outputs": [{"name": output}]} if output else {}),
            "inputs": [
                {"name": "x", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    response = httpx.post(
        f"{url}/v2/models/{model}/infer",
        content=head + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head))},
        timeout=timeout,
    )
    assert response.status_code == 200, response.text
    n = int(response.headers["inference-header-content-length"])
    out = json.loads(response.content[:n])["outputs"][0]
    return np.frombuffer(response.content[n:], np.float32).reshape(out["shape"])


def test_serves_several_models_named_by_stem_or_name(model_files, server_process, tmp_path):
    ir = str(tmp_path / "two.xml")
    ov.save_model(two_output_model(), ir)  # an OpenVINO IR file (.xml + .bin)
    server = server_process(model_files["mlp"], f"chain={model_files['slow']}", ir)
    server.wait_ready()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(_binary_infer(server.url, "two", x, output="double"), x * 2)
    assert httpx.get(server.url + "/v2/models/mlp").json()["inputs"][0]["shape"] == [-1, 16]
    assert httpx.get(server.url + "/v2/models/chain/ready").status_code == 200
    assert httpx.get(server.url + "/v2/models/slow").status_code == 404
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_allclose(
        _binary_infer(server.url, "mlp", x), ov.compile_model(model_files["mlp"])(x)[0], rtol=1e-6, atol=1e-6
    )
    code, out = server.stop()
    assert code in STOPPED, out
    assert "model 'mlp'" in out and "model 'chain'" in out and "model 'two'" in out


@pytest.mark.parametrize(
    "args, wanted",
    [
        (["missing.onnx"], "no such file 'missing.onnx'"),
        (["{mlp}", "{mlp}"], "two models are named 'mlp'"),
        (["bad name={mlp}"], "a model name is letters"),
        (["{mlp}", "--batch", "0"], "--batch must be >= 1"),
        (["{mlp}", "--batch-timeout", "5"], "needs --batch N"),
    ],
)
def test_bad_arguments_are_one_line_errors(model_files, args, wanted):
    proc = _cli(*(a.format(mlp=model_files["mlp"]) for a in args))
    assert proc.returncode == 2
    assert wanted in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_model_that_does_not_load_is_a_one_line_error(tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"not a model")
    proc = _cli(str(bad))
    assert proc.returncode == 2
    assert "model 'junk': cannot load" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_sigterm_finishes_the_requests_in_flight(model_files, server_process):
    server = server_process(model_files["slow"], "--graceful-timeout", "120")
    server.wait_ready()
    compiled = ov.compile_model(model_files["slow"])
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((512, SLOW_SIZE)).astype(np.float32) for _ in range(4)]
    results = [None] * len(inputs)

    def client(i):
        try:
            results[i] = _binary_infer(server.url, "slow", inputs[i])
        except Exception as e:  # reported by the assertion below
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    wait_for(lambda: metric(server.url, "aiov_infer_in_flight", model="slow") == len(inputs), "all jobs in flight")
    code, out = server.stop()
    for t in threads:
        t.join(120)
    assert code in STOPPED, out
    for x, got in zip(inputs, results):
        assert isinstance(got, np.ndarray), got
        np.testing.assert_allclose(got, compiled(x)[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(httpx.ConnectError):  # and nothing listens any more
        httpx.get(server.url + "/v2/health/live", timeout=5)


@pytest.mark.skipif(batching_supported(), reason="aiov has automatic batching: --batch works")
def test_batch_without_batching_support_is_a_clear_error(model_files):
    proc = _cli(model_files["mlp"], "--batch", "4", "--batch-timeout", "2")
    assert proc.returncode == 2
    assert "automatic batching" in proc.stderr and "BATCH:CPU(4)" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not batching_supported(), reason="aiov has no automatic batching (BATCH:CPU) yet")
def test_batching_server_answers_concurrent_clients(model_files, server_process):
    import asyncio

    server = server_process(model_files["mlp"], "--batch", "8", "--batch-timeout", "5")
    server.wait_ready()
    compiled = ov.compile_model(model_files["mlp"])
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(64)]

    async def main():
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

            async def one(x):
                body = {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": x.ravel().tolist()}]}
                response = await client.post("/v2/models/mlp/infer", json=body)
                assert response.status_code == 200, response.text
                return np.asarray(response.json()["outputs"][0]["data"], np.float32).reshape(1, 4)

            return await asyncio.gather(*(one(x) for x in inputs))

    for x, got in zip(inputs, asyncio.run(main())):
        np.testing.assert_allclose(got, compiled(x)[0], rtol=1e-5, atol=1e-5)
    assert metric(server.url, "aiov_infer_requests_total", model="mlp") == len(inputs)
    # The batcher's own account, exported from AIOV_BATCH_STATS: every job ran, in batches of <= 8.
    assert metric(server.url, "aiov_batch_enabled", model="mlp") == 1
    assert metric(server.url, "aiov_batch_jobs_total", model="mlp") == len(inputs)
    assert metric(server.url, "aiov_batch_size_count", model="mlp") == metric(
        server.url, "aiov_batch_inferences_total", model="mlp"
    )
    assert metric(server.url, "aiov_batch_size_bucket", model="mlp", le="8.0") == metric(
        server.url, "aiov_batch_size_count", model="mlp"
    )
    code, out = server.stop()
    assert code in STOPPED, out


def test_sigterm_drains_ready_answers_503_while_a_request_is_in_flight(model_files, server_process):
    """Kubernetes' way of stopping a pod: SIGTERM, then readiness probes. The server stays up
    and says it is not ready (new inferences are refused with 503) until the request it is
    handling has finished, answered in full; then it exits."""
    server = server_process(model_files["mlp"], "--graceful-timeout", "120")
    server.wait_ready()
    x = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    head = json.dumps(
        {"inputs": [{"name": "x", "shape": [2, 16], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}]}
    ).encode()
    body = head + x.tobytes()
    # Half its body sent: the request is in flight until the test sends the rest.
    sock = raw_post(
        server.url, "/v2/models/mlp/infer", body, {"Inference-Header-Content-Length": str(len(head))}, False
    )
    try:
        wait_for(lambda: metric(server.url, "aiov_infer_requests_active") == 1, "the request in flight")
        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: httpx.get(server.url + "/v2/health/ready", timeout=30).status_code == 503, "not ready")
        assert httpx.get(server.url + "/v2/models/mlp/ready", timeout=30).status_code == 503
        assert httpx.get(server.url + "/v2/health/live", timeout=30).status_code == 200
        refused = httpx.post(
            server.url + "/v2/models/mlp/infer",
            content=body,
            headers={"Inference-Header-Content-Length": str(len(head))},
            timeout=30,
        )
        assert refused.status_code == 503 and "shutting down" in refused.json()["error"]
        assert server.proc.poll() is None  # still draining: the request in flight holds it
        sock.sendall(body[len(body) // 2 :])
        status, _, answer = raw_response(sock)
    finally:
        sock.close()
    assert status == 200, answer
    expected = ov.compile_model(model_files["mlp"])(x)[0]
    np.testing.assert_allclose(json.loads(answer)["outputs"][0]["data"], expected.ravel(), rtol=1e-5, atol=1e-5)
    code, out = server.stop()
    assert code in STOPPED, out
