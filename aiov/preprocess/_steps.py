"""The pre- and post-processing steps, recorded by PreProcessSteps/PostProcessSteps and turned
into graph nodes by ``PrePostProcessor.build``."""

from __future__ import annotations

import numbers

import numpy as np

from .. import opset as ops
from .._errors import InputError
from .._graph import Node, Output, as_output
from .._layout import Layout
from .._types import Type, as_type
from . import _color
from ._enums import ColorFormat, PaddingMode, ResizeAlgorithm


class Data:
    """What the steps work on: the port(s) so far, what their dimensions mean, their color format,
    and the model-side target (its layout, element type and shape)."""

    def __init__(self, ports, layout, color, target_layout, target_type, target_shape):
        self.ports = list(ports)
        self.layout = layout
        self.color = color
        self.target_layout = target_layout
        self.target_type = target_type
        self.target_shape = target_shape  # list of ints, -1 dynamic (None: unknown rank)

    @property
    def port(self) -> Output:
        if len(self.ports) != 1:
            raise InputError(
                f"this step needs a single image; convert the {self.color.name} planes first (convert_color)"
            )
        return self.ports[0]

    def rank(self) -> int:
        rank = self.port.get_partial_shape().rank
        if rank.is_dynamic:
            raise InputError("this step needs a tensor of known rank")
        return rank.get_length()

    def axis(self, name, what) -> int:
        """Index of the dimension `name` ("C", "H", "W") in the current layout."""
        if self.layout.empty or not self.layout.has_name(name):
            raise InputError(f"{what} needs a layout with a '{name}' dimension; set one with tensor().set_layout()")
        index = self.layout.get_index_by_name(name)
        return index + self.rank() if index < 0 else index


def axis_of(layout, name, rank):
    """Index of dimension `name` in `layout` for a tensor of `rank` dims, or None."""
    if layout is None or layout.empty or not layout.has_name(name):
        return None
    index = layout.get_index_by_name(name)
    return index + rank if index < 0 else index


def _out(node) -> Output:
    return as_output(node)


def _float_type(data, what):
    etype = data.port.get_element_type()
    if not etype.real:
        raise InputError(
            f"{what} applies to floating-point data; the data is {etype.get_type_name()} here: "
            "add convert_element_type() before it"
        )
    return etype


def _per_channel(data, values, what):
    """A scalar, or one value per channel shaped to broadcast along the layout's 'C'."""
    etype = _float_type(data, what)
    arr = np.asarray(values, dtype=etype.to_dtype() if etype != Type.bf16 else np.float32)
    if arr.ndim == 0 or arr.size == 1 and not isinstance(values, (list, tuple, np.ndarray)):
        return ops.constant(arr.reshape(()), etype.to_dtype() if etype != Type.bf16 else None)
    rank = data.rank()
    c = data.axis("C", f"{what} with one value per channel")
    channels = data.port.get_partial_shape()[c]
    if channels.is_static and channels.get_length() != arr.size:
        raise InputError(f"{what}: {arr.size} values given for {channels.get_length()} channels")
    shape = [1] * rank
    shape[c] = arr.size
    return ops.constant(arr.reshape(shape))


def convert_element_type(data, etype):
    etype = data.target_type if etype is None else as_type(etype)
    if etype is None or data.port.get_element_type() == etype:
        return
    data.ports = [_out(ops.convert(data.port, etype))]


def convert_layout(data, dst):
    if isinstance(dst, (list, tuple)) and all(isinstance(v, numbers.Integral) for v in dst):
        order = [int(v) for v in dst]
        if sorted(order) != list(range(data.rank())):
            raise InputError(f"convert_layout: {order} is not a permutation of {data.rank()} dimensions")
        if not data.layout.empty and data.layout._ellipsis is None and len(data.layout._names) == len(order):
            data.layout = Layout("[" + ",".join(data.layout._names[i] for i in order) + "]")
        data.ports = [_out(ops.transpose(data.port, order))]
        return
    dst = data.target_layout if dst is None else Layout(dst)
    if dst is None or dst.empty:
        raise InputError("convert_layout: no layout to convert to; give one or set the model's layout")
    order = transpose_order(data.layout, dst)
    data.layout = dst
    if order is not None:
        data.ports = [_out(ops.transpose(data.port, order))]


def transpose_order(src, dst):
    """The Transpose order taking layout `src` to `dst` (None when they are the same)."""
    if src == dst:
        return None
    if src.empty:
        raise InputError(f"convert_layout to {dst}: the tensor's layout is not set (tensor().set_layout())")
    if src._ellipsis is not None or dst._ellipsis is not None or sorted(src._names) != sorted(dst._names):
        raise InputError(f"cannot convert layout {src} to {dst}: they must name the same dimensions")
    return [src._names.index(n) for n in dst._names]


def convert_color(data, dst):
    dst = ColorFormat(dst)
    if data.color == ColorFormat.UNDEFINED:
        raise InputError("convert_color: set the tensor's color format first (tensor().set_color_format())")
    if data.color == dst:
        return
    rank = data.ports[0].get_partial_shape().rank
    channel_axis = None if rank.is_dynamic else axis_of(data.layout, "C", rank.get_length())
    data.ports = [_color.convert(data.ports, data.color, dst, channel_axis)]
    data.color = dst


_RESIZE_MODES = {
    ResizeAlgorithm.RESIZE_LINEAR: "linear",
    ResizeAlgorithm.RESIZE_NEAREST: "nearest",
    ResizeAlgorithm.RESIZE_CUBIC: "cubic",
}


def resize(data, algorithm, height, width):
    mode = _RESIZE_MODES.get(ResizeAlgorithm(algorithm))
    if mode is None:
        raise InputError(f"resize: {ResizeAlgorithm(algorithm).name} is not supported (linear, nearest and cubic are)")
    rank = data.rank()
    h, w = data.axis("H", "resize"), data.axis("W", "resize")
    if height is None or width is None:
        # the model's size, found through its layout (the tensor's when the model has none)
        layout = data.layout if data.target_layout is None or data.target_layout.empty else data.target_layout
        th, tw = axis_of(layout, "H", rank), axis_of(layout, "W", rank)
        if th is None or tw is None or data.target_shape is None:
            raise InputError("resize to the model's size needs a layout with 'H' and 'W' (model().set_layout())")
        height, width = data.target_shape[th], data.target_shape[tw]
        if height < 0 or width < 0:
            raise InputError("resize: the model's height and width are dynamic; give the size to resize to")
    port = data.port
    etype = port.get_element_type()
    shape = list(port.get_partial_shape())
    if etype != Type.f32:  # the engine resizes f32
        port = _out(ops.convert(port, Type.f32))
    sizes = [d._engine() for d in shape]
    sizes[h], sizes[w] = int(height), int(width)
    if all(s >= 0 for s in sizes):
        target = ops.constant(np.array(sizes, np.int64))
    else:  # the other dimensions come from the data at run time
        parts = []
        for i in range(rank):
            if i in (h, w):
                parts.append(ops.constant(np.array([sizes[i]], np.int64)))
            else:
                parts.append(ops.gather(ops.shape_of(port), [i], 0))
        target = ops.concat(parts, 0)
    node = ops._make(
        "Resize",
        [port, ops.constant(np.zeros(0, np.float32)), target],
        {
            "mode": mode,
            "coordinate_transformation_mode": "half_pixel",
            "nearest_mode": "round_prefer_floor",
            "cubic_coeff_a": -0.75,
        },
    )
    out = _out(node)
    if etype != Type.f32:
        out = _out(ops.convert(ops.round(out) if etype.integral else out, etype))
    data.ports = [out]


def mean(data, value):
    data.ports = [_out(ops.subtract(data.port, _per_channel(data, value, "mean")))]


def scale(data, value):
    data.ports = [_out(ops.divide(data.port, _per_channel(data, value, "scale")))]


def reverse_channels(data):
    c = data.axis("C", "reverse_channels")
    data.ports = [_color.reverse_axis(data.port, c)]


def crop(data, begin, end):
    begin, end = [int(v) for v in begin], [int(v) for v in end]
    rank = data.rank()
    if len(begin) != rank or len(end) != rank:
        raise InputError(f"crop: begin and end need {rank} values each, got {len(begin)} and {len(end)}")
    data.ports = [_out(ops.slice(data.port, begin, end, [1] * rank))]


_PAD_MODES = {PaddingMode.CONSTANT: "constant", PaddingMode.EDGE: "edge", PaddingMode.REFLECT: "reflect"}


def pad(data, pads_begin, pads_end, value, mode):
    pad_mode = _PAD_MODES.get(PaddingMode(mode))
    if pad_mode is None:
        raise InputError(f"pad: {PaddingMode(mode).name} is not supported (CONSTANT, EDGE and REFLECT are)")
    rank = data.rank()
    if len(pads_begin) != rank or len(pads_end) != rank:
        raise InputError(f"pad: pads_begin and pads_end need {rank} values each")
    data.ports = [_out(ops.pad(data.port, list(pads_begin), list(pads_end), pad_mode, value))]


def custom(data, function):
    produced = function(data.port)
    if not isinstance(produced, (Node, Output)):
        raise InputError(f"a custom step returns a node or an output port, got {type(produced).__name__}")
    data.ports = [as_output(produced)]
