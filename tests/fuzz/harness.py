"""Runs one fuzz case in a child process and classifies what happened.

The parent imports aiov, numpy and onnx once; each case is a fork of it, so a case costs
milliseconds instead of an interpreter start, and a crash or hang takes only its child.
Forking is only safe while the parent has run no inference (no aiov worker threads exist
to be lost in the child): the campaign's own process qualifies, a pytest process that ran
other tests does not; there, ``run_fresh`` runs a case in a new interpreter.

Classes:
- ``success``: the case ran to the end;
- ``clean``: an exception an application can act on: an aiov error, or a standard error
  (ValueError, RuntimeError, MemoryError, OverflowError, OSError...) with a real message;
- ``unclear``: an exception that says nothing about the model or the input: a bare
  KeyError/IndexError/TypeError/AttributeError/..., an empty message, ``std::bad_alloc``,
  ``'NoneType' object ...``;
- ``crash``: the child died of a signal (segfault, abort) or exited without a result;
- ``hang``: the child did not finish within the timeout (it is killed).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import tempfile
import time
import traceback

CLASSES = ("success", "clean", "unclear", "crash", "hang")

# Exceptions that are bugs in the reader or the engine whatever their message.
_ALWAYS_UNCLEAR = (
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ZeroDivisionError,
    AssertionError,
    UnboundLocalError,
    NameError,
    RecursionError,
    StopIteration,
    SystemError,
)
_UNCLEAR_TEXT = (
    "std::bad_alloc",
    "bad_alloc",
    "'NoneType' object",
    "vector::_M_",
    "basic_string",
    "unordered_map::at",
    "map::at",
    "stoi",
    "stol",
    "out of range: vector",
)

MEMORY_LIMIT = 3 << 30  # address space per child: a huge allocation fails instead of swapping


def classify_exception(exc: BaseException):
    """("clean" | "unclear", "Type: message")."""
    text = str(exc)
    detail = f"{type(exc).__name__}: {text}"[:500]
    try:
        from aiov import BusyError, CancelledError, InputError, JobError

        aiov_errors = (InputError, BusyError, CancelledError, JobError)
    except ImportError:  # pragma: no cover
        aiov_errors = ()
    aiov_error = bool(aiov_errors) and isinstance(exc, aiov_errors)
    if not aiov_error and isinstance(exc, _ALWAYS_UNCLEAR):  # PortError is a KeyError by design
        return "unclear", detail
    if len(text.strip()) < 8 or any(t in text for t in _UNCLEAR_TEXT):
        return "unclear", detail
    if aiov_error or isinstance(
        exc, (ValueError, RuntimeError, MemoryError, OverflowError, OSError, NotImplementedError, FloatingPointError)
    ):
        return "clean", detail
    return "unclear", detail


def _address_space_limit():
    """MEMORY_LIMIT; under ASan (tools/sanitize.sh) on top of what is mapped already, as its
    shadow memory alone reserves terabytes of address space."""
    if not os.environ.get("AIOV_SANITIZED"):
        return MEMORY_LIMIT
    with open("/proc/self/status") as f:
        mapped_kb = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    return mapped_kb * 1024 + MEMORY_LIMIT


def _child(fn, write_fd, stderr_path):
    try:
        fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        resource.setrlimit(resource.RLIMIT_AS, (_address_space_limit(),) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        import faulthandler

        faulthandler.disable()  # pytest's would print every expected crash to the test output
    except Exception:  # pragma: no cover - best effort isolation
        pass
    status, detail = "success", ""
    try:
        note = fn()
        if note:
            detail = str(note)[:300]
    except BaseException as exc:  # noqa: BLE001 - the point is to classify everything
        status, detail = classify_exception(exc)
        if status == "unclear":
            tb = traceback.extract_tb(exc.__traceback__)
            if tb:
                frame = tb[-1]
                detail += f" [at {os.path.basename(frame.filename)}:{frame.lineno}]"
    payload = json.dumps({"status": status, "detail": detail}).encode()
    try:
        os.write(write_fd, payload)
    finally:
        os._exit(0)


def run_case(fn, timeout: float = 10.0):
    """Runs ``fn()`` in a forked child. Returns (class, detail)."""
    read_fd, write_fd = os.pipe()
    stderr_file = tempfile.NamedTemporaryFile(prefix="aiov-fuzz-", suffix=".err", delete=False)
    stderr_file.close()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(fn, write_fd, stderr_file.name)
    os.close(write_fd)
    chunks = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            data = os.read(read_fd, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(read_fd)
    if timed_out:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    try:
        with open(stderr_file.name, "rb") as f:
            err = f.read()[-600:].decode("utf-8", "replace").strip()
    finally:
        os.unlink(stderr_file.name)
    if timed_out:
        return "hang", f"no result after {timeout:.0f} s"
    if chunks:
        try:
            result = json.loads(b"".join(chunks))
            return result["status"], result["detail"]
        except ValueError:
            pass
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return "crash", f"signal {signal.Signals(sig).name}; stderr: {err[-300:]}"
    return "crash", f"exit status {os.WEXITSTATUS(status)} without a result; stderr: {err[-300:]}"


_FRESH_PRELUDE = """
import json, os, sys
sys.path.insert(0, {root!r})
from tests.fuzz.harness import classify_exception
def _case():
{body}
try:
    _note = _case()
    _result = {{"status": "success", "detail": str(_note or "")}}
except BaseException as _exc:
    _status, _detail = classify_exception(_exc)
    _result = {{"status": _status, "detail": _detail}}
sys.stdout.write("\\n@@result@@" + json.dumps(_result) + "\\n")
sys.stdout.flush()
os._exit(0)
"""


def run_fresh(body: str, timeout: float = 60.0):
    """Runs `body` (the statements of a function, unindented) in a new interpreter; returns
    (class, detail) like run_case. For tests: their process may have aiov threads running."""
    import subprocess
    import sys
    import textwrap

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = _FRESH_PRELUDE.format(root=root, body=textwrap.indent(textwrap.dedent(body), "    "))
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", f"no result after {timeout:.0f} s"
    out = proc.stdout.decode("utf-8", "replace")
    if "@@result@@" in out:
        result = json.loads(out.rsplit("@@result@@", 1)[1].strip().splitlines()[0])
        return result["status"], result["detail"]
    err = proc.stderr.decode("utf-8", "replace")[-300:]
    if proc.returncode < 0:
        return "crash", f"signal {signal.Signals(-proc.returncode).name}; stderr: {err}"
    return "crash", f"exit status {proc.returncode} without a result; stderr: {err}"
