"""What the server tests share: model files, a server running on a free port of 127.0.0.1
(uvicorn in a thread, or ``python -m aiov serve`` in a subprocess), and readers of /metrics."""

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import aiov as ov

from model_builders import mlp

try:  # the serve extra and an HTTP client (both in the test extra)
    import httpx
    import prometheus_client  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError:  # without them this folder's tests are not collected
    collect_ignore_glob = ["test_*.py"]

SLOW_SIZE = 1024


def save_chain(path, layers, size, seed=0):
    """x[n, size] -> relu(... relu(x @ W) @ W ...): one weight shared by ``layers`` MatMuls, so
    the file stays small while each row costs ``layers`` matrix-vector products."""
    w = (np.random.default_rng(seed).standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    nodes, x = [], "x"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [x, "w"], [f"m{i}"]))
        x = "y" if i == layers - 1 else f"r{i}"
        nodes.append(helper.make_node("Relu", [f"m{i}"], [x]))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", size])],
        [numpy_helper.from_array(w, "w")],
    )
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    import onnx

    tmp = tmp_path_factory.mktemp("serve_models")
    mlp_path = tmp / "mlp.onnx"
    onnx.save(mlp(sizes=(16, 32, 4)), str(mlp_path))
    return {"mlp": str(mlp_path), "slow": save_chain(tmp / "slow.onnx", 24, SLOW_SIZE)}


def free_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serving(app):
    """Runs ``app`` on uvicorn in a thread; yields its base URL; stops it (gracefully) after."""
    import uvicorn

    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


class ServerProcess:
    """``python -m aiov serve ARGS`` on a free port."""

    def __init__(self, *args):
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()  # uvicorn binds it again (SO_REUSEADDR)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiov", "serve", *args, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited ({self.proc.returncode}): {self.proc.stdout.read()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/v2/health/ready", timeout=5).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError("the server did not become ready")

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"the server did not stop on SIGTERM: {out}") from None
        return self.proc.returncode, out


@pytest.fixture
def server_process():
    started = []

    def start(*args):
        started.append(ServerProcess(*args))
        return started[-1]

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()


def raw_post(url, path, body, headers, send_all=True):
    """A POST on a socket of its own, its body sent whole or only its first half (the rest
    can follow with ``sock.sendall``): a client that stops, leaves or resumes mid-request."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    sock = socket.create_connection((host, int(port)))
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sock.sendall(body if send_all else body[: len(body) // 2])
    return sock


def raw_response(sock, timeout=120):
    """(status, headers with lower-case names, body) of the HTTP/1.1 response on ``sock``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def metric(url, name, **labels):
    """The value of one sample of /metrics (0.0 when absent)."""
    text = httpx.get(url + "/metrics", timeout=30).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(
        r"^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$", re.M
    )
    match = pattern.search(text)
    return float(match.group(1)) if match else 0.0


def wait_for(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def batching_supported():
    from model_builders import add_model

    try:
        ov.compile_model(add_model(), "BATCH:CPU(2)", {"AUTO_BATCH_TIMEOUT": 1})
    except Exception:
        return False
    return True
