"""PrePostProcessor: what the user's tensors look like, the steps from them to what the model
expects (and from the model's outputs to what the user wants), built into the model's graph."""

from __future__ import annotations

import numpy as np

from .._errors import InputError
from .._layout import Layout
from .._model import Model
from .._ports import PortTable
from .._types import PartialShape, as_partial_shape, as_type
from . import _steps
from ._enums import CHANNELS, SINGLE_PLANE_YUV, YUV_PLANES, ColorFormat, PaddingMode, ResizeAlgorithm


class _Recorder:
    """Steps are recorded here and run, in order, by PrePostProcessor.build."""

    def __init__(self):
        self._steps = []

    def _add(self, label, function, *args):
        self._steps.append((label, function, args))
        return self

    def convert_element_type(self, type=None):  # noqa: A002 - OpenVINO's keyword
        label = "convert type" + (f" ({as_type(type).get_type_name()})" if type is not None else "")
        return self._add(label, _steps.convert_element_type, None if type is None else as_type(type))

    def convert_layout(self, dst_layout=None):
        dst = dst_layout if dst_layout is None or isinstance(dst_layout, (list, tuple)) else Layout(dst_layout)
        return self._add(f"convert layout {dst if dst is not None else ''}".rstrip(), _steps.convert_layout, dst)

    def custom(self, function):
        if not callable(function):
            raise TypeError(f"custom() takes a function of an output port, got {function!r}")
        return self._add("custom", _steps.custom, function)


class PreProcessSteps(_Recorder):
    """The steps from the user's tensor to the model's input."""

    def convert_color(self, dst_format):
        return self._add(f"convert color ({ColorFormat(dst_format).name})", _steps.convert_color, dst_format)

    def resize(self, alg, dst_height=None, dst_width=None):
        if (dst_height is None) != (dst_width is None):
            raise InputError("resize: give both dst_height and dst_width, or neither (the model's size)")
        return self._add(f"resize ({ResizeAlgorithm(alg).name})", _steps.resize, alg, dst_height, dst_width)

    def mean(self, value):
        return self._add(f"mean ({value})", _steps.mean, value)

    def scale(self, value):
        return self._add(f"scale ({value})", _steps.scale, value)

    def reverse_channels(self):
        return self._add("reverse channels", _steps.reverse_channels)

    def crop(self, begin, end):
        return self._add(f"crop ({list(begin)}, {list(end)})", _steps.crop, list(begin), list(end))

    def pad(self, pads_begin, pads_end, value=0.0, mode=PaddingMode.CONSTANT):
        label = f"pad ({list(pads_begin)}, {list(pads_end)}, {PaddingMode(mode).name})"
        return self._add(label, _steps.pad, list(pads_begin), list(pads_end), value, mode)


class PostProcessSteps(_Recorder):
    """The steps from the model's output to the user's tensor."""


class _TensorInfo:
    def __init__(self):
        self._etype = None
        self._layout = None

    def set_element_type(self, type):  # noqa: A002 - OpenVINO's keyword
        self._etype = as_type(type)
        return self

    def set_layout(self, layout):
        self._layout = Layout(layout)
        return self


class InputTensorInfo(_TensorInfo):
    """What the user's input tensor looks like (defaults: what the model expects)."""

    def __init__(self):
        super().__init__()
        self._shape = None
        self._spatial = None  # "dynamic" or (height, width)
        self._color = ColorFormat.UNDEFINED
        self._sub_names = []
        self._memory_type = None

    def set_shape(self, shape):
        self._shape = as_partial_shape(shape)
        return self

    def set_spatial_dynamic_shape(self):
        self._spatial = "dynamic"
        return self

    def set_spatial_static_shape(self, height, width):
        self._spatial = (int(height), int(width))
        return self

    def set_color_format(self, format, sub_names=None):  # noqa: A002 - OpenVINO's keyword
        self._color = ColorFormat(format)
        self._sub_names = list(sub_names or [])
        planes = YUV_PLANES.get(self._color, ((None,),))
        if self._sub_names and len(self._sub_names) != len(planes):
            raise InputError(f"{self._color.name} has {len(planes)} planes, got {len(self._sub_names)} sub-names")
        return self

    def set_memory_type(self, memory_type):
        # Only the CPU's ordinary memory exists in aiov; the type is recorded, as GPU surfaces are
        # a GPU plugin's matter.
        self._memory_type = str(memory_type)
        return self

    def set_from(self, tensor):
        """Element type and shape from a Tensor or numpy array."""
        from .._tensor import Tensor

        tensor = tensor if isinstance(tensor, Tensor) else Tensor(np.asarray(tensor))
        self._etype = tensor.get_element_type()
        self._shape = PartialShape(list(tensor.get_shape()))
        return self


class OutputTensorInfo(_TensorInfo):
    """What the user's output tensor looks like (defaults: what the model produces)."""


class _ModelInfo:
    def __init__(self):
        self._layout = None

    def set_layout(self, layout):
        self._layout = Layout(layout)
        return self


class InputModelInfo(_ModelInfo):
    """What the model's input is (its layout, when the model does not say)."""


class OutputModelInfo(_ModelInfo):
    """What the model's output is (its layout, when the model does not say)."""


class _PortInfo:
    """One model port's description: the tensor the user gives or gets, the steps between it
    and the model, and what the model's side is."""

    def __init__(self, tensor, steps, model):
        self._tensor, self._steps, self._model = tensor, steps, model

    def tensor(self):
        return self._tensor

    def model(self):
        return self._model


class InputInfo(_PortInfo):
    def __init__(self):
        super().__init__(InputTensorInfo(), PreProcessSteps(), InputModelInfo())

    def preprocess(self) -> PreProcessSteps:
        return self._steps


class OutputInfo(_PortInfo):
    def __init__(self):
        super().__init__(OutputTensorInfo(), PostProcessSteps(), OutputModelInfo())

    def postprocess(self) -> PostProcessSteps:
        return self._steps


class PrePostProcessor:
    """``PrePostProcessor(model)``: describe the inputs and outputs, then ``build()`` puts the steps
    into the model's graph (as ordinary nodes: they run in the engine, fuse with their neighbours,
    are saved to IR) and returns the model."""

    def __init__(self, model):
        if not isinstance(model, Model):
            raise TypeError(f"PrePostProcessor takes a Model, got {type(model).__name__}")
        self._model = model
        self._inputs = {}
        self._outputs = {}

    def input(self, key=None) -> InputInfo:
        index = PortTable(self._model.inputs, "input").index(key)
        return self._inputs.setdefault(index, InputInfo())

    def output(self, key=None) -> OutputInfo:
        index = PortTable(self._model.outputs, "output").index(key)
        return self._outputs.setdefault(index, OutputInfo())

    def build(self) -> Model:
        model = self._model
        params = list(model._parameters)
        results = list(model._results)
        for index, info in sorted(self._inputs.items()):
            _build_input(model, params[index], info)
        for index, info in sorted(self._outputs.items()):
            _build_output(results[index], info)
        model.validate_nodes_and_infer_types()
        return model

    def __str__(self):
        lines = []
        for index, info in sorted(self._inputs.items()):
            port = self._model.inputs[index] if index < len(self._model.inputs) else None
            lines.append(f"Input {index} {sorted(port.get_names()) if port is not None else ''}:")
            lines += [f"    {label}" for label, _, _ in info._steps._steps]
        for index, info in sorted(self._outputs.items()):
            lines.append(f"Output {index}:")
            lines += [f"    {label}" for label, _, _ in info._steps._steps]
        return "\n".join(lines)

    def __repr__(self):
        return f"<PrePostProcessor: {len(self._inputs)} input(s), {len(self._outputs)} output(s) described>"


def _tensor_dims(param, info, model_layout, tensor_layout):
    """The user's tensor shape: the one set, else the model's, permuted into the tensor's layout,
    with the tensor's spatial size and channel count."""
    t = info._tensor
    if t._shape is not None:
        return t._shape._engine()
    dims = param.get_output_partial_shape(0)._engine()
    if dims is None:
        return None
    dims = list(dims)
    if not tensor_layout.empty and not model_layout.empty and tensor_layout != model_layout:
        order = _steps.transpose_order(tensor_layout, model_layout)  # tensor -> model
        tensor_dims = [0] * len(dims)
        for model_axis, tensor_axis in enumerate(order):
            tensor_dims[tensor_axis] = dims[model_axis]
        dims = tensor_dims
    else:
        for _, function, args in reversed(info._steps._steps):
            if function is _steps.convert_layout and isinstance(args[0], (list, tuple)):
                before = [0] * len(dims)
                for i, source in enumerate(args[0]):
                    before[int(source)] = dims[i]
                dims = before
    rank = len(dims)
    c = _steps.axis_of(tensor_layout, "C", rank)
    if c is not None and t._color in CHANNELS:
        dims[c] = CHANNELS[t._color]
    h, w = _steps.axis_of(tensor_layout, "H", rank), _steps.axis_of(tensor_layout, "W", rank)
    if t._spatial is not None:
        if h is None or w is None:
            raise InputError("a spatial shape needs the tensor's layout with 'H' and 'W' (tensor().set_layout())")
        dims[h], dims[w] = (-1, -1) if t._spatial == "dynamic" else t._spatial
    return dims


def _plane_shapes(dims, color, layout):
    """Shape of each plane of a YUV tensor (NHWC) from the image's shape."""
    if color not in YUV_PLANES and color not in SINGLE_PLANE_YUV:
        return [dims]
    if dims is None or len(dims) != 4 or not (layout.empty or layout == Layout("NHWC")):
        raise InputError(f"a {color.name} tensor has the layout NHWC; set_layout('NHWC') and a 4-D shape")
    n, h, w, _ = dims
    if color in SINGLE_PLANE_YUV:
        return [[n, h * 3 // 2 if h >= 0 else -1, w, 1]]
    return [
        [n, h // dh if h >= 0 else -1, w // dw if w >= 0 else -1, channels] for _, dh, dw, channels in YUV_PLANES[color]
    ]


def _new_parameters(param, etype, plane_dims, tensor_layout, info):
    from .. import opset as ops

    t = info._tensor
    old_names = param.output(0).get_names()
    created = []
    for i, dims in enumerate(plane_dims):
        new = ops.parameter(PartialShape.dynamic() if dims is None else dims, etype)
        if len(plane_dims) == 1:
            new.set_friendly_name(param.get_friendly_name())
            new.output(0).set_names(old_names)
        elif t._sub_names:
            sub = t._sub_names[i]
            new.set_friendly_name(f"{param.get_friendly_name()}/{sub}")
            new.output(0).set_names({f"{name}/{sub}" for name in old_names})
        layout = Layout("NHWC") if len(plane_dims) > 1 and tensor_layout.empty else tensor_layout
        if not layout.empty:
            new.set_layout(layout)
        created.append(new)
    if len(plane_dims) == 1:
        param.output(0).set_names(set())
    return created


def _build_input(model, param, info):
    index = model.get_parameter_index(param)
    if info._model._layout is not None:
        param.set_layout(info._model._layout)
    model_layout = param.get_layout()
    t = info._tensor
    tensor_layout = t._layout if t._layout is not None else model_layout
    etype = t._etype or param.get_element_type()
    dims = _tensor_dims(param, info, model_layout, tensor_layout)
    plane_dims = _plane_shapes(dims, t._color, tensor_layout)
    new_params = _new_parameters(param, etype, plane_dims, tensor_layout, info)
    model_dims = param.get_output_partial_shape(0)._engine()
    data = _steps.Data(
        [p.output(0) for p in new_params],
        tensor_layout if len(new_params) == 1 or not tensor_layout.empty else Layout("NHWC"),
        t._color,
        model_layout,
        param.get_element_type(),
        None if model_dims is None else list(model_dims),
    )
    for _, function, args in info._steps._steps:
        function(data, *args)
    if len(data.ports) != 1:
        raise InputError(f"the {t._color.name} planes must become one image: add preprocess().convert_color()")
    # implicit steps: the model's element type, then its layout
    _steps.convert_element_type(data, None)
    if not data.layout.empty and not model_layout.empty and data.layout != model_layout:
        _steps.convert_layout(data, model_layout)
    for target in param.output(0).get_target_inputs():
        target.replace_source_output(data.port)
    model._parameters[index : index + 1] = new_params


def _build_output(result, info):
    if info._model._layout is not None:
        result.set_layout(info._model._layout)
    model_layout = result.get_layout()
    t = info._tensor
    tensor_layout = t._layout if t._layout is not None else model_layout
    source = result.input_value(0)
    data = _steps.Data([source], model_layout, ColorFormat.UNDEFINED, tensor_layout, t._etype, None)
    for _, function, args in info._steps._steps:
        function(data, *args)
    if t._etype is not None:
        _steps.convert_element_type(data, t._etype)
    if not data.layout.empty and not tensor_layout.empty and data.layout != tensor_layout:
        _steps.convert_layout(data, tensor_layout)
    final = data.port
    if final != source:
        # the model's output tensor is now the last step's: its names and a friendly name after the
        # node that produced it (OpenVINO's "<node>.<output>")
        final.add_names(source.get_names())
        source.set_names(set())
        final.get_node().set_friendly_name(f"{source.get_node().get_friendly_name()}.{source.get_index()}")
        result.input(0).replace_source_output(final)
    if not tensor_layout.empty:
        result.set_layout(tensor_layout)
