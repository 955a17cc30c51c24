"""Transformer encoders with dynamic batch and sequence axes: the optimizer fuses their attention
(aiov.Attention) whatever form the mask takes (a 2-D padding mask made additive in the graph, a
4-D additive mask fed as it is, a causal mask the graph computes from the sequence length, the
Expand/Where chains torch's exporters write), and the fused model matches onnxruntime at odd
sequence lengths, batch above 1, and rows padded by different amounts. One compiled model
serves every sequence length, each from its own cached plan."""

from __future__ import annotations

import os

import numpy as np
import pytest

import aiov as ov

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import model_builders as z  # noqa: E402
from graph_checks import node_types  # noqa: E402

ZOO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
HIDDEN, HEADS = 24, 3
RNG = np.random.default_rng(22)


def _onnxruntime(proto_or_path, feeds):
    source = proto_or_path if isinstance(proto_or_path, str) else proto_or_path.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _assert_close(got, want, rtol=2e-4):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def _padding_mask(batch, seq):
    """1/0 rows, each padded by a different amount (the first keeps its whole length)."""
    mask = np.ones((batch, seq), np.int64)
    for row in range(1, batch):
        mask[row, seq - (row * seq) // (batch + 1) :] = 0
    return mask


def attention_block(mask_kind):
    """One self-attention block on x [b, s, hidden]: per-head Q, K, V, scaled scores plus an
    additive mask, Softmax, context back to [b, s, hidden]. mask_kind: "padding" (input
    mask [b, s] of 1/0 made additive in the graph), "additive" (input mask [b, 1, s, s] of
    floats added as it is), "causal" (a [s, s] mask computed from x's sequence length)."""
    g = z.GraphBuilder(seed=3)
    head = HIDDEN // HEADS

    def split_heads(t):
        t = g.op("Reshape", [t, g.const(np.array([0, 0, HEADS, head], np.int64))])
        return g.op("Transpose", [t], perm=[0, 2, 1, 3])

    q, k, v = (split_heads(g.dense("x", HIDDEN, HIDDEN)) for _ in range(3))
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    scores = g.op("Mul", [scores, g.const(np.float32(1 / np.sqrt(head)))])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", HIDDEN])]
    if mask_kind == "padding":
        mask = g.op("Cast", [g.op("Unsqueeze", ["mask", g.const(np.array([1, 2], np.int64))])], to=TensorProto.FLOAT)
        additive = g.op("Mul", [g.op("Sub", [g.const(np.float32(1)), mask]), g.const(np.float32(-1e4))])
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "s"]))
    elif mask_kind == "additive":
        additive = "mask"
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["b", 1, "s", "s"]))
    else:
        seq = g.op("Slice", [g.op("Shape", ["x"]), g.const(np.array([1], np.int64)), g.const(np.array([2], np.int64))])
        square = g.op("Concat", [seq, seq], axis=0)
        ones = g.op("ConstantOfShape", [square], value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
        future = g.op("Trilu", [ones, g.const(np.array(1, np.int64))], upper=1)
        additive = g.op("Mul", [future, g.const(np.float32(-1e4))])
    probs = g.op("Softmax", [g.op("Add", [scores, additive])], axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    g.op("Reshape", [ctx, g.const(np.array([0, 0, HIDDEN], np.int64))])
    return g.model(inputs)


def _block_feeds(mask_kind, batch, seq):
    feeds = {"x": RNG.standard_normal((batch, seq, HIDDEN)).astype(np.float32)}
    if mask_kind == "padding":
        feeds["mask"] = _padding_mask(batch, seq)
    elif mask_kind == "additive":
        feeds["mask"] = np.where(RNG.random((batch, 1, seq, seq)) < 0.3, -1e4, 0).astype(np.float32)
    return feeds


@pytest.mark.parametrize("mask_kind", ["padding", "additive", "causal"])
@pytest.mark.parametrize("batch, seq", [(3, 13), (2, 31), (1, 1)])
def test_masked_attention_is_fused_and_matches_onnxruntime(mask_kind, batch, seq):
    proto = attention_block(mask_kind)
    feeds = _block_feeds(mask_kind, batch, seq)
    _assert_close(ov.compile_model(proto.SerializeToString())(feeds)[0], _onnxruntime(proto, feeds)[0])
    types = node_types(proto, feeds)
    assert "aiov.Attention" in types and "Softmax" not in types


def _text_feeds(name, batch, seq):
    """Token ids, a padding mask and zero token types for a tests/zoo text model."""
    data = np.load(os.path.join(ZOO, f"{name}.npz"))
    feeds = {}
    for key in (k.split(".", 1)[1] for k in data.files if k.startswith("in0.")):
        if key == "input_ids":
            feeds[key] = RNG.integers(0, 100, (batch, seq)).astype(np.int64)
        elif key == "attention_mask":
            feeds[key] = _padding_mask(batch, seq)
        else:
            feeds[key] = np.zeros((batch, seq), np.int64)
    return feeds


@pytest.mark.parametrize("name", ["bert", "distilbert", "roberta", "bert_dynamo"])
def test_exported_encoders_run_fused_attention(name):
    # torch's exporters expand the padding mask to [b, 1, s, s] with an Expand whose target
    # is computed: its rank must still be known for the fusion to see a 4-D mask.
    path = os.path.join(ZOO, f"{name}.onnx")
    feeds = _text_feeds(name, 3, 37)
    compiled = ov.compile_model(path, "CPU", {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    got = request.infer(feeds)
    types = [p.node_type for p in request.get_profiling_info()]
    assert types.count("aiov.Attention") == 2 and "Softmax" not in types
    _assert_close(got[0], _onnxruntime(path, feeds)[0], rtol=1e-3)


def test_one_compiled_encoder_answers_each_sequence_length_from_its_own_plan():
    proto = z.bert_encoder(hidden=HIDDEN, heads=HEADS, layers=2)
    compiled = ov.compile_model(proto.SerializeToString())
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    shapes = [(1, 13), (3, 31), (2, 8)]
    cases = []
    for batch, seq in shapes:
        feeds = {"x": RNG.standard_normal((batch, seq, HIDDEN)).astype(np.float32), "mask": _padding_mask(batch, seq)}
        cases.append((feeds, session.run(None, feeds)[0]))
    request = compiled.create_infer_request()
    for _ in range(2):  # the second round reuses each length's plan
        for feeds, expected in cases:
            got = request.infer(feeds)[0]
            assert got.shape == expected.shape
            _assert_close(got, expected)
            _assert_close(compiled(feeds)[0], expected)


@pytest.mark.parametrize("mask_kind", ["padding", "additive", "causal"])
def test_bf16_attention_follows_f32_for_every_mask_and_shape(mask_kind):
    # Under the bf16 hint the fused attention multiplies in bf16 (the mask and softmax stay
    # f32): one compiled model answers every batch and sequence length within bf16's
    # tolerance of the f32 model, padded and future keys still ignored.
    data = attention_block(mask_kind).SerializeToString()
    f32 = ov.compile_model(data, config={"INFERENCE_PRECISION_HINT": "f32"})
    bf16 = ov.compile_model(data, config={"INFERENCE_PRECISION_HINT": "bf16", "PERF_COUNT": True})
    request = bf16.create_infer_request()
    for batch, seq in [(3, 13), (2, 70), (1, 1), (4, 33)]:
        feeds = _block_feeds(mask_kind, batch, seq)
        got = request.infer(feeds)[0]
        want = f32(feeds)[0]
        assert got.shape == want.shape
        # 8 mantissa bits in the projections and both attention products: about 1% of the
        # largest value.
        np.testing.assert_allclose(got, want, rtol=0, atol=3e-2 * float(np.abs(want).max()))
        types = [p.node_type for p in request.get_profiling_info()]
        assert "aiov.Attention" in types and "Softmax" not in types


def seq_first_attention(seq, batch, heads, head_size, split=None):
    """torch's nn.MultiheadAttention on sequence-first rows x [seq, batch, heads * head_size]:
    per-head Q, K, V split as Reshape(Transpose(Reshape(t, [seq, batch * heads, head_size]),
    [1, 0, 2]), [batch, heads, seq, head_size]), Q and K^T each scaled by sqrt(1 / sqrt(head
    size)) (scaled_dot_product_attention's export), context merged back by Transpose [2, 0, 1, 3].
    `split` overrides the [batch, heads, seq, head_size] target (a split that is no head split)."""
    g = z.GraphBuilder(seed=5)
    hidden = heads * head_size
    split = split or [batch, heads, seq, head_size]
    root_scale = g.const(np.array([(1 / np.sqrt(head_size)) ** 0.5], np.float32))

    def split_heads(t):
        rows = g.op("Reshape", [t, g.const(np.array([seq, batch * heads, head_size], np.int64))])
        t = g.op("Transpose", [rows], perm=[1, 0, 2])
        return g.op("Reshape", [t, g.const(np.array(split, np.int64))])

    q, k, v = (split_heads(g.dense("x", hidden, hidden)) for _ in range(3))
    q = g.op("Mul", [q, root_scale])
    k = g.op("Mul", [g.op("Transpose", [k], perm=[0, 1, 3, 2]), root_scale])
    probs = g.op("Softmax", [g.op("MatMul", [q, k])], axis=-1)
    g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[2, 0, 1, 3])
    return g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, batch, hidden])])


@pytest.mark.parametrize("seq, batch, heads, head_size", [(17, 8, 2, 16), (5, 3, 4, 8), (1, 1, 1, 4)])
def test_sequence_first_heads_are_fused_and_match_onnxruntime(seq, batch, heads, head_size):
    proto = seq_first_attention(seq, batch, heads, head_size)
    feeds = {"x": RNG.standard_normal((seq, batch, heads * head_size)).astype(np.float32)}
    want = _onnxruntime(proto, feeds)[0]
    _assert_close(ov.compile_model(proto.SerializeToString())(feeds)[0], want)
    types = node_types(proto, feeds)
    assert "aiov.Attention" in types and "Softmax" not in types and "MatMul" not in types
    bf16 = ov.compile_model(proto.SerializeToString(), config={"INFERENCE_PRECISION_HINT": "bf16"})
    np.testing.assert_allclose(bf16(feeds)[0], want, rtol=0, atol=3e-2 * float(np.abs(want).max()))


def test_a_split_that_mixes_sequence_and_heads_is_read_as_it_is():
    # rows [5, 6, 8] transposed to [6, 5, 8] and read back as [3, 5, 2, 8]: "heads" and
    # "sequence" cut across the rows' positions, so no [b, s, h, d] tensor underlies it. The
    # fused op reads the split itself as [b, h, s, d] (heads first), so the result is the
    # unfused graph's, heads unmixed.
    proto = seq_first_attention(5, 3, 2, 8, split=[3, 5, 2, 8])
    feeds = {"x": RNG.standard_normal((5, 3, 16)).astype(np.float32)}
    _assert_close(ov.compile_model(proto.SerializeToString())(feeds)[0], _onnxruntime(proto, feeds)[0])
    types = node_types(proto, feeds)
    assert "aiov.Attention" in types and "Softmax" not in types


def test_vit_runs_fused_attention_at_f32_and_bf16():
    # torchvision's vit (tests/zoo): nn.MultiheadAttention on sequence-first rows, its
    # reshape targets computed from the batch (dynamic), its scale computed from the head size.
    path = os.path.join(ZOO, "vit.onnx")
    feeds = {"pixels": RNG.standard_normal((8, 3, 32, 32)).astype(np.float32)}
    want = _onnxruntime(path, feeds)[0]
    for hint, tolerance in (("f32", 1e-4), ("bf16", 3e-2)):
        compiled = ov.compile_model(path, "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": hint})
        request = compiled.create_infer_request()
        got = request.infer(feeds)[0]
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * float(np.abs(want).max()))
        types = [p.node_type for p in request.get_profiling_info()]
        assert types.count("aiov.Attention") == 2 and "Softmax" not in types and "MatMul" not in types
