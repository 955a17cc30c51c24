"""ONNX's decoder ops (Attention, RotaryEmbedding, TensorScatter, SwiGLU) where the node suite is
thin: one model run at several sequence lengths (as a decoder runs prefill, then decode steps),
the cache and mask variants together, and bad shapes or values named with their node. Expected
values come from onnx's reference implementation."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import aiov as ov  # noqa: E402

RNG = np.random.default_rng(23)


def _single_node(node, inputs, opset):
    """A model of one node; inputs: (name, numpy dtype, shape with None for dynamic dims)."""
    infos = [
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)
        for name, dtype, shape in inputs
    ]
    outputs = [helper.make_tensor_value_info(name, TensorProto.UNDEFINED, None) for name in node.output if name]
    graph = helper.make_graph([node], "g", infos, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _compare(model, feeds, rtol=1e-5, atol=1e-5):
    """Runs `model` on aiov (compiled once) for each feed list and checks it against onnx's reference."""
    compiled = ov.compile_model(ov.Core().read_model(model.SerializeToString()))
    reference = ReferenceEvaluator(model)
    names = [i.name for i in model.graph.input]
    for feed in feeds:
        got = [np.asarray(v) for v in compiled(list(feed)).values()]
        want = reference.run(None, dict(zip(names, feed)))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def _normal(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _error_of(model, feed):
    with pytest.raises(ValueError) as info:
        compiled = ov.compile_model(ov.Core().read_model(model.SerializeToString()))
        compiled(list(feed))
    return str(info.value)


# ---- Attention ------------------------------------------------------------------------------


def test_attention_with_dynamic_sequence_runs_prefill_then_decode_steps():
    # 3-D inputs, GQA (4 query heads over 2 key/value heads), a past cache and a causal mask:
    # one compiled model at a prompt of 5 then single tokens over a growing cache.
    node = helper.make_node(
        "Attention",
        ["q", "k", "v", "", "past_k", "past_v"],
        ["y", "present_k", "present_v"],
        name="attn",
        q_num_heads=4,
        kv_num_heads=2,
        is_causal=1,
    )
    model = _single_node(
        node,
        [
            ("q", np.float32, [1, "s", 32]),
            ("k", np.float32, [1, "s", 16]),
            ("v", np.float32, [1, "s", 24]),
            ("past_k", np.float32, [1, 2, "p", 8]),
            ("past_v", np.float32, [1, 2, "p", 12]),
        ],
        opset=23,
    )
    feeds = [
        [_normal(1, s, 32), _normal(1, s, 16), _normal(1, s, 24), _normal(1, 2, p, 8), _normal(1, 2, p, 12)]
        for s, p in [(5, 0), (1, 5), (1, 6), (3, 7), (40, 2)]
    ]
    _compare(model, feeds)


@pytest.mark.parametrize("mask_dtype", [np.bool_, np.float32])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_mask_softcap_and_every_score_output_mode(mask_dtype, mode):
    # Mode 0 is the raw product (ONNX's text, onnxruntime); onnx's reference gives it softcapped.
    node = helper.make_node(
        "Attention",
        ["q", "k", "v", "mask"],
        ["y", "", "", "scores"],
        softcap=2.0 if mode else 0.0,
        scale=0.3,
        qk_matmul_output_mode=mode,
    )
    model = _single_node(
        node,
        [
            ("q", np.float32, [2, 3, "s", 8]),
            ("k", np.float32, [2, 3, "t", 8]),
            ("v", np.float32, [2, 3, "t", 5]),
            ("mask", mask_dtype, [None, "t"]),
        ],
        opset=23,
    )

    def mask(s, t):
        m = RNG.random((s, t)) > 0.3
        m[1] = False  # a row with no key: zeros, not NaN
        return m if mask_dtype == np.bool_ else np.where(m, RNG.standard_normal((s, t)), -np.inf).astype(np.float32)

    feeds = [[_normal(2, 3, s, 8), _normal(2, 3, t, 8), _normal(2, 3, t, 5), mask(s, t)] for s, t in [(4, 6), (40, 70)]]
    _compare(model, feeds)


def test_attention_external_cache_with_nonpad_lengths_and_f16():
    node = helper.make_node("Attention", ["q", "k", "v", "", "", "", "lengths"], ["y"], is_causal=1, name="cached")
    model = _single_node(
        node,
        [
            ("q", np.float16, [3, 2, 2, 16]),
            ("k", np.float16, [3, 1, 10, 16]),
            ("v", np.float16, [3, 1, 10, 16]),
            ("lengths", np.int64, [3]),
        ],
        opset=24,
    )
    feed = [
        _normal(3, 2, 2, 16, dtype=np.float16),
        _normal(3, 1, 10, 16, dtype=np.float16),
        _normal(3, 1, 10, 16, dtype=np.float16),
        np.array([4, 10, 1], np.int64),  # the last has fewer keys than queries: its first row sees none
    ]
    _compare(model, [feed], rtol=2e-3, atol=2e-3)


def test_attention_errors_name_the_node_and_the_shapes():
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], name="bad_heads")
    model = _single_node(
        node,
        [("q", np.float32, [1, 3, 4, 8]), ("k", np.float32, [1, 2, 4, 8]), ("v", np.float32, [1, 2, 4, 8])],
        opset=23,
    )
    message = _error_of(model, [_normal(1, 3, 4, 8), _normal(1, 2, 4, 8), _normal(1, 2, 4, 8)])
    assert "bad_heads" in message and "3 query heads" in message and "2 key/value heads" in message

    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], name="no_heads")
    model = _single_node(
        node, [("q", np.float32, [1, 4, 8]), ("k", np.float32, [1, 4, 8]), ("v", np.float32, [1, 4, 8])], opset=23
    )
    message = _error_of(model, [_normal(1, 4, 8)] * 3)
    assert "no_heads" in message and "q_num_heads" in message

    node = helper.make_node("Attention", ["q", "k", "v", "mask"], ["y"], name="long_mask")
    model = _single_node(
        node,
        [
            ("q", np.float32, [1, 1, 2, 4]),
            ("k", np.float32, [1, 1, "t", 4]),
            ("v", np.float32, [1, 1, "t", 4]),
            ("mask", np.bool_, [2, 5]),
        ],
        opset=23,
    )
    message = _error_of(model, [_normal(1, 1, 2, 4), _normal(1, 1, 3, 4), _normal(1, 1, 3, 4), np.ones((2, 5), bool)])
    assert "long_mask" in message and "attn_mask" in message and "[2,5]" in message


# ---- RotaryEmbedding, TensorScatter, SwiGLU ---------------------------------------------


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_partial_rotation_at_several_lengths(interleaved):
    node = helper.make_node(
        "RotaryEmbedding",
        ["x", "cos", "sin", "ids"],
        ["y"],
        interleaved=interleaved,
        rotary_embedding_dim=4,
        num_heads=2,
    )
    model = _single_node(
        node,
        [
            ("x", np.float32, [2, "s", 12]),
            ("cos", np.float32, [16, 2]),
            ("sin", np.float32, [16, 2]),
            ("ids", np.int64, [2, "s"]),
        ],
        opset=23,
    )
    angles = np.arange(16)[:, None] * np.array([1.0, 0.1])
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    feeds = [[_normal(2, s, 12), cos, sin, RNG.integers(0, 16, (2, s))] for s in (3, 1, 9)]
    _compare(model, feeds)


def test_rotary_embedding_position_outside_the_cache_is_an_error():
    node = helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "ids"], ["y"], name="rope")
    model = _single_node(
        node,
        [
            ("x", np.float32, [1, 1, 2, 4]),
            ("cos", np.float32, [3, 2]),
            ("sin", np.float32, [3, 2]),
            ("ids", np.int64, [1, 2]),
        ],
        opset=23,
    )
    cache = np.ones((3, 2), np.float32)
    message = _error_of(model, [_normal(1, 1, 2, 4), cache, cache, np.array([[0, 3]], np.int64)])
    assert "rope" in message and "position id 3" in message


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter_writes_each_batch_at_its_index(mode):
    node = helper.make_node("TensorScatter", ["cache", "update", "at"], ["out"], mode=mode, axis=2)
    model = _single_node(
        node,
        [("cache", np.float32, [2, 3, 6, 4]), ("update", np.float32, [2, 3, "s", 4]), ("at", np.int64, [2])],
        opset=24,
    )
    starts = [np.array([0, 4], np.int64), np.array([5, 2], np.int64)] if mode == "circular" else [np.array([0, 4])]
    feeds = [[_normal(2, 3, 6, 4), _normal(2, 3, 2, 4), at.astype(np.int64)] for at in starts]
    _compare(model, feeds)
    if mode == "linear":
        message = _error_of(model, [_normal(2, 3, 6, 4), _normal(2, 3, 2, 4), np.array([0, 5], np.int64)])
        assert "write index 5" in message and "cache length 6" in message


def test_swiglu_matches_and_refuses_broadcasting():
    node = helper.make_node("SwiGLU", ["a", "b"], ["y"], alpha=1.5, name="glu")
    model = _single_node(node, [("a", np.float32, [None, 8]), ("b", np.float32, [None, 8])], opset=28)
    _compare(model, [[_normal(3, 8), _normal(3, 8)], [_normal(1, 8), _normal(1, 8)]])
    message = _error_of(model, [_normal(3, 8), _normal(1, 8)])
    assert "glu" in message and "one shape" in message
