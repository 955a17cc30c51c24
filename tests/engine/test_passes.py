"""Each graph pass of the optimizer (native/plan/passes/, docs/passes.md) on a small graph made
for it: the compiled model runs the ops the pass should leave (seen through the per-node
profile, which lists the plan's steps) and computes what the graph as written computes
(AIOV_GRAPH_OPT=0)."""

from __future__ import annotations

import logging
import pathlib
import re

import numpy as np

import aiov as ov
import aiov.opset13 as ops
from aiov import _core

RNG = np.random.default_rng(17)
PASSES_DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "passes.md"


def steps_and_check(model, feeds, monkeypatch, tol=1e-5):
    """Op types of the optimized plan's steps, after checking its outputs against the plain graph."""
    monkeypatch.setenv("AIOV_GRAPH_OPT", "0")
    plain = ov.compile_model(model)(feeds)
    monkeypatch.setenv("AIOV_GRAPH_OPT", "1")
    request = ov.compile_model(model, "CPU", {"PERF_COUNT": True}).create_infer_request()
    optimized = request.infer(feeds)
    assert len(optimized) == len(plain)
    for i in range(len(plain)):
        np.testing.assert_allclose(optimized[i], plain[i], rtol=tol, atol=tol)
    return [p.node_type for p in request.get_profiling_info()]


def plain_steps(model, feeds, monkeypatch):
    monkeypatch.setenv("AIOV_GRAPH_OPT", "0")
    request = ov.compile_model(model, "CPU", {"PERF_COUNT": True}).create_infer_request()
    request.infer(feeds)
    return [p.node_type for p in request.get_profiling_info()]


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def conv(x, cin, cout, k=3):
    return ops.convolution(
        x, ops.constant(randn(cout, cin, k, k, scale=0.3)), [1, 1], [k // 2] * 2, [k // 2] * 2, [1, 1]
    )


def batch_norm(y, c):
    positive = lambda: ops.constant(RNG.uniform(0.5, 1.5, c).astype(np.float32))  # noqa: E731
    return ops.batch_norm_inference(y, positive(), ops.constant(randn(c)), ops.constant(randn(c)), positive(), 1e-5)


# ---- the pass list --------------------------------------------------------------------------


def test_passes_run_in_the_documented_order():
    documented = re.findall(r"^\d+\. `(\w+)`", PASSES_DOC.read_text(), re.MULTILINE)
    assert _core.graph_passes() == documented


def test_every_op_a_pass_matches_is_a_registered_op():
    # The optimizer also checks this before its first run; a misspelt name would otherwise
    # turn its fusion off without a sound.
    names = _core.pass_op_names()
    assert "aiov.FusedConv" in names and "MatMul" in names
    assert sorted(set(names) - set(_core.op_types())) == []


# ---- one test per pass ----------------------------------------------------------------------


def test_fold_constants_gives_later_passes_constant_filters(monkeypatch):
    # The filters are computed (Multiply of two constants): folded, they are a constant the
    # convolution pass can take; unfolded, the planner still computes them but the
    # convolution stays as written.
    x = ops.parameter([1, 8, 6, 6], np.float32, name="x")
    filters = ops.multiply(ops.constant(randn(8, 8, 3, 3, scale=0.3)), ops.constant(randn(8, 1, 1, 1)))
    y = ops.convolution(x, filters, [1, 1], [1, 1], [1, 1], [1, 1])
    model = ov.Model([y], [x])
    feeds = [randn(1, 8, 6, 6)]
    assert plain_steps(model, feeds, monkeypatch) == ["Convolution"]
    assert steps_and_check(model, feeds, monkeypatch) == ["Transpose", "aiov.FusedConv", "Transpose"]


def test_recognise_gelu_in_both_forms(monkeypatch):
    x = ops.parameter([2, 16], np.float32, name="x")
    erf_term = ops.add(ops.erf(ops.divide(x, np.float32(np.sqrt(2.0)))), np.float32(1.0))
    half_first = ops.multiply(ops.multiply(x, np.float32(0.5)), erf_term)
    erf_term2 = ops.add(ops.erf(ops.multiply(x, np.float32(np.sqrt(0.5)))), np.float32(1.0))
    half_last = ops.multiply(ops.multiply(x, erf_term2), np.float32(0.5))
    model = ov.Model([half_first, half_last], [x])
    assert steps_and_check(model, [randn(2, 16, scale=3)], monkeypatch) == ["Gelu", "Gelu"]


def test_recognise_swish_folds_silu_into_the_convolution(monkeypatch):
    # EfficientNet's SiLU, conv * sigmoid(conv): one Swish, which the convolution's epilogue takes.
    c = 8
    x = ops.parameter([1, c, 7, 7], np.float32, name="x")
    y = conv(x, c, c)
    model = ov.Model([ops.multiply(ops.sigmoid(y), y)], [x])
    assert steps_and_check(model, [randn(1, c, 7, 7, scale=3)], monkeypatch, tol=1e-4) == [
        "Transpose",
        "aiov.FusedConv",
        "Transpose",
    ]


def test_recognise_swish_leaves_a_sigmoid_of_another_value(monkeypatch):
    # A gate (squeeze-excitation: x * sigmoid(s)) is not SiLU; a sigmoid read twice stays too.
    x = ops.parameter([2, 16], np.float32, name="x")
    s = ops.parameter([2, 16], np.float32, name="s")
    gate = ops.multiply(x, ops.sigmoid(s))
    shared = ops.sigmoid(x)
    model = ov.Model([gate, ops.multiply(x, shared), shared], [x, s])
    steps = steps_and_check(model, [randn(2, 16, scale=3), randn(2, 16, scale=3)], monkeypatch, tol=1e-5)
    assert "Swish" not in steps, steps


def test_convolutions_to_nhwc_fold_batchnorm_and_channel_ops(monkeypatch):
    c = 8
    x = ops.parameter([2, c, 7, 7], np.float32, name="x")
    y = batch_norm(conv(x, c, c), c)
    y = ops.multiply(y, ops.constant(randn(1, c, 1, 1)))
    y = ops.subtract(y, ops.constant(randn(c, 1, 1)))
    model = ov.Model([y], [x])
    assert steps_and_check(model, [randn(2, c, 7, 7)], monkeypatch, tol=1e-4) == [
        "Transpose",
        "aiov.FusedConv",
        "Transpose",
    ]


def test_convolutions_to_nhwc_take_one_dimensional_convolutions(monkeypatch):
    # Audio front ends (wav2vec2, Whisper): NCW convolutions run on the NHWC kernels as 2-D
    # ones one row high, the BatchNorm and per-channel Add after them folded; a grouped one
    # too (wav2vec2's positional convolution: an even window, padded by half of it). The
    # length is dynamic: each length's plan takes the same path.
    c = 8
    x = ops.parameter([2, c, -1], np.float32, name="x")
    y = ops.convolution(x, ops.constant(randn(16, c, 5, scale=0.3)), [2], [2], [1], [1])
    y = ops.add(batch_norm(y, 16), ops.constant(randn(16, 1)))
    filters = ops.constant(randn(4, 4, 4, 6, scale=0.3))  # 4 groups of 4 channels into 4
    y = ops.group_convolution(ops.relu(y), filters, [1], [3], [3], [1])
    model = ov.Model([y], [x])
    for length in (23, 40):
        steps = steps_and_check(model, [randn(2, c, length)], monkeypatch, tol=1e-4)
        assert steps.count("aiov.FusedConv") == 2, steps
        assert not {"Convolution", "BatchNormInference", "Add"} & set(steps), steps


def test_batch_norms_to_scale_shift_after_concat_run_with_their_activation(monkeypatch):
    # DenseNet's pre-activation: BatchNorm and Relu after a Concat, which no convolution folds.
    c = 6
    x = ops.parameter([2, c, 7, 5], np.float32, name="x")
    y = ops.relu(batch_norm(ops.concat([x, conv(x, c, c)], 1), 2 * c))
    model = ov.Model([conv(y, 2 * c, 4)], [x])
    steps = steps_and_check(model, [randn(2, c, 7, 5)], monkeypatch, tol=1e-4)
    assert "BatchNormInference" not in steps and "Relu" not in steps, steps
    assert steps.count("aiov.ElementwiseChain") == 1, steps


def test_batch_norms_to_scale_shift_stay_inside_a_convolution_region(monkeypatch):
    # Relu then BatchNorm between two convolutions: the BatchNorm cannot fold into the first,
    # and as a per-channel scale and shift the layout changes around it cancel.
    c = 8
    x = ops.parameter([1, c, 9, 9], np.float32, name="x")
    y = batch_norm(ops.relu(conv(x, c, c)), c)
    model = ov.Model([conv(y, c, c)], [x])
    steps = steps_and_check(model, [randn(1, c, 9, 9)], monkeypatch, tol=1e-4)
    assert steps.count("Transpose") == 2 and "BatchNormInference" not in steps, steps


def test_sink_layout_changes_between_convolutions(monkeypatch):
    # Abs, pooling, LRN and a kept-dims reduction work on NHWC data: the transposes back to NCHW
    # after the first convolution and to NHWC before the second cancel.
    c = 8
    x = ops.parameter([1, c, 9, 9], np.float32, name="x")
    y = ops.absolute(conv(x, c, c))
    # (OpenVINO's max_pool also makes indices; unread, drop_unread_pool_indices removes them.)
    y = ops.max_pool(y, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2]).output(0)
    y = ops.add(y, ops.constant(randn(c, 1, 1)))
    y = ops._make("LRN", [y], {"size": 3, "alpha": 1e-2, "beta": 0.75, "bias": 1.0})
    y = ops.reduce_mean(conv(y, c, c), [2, 3], keep_dims=True)
    model = ov.Model([y], [x])
    steps = steps_and_check(model, [randn(1, c, 9, 9)], monkeypatch, tol=1e-4)
    assert steps.count("Transpose") == 2, steps
    assert steps[0] == "Transpose" and steps[-1] == "Transpose"
    assert steps.count("aiov.FusedConv") == 2 and "MaxPool" in steps and "ReduceMean" in steps
    assert "LRN" in steps


def test_sink_layout_changes_through_a_dense_block(monkeypatch):
    # DenseNet: convolutions' outputs concatenated along the channels, then BatchNorm and Relu
    # before the next convolution; the Concat runs on NHWC data along its last axis.
    c = 6  # more than convolutions_read_planar takes: the model starts with a Transpose
    x = ops.parameter([2, c, 6, 7], np.float32, name="x")
    stem = conv(x, c, c)
    features = ops.concat([stem, conv(stem, c, 3)], 1)
    features = ops.concat([features, conv(ops.relu(batch_norm(features, c + 3)), c + 3, 5)], -3)
    y = conv(ops.relu(batch_norm(features, c + 8)), c + 8, 2)
    steps = steps_and_check(ov.Model([y], [x]), [randn(2, c, 6, 7)], monkeypatch, tol=1e-4)
    assert steps.count("Transpose") == 2 and steps.count("Concat") == 2, steps


def test_max_pool_indices_stay_only_while_read(monkeypatch):
    c = 4
    x = ops.parameter([1, c, 8, 8], np.float32, name="x")
    pool = ops.max_pool(conv(x, c, c), [2, 2], [1, 1], [0, 0], [0, 0], [2, 2])
    unread = ov.Model([conv(pool.output(0), c, c)], [x])
    steps = steps_and_check(unread, [randn(1, c, 8, 8)], monkeypatch, tol=1e-4)
    assert steps == ["aiov.FusedConv", "MaxPool", "aiov.FusedConv", "Transpose"]  # pooled in NHWC
    read = ov.Model([pool.output(0), pool.output(1)], [x])
    values, indices = ov.compile_model(read)([randn(1, c, 8, 8)]).values()
    assert indices.dtype == np.int64 and values.shape == indices.shape == (1, c, 4, 4)


def test_convolutions_read_planar_images_with_few_channels(monkeypatch):
    x = ops.parameter([1, 3, 10, 10], np.float32, name="x")
    model = ov.Model([conv(x, 3, 16)], [x])
    assert steps_and_check(model, [randn(1, 3, 10, 10)], monkeypatch, tol=1e-4) == ["aiov.FusedConv", "Transpose"]


def test_fuse_attention(monkeypatch):
    b, s, h, d = 2, 5, 2, 4
    q, k, v = (ops.parameter([b, s, h, d], np.float32, name=n) for n in "qkv")
    heads = lambda t: ops.transpose(t, [0, 2, 1, 3])  # noqa: E731
    scores = ops.divide(ops.matmul(heads(q), heads(k), False, True), np.float32(2.0))
    scores = ops.add(scores, ops.constant(randn(b, 1, 1, s)))
    out = ops.transpose(ops.matmul(ops.softmax(scores, 3), heads(v), False, False), [0, 2, 1, 3])
    model = ov.Model([out], [q, k, v])
    feeds = [randn(b, s, h, d) for _ in range(3)]
    assert steps_and_check(model, feeds, monkeypatch) == ["aiov.Attention"]


def test_fuse_layer_norm(monkeypatch):
    x = ops.parameter([3, 4, 12], np.float32, name="x")
    y = ops.mvn(x, [-1], True, 1e-5, "inside_sqrt")
    y = ops.add(ops.multiply(y, ops.constant(randn(12))), ops.constant(randn(12)))
    model = ov.Model([y], [x])
    assert steps_and_check(model, [randn(3, 4, 12)], monkeypatch, tol=1e-4) == ["aiov.LayerNorm"]


def test_fuse_matmul_bias(monkeypatch):
    x = ops.parameter([5, 16], np.float32, name="x")
    y = ops.add(ops.matmul(x, ops.constant(randn(16, 8)), False, False), ops.constant(randn(8)))
    model = ov.Model([y], [x])
    assert steps_and_check(model, [randn(5, 16)], monkeypatch, tol=1e-4) == ["aiov.FusedMatMul"]


def test_fuse_epilogues_takes_a_residual_then_an_activation(monkeypatch):
    x = ops.parameter([5, 16], np.float32, name="x")
    r = ops.parameter([5, 8], np.float32, name="r")
    y = ops.add(ops.matmul(x, ops.constant(randn(16, 8)), False, False), ops.constant(randn(8)))
    y = ops.clamp(ops.add(r, y), -0.5, 0.5)
    model = ov.Model([y], [x, r])
    assert steps_and_check(model, [randn(5, 16), randn(5, 8)], monkeypatch, tol=1e-4) == ["aiov.FusedMatMul"]


def test_fuse_epilogues_takes_an_activation_after_a_reshape(monkeypatch):
    # GPT-2's MLP: the product over [B*S, C] rows, reshaped to [B, S, C'], then its tanh Gelu.
    x = ops.parameter([6, 16], np.float32, name="x")
    y = ops.add(ops.matmul(x, ops.constant(randn(16, 8)), False, False), ops.constant(randn(8)))
    y = ops.gelu(ops.reshape(y, ops.constant(np.array([2, 3, 8], np.int64)), False), "tanh")
    model = ov.Model([y], [x])
    assert steps_and_check(model, [randn(6, 16)], monkeypatch, tol=1e-4) == ["aiov.FusedMatMul"]


def test_fuse_epilogues_leaves_an_activation_after_a_reshape_read_elsewhere(monkeypatch):
    # The reshaped product is a model output too: it must stay without the activation.
    x = ops.parameter([6, 16], np.float32, name="x")
    y = ops.add(ops.matmul(x, ops.constant(randn(16, 8)), False, False), ops.constant(randn(8)))
    viewed = ops.reshape(y, ops.constant(np.array([2, 3, 8], np.int64)), False)
    model = ov.Model([viewed, ops.relu(viewed)], [x])
    assert steps_and_check(model, [randn(6, 16)], monkeypatch, tol=1e-4) == ["aiov.FusedMatMul", "Relu"]


def test_fuse_elementwise_chains_stops_at_a_value_used_elsewhere(monkeypatch):
    # The first chain ends at a model output; the second starts from it.
    x = ops.parameter([2, 3, 4], np.float32, name="x")
    first = ops.exp(ops.multiply(ops.absolute(x), np.float32(-0.5)))
    second = ops.negative(ops.sqrt(ops.add(first, np.float32(1.0))))
    model = ov.Model([first, second], [x])
    assert steps_and_check(model, [randn(2, 3, 4)], monkeypatch) == ["aiov.ElementwiseChain"] * 2


def bottleneck_model():
    """A ResNet bottleneck (1x1 -> 3x3 -> 1x1, BatchNorms and ReLUs, the residual Add) on 32
    channels, then a MaxPool."""
    x = ops.parameter([2, 32, 9, 9], np.float32, name="x")
    y = ops.relu(batch_norm(conv(x, 32, 16, 1), 16))
    y = ops.relu(batch_norm(conv(y, 16, 16, 3), 16))
    y = ops.relu(ops.add(batch_norm(conv(y, 16, 32, 1), 32), x))
    return ov.Model([ops.max_pool(y, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2], with_indices=False)], [x])


def bf16_conv_kernels(model, feeds, caplog):
    """The kernels the bf16 plan's convolutions picked (its DEBUG log), after checking its
    result against f32 within bf16's tolerance and that the model's output stays f32."""
    ref = ov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(feeds)[0]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="aiov"):
        compiled = ov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
        got = compiled(feeds)[0]
    assert got.dtype == np.float32 and compiled.outputs[0].get_element_type().get_type_name() == "f32"
    np.testing.assert_allclose(got, ref, rtol=0, atol=5e-2 * np.max(np.abs(ref)))
    return re.findall(r"\(aiov\.FusedConv\)[^:]*: ([^\n]*)", caplog.text)


def test_carry_bf16_inside_a_bottleneck(monkeypatch, caplog):
    # The 1x1 writes bf16 for the 3x3, the 3x3 for the last 1x1; that one's output, read by the
    # MaxPool, and the block's input, the residual, stay f32.
    feeds = [randn(2, 32, 9, 9)]
    kernels = bf16_conv_kernels(bottleneck_model(), feeds, caplog)
    assert [k.split("NHWC, ")[1].split(", packed")[0] for k in kernels] == [
        "f32 in, bf16 out",
        "bf16 in, bf16 out",
        "bf16 in, f32 out",
    ]
    monkeypatch.setenv("AIOV_BF16_TENSORS", "0")
    assert not any("bf16 out" in k for k in bf16_conv_kernels(bottleneck_model(), feeds, caplog))


def test_carry_bf16_keeps_f32_where_another_op_reads(monkeypatch, caplog):
    # A convolution read by a convolution and by a graph output, and the last (a graph output)
    # write f32; the two read only as a convolution's data, bf16; the one read as a residual
    # bf16 where the direct kernel merges it (AVX512_BF16 without AMX), else f32.
    x = ops.parameter([1, 16, 8, 8], np.float32, name="x")
    a = conv(x, 16, 16)
    b = ops.add(conv(a, 16, 16), conv(x, 16, 16, 1))
    c = conv(b, 16, 16, 1)
    model = ov.Model([a, conv(c, 16, 16)], [x])
    kernels = bf16_conv_kernels(model, [randn(1, 16, 8, 8)], caplog)
    direct = all("direct bf16 conv" in k for k in kernels)
    assert len(kernels) == 5 and sum("bf16 out" in k for k in kernels) == (3 if direct else 2)
    assert sum("bf16 residual" in k for k in kernels) == (1 if direct else 0)
    assert steps_and_check(model, [randn(1, 16, 8, 8)], monkeypatch, tol=1e-4).count("aiov.FusedConv") == 5


def test_carry_bf16_through_residual_blocks(monkeypatch, caplog):
    # Two ResNet bottlenecks: where the direct kernel merges bf16 residuals, the first block's
    # output (read by the second block's first convolution and as its residual) is bf16 too,
    # and only the last, read by the MaxPool, is f32.
    def block(y, c, mid):
        z = ops.relu(batch_norm(conv(y, c, mid, 1), mid))
        z = ops.relu(batch_norm(conv(z, mid, mid, 3), mid))
        return ops.relu(ops.add(batch_norm(conv(z, mid, c, 1), c), y))

    x = ops.parameter([2, 32, 9, 9], np.float32, name="x")
    y = block(block(conv(x, 32, 32, 1), 32, 16), 32, 16)
    model = ov.Model([ops.max_pool(y, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2], with_indices=False)], [x])
    feeds = [randn(2, 32, 9, 9)]
    kernels = bf16_conv_kernels(model, feeds, caplog)
    assert len(kernels) == 7
    if all("direct bf16 conv" in k for k in kernels):
        assert sum("bf16 residual" in k for k in kernels) == 2
        assert sum("bf16 out" in k for k in kernels) == 6 and "f32 out" in kernels[-1]
    else:
        assert not any("bf16 residual" in k for k in kernels)
    monkeypatch.setenv("AIOV_BF16_TENSORS", "0")
    assert not any("bf16 residual" in k for k in bf16_conv_kernels(model, feeds, caplog))


def test_carry_bf16_through_a_stem_and_its_max_pool(caplog):
    # A planar stem, then a ceil-mode MaxPool read by two convolutions (one as a residual):
    # where the direct kernel runs, the stem writes bf16 and the pool pools it as it lies; else
    # the region starts after the pool, as before.
    x = ops.parameter([2, 3, 20, 21], np.float32, name="x")
    stem = ops.relu(ops.convolution(x, ops.constant(randn(16, 3, 3, 3, scale=0.3)), [2, 2], [1, 1], [1, 1], [1, 1]))
    pool = ops.max_pool(stem, [2, 2], [1, 1], [0, 0], [0, 0], [3, 3], rounding_type="ceil", with_indices=False)
    y = ops.relu(ops.add(conv(ops.relu(conv(pool, 16, 16, 1)), 16, 16, 3), pool))
    model = ov.Model([conv(y, 16, 8, 1)], [x])
    kernels = bf16_conv_kernels(model, [randn(2, 3, 20, 21)], caplog)
    assert len(kernels) == 4 and kernels[0].startswith("planar input")
    direct = "direct bf16 conv over kernel rows" in kernels[0]
    assert ("bf16 out" in kernels[0]) == direct
    assert ("bf16 in" in kernels[1]) == direct and ("bf16 residual" in kernels[2]) == direct
    assert ("(MaxPool) -> [2,5,5,16]: NHWC, bf16 in and out" in caplog.text) == direct


def test_carry_bf16_through_concats(caplog):
    # SqueezeNet's fire modules: a squeeze 1x1, two expand convolutions into a Concat, read by
    # the next squeeze; the second Concat also by a graph output, so it and its inputs stay f32.
    def fire(y, c, squeeze, expand):
        s = ops.relu(conv(y, c, squeeze, 1))
        return ops.concat([ops.relu(conv(s, squeeze, expand, 1)), ops.relu(conv(s, squeeze, expand, 3))], 1)

    x = ops.parameter([2, 16, 7, 8], np.float32, name="x")
    first = fire(conv(x, 16, 16, 1), 16, 4, 8)
    second = fire(first, 16, 4, 8)
    model = ov.Model([conv(second, 16, 6, 1), second], [x])
    kernels = bf16_conv_kernels(model, [randn(2, 16, 7, 8)], caplog)
    assert len(kernels) == 8
    if all("direct bf16 conv" in k for k in kernels):
        # In order: the first 1x1, squeeze, expand x2 (into the first Concat, which is then bf16:
        # its inputs' type), squeeze, expand x2, the last 1x1.
        outs = ["bf16 out" in k for k in kernels]
        assert outs == [True, True, True, True, True, False, False, False], kernels
        assert "bf16 in" in kernels[4] and "bf16 in" not in kernels[7]
