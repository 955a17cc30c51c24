"""Packed weights in compiled-model blobs: a CACHE_DIR hit or an import takes the weights its
exporter packed (GEMM panels, Winograd filters, depthwise taps, integer panels) instead of
packing them again, computes exactly what the cold compile computes at every precision hint,
packs again when the blob was packed for other kernels, and refuses a damaged packed section
with a clear error. The counters are the engine's own (CompiledModel.weights_packed: entries
made, weights_restored: entries taken from a blob)."""

import os
import random
import struct
import subprocess
import sys

import numpy as np
import pytest

import aiov as ov
from aiov import _blob

from blob_bytes import graph_bytes, mutated, with_graphs

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ZOO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "zoo")
RNG = np.random.default_rng(20)


def _feeds(name, case="in0."):
    data = np.load(os.path.join(ZOO, name + ".npz"))
    return {k[len(case) :]: data[k] for k in data.files if k.startswith(case)}


def _outputs(compiled, feeds):
    return [np.asarray(v) for v in compiled(feeds).values()]


def _qdq_model():
    """quantize_static's QDQ form: an integer convolution, then an integer MatMul."""
    o = 16
    inits = [
        numpy_helper.from_array(np.float32(0.04), "x_scale"),
        numpy_helper.from_array(np.uint8(120), "x_zero"),
        numpy_helper.from_array(RNG.integers(-127, 128, (o, 8, 3, 3)).astype(np.int8), "w"),
        numpy_helper.from_array(RNG.uniform(0.001, 0.01, (o,)).astype(np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros((o,), np.int8), "w_zero"),
        numpy_helper.from_array(np.float32(0.05), "y_scale"),
        numpy_helper.from_array(np.uint8(128), "y_zero"),
        numpy_helper.from_array(RNG.integers(-127, 128, (o * 5 * 5, 10)).astype(np.int8), "m"),
        numpy_helper.from_array(np.float32(0.003), "m_scale"),
        numpy_helper.from_array(np.int8(0), "m_zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("QuantizeLinear", ["f", "y_scale", "y_zero"], ["fq"]),
        helper.make_node("DequantizeLinear", ["fq", "y_scale", "y_zero"], ["fd"]),
        helper.make_node("DequantizeLinear", ["m", "m_scale", "m_zero"], ["md"]),
        helper.make_node("MatMul", ["fd", "md"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 9, 9])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    return proto


def _qdq_file(tmp_path):
    path = tmp_path / "model" / "qdq.onnx"
    path.parent.mkdir()
    onnx.save(_qdq_model(), str(path))
    return str(path), {"x": RNG.standard_normal((2, 8, 9, 9)).astype(np.float32) * 2}


CASES = [
    ("resnet", "f32"),  # Winograd filters, conv panels with folded BatchNorm scales
    ("mobilenet_v2", "f32"),  # depthwise taps, 1x1 convolutions
    ("resnet", "bf16"),
    ("mobilenet_v2", "bf16"),
    pytest.param(
        "resnet",
        "f16",
        marks=pytest.mark.skipif(not ov._core.cpu_has_avx512_fp16(), reason="this CPU has no AVX512-FP16"),
    ),
    ("qdq", "f32"),  # integer panels and column sums
]


@pytest.mark.parametrize("name,precision", CASES)
def test_a_cache_hit_takes_the_packed_weights_and_computes_what_cold_computes(name, precision, tmp_path):
    if name == "qdq":
        path, feeds = _qdq_file(tmp_path)
    else:
        path, feeds = os.path.join(ZOO, name + ".onnx"), _feeds(name)
    config = {"CACHE_DIR": str(tmp_path / "cache"), "INFERENCE_PRECISION_HINT": precision}
    cold = ov.compile_model(path, config=config)
    # (The zoo's models have dynamic inputs: they plan and pack at the first inference, which
    # starts writing the cache entry again, with the weights, on a thread of its own.)
    want = _outputs(cold, feeds)
    assert _blob.wait_for_cache_rewrites(60)
    packed = cold._native.weights_packed
    assert packed > 0
    hit = ov.compile_model(path, config=config)
    assert hit.get_property("LOADED_FROM_CACHE") is True
    for a, b in zip(want, _outputs(hit, feeds)):
        np.testing.assert_array_equal(a, b)
    # Every weight the plan needed came from the blob: none was packed again.
    assert (hit._native.weights_packed, hit._native.weights_restored) == (0, packed)


def test_an_import_takes_the_weights_a_dynamic_model_packed_while_it_ran():
    # A model with dynamic inputs plans (and packs) at its first inference: what it packed by
    # the time it is exported travels with it.
    path = os.path.join(ZOO, "lstm_gru.onnx")
    feeds = _feeds("lstm_gru")
    cold = ov.compile_model(path)
    assert cold._native.weights_packed == 0
    want = _outputs(cold, feeds)
    assert cold._native.weights_packed > 0
    imported = ov.Core().import_model(cold.export_model())
    for a, b in zip(want, _outputs(imported, feeds)):
        np.testing.assert_array_equal(a, b)
    assert imported._native.weights_packed == 0
    assert imported._native.weights_restored == cold._native.weights_packed


def _weights_record(graphs):
    """Where the weights record starts (its tag) and where its entries start."""
    key = _core_packing_key().encode()
    at = graphs.index(struct.pack("<I", len(key)) + key)
    return at - 1, at + 4 + len(key) + 8


def _core_packing_key():
    from aiov import _core

    return _core._testing.packing_key()


@pytest.fixture(scope="module")
def resnet_blob():
    compiled = ov.compile_model(os.path.join(ZOO, "resnet.onnx"))
    compiled(_feeds("resnet"))  # plans and packs
    return compiled.export_model()


def test_weights_packed_under_another_key_are_packed_again(resnet_blob):
    # A blob packed for other kernels (as another CPU or AIOV_GEMM_ISA would write it): its
    # panels are not read; the plans pack as after a cold compile, and compute the same.
    _, graphs = graph_bytes(resnet_blob)
    key = _core_packing_key().encode()
    other = b"X" + key[1:]  # the same length: the record's framing stays sound
    foreign = with_graphs(resnet_blob, graphs.replace(key, other, 1))
    imported, sound = ov.Core().import_model(foreign), ov.Core().import_model(resnet_blob)
    feeds = _feeds("resnet")
    for a, b in zip(_outputs(sound, feeds), _outputs(imported, feeds)):
        np.testing.assert_array_equal(a, b)
    assert sound._native.weights_restored > 0 and sound._native.weights_packed == 0
    assert imported._native.weights_restored == 0
    assert imported._native.weights_packed == sound._native.weights_restored


def test_a_process_with_other_kernels_packs_again(resnet_blob, tmp_path):
    if "f32 scalar" in _core_packing_key():
        pytest.skip("this CPU already runs the scalar kernels")
    blob = tmp_path / "resnet.blob"
    blob.write_bytes(resnet_blob)
    script = (
        "import sys, numpy as np, aiov as ov\n"
        "data = np.load(sys.argv[3])\n"
        "feeds = {k[4:]: data[k] for k in data.files if k.startswith('in0.')}\n"
        "imported = ov.Core().import_model(open(sys.argv[1], 'rb').read())\n"
        "cold = ov.compile_model(sys.argv[2])\n"
        "for a, b in zip(cold(feeds).values(), imported(feeds).values()):\n"
        "    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))\n"
        "assert imported._native.weights_restored == 0, imported._native.weights_restored\n"
        "assert imported._native.weights_packed == cold._native.weights_packed > 0\n"
    )
    env = dict(os.environ, AIOV_GEMM_ISA="scalar")
    args = [str(blob), os.path.join(ZOO, "resnet.onnx"), os.path.join(ZOO, "resnet.npz")]
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_a_truncated_packed_section_is_refused(resnet_blob):
    _, graphs = graph_bytes(resnet_blob)
    tag, entries = _weights_record(graphs)
    size = struct.unpack_from("<Q", graphs, entries - 8)[0]
    assert graphs[tag] == 5 and entries + size + 1 == len(graphs)  # the record, then the end tag
    # The record claims more bytes than the stream has.
    longer = bytearray(graphs)
    struct.pack_into("<Q", longer, entries - 8, size + 2)  # (+ 1 would take the end tag)
    with pytest.raises(ov.InputError, match="packed weights of .* bytes exceed what is left"):
        ov.Core().import_model(with_graphs(resnet_blob, bytes(longer)))
    # The record cut short (its size made to agree): its last entry ends early.
    cut = bytearray(graphs[: entries + size - 16] + graphs[-1:])
    struct.pack_into("<Q", cut, entries - 8, size - 16)
    with pytest.raises(ov.InputError, match="packed weights are malformed: they end inside"):
        ov.Core().import_model(with_graphs(resnet_blob, bytes(cut)))


def test_a_packed_entry_naming_a_constant_that_does_not_exist_is_refused(resnet_blob):
    _, graphs = graph_bytes(resnet_blob)
    _, entries = _weights_record(graphs)
    bad = bytearray(graphs)
    struct.pack_into("<I", bad, entries + 4, 0xFFFFFF)  # the first entry's constant
    with pytest.raises(ov.InputError, match="constant 16777215 was not written before"):
        ov.Core().import_model(with_graphs(resnet_blob, bytes(bad)))


def test_damaged_packed_weights_are_refused_or_load_never_crash(resnet_blob):
    # Mutations inside the packed section, the frame made sound again: refused with an
    # InputError, or read (a dimension that no longer fits its kernel is packed again; a
    # changed value changes results) and run without crashing.
    _, graphs = graph_bytes(resnet_blob)
    tag, entries = _weights_record(graphs)
    head = entries + 4 + 200  # the first entries' descriptions and dimensions, where damage matters
    rng = random.Random(20)
    feeds = _feeds("resnet")
    outcomes = {"refused": 0, "loaded": 0}
    for _ in range(60):
        data = mutated(graphs, rng, tag, head)
        try:
            imported = ov.Core().import_model(with_graphs(resnet_blob, bytes(data)))
        except ov.InputError as exc:
            assert str(exc)
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        imported(feeds)
    assert outcomes["refused"] > 0


def test_the_runtime_model_has_the_rt_info_openvino_gives_after_import_and_a_hit(tmp_path):
    # OpenVINO's compiled model keeps neither the model's rt_info nor its nodes' in
    # get_runtime_model(), cold or imported: aiov's is the same in all three ways of compiling.
    from aiov import opset13 as ops

    param = ops.parameter([2, 3], np.float32, name="x")
    relu = ops.relu(param)
    relu.get_rt_info()["node_key"] = "node_value"
    model = ov.Model([relu], [param], "m")
    model.set_rt_info("value", "key")
    path = str(tmp_path / "m.xml")
    ov.save_model(model, path)
    config = {"CACHE_DIR": str(tmp_path / "cache")}
    cold = ov.compile_model(model)
    imported = ov.Core().import_model(cold.export_model())
    ov.compile_model(path, config=config)
    hit = ov.compile_model(path, config=config)
    assert hit.get_property("LOADED_FROM_CACHE") is True
    for compiled in (cold, imported, hit):
        runtime = compiled.get_runtime_model()
        assert dict(runtime.get_rt_info()) == {}
        for node in runtime.get_ordered_ops():
            assert "node_key" not in node.get_rt_info()
    assert model.get_rt_info("key") == "value"  # the user's model keeps its own
