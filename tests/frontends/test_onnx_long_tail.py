"""The long tail of ONNX that real models hit: the audio front end (windows, MelWeightMatrix,
DFT, STFT), the random generators (seeded), Einsum with '...' and diagonals, f16 convolution
and normalization, and models of opsets 1-6, each against numpy."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import aiov as ov

RNG = np.random.default_rng(19)


def _model(nodes, inputs, outputs, opset=17, initializers=()):
    """inputs/outputs: (name, numpy dtype or ONNX type code, shape or None)."""

    def info(name, dtype, shape):
        code = dtype if isinstance(dtype, int) else helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        return helper.make_tensor_value_info(name, code, shape)

    graph = helper.make_graph(
        nodes,
        "g",
        [info(*i) for i in inputs],
        [info(*o) for o in outputs],
        initializer=[numpy_helper.from_array(v, n) for n, v in initializers],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return ov.Core().read_model(model.SerializeToString())


def _run(model, *feeds):
    return [np.asarray(v) for v in ov.compile_model(model)(list(feeds)).values()]


def _as_complex(y):
    return y[..., 0] + 1j * y[..., 1]


# ---- signal ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [8, 12, 1, 7, 400])
@pytest.mark.parametrize("onesided", [0, 1])
def test_dft_of_a_real_signal_matches_numpy_with_padding_and_truncation(n, onesided):
    x = RNG.standard_normal((2, 10, 3, 1)).astype(np.float32)
    node = helper.make_node("DFT", ["x", "len"], ["y"], axis=1, onesided=onesided)
    model = _model(
        [node], [("x", np.float32, x.shape)], [("y", np.float32, None)], initializers=[("len", np.array(n, np.int64))]
    )
    (y,) = _run(model, x)
    want = (np.fft.rfft if onesided else np.fft.fft)(x[..., 0].astype(np.float64), n=n, axis=1)
    np.testing.assert_allclose(_as_complex(y), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("length", [16, 10])
def test_dft_inverse_of_complex_input_along_an_axis_input(length):
    z = RNG.standard_normal((3, length)) + 1j * RNG.standard_normal((3, length))
    x = np.stack([z.real, z.imag], -1).astype(np.float32)
    node = helper.make_node("DFT", ["x", "", "axis"], ["y"], inverse=1)
    model = _model(
        [node],
        [("x", np.float32, x.shape)],
        [("y", np.float32, None)],
        opset=20,
        initializers=[("axis", np.array(-2, np.int64))],
    )
    (y,) = _run(model, x)
    np.testing.assert_allclose(_as_complex(y), np.fft.ifft(z, axis=1), rtol=1e-5, atol=1e-5)


def test_dft_inverse_onesided_rebuilds_a_real_signal():
    signal = RNG.standard_normal((2, 10))
    spectrum = np.fft.rfft(signal, axis=1)
    x = np.stack([spectrum.real, spectrum.imag], -1).astype(np.float32)
    node = helper.make_node("DFT", ["x"], ["y"], axis=1, inverse=1, onesided=1)
    (y,) = _run(_model([node], [("x", np.float32, x.shape)], [("y", np.float32, None)], opset=19), x)
    assert y.shape == (2, 10, 1)
    np.testing.assert_allclose(y[..., 0], signal, rtol=1e-5, atol=1e-5)


def test_dft_refuses_the_complex_axis():
    node = helper.make_node("DFT", ["x"], ["y"], axis=2)
    with pytest.raises(ValueError, match="axis 2 is not a signal axis"):
        _model([node], [("x", np.float32, [1, 8, 1])], [("y", np.float32, None)])


@pytest.mark.parametrize("periodic", [0, 1])
def test_window_functions_match_their_formulas(periodic):
    n = 9
    names = ["HannWindow", "HammingWindow", "BlackmanWindow"]
    nodes = [helper.make_node(op, ["n"], [op], periodic=periodic) for op in names]
    model = _model(nodes, [("n", np.int64, [])], [(op, np.float32, None) for op in names])
    got = _run(model, np.array(n, np.int64))
    x = 2 * np.pi * np.arange(n) / (n if periodic else n - 1)
    a0 = 25 / 46
    want = [0.5 - 0.5 * np.cos(x), a0 - (1 - a0) * np.cos(x), 0.42 - 0.5 * np.cos(x) + 0.08 * np.cos(2 * x)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-6)


def test_window_output_datatype_and_a_new_size_per_run():
    node = helper.make_node("HannWindow", ["n"], ["w"], output_datatype=TensorProto.DOUBLE)
    compiled = ov.compile_model(_model([node], [("n", np.int32, [])], [("w", np.float64, None)]))
    for n in (4, 7):
        w = np.asarray(compiled([np.array(n, np.int32)])[0])
        assert w.dtype == np.float64 and w.shape == (n,)
        np.testing.assert_allclose(w, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n), atol=1e-12)


def test_stft_with_a_hann_window_matches_numpy_frames():
    signal = RNG.standard_normal((2, 100, 1)).astype(np.float32)
    nodes = [
        helper.make_node("HannWindow", ["len"], ["window"]),
        helper.make_node("STFT", ["x", "step", "window"], ["y"]),
    ]
    model = _model(
        nodes,
        [("x", np.float32, signal.shape)],
        [("y", np.float32, None)],
        initializers=[("len", np.array(16, np.int64)), ("step", np.array(6, np.int64))],
    )
    (y,) = _run(model, signal)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(16) / 16)
    frames = np.stack([signal[:, s : s + 16, 0] * window for s in range(0, 100 - 16 + 1, 6)], 1)
    want = np.fft.rfft(frames, axis=-1)
    assert y.shape == want.shape + (2,)
    np.testing.assert_allclose(_as_complex(y), want, rtol=1e-4, atol=1e-4)


def test_mel_weight_matrix_is_triangular_filters_over_the_spectrum():
    node = helper.make_node("MelWeightMatrix", ["bins", "dft", "rate", "lo", "hi"], ["w"])
    model = _model(
        [node],
        [
            ("bins", np.int64, []),
            ("dft", np.int64, []),
            ("rate", np.int64, []),
            ("lo", np.float32, []),
            ("hi", np.float32, []),
        ],
        [("w", np.float32, None)],
    )
    (w,) = _run(
        model,
        *(
            np.array(v, t)
            for v, t in [(10, np.int64), (64, np.int64), (16000, np.int64), (20, np.float32), (8000, np.float32)]
        ),
    )
    assert w.shape == (33, 10)
    assert w.min() >= 0 and w.max() <= 1
    peaks = w.argmax(0)
    assert np.all(np.diff(peaks) >= 0)  # the filters climb the spectrum in order


# ---- random ---------------------------------------------------------------------------------


def _random_model(op, seed=None, **attrs):
    if seed is not None:
        attrs["seed"] = float(seed)
    if op.endswith("Like") or op in ("Bernoulli", "Multinomial"):
        node = helper.make_node(op, ["x"], ["y"], **attrs)
        inputs = [("x", np.float32, [4, 50])]
    else:
        node = helper.make_node(op, [], ["y"], shape=[4, 50], **attrs)
        inputs = []
    return _model([node], inputs, [("y", np.float32, None)])


@pytest.mark.parametrize("op", ["RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike"])
def test_seeded_random_values_repeat_across_models_and_runs(op):
    x = np.zeros((4, 50), np.float32)
    feeds = [] if "Like" not in op else [x]
    first = _run(_random_model(op, seed=3), *feeds)[0]
    again = ov.compile_model(_random_model(op, seed=3))
    assert first.shape == (4, 50) and first.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(again(feeds)[0]), first)
    np.testing.assert_array_equal(np.asarray(again(feeds)[0]), first)
    other = _run(_random_model(op, seed=4), *feeds)[0]
    assert not np.array_equal(first, other)


def test_random_uniform_respects_its_range_and_normal_its_moments():
    (u,) = _run(_random_model("RandomUniform", seed=1, low=-2.0, high=3.0))
    assert u.min() >= -2 and u.max() < 3 and u.std() > 0.5
    node = helper.make_node("RandomNormal", [], ["y"], shape=[20000], mean=5.0, scale=2.0, seed=2.0)
    (n,) = _run(_model([node], [], [("y", np.float32, None)]))
    assert abs(n.mean() - 5) < 0.1 and abs(n.std() - 2) < 0.1


def test_bernoulli_and_multinomial_follow_their_probabilities():
    p = np.tile(np.array([0.0, 1.0], np.float32), (4, 25))
    node = helper.make_node("Bernoulli", ["x"], ["y"], seed=0.0, dtype=TensorProto.INT64)
    (b,) = _run(_model([node], [("x", np.float32, p.shape)], [("y", np.int64, None)]), p)
    assert b.dtype == np.int64
    np.testing.assert_array_equal(b, p.astype(np.int64))
    logits = np.full((3, 5), -30.0, np.float32)
    logits[np.arange(3), [4, 0, 2]] = 30.0  # one class holds (nearly) all the mass
    node = helper.make_node("Multinomial", ["x"], ["y"], sample_size=7, seed=1.0)
    (m,) = _run(_model([node], [("x", np.float32, logits.shape)], [("y", np.int32, None)]), logits)
    assert m.dtype == np.int32 and m.shape == (3, 7)
    np.testing.assert_array_equal(m, np.repeat([[4], [0], [2]], 7, 1))


# ---- Einsum ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "equation, shapes",
    [
        ("...ii->...i", [(2, 3, 4, 4)]),
        ("ii", [(5, 5)]),
        ("bii->b", [(3, 4, 4)]),
        ("...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 6)]),
        ("...ij,jk", [(3, 4, 5), (5, 2)]),
        ("ij,jj->i", [(3, 4), (4, 4)]),
    ],
)
def test_einsum_with_ellipsis_and_repeated_letters(equation, shapes):
    xs = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    names = [f"x{i}" for i in range(len(xs))]
    node = helper.make_node("Einsum", names, ["y"], equation=equation)
    model = _model([node], [(n, np.float32, list(x.shape)) for n, x in zip(names, xs)], [("y", np.float32, None)])
    (y,) = _run(model, *xs)
    np.testing.assert_allclose(y, np.einsum(equation, *xs), rtol=1e-5, atol=1e-5)


# ---- f16 layers -----------------------------------------------------------------------------


def test_f16_convolution_pooling_and_normalization_run_and_match_f32():
    x = RNG.standard_normal((1, 3, 12, 12)).astype(np.float16)
    w = (RNG.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float16)
    wt = (RNG.standard_normal((4, 2, 2, 2)) * 0.3).astype(np.float16)
    c = np.arange(1, 5, dtype=np.float16) / 4
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
        helper.make_node("MaxPool", ["n"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("LRN", ["a"], ["l"], size=3),
        helper.make_node("InstanceNormalization", ["l", "s", "b"], ["i"]),
        helper.make_node("ConvTranspose", ["i", "wt"], ["y"], strides=[2, 2]),
    ]
    inits = [("w", w), ("wt", wt), ("s", c), ("b", c / 2), ("m", c / 3), ("v", c + 1)]

    def build(dtype):
        return _model(
            nodes,
            [("x", dtype, list(x.shape))],
            [("y", dtype, None)],
            initializers=[(n, v.astype(dtype)) for n, v in inits],
        )

    (half,) = _run(build(np.float16), x)
    (full,) = _run(build(np.float32), x.astype(np.float32))
    assert half.dtype == np.float16 and half.shape == full.shape == (1, 2, 12, 12)
    np.testing.assert_allclose(half.astype(np.float32), full, rtol=2e-2, atol=2e-2)


# ---- opsets 1-6 -----------------------------------------------------------------------------


def test_opset_6_model_with_legacy_attributes_runs():
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    bias = RNG.standard_normal(3).astype(np.float32)
    c = np.linspace(0.5, 1.5, 3).astype(np.float32)
    nodes = [
        # B of rank 1 lines up with A's axis 1: [3] -> [3, 1, 1].
        helper.make_node("Add", ["x", "bias"], ["a"], broadcast=1, axis=1),
        helper.make_node("Relu", ["a"], ["r"], consumed_inputs=[0]),
        helper.make_node("BatchNormalization", ["r", "s", "b", "m", "v"], ["n"], is_test=1, spatial=1, epsilon=1e-5),
        helper.make_node("Dropout", ["n"], ["d"], is_test=1, ratio=0.3),
        helper.make_node("Reshape", ["d"], ["y"], shape=[2, -1]),
    ]
    inits = [("bias", bias), ("s", c), ("b", c - 1), ("m", c / 2), ("v", c)]
    model = _model(nodes, [("x", np.float32, list(x.shape))], [("y", np.float32, None)], opset=4, initializers=inits)
    (y,) = _run(model, x)
    r = np.maximum(x + bias[:, None, None], 0)
    shape = (1, 3, 1, 1)
    n = (r - (c / 2).reshape(shape)) / np.sqrt(c.reshape(shape) + 1e-5) * c.reshape(shape) + (c - 1).reshape(shape)
    np.testing.assert_allclose(y, n.reshape(2, -1), rtol=1e-5, atol=1e-5)


def test_opset_1_cast_names_its_type_and_not_runs():
    nodes = [
        helper.make_node("Cast", ["x"], ["i"], to="INT32"),
        helper.make_node("Not", ["b"], ["nb"]),
    ]
    model = _model(
        nodes,
        [("x", np.float32, [3]), ("b", np.bool_, [3])],
        [("i", np.int32, None), ("nb", np.bool_, None)],
        opset=1,
    )
    i, nb = _run(model, np.array([1.7, -2.2, 3.0], np.float32), np.array([True, False, True]))
    np.testing.assert_array_equal(i, [1, -2, 3])
    np.testing.assert_array_equal(nb, [False, True, False])


def test_opset_6_spatial_zero_batch_norm_is_refused_by_name():
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=0)
    one = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="spatial=0"):
        _model(
            [node],
            [("x", np.float32, [1, 3, 2])],
            [("y", np.float32, None)],
            opset=6,
            initializers=[(n, one) for n in "sbmv"],
        )


# ---- quantization ---------------------------------------------------------------------------


def test_quantize_linear_per_axis_rounds_half_to_even_and_saturates():
    x = np.array([[0.5, 1.5, 2.5, -0.5, 1000.0], [3.0, -3.0, 0.25, 7.5, -1000.0]], np.float32)
    scale = np.array([1.0, 0.5], np.float32)
    zero = np.array([0, 10], np.int8)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=0)
    model = _model(
        [node], [("x", np.float32, x.shape)], [("y", np.int8, None)], initializers=[("s", scale), ("z", zero)]
    )
    (y,) = _run(model, x)
    want = np.clip(np.rint(x / scale[:, None]) + zero[:, None], -128, 127).astype(np.int8)
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, want)


def test_dequantize_linear_with_blocks_along_an_axis():
    q = RNG.integers(0, 255, (2, 6), dtype=np.uint8)
    scale = RNG.uniform(0.1, 1.0, (2, 2)).astype(np.float32)  # blocks of 3 along axis 1
    zero = RNG.integers(0, 255, (2, 2), dtype=np.uint8)
    node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1, block_size=3)
    model = _model(
        [node],
        [("q", np.uint8, q.shape)],
        [("y", np.float32, None)],
        opset=21,
        initializers=[("s", scale), ("z", zero)],
    )
    (y,) = _run(model, q)
    want = (q.astype(np.float32) - np.repeat(zero, 3, 1)) * np.repeat(scale, 3, 1)
    np.testing.assert_allclose(y, want, rtol=1e-6)


def test_conv_integer_with_a_zero_point_per_output_channel():
    x = RNG.integers(0, 255, (1, 2, 5, 5), dtype=np.uint8)
    w = RNG.integers(0, 255, (3, 2, 3, 3), dtype=np.uint8)
    w_zero = np.array([1, 128, 255], np.uint8)
    node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], pads=[1, 1, 1, 1])
    model = _model(
        [node],
        [("x", np.uint8, x.shape)],
        [("y", np.int32, None)],
        initializers=[("w", w), ("xz", np.array(3, np.uint8)), ("wz", w_zero)],
    )
    (y,) = _run(model, x)
    xs = np.pad(x.astype(np.int64) - 3, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ws = w.astype(np.int64) - w_zero[:, None, None, None]
    want = np.zeros((1, 3, 5, 5), np.int64)
    for i in range(5):
        for j in range(5):
            want[0, :, i, j] = np.tensordot(ws, xs[0, :, i : i + 3, j : j + 3], 3)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, want)


def test_f16_gemm_with_alpha_and_beta():
    a = RNG.standard_normal((3, 4)).astype(np.float16)
    b = RNG.standard_normal((4, 5)).astype(np.float16)
    c = RNG.standard_normal((5,)).astype(np.float16)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0)
    model = _model(
        [node],
        [("a", np.float16, a.shape), ("b", np.float16, b.shape), ("c", np.float16, c.shape)],
        [("y", np.float16, None)],
    )
    (y,) = _run(model, a, b, c)
    want = 0.5 * (a.astype(np.float32) @ b.astype(np.float32)) + 2 * c.astype(np.float32)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), want, rtol=1e-2, atol=1e-2)


def test_signal_and_random_ops_survive_an_ir_round_trip(tmp_path):
    nodes = [
        helper.make_node("HannWindow", ["len"], ["w"]),
        helper.make_node("STFT", ["x", "step", "w"], ["s"]),
        helper.make_node("DFT", ["s"], ["y"], axis=2, inverse=1),
        helper.make_node("RandomNormal", [], ["r"], shape=[3], seed=1.0),
        helper.make_node("Multinomial", ["logits"], ["m"], seed=2.0, sample_size=3),
    ]
    model = _model(
        nodes,
        [("x", np.float32, [1, 64, 1]), ("logits", np.float32, [2, 4])],
        [("y", np.float32, None), ("r", np.float32, None), ("m", np.int32, None)],
        initializers=[("len", np.array(16, np.int64)), ("step", np.array(8, np.int64))],
    )
    feeds = [RNG.standard_normal((1, 64, 1)).astype(np.float32), np.zeros((2, 4), np.float32)]
    before = _run(model, *feeds)
    ov.save_model(model, tmp_path / "m.xml")
    after = _run(ov.Core().read_model(tmp_path / "m.xml"), *feeds)
    assert [v.shape for v in before] == [(1, 7, 9, 2), (3,), (2, 3)]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_training_dropout_scales_what_it_keeps_and_reports_its_mask():
    x = RNG.uniform(1, 2, (20, 50)).astype(np.float32)
    node = helper.make_node("Dropout", ["x", "ratio", "training"], ["y", "mask"], seed=7)
    model = _model(
        [node],
        [("x", np.float32, x.shape), ("training", np.bool_, [])],
        [("y", np.float32, None), ("mask", np.bool_, None)],
        opset=13,
        initializers=[("ratio", np.array(0.25, np.float32))],
    )
    compiled = ov.compile_model(model)
    y, mask = (np.asarray(v) for v in compiled([x, np.array(True)]).values())
    np.testing.assert_allclose(y, np.where(mask, x / 0.75, 0), rtol=1e-6)
    assert 0.6 < mask.mean() < 0.9
    y, mask = (np.asarray(v) for v in compiled([x, np.array(False)]).values())  # inference: nothing dropped
    np.testing.assert_array_equal(y, x)
    assert mask.all()


# ---- losses ---------------------------------------------------------------------------------


def test_softmax_cross_entropy_with_weights_and_an_ignored_class_takes_the_weighted_mean():
    scores = RNG.standard_normal((4, 5, 3)).astype(np.float32)
    labels = np.array([[0, 4, 2], [1, 1, -1], [3, -1, 0], [2, 2, 4]], np.int64)
    weight = RNG.uniform(0.5, 2, 5).astype(np.float32)
    node = helper.make_node("SoftmaxCrossEntropyLoss", ["s", "t", "w"], ["loss", "logp"], ignore_index=-1)
    model = _model(
        [node],
        [("s", np.float32, scores.shape), ("t", np.int64, labels.shape), ("w", np.float32, weight.shape)],
        [("loss", np.float32, None), ("logp", np.float32, None)],
    )
    loss, logp = _run(model, scores, labels, weight)
    shifted = scores - scores.max(1, keepdims=True)
    want_logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    safe = np.where(labels == -1, 0, labels)
    w = np.where(labels == -1, 0, weight[safe])
    picked = np.take_along_axis(want_logp, safe[:, None], 1)[:, 0]
    np.testing.assert_allclose(logp, want_logp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, -(picked * w).sum() / w.sum(), rtol=1e-5)
