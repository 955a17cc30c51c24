"""The attention fusion on the chains Swin and Llama export (graphs shaped as tests/zoo's are, with
their sizes computed from the inputs' shapes as torch writes them): Swin's window attention (Q,
K and V cut from packed qkv rows, Q scaled before the product by a factor computed from the
shape, a relative-position bias, in shifted blocks a per-window mask added through a 5-D view)
and Llama's grouped-query attention (K and V with fewer heads, repeated through Unsqueeze,
Expand and Reshape, rotary embeddings on Q and K, the scale after the product, a causal mask
from a Where, the f32 Casts around the probabilities). Each fuses into aiov.Attention and
matches onnxruntime at f32 and within bf16's rounding at bf16; chains the fused op would not
compute alike are left as written."""

from __future__ import annotations

import os

import numpy as np
import pytest

import aiov as ov

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import model_builders as z  # noqa: E402

ZOO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
RNG = np.random.default_rng(29)


def _onnxruntime(proto_or_path, feeds):
    source = proto_or_path if isinstance(proto_or_path, (str, bytes)) else proto_or_path.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feeds)


def _run(source, feeds, hint="f32"):
    """The first output and the node types aiov ran."""
    compiled = ov.compile_model(source, "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": hint})
    request = compiled.create_infer_request()
    got = request.infer(feeds)[0]
    return got, [p.node_type for p in request.get_profiling_info()]


def _assert_close(got, want, tolerance):
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * max(1.0, float(np.abs(want).max())))


def _dims(g, x, at):
    """Dims `at` of x's shape, computed by the graph (as torch's exports size their reshapes)."""
    return g.op("Gather", [g.op("Shape", [x]), g.const(np.array(at, np.int64))], axis=0)


def window_attention(
    heads, head_size, window, windows=1, mask_batch=1, shifted=False, mask_windows=None, row_mask=False
):
    """torchvision's shifted_window_attention on x [batch * windows, window^2, heads * head_size]:
    qkv reshaped to [b, n, 3, heads, head_size], permuted to [3, b, heads, n, head_size] and
    unbound; Q times (C / heads)^-0.5 computed from x's shape; the relative-position bias
    gathered from its table; when shifted, the window mask [mask_batch, windows, 1, n, n] added
    through the view [b / windows, windows, heads, n, n]."""
    g = z.GraphBuilder(seed=7)
    n, dim = window * window, heads * head_size
    qkv = g.dense("x", dim, 3 * dim)
    split = g.op("Concat", [_dims(g, "x", [0, 1]), g.const(np.array([3, heads, head_size], np.int64))], axis=0)
    qkv = g.op("Transpose", [g.op("Reshape", [qkv, split])], perm=[2, 0, 3, 1, 4])
    q, k, v = (g.op("Gather", [qkv, g.const(np.array(i, np.int64))], axis=0) for i in range(3))
    channels = g.op("Gather", [g.op("Shape", ["x"]), g.const(np.array(2, np.int64))], axis=0)
    per_head = g.op("Cast", [g.op("Div", [channels, g.const(np.array(heads, np.int64))])], to=TensorProto.FLOAT)
    q = g.op("Mul", [q, g.op("Pow", [per_head, g.const(np.float32(-0.5))])])
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    table = g.weight((2 * window - 1) ** 2, heads, scale=0.5)
    index = RNG.integers(0, (2 * window - 1) ** 2, n * n).astype(np.int64)
    bias = g.op("Gather", [table, g.const(index)], axis=0)
    bias = g.op("Transpose", [g.op("Reshape", [bias, g.const(np.array([n, n, -1], np.int64))])], perm=[2, 0, 1])
    scores = g.op("Add", [scores, g.op("Unsqueeze", [bias, g.const(np.array([0], np.int64))])])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", n, dim])]
    if row_mask:  # one more mask, [b, 1, 1, n]: one row of keys per window of the batch
        scores = g.op("Add", [scores, "rows"])
        inputs.append(helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["b", 1, 1, n]))
    if shifted:
        groups = g.op("Div", [_dims(g, "x", [0]), g.const(np.array([windows], np.int64))])
        view = g.op("Concat", [groups, g.const(np.array([windows, heads, n, n], np.int64))], axis=0)
        mask_shape = (mask_batch, mask_windows or windows, 1, n, n)
        mask = np.where(RNG.random(mask_shape) < 0.3, -100.0, 0.0).astype(np.float32)
        scores = g.op("Add", [g.op("Reshape", [scores, view]), g.const(mask)])
        scores = g.op("Reshape", [scores, g.const(np.array([-1, heads, n, n], np.int64))])
    probs = g.op("Softmax", [scores], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    g.op("Reshape", [context, g.op("Concat", [_dims(g, "x", [0, 1]), g.const(np.array([-1], np.int64))], axis=0)])
    return g.model(inputs)


@pytest.mark.parametrize(
    "heads, head_size, window, windows, images, shifted",
    [(2, 8, 4, 4, 2, True), (3, 16, 3, 9, 1, True), (2, 8, 4, 1, 3, False), (4, 4, 2, 4, 3, True)],
)
def test_window_attention_is_fused_and_matches_onnxruntime(heads, head_size, window, windows, images, shifted):
    proto = window_attention(heads, head_size, window, windows, shifted=shifted).SerializeToString()
    feeds = {"x": RNG.standard_normal((images * windows, window * window, heads * head_size)).astype(np.float32)}
    want = _onnxruntime(proto, feeds)[0]
    for hint, tolerance in (("f32", 2e-5), ("bf16", 3e-2)):
        got, types = _run(proto, feeds, hint)
        _assert_close(got, want, tolerance)
        # The qkv permutation and the per-head transposes are read as strides, the bias and
        # the window mask are one constant mask: no Transpose, MatMul or Softmax is left.
        assert types.count("aiov.Attention") == 1
        assert not {"Softmax", "Transpose", "MatMul"} & set(types), types


def test_window_mask_with_more_than_one_image_entry_is_left_unfused():
    # A mask [2, windows, 1, n, n] differs per image: no one mask per window stands for it.
    proto = window_attention(2, 8, 4, 4, mask_batch=2, shifted=True)
    feeds = {"x": RNG.standard_normal((8, 16, 16)).astype(np.float32)}
    got, types = _run(proto.SerializeToString(), feeds)
    _assert_close(got, _onnxruntime(proto, feeds)[0], 2e-5)
    assert "aiov.Attention" not in types and "Softmax" in types


def test_window_mask_with_a_mask_per_batch_entry_is_left_unfused():
    # The fused op reads one mask per window (period nW): a second mask that differs for
    # every window of the batch cannot join it.
    proto = window_attention(2, 8, 4, 4, shifted=True, row_mask=True)
    feeds = {
        "x": RNG.standard_normal((8, 16, 16)).astype(np.float32),
        "rows": np.where(RNG.random((8, 1, 1, 16)) < 0.3, -100.0, 0.0).astype(np.float32),
    }
    got, types = _run(proto.SerializeToString(), feeds)
    _assert_close(got, _onnxruntime(proto, feeds)[0], 2e-5)
    assert "aiov.Attention" not in types and "Softmax" in types


def test_window_mask_for_other_windows_is_refused_as_the_unfused_graph_is():
    # 3 windows' masks against a view of 4 windows: onnxruntime refuses the Add; the fused
    # model must refuse too (its mask is broadcast to the view's dims as it runs), not read
    # the masks with another period.
    proto = window_attention(2, 8, 4, 4, shifted=True, mask_windows=3).SerializeToString()
    feeds = {"x": RNG.standard_normal((8, 16, 16)).astype(np.float32)}
    with pytest.raises(Exception, match="(?i)broadcast|shape"):
        _onnxruntime(proto, feeds)
    with pytest.raises(Exception, match="(?i)broadcast|shape|mask"):
        ov.compile_model(proto)(feeds)


def grouped_attention(
    heads, kv_heads, head_size, scale_shape=(), rotary=True, repeat_kv=True, max_positions=64, rotary_op=False
):
    """Llama's attention on x [b, s, heads * head_size]: Q, K and V split into heads (K and V
    kv_heads of them), rotary embeddings on Q and K (cos and sin gathered by position), K and
    V repeated to `heads` by Unsqueeze, Expand and Reshape sized from their shapes (repeat_kv;
    without it they keep their kv_heads and the MatMuls broadcast them), the scores scaled
    (by a tensor of scale_shape) and masked by a causal mask from a Where, the probabilities
    cast to f32 twice, the context merged back to [b, s, hidden]. rotary_op: ONNX's
    RotaryEmbedding (opset 23) on Q and K instead of the chain that computes it."""
    g = z.GraphBuilder(seed=9)
    hidden = heads * head_size
    half = head_size // 2

    def split(t, n):
        t = g.op("Reshape", [t, g.const(np.array([0, 0, n, head_size], np.int64))])
        return g.op("Transpose", [t], perm=[0, 2, 1, 3])

    seq = _dims(g, "x", [1])
    positions = g.op("Range", [g.const(np.array(0, np.int64)), g.op("Squeeze", [seq]), g.const(np.array(1, np.int64))])
    angles = np.outer(np.arange(max_positions), 1.0 / 10000 ** (np.arange(half) / half))
    angles = np.concatenate([angles, angles], axis=1)
    cos = g.op("Gather", [g.const(np.cos(angles).astype(np.float32)), positions], axis=0)
    sin = g.op("Gather", [g.const(np.sin(angles).astype(np.float32)), positions], axis=0)

    def rotate(t):
        front = g.op(
            "Slice",
            [
                t,
                g.const(np.array([0], np.int64)),
                g.const(np.array([half], np.int64)),
                g.const(np.array([3], np.int64)),
            ],
        )
        back = g.op(
            "Slice",
            [
                t,
                g.const(np.array([half], np.int64)),
                g.const(np.array([head_size], np.int64)),
                g.const(np.array([3], np.int64)),
            ],
        )
        turned = g.op("Concat", [g.op("Neg", [back]), front], axis=-1)
        return g.op("Add", [g.op("Mul", [t, cos]), g.op("Mul", [turned, sin])])

    def repeated(t):
        unsqueezed = g.op("Unsqueeze", [t, g.const(np.array([2], np.int64))])
        target = g.op(
            "Concat",
            [_dims(g, t, [0, 1]), g.const(np.array([heads // kv_heads], np.int64)), _dims(g, t, [2, 3])],
            axis=0,
        )
        merged = g.op("Concat", [_dims(g, t, [0]), g.const(np.array([heads], np.int64)), _dims(g, t, [2, 3])], axis=0)
        return g.op("Reshape", [g.op("Expand", [unsqueezed, target]), merged])

    q = split(g.dense("x", hidden, hidden), heads)
    k = split(g.dense("x", hidden, kv_heads * head_size), kv_heads)
    v = split(g.dense("x", hidden, kv_heads * head_size), kv_heads)
    if rotary and rotary_op:
        cos_cache = g.const(np.cos(angles[:, :half]).astype(np.float32))
        sin_cache = g.const(np.sin(angles[:, :half]).astype(np.float32))
        rows = g.op("Expand", [g.op("Unsqueeze", [positions, g.const(np.array([0], np.int64))]), _dims(g, "x", [0, 1])])
        q, k = (g.op("RotaryEmbedding", [t, cos_cache, sin_cache, rows]) for t in (q, k))
    elif rotary:
        q, k = rotate(q), rotate(k)
    if repeat_kv:
        k, v = repeated(k), repeated(v)
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    scale = np.full(scale_shape, 1 / np.sqrt(head_size), np.float32)
    if scale_shape:
        scale = (scale * RNG.uniform(0.5, 1.5, scale_shape)).astype(np.float32)
    scores = g.op("Mul", [scores, g.const(scale)])
    square = g.op("Concat", [seq, seq], axis=0)
    ones = g.op("ConstantOfShape", [square], value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
    future = g.op("Cast", [g.op("Trilu", [ones, g.const(np.array(1, np.int64))], upper=1)], to=TensorProto.BOOL)
    lowest = g.const(np.array(np.finfo(np.float32).min, np.float32))
    mask = g.op("Where", [future, lowest, g.const(np.array(0, np.float32))])
    probs = g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1)
    probs = g.op("Cast", [g.op("Cast", [probs], to=TensorProto.FLOAT)], to=TensorProto.FLOAT)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    g.op("Reshape", [context, g.const(np.array([0, 0, hidden], np.int64))])
    return g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", hidden])], 23 if rotary_op else 17)


@pytest.mark.parametrize("heads, kv_heads, head_size", [(4, 2, 8), (6, 2, 16), (4, 1, 8), (2, 2, 8)])
@pytest.mark.parametrize("rotary", [True, False])
def test_grouped_query_attention_is_fused_and_matches_onnxruntime(heads, kv_heads, head_size, rotary):
    proto = grouped_attention(heads, kv_heads, head_size, rotary=rotary).SerializeToString()
    compiled = {
        hint: ov.compile_model(proto, "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": hint})
        for hint in ("f32", "bf16")
    }
    for batch, seq in [(2, 7), (1, 1), (3, 19)]:
        feeds = {"x": RNG.standard_normal((batch, seq, heads * head_size)).astype(np.float32)}
        want = _onnxruntime(proto, feeds)[0]
        for hint, tolerance in (("f32", 2e-5), ("bf16", 3e-2)):
            request = compiled[hint].create_infer_request()
            _assert_close(request.infer(feeds)[0], want, tolerance)
            types = [p.node_type for p in request.get_profiling_info()]
            # K and V are read per group of query heads: their repeat no longer runs.
            assert types.count("aiov.Attention") == 1
            assert "Softmax" not in types and "Broadcast" not in types, types


def test_grouped_query_attention_after_a_rotary_embedding_op_is_fused():
    # Q and K from ONNX's RotaryEmbedding (as a RoPE fusion leaves them) instead of the chain;
    # the same computation as the chain's graph, which onnxruntime runs.
    with_op = grouped_attention(4, 2, 8, rotary_op=True).SerializeToString()
    chain = grouped_attention(4, 2, 8).SerializeToString()
    for batch, seq in [(2, 7), (1, 1)]:
        feeds = {"x": RNG.standard_normal((batch, seq, 32)).astype(np.float32)}
        got, types = _run(with_op, feeds)
        _assert_close(got, _onnxruntime(chain, feeds)[0], 2e-5)
        assert "aiov.Attention" in types and "Softmax" not in types and "Broadcast" not in types


def test_one_kv_head_broadcast_by_the_products_is_fused():
    # Without repeat_kv the MatMuls broadcast one K/V head over the query heads (numpy rules).
    proto = grouped_attention(4, 1, 8, repeat_kv=False)
    feeds = {"x": RNG.standard_normal((2, 9, 32)).astype(np.float32)}
    got, types = _run(proto.SerializeToString(), feeds)
    _assert_close(got, _onnxruntime(proto, feeds)[0], 2e-5)
    assert "aiov.Attention" in types and "Softmax" not in types


def test_a_per_head_scale_is_left_unfused():
    # The fused op takes one scale for every head: a [1, heads, 1, 1] factor stays as written.
    proto = grouped_attention(4, 2, 8, scale_shape=(1, 4, 1, 1))
    feeds = {"x": RNG.standard_normal((2, 9, 32)).astype(np.float32)}
    got, types = _run(proto.SerializeToString(), feeds)
    _assert_close(got, _onnxruntime(proto, feeds)[0], 2e-5)
    assert "aiov.Attention" not in types and "Softmax" in types


def test_kv_heads_that_match_no_query_heads_are_refused_clearly():
    # Two K/V heads against three query heads: neither a repeat nor a broadcast; the model
    # is wrong, and says so rather than pairing heads somehow.
    proto = grouped_attention(3, 2, 8, repeat_kv=False, rotary=False)
    feeds = {"x": RNG.standard_normal((1, 5, 24)).astype(np.float32)}
    with pytest.raises(Exception, match="heads|broadcast|shape|incompatible"):
        ov.compile_model(proto.SerializeToString())(feeds)


@pytest.mark.parametrize("name", ["swin", "llama"])
def test_zoo_model_runs_fused_attention_at_f32_and_bf16(name):
    path = os.path.join(ZOO, f"{name}.onnx")
    data = np.load(os.path.join(ZOO, f"{name}.npz"))
    feeds = {key.split(".", 1)[1]: data[key] for key in data.files if key.startswith("in0.")}
    want = _onnxruntime(path, feeds)[0]
    for hint, tolerance in (("f32", 1e-4), ("bf16", 3e-2)):
        got, types = _run(path, feeds, hint)
        _assert_close(got, want, tolerance)
        assert types.count("aiov.Attention") == 2 and "Softmax" not in types
        # Llama's K and V repeats no longer run (its one Broadcast left expands the mask).
        assert types.count("Broadcast") == (1 if name == "llama" else 0)
