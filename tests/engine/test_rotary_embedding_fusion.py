"""fuse_rotary_embedding on Llama's rotary position embedding as torch exports it,
x * cos + cat(-x[..., h:], x[..., :h]) * sin with cos and sin = cos/sin(cat(freqs, freqs))
unsqueezed over the heads: the compiled plan runs one RotaryEmbedding instead of the Slices,
Neg and Concat, with results equal to onnxruntime's and to the graph as written
(AIOV_GRAPH_OPT=0); and the pass leaves the graphs it must not rewrite as they are. Also the
RotaryEmbedding kernel on the caches the pass gives it ([1, seq, half], no position ids)."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov
from aiov._core import _testing

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(29)
BIG = np.iinfo(np.int64).max  # torch writes x[..., h:] as a Slice ending at INT64_MAX


def ints(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def rope_model(
    *,
    swap_cos=False,
    swap_sin=False,
    swap_add=False,
    half_from_shape=True,
    split_at=None,
    doubled=True,
    extra_output=None,
    head_size=8,
    from_rows=False,
):
    """Llama's rotate_half chain over x [b, heads, s, head_size] and freqs [1, s, head_size / 2]
    (cat(freqs, freqs) unless `doubled` is False: then cat(freqs, 2 * freqs), halves that differ).
    The half is computed from x's shape (x's last dim unknown, as Llama's export has it) or a
    constant (`split_at`, when given, splits elsewhere than the half). With `from_rows`, x is the
    head split of rows [b, s, 4 * head_size] as Llama writes it: view(b, s, -1, head_size), then
    transpose(1, 2)."""
    nodes = []
    inits = [ints("one_axis", [1]), ints("last", [-1]), ints("step", [1]), ints("zero", [0]), ints("big", [BIG])]
    if from_rows:
        inits.append(ints("split", [0, 0, -1, head_size]))
        nodes.append(helper.make_node("Reshape", ["rows", "split"], ["heads"]))
        nodes.append(helper.make_node("Transpose", ["heads"], ["x"], perm=[0, 2, 1, 3]))
    if doubled:
        nodes.append(helper.make_node("Concat", ["freqs", "freqs"], ["emb"], axis=-1))
    else:
        inits.append(numpy_helper.from_array(np.array(2.0, np.float32), "two_f"))
        nodes.append(helper.make_node("Mul", ["freqs", "two_f"], ["freqs2"]))
        nodes.append(helper.make_node("Concat", ["freqs", "freqs2"], ["emb"], axis=-1))
    nodes += [
        helper.make_node("Cos", ["emb"], ["cos3"]),
        helper.make_node("Sin", ["emb"], ["sin3"]),
        helper.make_node("Unsqueeze", ["cos3", "one_axis"], ["cos"]),
        helper.make_node("Unsqueeze", ["sin3", "one_axis"], ["sin"]),
    ]
    if split_at is not None:
        inits.append(ints("half", [split_at]))
    elif half_from_shape:  # x.shape[-1] // 2, as torch exports it
        inits += [ints("three", 3), ints("two", 2)]
        nodes += [
            helper.make_node("Shape", ["x"], ["x_shape"]),
            helper.make_node("Gather", ["x_shape", "three"], ["d"], axis=0),
            helper.make_node("Div", ["d", "two"], ["h"]),
            helper.make_node("Unsqueeze", ["h", "zero"], ["half"]),
        ]
    else:
        inits.append(ints("half", [head_size // 2]))
    nodes += [
        helper.make_node("Slice", ["x", "zero", "half", "last", "step"], ["x1"]),
        helper.make_node("Slice", ["x", "half", "big", "last", "step"], ["x2"]),
        helper.make_node("Neg", ["x2"], ["neg"]),
        helper.make_node("Concat", ["neg", "x1"], ["turned"], axis=-1),
        helper.make_node("Mul", ["cos", "x"] if swap_cos else ["x", "cos"], ["direct"]),
        helper.make_node("Mul", ["sin", "turned"] if swap_sin else ["turned", "sin"], ["rotated"]),
        helper.make_node("Add", ["rotated", "direct"] if swap_add else ["direct", "rotated"], ["y"]),
    ]
    x_dims = ["b", 4, "s", "d"] if half_from_shape and split_at is None else ["b", 4, "s", head_size]
    inputs = [
        helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["b", "s", 4 * head_size])
        if from_rows
        else helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims),
        helper.make_tensor_value_info("freqs", TensorProto.FLOAT, [1, "s", None]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "rope", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def feeds_for(batch=2, seq=5, head_size=8, freq_size=None):
    positions = np.arange(seq, dtype=np.float32)[None, :, None]
    inv_freq = 1.0 / (10000.0 ** (np.arange(0, head_size, 2, dtype=np.float32) / head_size))
    freqs = (positions * inv_freq[: freq_size or head_size // 2]).astype(np.float32)
    return {"x": RNG.standard_normal((batch, 4, seq, head_size)).astype(np.float32), "freqs": freqs}


def steps_and_check(model, feeds, monkeypatch, config=None, tol=1e-5):
    """The optimized plan's step types, after checking every output against onnxruntime and the
    graph as written."""
    monkeypatch.setenv("AIOV_GRAPH_OPT", "0")
    plain = ov.compile_model(model)(feeds)
    monkeypatch.setenv("AIOV_GRAPH_OPT", "1")
    request = ov.compile_model(model, "CPU", {"PERF_COUNT": True, **(config or {})}).create_infer_request()
    got = request.infer(feeds)
    ort = pytest.importorskip("onnxruntime")
    expected = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    assert len(got) == len(expected) == len(plain)
    for i, want in enumerate(expected):
        np.testing.assert_allclose(got[i], want, rtol=tol, atol=tol)
        np.testing.assert_allclose(got[i], plain[i], rtol=tol, atol=tol)
    return [p.node_type for p in request.get_profiling_info()]


def assert_fused(steps):
    assert steps.count("RotaryEmbedding") == 1
    assert not {"Slice", "Concat", "Negative", "Add"} & set(steps), steps


@pytest.mark.parametrize("swap_cos", [False, True], ids=["x_cos", "cos_x"])
@pytest.mark.parametrize("swap_sin", [False, True], ids=["turned_sin", "sin_turned"])
@pytest.mark.parametrize("swap_add", [False, True], ids=["direct_first", "rotated_first"])
def test_llama_rotary_chain_becomes_one_op(monkeypatch, swap_cos, swap_sin, swap_add):
    model = rope_model(swap_cos=swap_cos, swap_sin=swap_sin, swap_add=swap_add)
    assert_fused(steps_and_check(model, feeds_for(), monkeypatch))


@pytest.mark.parametrize("seq", [1, 7])
def test_fused_rotation_at_other_lengths_and_batches(monkeypatch, seq):
    # One compiled model at a decode step (seq 1) and a longer prefill, batch 1 and 3.
    model = rope_model()
    for batch in (1, 3):
        assert_fused(steps_and_check(model, feeds_for(batch, seq), monkeypatch))


def rows_feeds(batch=2, seq=5, head_size=8):
    feeds = feeds_for(batch, seq, head_size)
    x = feeds.pop("x")
    feeds["rows"] = np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(batch, seq, 4 * head_size)
    return feeds


def test_rotation_runs_on_the_rows_before_the_head_split(monkeypatch):
    # The split's one Transpose then stands right before the attention that reads it.
    steps = steps_and_check(rope_model(from_rows=True), rows_feeds(), monkeypatch)
    assert steps.count("RotaryEmbedding") == 1 and steps.count("Transpose") == 1
    assert not {"Slice", "Concat", "Negative", "Add"} & set(steps), steps


def test_head_split_read_elsewhere_is_rotated_after_it(monkeypatch):
    # Rotating the rows would leave the split computed twice: the op reads the split instead.
    steps = steps_and_check(rope_model(from_rows=True, extra_output="x"), rows_feeds(3, 4), monkeypatch)
    assert steps.count("RotaryEmbedding") == 1 and steps.count("Transpose") == 1


def test_constant_half_of_a_known_head_size(monkeypatch):
    model = rope_model(half_from_shape=False, head_size=16)
    assert_fused(steps_and_check(model, feeds_for(head_size=16), monkeypatch))


def test_fused_rotation_under_the_bf16_hint_stays_f32_exact(monkeypatch):
    # No product: the rotation runs in f32 whatever the hint, to f32 tolerance.
    steps = steps_and_check(rope_model(), feeds_for(), monkeypatch, {"INFERENCE_PRECISION_HINT": "bf16"})
    assert_fused(steps)


def test_split_elsewhere_than_the_half_stays_as_written(monkeypatch):
    steps = steps_and_check(rope_model(split_at=3), feeds_for(), monkeypatch)
    assert "RotaryEmbedding" not in steps and "Slice" in steps


def test_cos_whose_halves_differ_stays_as_written(monkeypatch):
    steps = steps_and_check(rope_model(doubled=False), feeds_for(), monkeypatch)
    assert "RotaryEmbedding" not in steps


def test_cos_of_one_value_per_position_stays_as_written(monkeypatch):
    # cos and sin [1, 1, s, 1] broadcast along the head vector: no half of it to rotate by.
    model = rope_model(doubled=True)
    feeds = feeds_for()
    feeds["freqs"] = feeds["freqs"][..., :1].copy()
    bad = onnx.load_from_string(model)
    for n in bad.graph.node:  # drop the Concat: cos, sin of [1, s, 1]
        if n.op_type == "Cos" or n.op_type == "Sin":
            n.input[0] = "freqs"
    bad.graph.node.remove(next(n for n in bad.graph.node if n.output[0] == "emb"))
    steps = steps_and_check(bad.SerializeToString(), feeds, monkeypatch)
    assert "RotaryEmbedding" not in steps


@pytest.mark.parametrize("read_again", ["neg", "turned", "x1", "direct"])
def test_intermediate_read_elsewhere_stays_as_written(monkeypatch, read_again):
    steps = steps_and_check(rope_model(extra_output=read_again), feeds_for(), monkeypatch)
    assert "RotaryEmbedding" not in steps


def test_llama_zoo_model_runs_its_rotations_fused():
    # Both layers' queries and keys, through the model as exported (tests/zoo/llama.onnx).
    import os

    zoo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
    data = np.load(os.path.join(zoo, "llama.npz"))
    feeds = {k.split(".", 1)[1]: data[k] for k in data.files if k.startswith("in0.")}
    compiled = ov.compile_model(os.path.join(zoo, "llama.onnx"), "CPU", {"PERF_COUNT": True})
    # Exported and imported, the optimized graph is read back as it was written.
    for model in (compiled, ov.Core().import_model(compiled.export_model())):
        request = model.create_infer_request()
        got = request.infer(feeds)["last_hidden_state"]
        np.testing.assert_allclose(got, data["out0.last_hidden_state"], rtol=1e-3, atol=1e-3)
        steps = [p.node_type for p in request.get_profiling_info()]
        assert steps.count("RotaryEmbedding") == 4
        assert "Slice" not in steps and "Negative" not in steps


# ---- the kernel on the caches the pass gives it -------------------------------------------


def rotate_half_reference(x, cos, sin):
    """x [b, h, s, d] rotated by cos, sin [b or 1, s or 1, d / 2] as Llama writes it."""
    half = x.shape[-1] // 2
    c = np.concatenate([cos, cos], -1)[:, None]
    s = np.concatenate([sin, sin], -1)[:, None]
    turned = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * c + turned * s


@pytest.mark.parametrize(
    "x_shape, cache_shape",
    [
        ((2, 3, 5, 8), (1, 5, 4)),  # one cache row per position, every batch sample
        ((2, 3, 5, 8), (2, 5, 4)),  # the spec's [batch, seq, half]
        ((2, 3, 5, 8), (1, 1, 4)),  # one angle set for every position
        ((2, 8, 64, 64), (1, 64, 32)),  # enough rows to spread over the pool
        ((1, 2, 3, 34), (1, 3, 17)),  # an odd half: a vector tail
    ],
)
def test_rotary_kernel_broadcasts_caches_of_one_batch_or_position(x_shape, cache_shape):
    x = RNG.standard_normal(x_shape).astype(np.float32)
    angles = RNG.uniform(-3, 3, cache_shape)
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    (got,) = _testing.run_op("RotaryEmbedding", [x, cos, sin])
    np.testing.assert_allclose(got, rotate_half_reference(x, cos, sin), rtol=1e-5, atol=1e-5)


def test_rotary_kernel_names_caches_that_fit_no_batch():
    x = RNG.standard_normal((2, 3, 5, 8)).astype(np.float32)
    cache = np.ones((3, 5, 4), np.float32)
    with pytest.raises(ov.InputError, match=r"caches must be \[2 \(or 1\), 5 \(or 1\), 4\]"):
        _testing.run_op("RotaryEmbedding", [x, cache, cache])
