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

from graph_checks import onnx_before_1_20  # noqa: E402

# onnx 1.19 (Python 3.9's last) has the first Attention text: other score-output modes, softcap
# after the mask, no nonpad_kv_seqlen in its reference; aiov follows the revised spec.
revised_attention_spec = pytest.mark.skipif(
    onnx_before_1_20(), reason="onnx < 1.20's reference follows Attention's first spec"
)


def reference_has(op):
    """Skips where the installed onnx predates `op` (its reference cannot check aiov)."""
    return pytest.mark.skipif(not onnx.defs.has(op), reason=f"onnx {onnx.__version__} has no {op}")


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


@revised_attention_spec
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


@revised_attention_spec
@pytest.mark.parametrize("past", [0, 3])
def test_bf16_attention_follows_the_reference_with_gqa_masks_and_lengths(past):
    # Under the bf16 hint both products take bf16 operands (once per head when there is no
    # past cache); 3-D GQA inputs, a boolean mask, the causal frontier and the probabilities
    # output all stay within bf16's tolerance of the float reference.
    node = helper.make_node(
        "Attention",
        ["q", "k", "v", "mask", "past_k", "past_v"],
        ["y", "present_k", "present_v", "probs"],
        q_num_heads=4,
        kv_num_heads=2,
        is_causal=1,
        qk_matmul_output_mode=3,
    )
    inputs = [
        ("q", np.float32, [2, "s", 4 * 40]),
        ("k", np.float32, [2, "s", 2 * 40]),
        ("v", np.float32, [2, "s", 2 * 24]),
        ("mask", np.bool_, [None, None]),
        ("past_k", np.float32, [2, 2, "p", 40]),
        ("past_v", np.float32, [2, 2, "p", 24]),
    ]
    model = _single_node(node, inputs, opset=23)
    compiled = ov.compile_model(model.SerializeToString(), config={"INFERENCE_PRECISION_HINT": "bf16"})
    reference = ReferenceEvaluator(model)
    for s in (1, 37, 70):
        feed = [_normal(2, s, 160), _normal(2, s, 80), _normal(2, s, 48), RNG.random((s, past + s)) > 0.2]
        feed += [_normal(2, 2, past, 40), _normal(2, 2, past, 24)]
        got = [np.asarray(v) for v in compiled(feed).values()]
        want = reference.run(None, dict(zip([i[0] for i in inputs], feed)))
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=0, atol=3e-2 * float(np.abs(w).max()))


@revised_attention_spec
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


@reference_has("SwiGLU")
def test_swiglu_matches_and_refuses_broadcasting():
    node = helper.make_node("SwiGLU", ["a", "b"], ["y"], alpha=1.5, name="glu")
    model = _single_node(node, [("a", np.float32, [None, 8]), ("b", np.float32, [None, 8])], opset=28)
    _compare(model, [[_normal(3, 8), _normal(3, 8)], [_normal(1, 8), _normal(1, 8)]])
    message = _error_of(model, [_normal(3, 8), _normal(1, 8)])
    assert "glu" in message and "one shape" in message


# ---- LinearAttention, CausalConvWithState: state carried between calls ------------------------


def _run_once(model, feed):
    """Outputs of `model` (an ONNX ModelProto or an aiov Model) on one feed."""
    if isinstance(model, onnx.ModelProto):
        model = ov.Core().read_model(model.SerializeToString())
    compiled = ov.compile_model(model)
    return [np.asarray(v) for v in compiled(list(feed)).values()]


@reference_has("LinearAttention")
@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
def test_linear_attention_in_two_chunks_equals_one_pass(rule):
    # GQA (4 query heads on 2 state heads); decay per head, beta per head. The state a first
    # chunk returns, fed to the second, gives what one pass over the whole sequence gives.
    inputs = ["q", "k", "v", "state", "decay" if "gated" in rule else "", "beta" if "delta" in rule else ""]
    while not inputs[-1]:
        inputs.pop()
    node = helper.make_node(
        "LinearAttention", inputs, ["y", "present"], q_num_heads=4, kv_num_heads=2, update_rule=rule
    )
    specs = {
        "q": [2, "t", 4 * 6],
        "k": [2, "t", 2 * 6],
        "v": [2, "t", 2 * 5],
        "state": [2, 2, 6, 5],
        "decay": [2, "t", 2],
        "beta": [2, "t", 2],
    }
    model = _single_node(node, [(n, np.float32, specs[n]) for n in inputs if n], opset=27)

    def chunk(t):
        k = _normal(2, t, 12)
        k /= np.linalg.norm(k.reshape(2, t, 2, 6), axis=-1).repeat(6, -1).reshape(2, t, 12)
        values = {
            "q": _normal(2, t, 24),
            "k": k,
            "v": _normal(2, t, 10),
            "decay": -RNG.random((2, t, 2)).astype(np.float32),
            "beta": RNG.random((2, t, 2)).astype(np.float32),
        }
        return values

    first, second = chunk(5), chunk(1)
    zeros = np.zeros((2, 2, 6, 5), np.float32)

    def feed(values, state):
        return [state if n == "state" else values[n] for n in inputs if n]

    whole = {n: np.concatenate([first[n], second[n]], axis=1) for n in first}
    _compare(model, [feed(whole, zeros), feed(first, zeros)], rtol=1e-4, atol=1e-5)
    y_whole, state_whole = _run_once(model, feed(whole, zeros))
    y1, state1 = _run_once(model, feed(first, zeros))
    y2, state2 = _run_once(model, feed(second, state1))
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_whole, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state2, state_whole, rtol=1e-4, atol=1e-5)


def test_linear_attention_missing_decay_names_the_rule():
    node = helper.make_node("LinearAttention", ["q", "k", "v"], ["y", "s"], q_num_heads=1, kv_num_heads=1, name="la")
    model = _single_node(node, [(n, np.float32, [1, 2, 4]) for n in "qkv"], opset=27)
    message = _error_of(model, [_normal(1, 2, 4)] * 3)
    assert "la" in message and "gated_delta" in message and "decay" in message


@reference_has("CausalConvWithState")
@pytest.mark.parametrize("activation", ["none", "silu"])
def test_causal_conv_with_state_in_steps_equals_one_pass(activation):
    node = helper.make_node("CausalConvWithState", ["x", "w", "", "past"], ["y", "state"], activation=activation)
    model = _single_node(
        node,
        [("x", np.float32, [2, 3, "l"]), ("w", np.float32, [3, 1, 4]), ("past", np.float32, [2, 3, 3])],
        opset=27,
    )
    w, x = _normal(3, 1, 4), _normal(2, 3, 7)
    zeros = np.zeros((2, 3, 3), np.float32)
    _compare(model, [[x, w, zeros], [x[:, :, :2], w, _normal(2, 3, 3)]])
    y_whole, state_whole = _run_once(model, [x, w, zeros])
    y1, state = _run_once(model, [x[:, :, :5], w, zeros])
    steps = [y1]
    for t in (5, 6):  # single-token decode steps
        y, state = _run_once(model, [x[:, :, t : t + 1], w, state])
        steps.append(y)
    np.testing.assert_allclose(np.concatenate(steps, axis=2), y_whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, state_whole)


# ---- Attention as OpenVINO IR (ScaledDotProductAttention-13) ----------------------------------


@pytest.mark.parametrize("form", ["bool_mask", "float_mask_scaled", "causal", "scaled_no_mask"])
def test_attention_saved_as_ir_reads_back_in_aiov_and_openvino(tmp_path, form):
    inputs = ["q", "k", "v"] + (["mask"] if "mask" in form else [])
    attrs = {"scale": 0.4} if "scaled" in form else {}
    node = helper.make_node("Attention", inputs, ["y"], is_causal=int(form == "causal"), **attrs)
    mask_dtype = np.bool_ if form == "bool_mask" else np.float32
    specs = [("q", np.float32, [1, 2, 3, 8]), ("k", np.float32, [1, 2, 5, 8]), ("v", np.float32, [1, 2, 5, 6])]
    model = _single_node(node, specs + [("mask", mask_dtype, [1, 1, 3, 5])][: len(inputs) - 3], opset=23)
    mask = RNG.random((1, 1, 3, 5)) > 0.3 if form == "bool_mask" else _normal(1, 1, 3, 5)
    feed = [_normal(1, 2, 3, 8), _normal(1, 2, 5, 8), _normal(1, 2, 5, 6), mask.astype(mask_dtype)][: len(inputs)]
    (want,) = ReferenceEvaluator(model).run(None, dict(zip(inputs, feed)))
    xml = str(tmp_path / "attention.xml")
    ov.save_model(ov.Core().read_model(model.SerializeToString()), xml)
    np.testing.assert_allclose(_run_once(ov.Core().read_model(xml), feed)[0], want, rtol=1e-5, atol=1e-5)
    openvino = pytest.importorskip("openvino")
    compiled = openvino.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(compiled(feed)[0], want, rtol=1e-4, atol=1e-4)


def test_attention_beyond_scaled_dot_product_attention_is_refused_by_the_ir_writer(tmp_path):
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], q_num_heads=2, kv_num_heads=2, softcap=3.0)
    model = _single_node(node, [(n, np.float32, [1, 3, 8]) for n in "qkv"], opset=23)
    with pytest.raises(ValueError, match="3-D inputs, softcap, which OpenVINO's ScaledDotProductAttention cannot say"):
        ov.save_model(ov.Core().read_model(model.SerializeToString()), str(tmp_path / "a.xml"))
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], name="gqa")
    shapes = {"q": [1, 4, 3, 8], "k": [1, 2, 3, 8], "v": [1, 2, 3, 8]}
    model = _single_node(node, [(n, np.float32, shapes[n]) for n in "qkv"], opset=23)
    with pytest.raises(ValueError, match="'gqa' uses fewer key/value heads than query heads"):
        ov.save_model(ov.Core().read_model(model.SerializeToString()), str(tmp_path / "b.xml"))


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention_saved_by_openvino_reads_in_aiov(tmp_path, causal):
    openvino = pytest.importorskip("openvino")
    from openvino import opset13

    q, k, v = (
        opset13.parameter(shape, np.float32, name=n)
        for n, shape in zip("qkv", ([2, 3, 4, 8], [2, 3, 6, 8], [2, 3, 6, 5]))
    )
    mask = opset13.parameter([2, 1, 4, 6], np.bool_, name="mask")
    scale = opset13.constant(np.float32(0.25))
    sdpa = opset13.scaled_dot_product_attention(q, k, v, mask, scale, causal=causal)
    xml = str(tmp_path / "sdpa.xml")
    openvino.save_model(openvino.Model([sdpa.output(0)], [q, k, v, mask]), xml)
    feed = [_normal(2, 3, 4, 8), _normal(2, 3, 6, 8), _normal(2, 3, 6, 5), RNG.random((2, 1, 4, 6)) > 0.3]
    compiled = openvino.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(_run_once(ov.Core().read_model(xml), feed)[0], compiled(feed)[0], rtol=1e-4, atol=1e-4)


def test_f16_attention_expansion_rounds_each_op_once():
    """ONNX's expanded f16 causal Attention (node case test_attention_4d_causal_fp16_expanded):
    every op's f16 output is its exact value rounded once, as if each op ran in f64. (The
    case's expected values keep the reference Softmax's inner f16 rounding, 1 ulp off.)"""
    from aiov.onnx_backend import node_test_cases

    cases = [c for c in node_test_cases() if c.name == "test_attention_4d_causal_fp16_expanded"]
    if not cases:
        pytest.skip(f"onnx {onnx.__version__} has no such case")
    case = cases[0]
    inputs, _ = case.data_sets[0]
    q, k, v = (np.asarray(x) for x in inputs)
    got = ov.compile_model(case.model.SerializeToString())([q, k, v])[0]

    def f16(x):
        return np.asarray(x, np.float64).astype(np.float16).astype(np.float64)

    # The expansion scales Q and K^T each by sqrt(1 / sqrt(head size)), in f16.
    scale = float(np.float16(np.sqrt(1 / np.sqrt(np.float32(q.shape[-1])))))
    scores = f16(f16(q.astype(np.float64) * scale) @ f16(np.swapaxes(k, -1, -2).astype(np.float64) * scale))
    rows, cols = scores.shape[-2:]
    scores = f16(scores + np.where(np.tril(np.ones((rows, cols), bool)), 0.0, -np.inf))
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights = f16(weights / weights.sum(-1, keepdims=True))
    expected = f16(weights @ v.astype(np.float64))
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.astype(np.float64), expected)
