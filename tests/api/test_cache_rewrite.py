"""The cache entry of a model with dynamic inputs is written again, with the weights its first
inference packed, on a thread of its own: the inference that packed returns without waiting for
a whole blob to be serialized and written, the next compile from the cache packs nothing, and a
rewrite that fails is logged, never raised into a request."""

import logging
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import aiov as ov
from aiov import _blob

from model_builders import medium_model

X = np.ones((4, 256), np.float32)


@pytest.fixture
def model_file(tmp_path):
    path = str(tmp_path / "model" / "medium.xml")
    ov.save_model(medium_model()[0], path)
    return path


class Gate:
    """A CACHE_ENCRYPTION_CALLBACKS pair whose encrypt (called while a blob is written) waits
    for the gate to open and records the thread that wrote."""

    def __init__(self):
        self.open = threading.Event()
        self.open.set()
        self.writers = []

    def encrypt(self, data):
        self.writers.append(threading.current_thread())
        assert self.open.wait(30), "the gate was never opened"
        return data

    def callbacks(self):
        return [self.encrypt, lambda data: data]


def test_the_first_inference_returns_while_the_rewrite_runs_and_the_next_hit_packs_nothing(model_file, tmp_path):
    gate = Gate()
    config = {"CACHE_DIR": str(tmp_path / "cache"), "CACHE_ENCRYPTION_CALLBACKS": gate.callbacks()}
    cold = ov.compile_model(model_file, config=config)
    assert cold._native.weights_packed == 0  # dynamic inputs: planned at the first inference
    gate.open.clear()
    want = cold(X)[0]  # would wait out the gate (and fail) if it wrote the entry itself
    assert cold._native.weights_packed > 0
    assert not _blob.wait_for_cache_rewrites(0.05)  # still held at the gate
    assert gate.writers[-1] is not threading.current_thread()
    cold(X)  # later inferences start no second rewrite
    gate.open.set()
    assert _blob.wait_for_cache_rewrites(30)
    assert len(gate.writers) == 2  # the compile's entry, then the one rewrite
    assert sorted(os.listdir(tmp_path / "cache"))[0].endswith(".blob")
    assert len(os.listdir(tmp_path / "cache")) == 1  # no temporary file left
    hit = ov.compile_model(model_file, config=config)
    assert hit.get_property("LOADED_FROM_CACHE") is True
    np.testing.assert_array_equal(hit(X)[0], want)
    assert (hit._native.weights_packed, hit._native.weights_restored) == (0, cold._native.weights_packed)


def test_concurrent_first_inferences_rewrite_once(model_file, tmp_path):
    gate = Gate()
    config = {"CACHE_DIR": str(tmp_path / "cache"), "CACHE_ENCRYPTION_CALLBACKS": gate.callbacks()}
    compiled = ov.compile_model(model_file, config=config)
    threads = [threading.Thread(target=compiled, args=(X,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _blob.wait_for_cache_rewrites(30)
    assert len(gate.writers) == 2


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "aiov" and r.levelno == logging.WARNING]


def test_a_rewrite_that_cannot_write_is_logged_not_raised(model_file, tmp_path, caplog):
    cache = tmp_path / "cache"
    compiled = ov.compile_model(model_file, config={"CACHE_DIR": str(cache)})
    shutil.rmtree(cache)
    cache.write_bytes(b"")  # a file where the directory was: nothing can be written there (even as root)
    with caplog.at_level(logging.WARNING, logger="aiov"):
        want = compiled(X)[0]
        assert _blob.wait_for_cache_rewrites(30)
    np.testing.assert_array_equal(compiled(X)[0], want)
    (message,) = _warnings(caplog)
    assert "could not rewrite the cache entry" in message and str(cache) in message


def test_a_rewrite_whose_encrypt_callback_raises_is_logged_and_the_entry_kept(model_file, tmp_path, caplog):
    calls = []

    def encrypt(data):
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("the key store is gone")
        return data

    cache = tmp_path / "cache"
    config = {"CACHE_DIR": str(cache), "CACHE_ENCRYPTION_CALLBACKS": [encrypt, lambda data: data]}
    compiled = ov.compile_model(model_file, config=config)
    (entry,) = os.listdir(cache)
    written = (cache / entry).read_bytes()
    with caplog.at_level(logging.WARNING, logger="aiov"):
        compiled(X)
        assert _blob.wait_for_cache_rewrites(30)
    (message,) = _warnings(caplog)
    assert "the key store is gone" in message
    assert os.listdir(cache) == [entry] and (cache / entry).read_bytes() == written
    assert ov.compile_model(model_file, config=config).get_property("LOADED_FROM_CACHE") is True


def test_the_interpreter_exits_with_a_rewrite_in_flight_and_finishes_it(model_file, tmp_path):
    # A script whose only inference starts the rewrite and ends at once: the exit waits for it
    # (bounded), so the entry has its weights and no temporary file is left behind.
    script = (
        "import sys, numpy as np, aiov as ov\n"
        "c = ov.compile_model(sys.argv[1], config={'CACHE_DIR': sys.argv[2]})\n"
        "c(np.ones((4, 256), np.float32))\n"
        "sys.exit(3)\n"
    )
    cache = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-c", script, model_file, cache], capture_output=True, timeout=300)
    assert done.returncode == 3, done.stderr.decode()[-2000:]
    assert b"Traceback" not in done.stderr and b"terminate" not in done.stderr
    assert len(os.listdir(cache)) == 1
    hit = ov.compile_model(model_file, config={"CACHE_DIR": cache})
    hit(X)
    assert hit._native.weights_packed == 0 and hit._native.weights_restored > 0
