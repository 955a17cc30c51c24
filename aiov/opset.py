"""Opset builders (``import aiov.opset13 as ops``). Each call creates a node whose output
types and shapes come from the native op registry."""

from __future__ import annotations

import builtins
import re

import numpy as np

from . import _core
from ._errors import InputError
from ._graph import Node, Output, as_output, make_result
from ._narrow import ML_DTYPE_NAMES, to_engine, type_name_of_dtype
from ._state import assign, read_value
from ._types import Type, as_partial_shape, as_type

# Hand-written builders (their arguments need converting); the simple ones (add, relu, elu,
# mish, ...) are generated from the op registry at the end of this module.
__all__ = [
    "assign",
    "read_value",
    "parameter",
    "constant",
    "result",
    "matmul",
    "reshape",
    "convert",
    "concat",
    "softmax",
    "round",
    "gelu",
    "clamp",
    "select",
    "squeeze",
    "unsqueeze",
    "shape_of",
    "range",
    "broadcast",
    "transpose",
    "gather",
    "scatter_elements_update",
    "one_hot",
    "slice",
    "strided_slice",
    "split",
    "variadic_split",
    "tile",
    "pad",
    "convolution",
    "group_convolution",
    "convolution_backprop_data",
    "group_convolution_backprop_data",
    "topk",
    "cum_sum",
    "max_pool",
    "avg_pool",
    "batch_norm_inference",
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_l2",
    "reduce_l1",
    "reduce_sum_square",
    "reduce_log_sum",
    "reduce_log_sum_exp",
    "reduce_logical_and",
    "reduce_logical_or",
    "mvn",
    "log_softmax",
    "trilu",
    "cum_prod",
    "lstm",
    "gru",
    "rnn",
]


def _name(name):
    return "" if name is None else str(name)


def parameter(shape, dtype=np.float32, name=None, kind="tensor") -> Node:
    """A model input of the given shape (-1 or Dimension() for dynamic) and element type.
    aiov's own `kind`: "sequence" (a list of tensors of this type and shape), "optional_tensor"
    or "optional_sequence" (None or such a value); see docs/models.md."""
    etype = as_type(dtype)
    return Node(_core.make_parameter(etype._id, as_partial_shape(shape)._engine(), _name(name), kind))


def constant(value, dtype=None, name=None) -> Node:
    """A constant tensor. Python floats default to f32 and ints to i64 unless dtype is given."""
    if isinstance(value, Node):
        return value
    if dtype is not None:
        etype = as_type(dtype)
        narrow = etype.get_type_name() if etype.get_type_name() in ML_DTYPE_NAMES else None
        if etype.bitwidth < 8 and narrow is None:
            raise InputError(f"constant(): packed {etype.get_type_name()} constants are not supported")
        arr = np.asarray(value) if narrow else np.array(value, dtype=etype.to_dtype(), order="C")
    else:
        arr = np.asarray(value)
        if arr.dtype == np.float64 and not isinstance(value, np.ndarray):
            arr = arr.astype(np.float32)
        if arr.dtype.kind in "USO":
            raise InputError(f"constant(): cannot make a constant of dtype {arr.dtype}")
        arr = np.array(arr, order="C", copy=not arr.flags.c_contiguous)
        etype = Type(arr.dtype)
        narrow = type_name_of_dtype(arr.dtype)
    # bf16, 8-bit floats: their raw bits; sub-byte types: packed (0-d scalars stay 0-d)
    raw = (to_engine(arr, narrow) if narrow else arr).reshape(-1).view(np.uint8)
    return Node(_core.make_constant(etype._id, list(arr.shape), raw, _name(name)))


def result(data, name=None) -> Node:
    node = make_result(as_output(data))
    if name:
        node.set_friendly_name(name)
    return node


def _make(op, inputs, attrs=None, name=None) -> Node:
    outs = [as_output(i) for i in inputs]
    native_inputs = [(o._node._native, o._index) for o in outs]
    return Node(_core.make_node(op, native_inputs, attrs or {}, _name(name)))


def _pair(left, right):
    """Turn a scalar/array operand into a constant of the other operand's element type."""
    lnode = isinstance(left, (Node, Output))
    rnode = isinstance(right, (Node, Output))
    if lnode and not rnode:
        right = constant(right, as_output(left).get_element_type() if not isinstance(right, np.ndarray) else None)
    elif rnode and not lnode:
        left = constant(left, as_output(right).get_element_type() if not isinstance(left, np.ndarray) else None)
    return left, right


def matmul(data_a, data_b, transpose_a=False, transpose_b=False, name=None) -> Node:
    data_a, data_b = _pair(data_a, data_b)
    return _make("MatMul", [data_a, data_b], {"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b)}, name)


def reshape(node, output_shape, special_zero=False, name=None) -> Node:
    if not isinstance(output_shape, (Node, Output)):
        output_shape = constant(np.asarray(output_shape, dtype=np.int64).reshape(-1))
    return _make("Reshape", [node, output_shape], {"special_zero": bool(special_zero)}, name)


def convert(data, destination_type, name=None) -> Node:
    return _make("Convert", [data], {"destination_type": as_type(destination_type).get_type_name()}, name)


def concat(nodes, axis, name=None) -> Node:
    return _make("Concat", list(nodes), {"axis": int(axis)}, name)


def softmax(data, axis, name=None) -> Node:
    return _make("Softmax", [data], {"axis": int(axis)}, name)


def round(data, mode="half_to_even", name=None) -> Node:  # noqa: A001 - OpenVINO's name
    if str(mode).lower() != "half_to_even":
        raise InputError(f"round(): only mode 'half_to_even' is supported, got {mode!r}")
    return _make("Round", [data], {}, name)


def gelu(data, approximation_mode="erf", name=None) -> Node:
    return _make("Gelu", [data], {"approximation_mode": str(approximation_mode).upper()}, name)


def clamp(data, min_value, max_value, name=None) -> Node:
    return _make("Clamp", [data], {"min": float(min_value), "max": float(max_value)}, name)


def select(cond, then_node, else_node, auto_broadcast="numpy", name=None) -> Node:
    then_node, else_node = _pair(then_node, else_node)
    return _make("Select", [cond, then_node, else_node], {"auto_broadcast": str(auto_broadcast).lower()}, name)


def _ints(value):
    if isinstance(value, (Node, Output)):
        return value
    return constant(np.asarray(value, dtype=np.int64).reshape(-1))


def trilu(data, k=0, upper=True, name=None) -> Node:
    """The upper (j - i >= k) or lower (j - i <= k) triangle of the last two dims, zeros elsewhere."""
    return _make("aiov.Trilu", [data, _ints(k)], {"upper": bool(upper)}, name)


def cum_prod(data, axis=0, exclusive=False, reverse=False, name=None) -> Node:
    """Running product along `axis` (ONNX CumProd)."""
    return _make("aiov.CumProd", [data, _ints(axis)], {"exclusive": bool(exclusive), "reverse": bool(reverse)}, name)


def squeeze(data, axes=None, name=None) -> Node:
    return _make("Squeeze", [data] if axes is None else [data, _ints(axes)], {}, name)


def unsqueeze(data, axes, name=None) -> Node:
    return _make("Unsqueeze", [data, _ints(axes)], {}, name)


def shape_of(data, output_type="i64", name=None) -> Node:
    return _make("ShapeOf", [data], {"output_type": as_type(output_type).get_type_name()}, name)


def range(start, stop, step, output_type=None, name=None) -> Node:  # noqa: A001 - OpenVINO's name
    def scalar(v):
        if isinstance(v, (Node, Output)):
            return v
        arr = np.asarray(v)
        if output_type is not None:
            arr = arr.astype(as_type(output_type).to_dtype())
        elif arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return constant(arr)

    attrs = {} if output_type is None else {"output_type": as_type(output_type).get_type_name()}
    return _make("Range", [scalar(start), scalar(stop), scalar(step)], attrs, name)


def broadcast(data, target_shape, axes_mapping=None, broadcast_spec="NUMPY", name=None) -> Node:
    """numpy/bidirectional broadcasting to target_shape; "EXPLICIT" puts data's dimensions at the
    axes of target_shape that axes_mapping names (done as a Reshape, then numpy broadcasting)."""
    mode = str(broadcast_spec).lower()
    if mode == "explicit":
        if axes_mapping is None:
            raise InputError("broadcast(): EXPLICIT broadcasting needs axes_mapping")
        target = _spatial_sizes(target_shape, "broadcast(): target_shape with axes_mapping")
        axes = _spatial_sizes(axes_mapping, "broadcast(): axes_mapping")
        dims = as_output(data).get_partial_shape()
        if dims.rank.is_dynamic or len(dims) != len(axes) or sorted(axes) != axes:
            raise InputError(
                f"broadcast(): axes_mapping {axes} must list, in order, an axis for each dimension of {dims}"
            )
        placed = [1] * len(target)
        for axis, dim in zip(axes, dims):
            if not 0 <= axis < len(target):
                raise InputError(f"broadcast(): axis {axis} is outside the target shape {target}")
            placed[axis] = dim.get_length() if dim.is_static else -1
        if placed.count(-1) > 1:
            raise InputError("broadcast(): EXPLICIT broadcasting of more than one dynamic dimension")
        data, mode = reshape(data, placed), "numpy"
    elif axes_mapping is not None:
        raise InputError(f"broadcast(): axes_mapping goes with EXPLICIT broadcasting, not {broadcast_spec}")
    return _make("Broadcast", [data, _ints(target_shape)], {"mode": mode}, name)


def transpose(data, input_order, name=None) -> Node:
    return _make("Transpose", [data, _ints(input_order)], {}, name)


def gather(data, indices, axis, batch_dims=0, name=None) -> Node:
    if not isinstance(indices, (Node, Output)):
        indices = constant(np.asarray(indices, dtype=np.int64))
    return _make("Gather", [data, indices, _ints(axis)], {"batch_dims": int(batch_dims)}, name)


def scatter_elements_update(data, indices, updates, axis, reduction="none", use_init_val=True, name=None) -> Node:
    return _make(
        "ScatterElementsUpdate",
        [data, indices, updates, _ints(axis)],
        {"reduction": str(reduction).lower(), "use_init_val": bool(use_init_val)},
        name,
    )


def one_hot(indices, depth, on_value, off_value, axis=-1, negative_indices_mode="ignore_negative", name=None) -> Node:
    if not isinstance(depth, (Node, Output)):
        depth = constant(np.asarray(depth, dtype=np.int64))
    if not isinstance(on_value, (Node, Output)) and not isinstance(off_value, (Node, Output)):
        on_value = constant(np.asarray(on_value, dtype=np.float32))
    on_value, off_value = _pair(on_value, off_value)
    return _make(
        "OneHot",
        [indices, depth, on_value, off_value],
        {"axis": int(axis), "negative_indices_mode": str(negative_indices_mode).lower()},
        name,
    )


def slice(data, start, stop, step, axes=None, name=None) -> Node:  # noqa: A001 - OpenVINO's name
    inputs = [data, _ints(start), _ints(stop), _ints(step)] + ([] if axes is None else [_ints(axes)])
    return _make("Slice", inputs, {}, name)


def strided_slice(
    data,
    begin,
    end,
    strides,
    begin_mask,
    end_mask,
    new_axis_mask=None,
    shrink_axis_mask=None,
    ellipsis_mask=None,
    name=None,
) -> Node:
    """numpy-style slicing of data[begin:end:strides] per entry; a 1 in begin_mask/end_mask ignores
    that bound, new_axis_mask inserts a dimension, shrink_axis_mask takes one element and drops
    the dimension, ellipsis_mask stands for the dimensions no entry names."""

    def mask(value):
        return [] if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    inputs = [data, _ints(begin), _ints(end)] + ([] if strides is None else [_ints(strides)])
    attrs = {
        "begin_mask": mask(begin_mask),
        "end_mask": mask(end_mask),
        "new_axis_mask": mask(new_axis_mask),
        "shrink_axis_mask": mask(shrink_axis_mask),
        "ellipsis_mask": mask(ellipsis_mask),
    }
    return _make("StridedSlice", inputs, attrs, name)


def split(data, axis, num_splits, name=None) -> Node:
    return _make("Split", [data, _ints(axis)], {"num_splits": int(num_splits)}, name)


def variadic_split(data, axis, split_lengths, name=None) -> Node:
    return _make("VariadicSplit", [data, _ints(axis), _ints(split_lengths)], {}, name)


def tile(data, repeats, name=None) -> Node:
    return _make("Tile", [data, _ints(repeats)], {}, name)


def pad(arg, pads_begin, pads_end, pad_mode="constant", arg_pad_value=None, name=None) -> Node:
    inputs = [arg, _ints(pads_begin), _ints(pads_end)]
    if arg_pad_value is not None:
        if not isinstance(arg_pad_value, (Node, Output)):
            arg_pad_value = constant(np.asarray(arg_pad_value, dtype=as_output(arg).get_element_type().to_dtype()))
        inputs.append(arg_pad_value)
    return _make("Pad", inputs, {"pad_mode": str(pad_mode).lower()}, name)


def _window_attrs(strides, pads_begin, pads_end, dilations, auto_pad):
    attrs = {
        "strides": [int(v) for v in strides],
        "pads_begin": [int(v) for v in pads_begin],
        "pads_end": [int(v) for v in pads_end],
        "auto_pad": str(auto_pad or "explicit").lower(),
    }
    if dilations is not None:
        attrs["dilations"] = [int(v) for v in dilations]
    return attrs


def convolution(data, filters, strides, pads_begin, pads_end, dilations, auto_pad="explicit", name=None) -> Node:
    """NCHW convolution with OIHW filters (1-D: NCW/OIW)."""
    return _make(
        "Convolution", [data, filters], _window_attrs(strides, pads_begin, pads_end, dilations, auto_pad), name
    )


def group_convolution(data, filters, strides, pads_begin, pads_end, dilations, auto_pad="explicit", name=None) -> Node:
    """Grouped convolution with filters [G, O/G, C/G, kh, kw] (OpenVINO's layout)."""
    flat, groups = _merged_groups(filters, "group_convolution")
    attrs = _window_attrs(strides, pads_begin, pads_end, dilations, auto_pad)
    attrs["group"] = groups
    return _make("Convolution", [data, flat], attrs, name)


def _merged_groups(filters, builder):
    """OpenVINO's grouped filters [G, A, B, k...] as the engine's [G*A, B, k...], and G."""
    port = as_output(filters)
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic or any(d.is_dynamic for d in shape):
        raise InputError(f"{builder}(): filters need a static shape")
    dims = [d.get_length() for d in shape]
    return reshape(port, [dims[0] * dims[1]] + dims[2:]), dims[0]


def _spatial_sizes(value, what):
    """A list of ints from a list, an array or a Constant node (the engine needs them when planning)."""
    if isinstance(value, (Node, Output)):
        node = as_output(value).get_node()
        if node.get_type_name() != "Constant":
            raise InputError(f"{what} must be a constant, got a {node.get_type_name()} output")
        value = node.get_data()
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _backprop_attrs(data, filters, strides, output_shape, pads_begin, pads_end, dilations, auto_pad, output_padding):
    rank = len(list(strides))
    dilations = [1] * rank if dilations is None else [int(v) for v in dilations]
    begin = [0] * rank if pads_begin is None else [int(v) for v in pads_begin]
    end = [0] * rank if pads_end is None else [int(v) for v in pads_end]
    extra = [0] * rank if output_padding is None else [int(v) for v in output_padding]
    mode = str(auto_pad or "explicit").lower()
    if output_shape is not None:
        # OpenVINO's rule: the full transposed output is cut to output_shape, from pads_begin
        # (explicit) or centred (same_upper puts the odd element at the start, same_lower at the
        # end), and zero-extended at the end when output_shape is larger.
        want = _spatial_sizes(output_shape, "output_shape")
        dims = [as_output(v).get_partial_shape() for v in (data, filters)]
        if any(s.rank.is_dynamic for s in dims) or any(d.is_dynamic for s in dims for d in list(s)[2:]):
            raise InputError("convolution_backprop_data(): output_shape needs static spatial data and filter sizes")
        size_in = [d.get_length() for d in list(dims[0])[2:]]
        kernel = [d.get_length() for d in list(dims[1])[2:]]
        for i in builtins.range(rank):
            full = int(strides[i]) * (size_in[i] - 1) + (kernel[i] - 1) * dilations[i] + 1 + extra[i]
            total = full - want[i]
            if mode in ("same_upper", "same_lower"):
                begin[i] = max(total, 0) - max(total, 0) // 2 if mode == "same_upper" else max(total, 0) // 2
            end[i] = total - begin[i]
            if end[i] < 0:
                extra[i] -= end[i]
                end[i] = 0
        mode = "explicit"
    attrs = _window_attrs(strides, begin, end, dilations, mode)
    attrs["output_padding"] = extra
    return attrs


def _transposed_convolution(builder, grouped, auto_pad_default, doc):
    """A transposed convolution builder; ``grouped`` ones take OpenVINO's [G, ...] filters."""

    def build(
        data,
        filters,
        strides,
        output_shape=None,
        pads_begin=None,
        pads_end=None,
        dilations=None,
        auto_pad=auto_pad_default,
        output_padding=None,
        name=None,
    ) -> Node:
        flat, groups = _merged_groups(filters, builder) if grouped else (filters, None)
        attrs = _backprop_attrs(
            data, flat, strides, output_shape, pads_begin, pads_end, dilations, auto_pad, output_padding
        )
        if grouped:
            attrs["group"] = groups
        return _make("ConvTranspose", [data, flat], attrs, name)

    build.__name__ = build.__qualname__ = builder
    build.__doc__ = doc
    return build


convolution_backprop_data = _transposed_convolution(
    "convolution_backprop_data",
    grouped=False,
    auto_pad_default=None,
    doc="""Transposed convolution: NC... data, filters [C_in, C_out, k...]; output_shape (spatial sizes,
    a list or a Constant) makes the pads follow from it.""",
)
group_convolution_backprop_data = _transposed_convolution(
    "group_convolution_backprop_data",
    grouped=True,
    auto_pad_default="explicit",
    doc="Grouped transposed convolution with filters [G, C_in/G, C_out/G, k...] (OpenVINO's layout).",
)


def topk(data, k, axis, mode, sort, index_element_type="i32", stable=False, name=None) -> Node:
    """The k largest ("max") or smallest ("min") values along `axis` and their indices (two outputs)."""
    if stable:
        raise InputError("topk(): stable=True is not supported; ties keep no guaranteed order")
    attrs = {
        "axis": int(axis),
        "mode": str(mode).lower(),
        "sort": str(sort).lower(),
        "index_element_type": as_type(index_element_type).get_type_name(),
    }
    return _make("TopK", [data, _ints(k)], attrs, name)


def cum_sum(arg, axis, exclusive=False, reverse=False, name=None) -> Node:
    """Running sum along `axis`."""
    return _make("CumSum", [arg, _ints(axis)], {"exclusive": bool(exclusive), "reverse": bool(reverse)}, name)


def _rounding(rounding_type) -> str:
    # "ceil" keeps a last window that starts in the end padding (OpenVINO's opset1), "ceil_torch"
    # (opset14) drops it: the engine knows both
    return str(rounding_type).lower()


def max_pool(
    data,
    strides,
    dilations,
    pads_begin,
    pads_end,
    kernel_shape,
    rounding_type="floor",
    auto_pad=None,
    index_element_type="i64",
    axis=0,
    name=None,
    *,
    with_indices=True,
    column_major_indices=False,
) -> Node:
    """Max pooling; as OpenVINO's opset8, output 1 holds where each maximum was (its flat index in the
    input, counted from dimension `axis` on). ``with_indices=False`` (aiov only) leaves it out;
    ``column_major_indices=True`` (aiov only, ONNX's storage_order 1) counts the first spatial dim fastest."""
    attrs = _window_attrs(strides, pads_begin, pads_end, dilations, auto_pad)
    attrs.update(kernel=[int(v) for v in kernel_shape], rounding_type=_rounding(rounding_type))
    if with_indices:
        attrs.update(with_indices=True, index_element_type=as_type(index_element_type).get_type_name(), axis=int(axis))
        if column_major_indices:
            attrs.update(column_major_indices=True)
    return _make("MaxPool", [data], attrs, name)


def avg_pool(
    data,
    strides,
    pads_begin,
    pads_end,
    kernel_shape,
    exclude_pad,
    rounding_type="floor",
    auto_pad=None,
    name=None,
    dilations=None,
) -> Node:
    attrs = _window_attrs(strides, pads_begin, pads_end, dilations, auto_pad)
    attrs.update(
        kernel=[int(v) for v in kernel_shape], rounding_type=_rounding(rounding_type), exclude_pad=bool(exclude_pad)
    )
    return _make("AvgPool", [data], attrs, name)


def batch_norm_inference(data, gamma, beta, mean, variance, epsilon, name=None) -> Node:
    return _make("BatchNormInference", [data, gamma, beta, mean, variance], {"epsilon": float(epsilon)}, name)


def _reduce(op):
    def build(node, reduction_axes, keep_dims=False, name=None) -> Node:
        return _make(op, [node, _ints(reduction_axes)], {"keep_dims": bool(keep_dims)}, name)

    build.__doc__ = f"{op} over the given axes."
    # OpenVINO's name (reduce_logical_and): what tracebacks, repr and pytest ids show.
    build.__name__ = build.__qualname__ = re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()
    return build


reduce_sum = _reduce("ReduceSum")
reduce_mean = _reduce("ReduceMean")
reduce_max = _reduce("ReduceMax")
reduce_min = _reduce("ReduceMin")
reduce_prod = _reduce("ReduceProd")
reduce_l2 = _reduce("ReduceL2")
reduce_l1 = _reduce("ReduceL1")
reduce_sum_square = _reduce("ReduceSumSquare")
reduce_log_sum = _reduce("ReduceLogSum")
reduce_log_sum_exp = _reduce("ReduceLogSumExp")
reduce_logical_and = _reduce("ReduceLogicalAnd")
reduce_logical_or = _reduce("ReduceLogicalOr")


def mvn(data, axes, normalize_variance=True, eps=1e-9, eps_mode="inside_sqrt", name=None) -> Node:
    """(x - mean) / sqrt(var + eps) over trailing axes."""
    return _make(
        "MVN",
        [data, _ints(axes)],
        {"normalize_variance": bool(normalize_variance), "eps": float(eps), "eps_mode": str(eps_mode).lower()},
        name,
    )


def log_softmax(data, axis, name=None) -> Node:
    return _make("LogSoftmax", [data], {"axis": int(axis)}, name)


# ---- builders generated from the op registry ----------------------------------------------


def _attr_value(spec, value):
    """A Python value as attribute `spec` of the registry declares it."""
    kind = spec["kind"]
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "ints":
        return [int(v) for v in np.asarray(value).reshape(-1)]
    if kind == "floats":
        return [float(v) for v in np.asarray(value).reshape(-1)]
    if kind == "type":
        return as_type(value).get_type_name()
    text = str(value)
    match = [c for c in spec["choices"] if c.lower() == text.lower()]  # "NUMPY" -> "numpy"
    return match[0] if match and text not in spec["choices"] else text


def _recurrent(op, inputs, attrs, name):
    """LSTM/GRU/RNN in ONNX's input order: an absent optional input (None) becomes an empty
    1-D tensor so the others keep their places; activations are given as a list of names."""
    inputs = list(inputs)
    while inputs and inputs[-1] is None:
        inputs.pop()
    ports = [
        constant(np.zeros(0, np.int32 if i == 4 else np.float32)) if v is None else v for i, v in enumerate(inputs)
    ]
    acts = attrs.get("activations", "")
    attrs["activations"] = acts if isinstance(acts, str) else ",".join(acts)
    for key in ("activation_alpha", "activation_beta"):
        attrs[key] = [float(v) for v in attrs.get(key, ())]
    attrs["clip"] = float(attrs.get("clip", 0.0))
    return _make(op, ports, attrs, name)


def lstm(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, name=None, **attrs) -> Node:
    """ONNX's LSTM (gates i, o, f, c): outputs Y, Y_h, Y_c. Attributes: hidden_size, direction,
    layout, clip (0: none), activations, activation_alpha, activation_beta, input_forget."""
    return _recurrent("LSTM", [X, W, R, B, sequence_lens, initial_h, initial_c, P], attrs, name)


def gru(X, W, R, B=None, sequence_lens=None, initial_h=None, name=None, **attrs) -> Node:
    """ONNX's GRU (gates z, r, h): outputs Y, Y_h. Attributes as lstm's, with
    linear_before_reset instead of input_forget."""
    return _recurrent("GRU", [X, W, R, B, sequence_lens, initial_h], attrs, name)


def rnn(X, W, R, B=None, sequence_lens=None, initial_h=None, name=None, **attrs) -> Node:
    """ONNX's RNN: outputs Y, Y_h. Attributes as lstm's, without input_forget."""
    return _recurrent("RNN", [X, W, R, B, sequence_lens, initial_h], attrs, name)


def _pdpd(op, inputs, attrs, name) -> Node:
    """PDPD broadcasting (axis -1: the second operand aligned to the right of the first) is numpy's
    where the first operand keeps its shape; anything else is refused rather than reinterpreted."""
    node = _make(op, inputs, dict(attrs, auto_broadcast="numpy"), name)
    first = as_output(inputs[0]).get_partial_shape()
    if node.get_output_partial_shape(0) != first:
        raise InputError(
            f"{op}: PDPD broadcasting of {as_output(inputs[1]).get_partial_shape()} onto {first} is supported only "
            "where it does not change the first operand's shape"
        )
    return node


def _generated(desc):
    """Builder f(inputs..., attributes in schema order..., name=None) for a registered op."""
    op, count = desc["type"], desc["min_inputs"]
    specs = [a for a in desc["attrs"] if a["ir"] != "-" or a["onnx"] != "-"]
    by_name = {a["name"]: a for a in specs}
    pairs = count == 2 and "auto_broadcast" in by_name  # elementwise binary: scalars take the other's type

    def build(*args, name=None, **kwargs):
        if len(args) < count:
            raise InputError(f"{build.__name__}() takes {count} input(s), got {len(args)}")
        if len(args) > count + len(specs):
            raise InputError(f"{build.__name__}() takes at most {count + len(specs)} arguments, got {len(args)}")
        inputs = list(args[:count])
        if pairs:
            inputs = list(_pair(*inputs))
        attrs = {}
        for spec, value in zip(specs, args[count:]):
            attrs[spec["name"]] = _attr_value(spec, value)
        for key, value in kwargs.items():
            if key not in by_name:
                raise InputError(
                    f"{build.__name__}() has no attribute {key!r} (it takes {', '.join(by_name) or 'none'})"
                )
            attrs[key] = _attr_value(by_name[key], value)
        if str(attrs.get("auto_broadcast", "")).lower() == "pdpd":
            return _pdpd(op, inputs, attrs, name)
        return _make(op, inputs, attrs, name)

    build.__name__ = build.__qualname__ = desc["builder"]
    params = ", ".join(f"{a['name']}={a['default']!r}" for a in specs)
    build.__doc__ = f"{op}: {count} input(s), then its attributes ({params or 'none'}) and name."
    return build


for _desc in _core.op_schema():
    if _desc["builder"] and _desc["builder"] not in globals():
        globals()[_desc["builder"]] = _generated(_desc)
        __all__.append(_desc["builder"])
del _desc

# OpenVINO's other spellings of the same builders.
abs = globals()["absolute"]  # noqa: A001 - OpenVINO's name (both generated from the registry above)
ceil = globals()["ceiling"]
cumsum = cum_sum
__all__ += ["abs", "ceil", "cumsum"]
