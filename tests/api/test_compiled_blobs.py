"""What a compiled-model blob carries: a CACHE_DIR hit and import_model give what a cold
compile gives, on real architectures (convolutions, attention, control flow, sequences,
dynamic shapes), load the stored optimized graph instead of optimizing again, and survive
concurrent compiles into one cache; a damaged graph inside a sound frame is refused, never
crashes. The frame's own checks are in test_export_import_cache.py."""

import os
import random
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

import aiov as ov
from aiov import _blob

from blob_bytes import graph_bytes, mutated, with_graphs

ZOO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "zoo")
# A CNN, a transformer, If + Loop, sequences in a Loop, recurrent layers: each with two input
# shapes (the zoo's in0 and in1 cases).
MODELS = ["resnet", "bert", "if_loop", "list_loop", "lstm_gru"]


def _cases(name):
    data = np.load(os.path.join(ZOO, name + ".npz"))
    cases = []
    for case in ("in0.", "in1."):
        cases.append({k[len(case) :]: data[k] for k in data.files if k.startswith(case)})
    return cases


def _outputs(compiled, feeds):
    return [np.asarray(v) for v in compiled(feeds).values()]


def _assert_same(first, second, name):
    for feeds in _cases(name):
        for a, b in zip(_outputs(first, feeds), _outputs(second, feeds)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_a_cache_hit_computes_what_a_cold_compile_computes(name, tmp_path):
    path = os.path.join(ZOO, name + ".onnx")
    config = {"CACHE_DIR": str(tmp_path)}
    cold = ov.compile_model(path, config=config)
    hit = ov.compile_model(path, config=config)
    assert (cold.get_property("LOADED_FROM_CACHE"), hit.get_property("LOADED_FROM_CACHE")) == (False, True)
    assert [p.any_name for p in hit.inputs] == [p.any_name for p in cold.inputs]
    assert [p.any_name for p in hit.outputs] == [p.any_name for p in cold.outputs]
    assert [p.get_partial_shape() for p in hit.inputs] == [p.get_partial_shape() for p in cold.inputs]
    _assert_same(cold, hit, name)


@pytest.mark.parametrize("name", MODELS)
def test_an_imported_model_exports_the_same_blob(name):
    # The blob is what the engine runs: reading it back and writing it again changes nothing.
    blob = ov.compile_model(os.path.join(ZOO, name + ".onnx")).export_model()
    imported = ov.Core().import_model(blob)
    assert imported.export_model() == blob
    _assert_same(ov.compile_model(os.path.join(ZOO, name + ".onnx")), imported, name)


def test_nodes_that_infer_finer_shapes_when_read_back_are_accepted():
    # ViT's optimized graph holds Slices whose bounds became constants after they were
    # inferred: read back, they know their output shapes exactly, which refines what was written.
    compiled = ov.compile_model(os.path.join(ZOO, "vit.onnx"))
    _assert_same(compiled, ov.Core().import_model(compiled.export_model()), "vit")


def test_the_stored_optimized_graph_is_used_not_optimized_again(monkeypatch):
    model = os.path.join(ZOO, "resnet.onnx")
    blob = ov.compile_model(model).export_model()
    assert b"aiov.FusedConv" in blob
    monkeypatch.setenv("AIOV_GRAPH_OPT", "0")  # a compile now would keep the plain graph
    assert b"aiov.FusedConv" not in ov.compile_model(model).export_model()
    assert b"aiov.FusedConv" in ov.Core().import_model(blob).export_model()


def test_names_and_layouts_travel_with_the_model():
    model = ov.Core().read_model(os.path.join(ZOO, "resnet.onnx"))
    model.set_friendly_name("my net")
    model.inputs[0].get_node().set_layout(ov.Layout("NCHW"))
    model.get_results()[0].set_friendly_name("scores")
    imported = ov.Core().import_model(ov.compile_model(model).export_model())
    runtime = imported.get_runtime_model()
    assert runtime.get_friendly_name() == "my net"
    assert runtime.inputs[0].get_node().get_layout() == ov.Layout("NCHW")
    assert runtime.get_results()[0].get_friendly_name() == "scores"


def test_a_cached_blob_of_an_older_format_is_ignored_and_rewritten(tmp_path):
    path = os.path.join(ZOO, "resnet.onnx")
    config = {"CACHE_DIR": str(tmp_path)}
    ov.compile_model(path, config=config)
    (name,) = [n for n in os.listdir(tmp_path) if n.endswith(".blob")]
    sound = (tmp_path / name).read_bytes()
    old = bytearray(sound)
    struct.pack_into("<I", old, 8, 1)  # format 1 held the model as IR
    old[-4:] = struct.pack("<I", zlib.crc32(bytes(old[:-4])))
    (tmp_path / name).write_bytes(bytes(old))
    assert ov.compile_model(path, config=config).get_property("LOADED_FROM_CACHE") is False
    assert struct.unpack_from("<I", (tmp_path / name).read_bytes(), 8) == (_blob.FORMAT_VERSION,)  # rewritten
    assert ov.compile_model(path, config=config).get_property("LOADED_FROM_CACHE") is True
    with pytest.raises(ov.InputError, match=f"blob format 1; this aiov reads format {_blob.FORMAT_VERSION}"):
        ov.Core().import_model(bytes(old))


def test_concurrent_compiles_into_one_cache_agree(tmp_path):
    path = os.path.join(ZOO, "bert.onnx")
    config = {"CACHE_DIR": str(tmp_path)}
    compiled, errors = [None] * 6, []

    def compile_one(i):
        try:
            compiled[i] = ov.compile_model(path, config=config)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=compile_one, args=(i,)) for i in range(len(compiled))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for c in compiled:
        _assert_same(compiled[0], c, "bert")
    assert _blob.wait_for_cache_rewrites(120)  # each first inference above rewrites the entry
    assert [n for n in os.listdir(tmp_path)] == [n for n in os.listdir(tmp_path) if n.endswith(".blob")]
    assert len(os.listdir(tmp_path)) == 1  # one blob, no temporary file left behind
    assert ov.compile_model(path, config=config).get_property("LOADED_FROM_CACHE") is True


def test_processes_compiling_into_one_cache_all_succeed(tmp_path):
    script = (
        "import sys, numpy as np, aiov as ov\n"
        "c = ov.compile_model(sys.argv[1], config={'CACHE_DIR': sys.argv[2]})\n"
        "x = np.load(sys.argv[3])\n"
        "print(float(np.asarray(c({k[4:]: x[k] for k in x.files if k.startswith('in0.')})[0]).sum()))\n"
    )
    args = [os.path.join(ZOO, "resnet.onnx"), str(tmp_path / "cache"), os.path.join(ZOO, "resnet.npz")]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err.decode()[-500:] for _, err in results]
    assert len({out for out, _ in results}) == 1
    assert len(os.listdir(tmp_path / "cache")) == 1


def test_damaged_graph_bytes_are_refused_or_load_never_crash():
    # Every mutation inside a sound frame reaches the native graph reader: it refuses the bytes
    # with an InputError or reads a graph the engine can compile and run.
    compiled = ov.compile_model(os.path.join(ZOO, "if_loop.onnx"))
    blob = compiled.export_model()
    _, graphs = graph_bytes(blob)
    rng = random.Random(7)
    feeds = _cases("if_loop")[0]
    outcomes = {"refused": 0, "loaded": 0}
    for _ in range(300):
        try:
            imported = ov.Core().import_model(with_graphs(blob, mutated(graphs, rng)))
        except ov.InputError as exc:
            assert str(exc)
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        try:
            imported(feeds)
        except (ov.InputError, RuntimeError, ValueError) as exc:  # a mutated attribute may fail at run time
            assert str(exc)
    assert outcomes["refused"] > 0
