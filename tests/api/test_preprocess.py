"""aiov.preprocess (openvino.preprocess): the steps become nodes of the model's graph. Each pipeline
runs against numpy and, when openvino is installed, against the same pipeline built by OpenVINO."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset15 as ops
from aiov.preprocess import ColorFormat, PaddingMode, PrePostProcessor, ResizeAlgorithm

RNG = np.random.default_rng(11)


def _relu_model(lib, shape=(1, 3, 4, 6), etype=np.float32):
    param = lib.opset15.parameter(list(shape), etype, name="input")
    param.output(0).set_names({"in_t"})
    relu = lib.opset15.relu(param)
    relu.set_friendly_name("relu")
    relu.output(0).set_names({"out_t"})
    return lib.Model(relu, [param], "m")


def _u8(*shape):
    return RNG.integers(0, 256, shape).astype(np.uint8)


def _f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# name -> (configure(ppp, preprocess module, lib), inputs, tolerance); model: relu of [1,3,4,6] NCHW
def _image_u8_resized(ppp, pp, lib):
    ppp.input().tensor().set_element_type(lib.Type.u8).set_layout(lib.Layout("NHWC")).set_spatial_static_shape(8, 12)
    ppp.input().model().set_layout(lib.Layout("NCHW"))
    steps = ppp.input().preprocess().convert_element_type(lib.Type.f32)
    steps.resize(pp.ResizeAlgorithm.RESIZE_LINEAR).mean([1.0, 2.0, 3.0]).scale(2.0)
    ppp.output().tensor().set_element_type(lib.Type.f16).set_layout("NHWC")
    ppp.output().model().set_layout("NCHW")


def _dynamic_resize(algorithm):
    def configure(ppp, pp, lib):
        ppp.input().tensor().set_layout(lib.Layout("NCHW")).set_spatial_dynamic_shape()
        ppp.input().preprocess().resize(getattr(pp.ResizeAlgorithm, algorithm))

    return configure


def _color(src, dst, etype="u8", sub_names=None):
    def configure(ppp, pp, lib):
        tensor = ppp.input().tensor().set_element_type(getattr(lib.Type, etype)).set_layout(lib.Layout("NHWC"))
        tensor.set_color_format(getattr(pp.ColorFormat, src), *([sub_names] if sub_names else []))
        ppp.input().preprocess().convert_color(getattr(pp.ColorFormat, dst))
        ppp.input().model().set_layout(lib.Layout("NCHW"))

    return configure


def _rgbx_pipeline(ppp, pp, lib):
    ppp.input().tensor().set_layout(lib.Layout("NHWC")).set_color_format(pp.ColorFormat.RGBX)
    ppp.input().preprocess().convert_color(pp.ColorFormat.BGR).reverse_channels().mean(0.5).scale([1.0, 2.0, 4.0])
    ppp.input().model().set_layout(lib.Layout("NCHW"))


def _crop(ppp, pp, lib):
    ppp.input().tensor().set_shape([1, 3, 6, 8])
    ppp.input().preprocess().crop([0, 0, 1, 1], [1, 3, 5, 7])


def _pad(mode):
    def configure(ppp, pp, lib):
        ppp.input().tensor().set_shape([1, 3, 2, 4])
        ppp.input().preprocess().pad([0, 0, 1, 1], [0, 0, 1, 1], 0.5, getattr(pp.PaddingMode, mode))

    return configure


def _custom_and_int_layouts(ppp, pp, lib):
    ppp.input().tensor().set_layout("NHWC")
    ppp.input().preprocess().convert_layout([0, 3, 1, 2]).custom(lambda port: lib.opset15.abs(port).output(0))
    post = ppp.output().postprocess().custom(lambda port: lib.opset15.negative(port).output(0))
    post.convert_layout([0, 2, 3, 1]).convert_element_type(lib.Type.f16)


def _f16_io(ppp, pp, lib):
    ppp.input().tensor().set_element_type(lib.Type.f16)
    ppp.input().preprocess().convert_element_type(lib.Type.f32)
    ppp.output().tensor().set_element_type(lib.Type.f16)
    ppp.output().postprocess().convert_element_type(lib.Type.f16)


def _u8_resize(algorithm):
    def configure(ppp, pp, lib):
        ppp.input().tensor().set_element_type(lib.Type.u8).set_layout("NHWC").set_spatial_static_shape(7, 9)
        ppp.input().model().set_layout("NCHW")
        ppp.input().preprocess().resize(getattr(pp.ResizeAlgorithm, algorithm))

    return configure


def _resize_to_given_size(ppp, pp, lib):
    ppp.input().tensor().set_layout("NCHW").set_spatial_static_shape(8, 8)
    ppp.input().preprocess().resize(pp.ResizeAlgorithm.RESIZE_LINEAR, 4, 6)


PIPELINES = {
    "u8-nhwc-resize-mean-scale-f16-out": (_image_u8_resized, [_u8(1, 8, 12, 3)], 1e-3),
    "resize-nearest-dynamic": (_dynamic_resize("RESIZE_NEAREST"), [_f32(1, 3, 9, 13)], 1e-5),
    "resize-linear-up": (_dynamic_resize("RESIZE_LINEAR"), [_f32(1, 3, 3, 4)], 1e-5),
    "resize-linear-down": (_dynamic_resize("RESIZE_LINEAR"), [_f32(1, 3, 9, 13)], 1e-5),
    "resize-given-size": (_resize_to_given_size, [_f32(1, 3, 8, 8)], 1e-5),
    "resize-cubic-down": (_dynamic_resize("RESIZE_CUBIC"), [_f32(1, 3, 9, 13)], 1e-5),
    "resize-cubic-up": (_dynamic_resize("RESIZE_CUBIC"), [_f32(1, 3, 3, 4)], 1e-5),
    "u8-resize-cubic": (_u8_resize("RESIZE_CUBIC"), [_u8(1, 7, 9, 3)], 1.01),
    "u8-resize-nearest": (_u8_resize("RESIZE_NEAREST"), [_u8(1, 7, 9, 3)], 0),
    "u8-resize-linear": (_u8_resize("RESIZE_LINEAR"), [_u8(1, 7, 9, 3)], 1.01),
    "bgr-to-rgb": (_color("BGR", "RGB"), [_u8(1, 4, 6, 3)], 0),
    "nv12-two-planes-to-bgr": (
        _color("NV12_TWO_PLANES", "BGR", sub_names=["y", "uv"]),
        [_u8(1, 4, 6, 1), _u8(1, 2, 3, 2)],
        1.01,
    ),
    "nv12-single-plane-to-rgb": (_color("NV12_SINGLE_PLANE", "RGB"), [_u8(1, 6, 6, 1)], 1.01),
    "nv12-single-plane-f32": (_color("NV12_SINGLE_PLANE", "RGB", "f32"), [_u8(1, 6, 6, 1).astype(np.float32)], 1e-3),
    "i420-single-plane-f32": (_color("I420_SINGLE_PLANE", "BGR", "f32"), [_u8(1, 6, 6, 1).astype(np.float32)], 1e-3),
    "i420-three-planes": (
        _color("I420_THREE_PLANES", "RGB", sub_names=["y", "u", "v"]),
        [_u8(1, 4, 6, 1), _u8(1, 2, 3, 1), _u8(1, 2, 3, 1)],
        1.01,
    ),
    "rgbx-to-bgr-reverse-mean-scale": (_rgbx_pipeline, [_f32(1, 4, 6, 4)], 1e-5),
    "crop": (_crop, [_f32(1, 3, 6, 8)], 0),
    "pad-constant": (_pad("CONSTANT"), [_f32(1, 3, 2, 4)], 0),
    "pad-reflect": (_pad("REFLECT"), [_f32(1, 3, 2, 4)], 0),
    "custom-and-permutation-layouts": (_custom_and_int_layouts, [_f32(1, 4, 6, 3)], 1e-3),
    "f16-in-and-out": (_f16_io, [_f32(1, 3, 4, 6).astype(np.float16)], 1e-3),
}


def _build_and_run(lib, configure, feeds, config=None):
    import importlib

    preprocess = importlib.import_module(lib.__name__ + ".preprocess")
    model = _relu_model(lib)
    ppp = preprocess.PrePostProcessor(model)
    configure(ppp, preprocess, lib)
    built = ppp.build()
    compiled = lib.compile_model(built, "CPU", config or {})
    results = compiled(feeds)
    return [results[i] for i in range(len(compiled.outputs))], built


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_matches_openvino(name):
    openvino = pytest.importorskip("openvino")
    configure, feeds, tolerance = PIPELINES[name]
    got, model = _build_and_run(ov, configure, feeds)
    # OpenVINO's CPU plugin may compute in bf16 unless asked for f32
    want, ov_model = _build_and_run(openvino, configure, feeds, {"INFERENCE_PRECISION_HINT": "f32"})
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=0, atol=tolerance + 1e-6)
    names = lambda m: [sorted(p.get_names()) for p in m.inputs] + [sorted(p.get_names()) for p in m.outputs]  # noqa: E731
    assert names(model) == names(ov_model)
    assert [str(p.get_partial_shape()) for p in model.inputs] == [str(p.get_partial_shape()) for p in ov_model.inputs]


def test_layout_mean_scale_against_numpy_and_graph_shape():
    model = _relu_model(ov)
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean([10.0, 20.0, 30.0]).scale([2.0, 4.0, 8.0])
    built = ppp.build()
    assert built is model  # built in place, as OpenVINO does
    param = built.get_parameters()[0]
    assert param.get_friendly_name() == "input" and built.input().get_names() == {"in_t"}
    assert built.input().get_element_type() == ov.Type.u8
    assert built.input().get_partial_shape() == ov.PartialShape([1, 4, 6, 3])
    assert param.get_layout() == ov.Layout("NHWC")
    # the steps are ordinary nodes: they run in the engine and appear in the graph
    types = [op.get_type_name() for op in built.get_ordered_ops()]
    assert {"Convert", "Subtract", "Divide", "Transpose"} <= set(types)
    image = _u8(1, 4, 6, 3)
    want = np.maximum((image.astype(np.float32) - [10, 20, 30]) / [2, 4, 8], 0).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ov.compile_model(built)(image)[0], want, rtol=1e-6)


def test_output_postprocess_moves_the_output_names():
    model = _relu_model(ov)
    ppp = PrePostProcessor(model)
    ppp.output().tensor().set_element_type(ov.Type.f16).set_layout("NHWC")
    ppp.output().model().set_layout("NCHW")
    built = ppp.build()
    assert built.output().get_names() == {"out_t"}
    assert built.output().get_element_type() == ov.Type.f16
    assert built.output().get_partial_shape() == ov.PartialShape([1, 4, 6, 3])
    assert built.get_results()[0].get_layout() == ov.Layout("NHWC")
    x = _f32(1, 3, 4, 6)
    out = ov.compile_model(built)(x)["out_t"]
    np.testing.assert_allclose(out, np.maximum(x, 0).transpose(0, 2, 3, 1).astype(np.float16))


def test_a_preprocessed_model_saves_and_reads_back(tmp_path):
    model = _relu_model(ov)
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout("NHWC").set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout("NCHW")
    ppp.input().preprocess().convert_color(ColorFormat.RGB).convert_element_type().scale(255.0)
    built = ppp.build()
    ov.save_model(built, str(tmp_path / "pp.xml"))
    again = ov.Core().read_model(str(tmp_path / "pp.xml"))
    image = _u8(1, 4, 6, 3)
    np.testing.assert_allclose(ov.compile_model(again)(image)[0], ov.compile_model(built)(image)[0])
    want = (image[..., ::-1].astype(np.float32) / 255.0).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ov.compile_model(again)(image)[0], want, rtol=1e-6)


def test_several_inputs_selected_by_name_and_index():
    a = ops.parameter([2, 3], np.float32, name="a")
    b = ops.parameter([2, 3], np.float32, name="b")
    a.output(0).set_names({"a"})
    b.output(0).set_names({"b"})
    model = ov.Model(ops.add(a, b), [a, b])
    ppp = PrePostProcessor(model)
    ppp.input("b").tensor().set_element_type(ov.Type.i32)
    ppp.input(0).preprocess().scale(2.0)
    built = ppp.build()
    assert [p.get_element_type() for p in built.inputs] == [ov.Type.f32, ov.Type.i32]
    out = ov.compile_model(built)({"a": np.full((2, 3), 4, np.float32), "b": np.full((2, 3), 3, np.int32)})[0]
    np.testing.assert_array_equal(out, np.full((2, 3), 5))
    with pytest.raises(ov.PortError):
        PrePostProcessor(model).input()  # two inputs: say which


@pytest.mark.parametrize(
    ("configure", "message"),
    [
        (lambda p: p.input().preprocess().mean(1.0).convert_element_type(), "floating-point"),
        (
            lambda p: (
                p.input().tensor().set_layout("NCHW"),
                p.input().preprocess().resize(ResizeAlgorithm.RESIZE_BILINEAR_PILLOW),
            ),
            "RESIZE_BILINEAR_PILLOW",
        ),
        (lambda p: p.input().preprocess().resize(ResizeAlgorithm.RESIZE_LINEAR), "layout"),
        (lambda p: p.input().preprocess().reverse_channels(), "'C'"),
        (lambda p: p.input().preprocess().scale([1.0, 2.0]).convert_element_type(), "floating-point"),
        (lambda p: p.input().preprocess().crop([0], [1]), "crop"),
        (lambda p: p.input().preprocess().pad([0] * 4, [0] * 4, 0, PaddingMode.SYMMETRIC), "SYMMETRIC"),
        (
            lambda p: p.input().tensor().set_layout("NHWC").set_color_format(ColorFormat.NV12_TWO_PLANES),
            "convert_color",
        ),
        (lambda p: p.input().preprocess().custom(lambda port: 3), "custom"),
        (lambda p: p.input().preprocess().convert_color(ColorFormat.RGB), "color format"),
    ],
)
def test_impossible_steps_are_refused_with_a_reason(configure, message):
    model = _relu_model(ov, etype=np.uint8)
    ppp = PrePostProcessor(model)
    configure(ppp)
    with pytest.raises(ov.InputError, match=message):
        ppp.build()


def test_per_channel_values_must_match_the_channels():
    ppp = PrePostProcessor(_relu_model(ov))
    ppp.input().tensor().set_layout("NCHW")
    ppp.input().preprocess().mean([1.0, 2.0])
    with pytest.raises(ov.InputError, match="2 values given for 3 channels"):
        ppp.build()


def test_prepostprocessor_takes_a_model():
    with pytest.raises(TypeError):
        PrePostProcessor("model.xml")


def test_a_resizing_pipeline_round_trips_through_ir(tmp_path):
    model = _relu_model(ov)
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_layout("NCHW").set_spatial_static_shape(8, 8)
    ppp.input().preprocess().resize(ResizeAlgorithm.RESIZE_CUBIC)
    built = ppp.build()
    ov.save_model(built, str(tmp_path / "r.xml"))
    again = ov.Core().read_model(str(tmp_path / "r.xml"))
    x = _f32(1, 3, 8, 8)
    np.testing.assert_array_equal(ov.compile_model(again)(x)[0], ov.compile_model(built)(x)[0])
