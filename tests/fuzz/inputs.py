"""Hypothesis-driven hostile input values for the sync, queue and aio APIs.

``hostile_inputs()`` draws what a client of a web service could send: arrays of any dtype,
rank and layout (non-contiguous, byte-swapped, read-only, masked, complex, zero-stride views
of huge virtual shapes), Python scalars and nested or ragged lists, Tensors that disagree
with their data, dicts keyed by anything, and shape values that overflow (for the models
whose output shape comes from an input value)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

DTYPES = [
    np.float32,
    np.float64,
    np.float16,
    np.int64,
    np.int32,
    np.int8,
    np.uint8,
    np.uint64,
    np.bool_,
    np.complex64,
    ">f4",
    ">i8",
    "U3",
    object,
    "datetime64[s]",
]
HOSTILE_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e30, -1e30, 3e9, -3e9, float("nan"), float("inf"), float("-inf")]
SHAPE_VALUES = [0, 1, 2, 3, 6, -1, -2, 2**31, 2**32 + 1, 2**61 + 3, 2**62, 2**63 - 1, -(2**63)]


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=5)))
    size = int(np.prod(shape)) if shape else 1
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = draw(
            st.lists(st.sampled_from([0, 1, 2, 3, 6, int(info.max), int(info.min)]), min_size=size, max_size=size)
        )
        arr = np.array(values, dtype=dtype).reshape(shape)
    elif dtype.kind in "fc":
        values = draw(
            st.lists(st.sampled_from([0.0, 1.0, -1.5, float("nan"), float("inf"), 1e38]), min_size=size, max_size=size)
        )
        with np.errstate(over="ignore"):  # 1e38 does not fit a float16: inf is fine here
            arr = np.array(values, dtype=dtype).reshape(shape)
        if dtype.kind == "c":
            arr = np.asarray(arr + 1j)  # stays an array when 0-d
    elif dtype.kind == "b":
        arr = np.zeros(shape, dtype)
    elif dtype.kind == "U":
        arr = np.full(shape, "ab", dtype)
    elif dtype.kind == "M":
        arr = np.zeros(shape, dtype)
    else:
        arr = np.empty(shape, dtype)
        arr.fill(None)
    layout = draw(
        st.sampled_from(
            ["plain", "plain", "transposed", "strided", "readonly", "masked", "broadcast_huge", "fortran", "zero_d"]
        )
    )
    if layout == "transposed" and arr.ndim >= 2:
        arr = arr.T
    elif layout == "strided" and arr.ndim >= 1:
        arr = np.repeat(arr, 2, axis=0)[::2]
    elif layout == "readonly":
        arr.flags.writeable = False
    elif layout == "masked":
        arr = np.ma.masked_array(arr, mask=np.ones(arr.shape, bool))
    elif layout == "broadcast_huge":
        arr = np.broadcast_to(
            np.zeros((), np.float32), draw(st.sampled_from([(2**20, 2**20), (2**31, 2), (2, 3), (0, 2**40)]))
        )
    elif layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "zero_d":
        arr = np.asarray(arr.ravel()[0] if arr.size else 0)
    return arr


class LazyTensor:
    """A Tensor to build in the child: building one is itself an API call that may fail."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def build(self):
        import aiov as ov

        args = [getattr(ov.Type, a[5:]) if isinstance(a, str) and a.startswith("Type.") else a for a in self.args]
        return ov.Tensor(*args, **self.kwargs)

    def __repr__(self):
        return f"Tensor(*{self.args!r}, **{self.kwargs!r})"


def materialize(inputs):
    """Builds the LazyTensors of `inputs` (at the top level, in lists and dict values)."""
    if isinstance(inputs, LazyTensor):
        return inputs.build()
    if isinstance(inputs, dict):
        return {k: materialize(v) for k, v in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(materialize(v) for v in inputs)
    return inputs


@st.composite
def tensors(draw):
    kind = draw(st.sampled_from(["from_array", "packed_u4", "alloc", "shared"]))
    if kind == "packed_u4":
        dims = draw(st.sampled_from([[2**61 + 1, 8], [4], [3, 2], [0]]))
        data = np.zeros(draw(st.sampled_from([2, 4, 8])), np.uint8)
        return LazyTensor(data, dims, "Type.u4")
    if kind == "alloc":
        return LazyTensor(
            draw(st.sampled_from(["Type.f32", "Type.i64", "Type.u8", "Type.f16"])),
            draw(st.sampled_from([[2, 3], [6], [0], [1, 1, 1]])),
        )
    arr = draw(arrays())
    if arr.size > 1 << 16 or arr.dtype.kind not in "fiub" or isinstance(arr, np.ma.MaskedArray):
        arr = np.zeros((2, 3), np.float32)
    return LazyTensor(np.ascontiguousarray(arr), shared_memory=(kind == "shared"))


def values():
    scalars = st.one_of(
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.booleans(),
        st.none(),
        st.text(max_size=3),
        st.binary(max_size=3),
        st.complex_numbers(max_magnitude=10),
    )
    nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=12)
    shape_values = st.lists(st.sampled_from(SHAPE_VALUES), min_size=0, max_size=4).map(
        lambda v: np.array(v, dtype=np.int64) if all(-(2**63) <= x < 2**63 for x in v) else v
    )
    return st.one_of(arrays(), arrays(), shape_values, shape_values, nested, tensors())


def keys(names):
    return st.one_of(
        st.sampled_from(list(names)), st.integers(-3, 5), st.sampled_from([None, 1.5, (0,), b"a", "", True, 2**64])
    )


@st.composite
def near_valid(draw, spec):
    """Valid values for every input but one, which gets a hostile value; shape-like int64
    inputs get values of the right length that overflow, go negative or are zero."""
    feeds = {}
    for name, dims, dtype in spec:
        feeds[name] = (np.arange(int(np.prod(dims)), dtype=dtype).reshape(dims) % 3 + 1).astype(dtype)
    name, dims, dtype = draw(st.sampled_from(spec))
    size = int(np.prod(dims))
    if np.dtype(dtype) == np.int64 and draw(st.integers(0, 3)):  # shapes, indices, sizes
        entries = draw(st.lists(st.sampled_from(SHAPE_VALUES + [1, 2, 3, 4]), min_size=size, max_size=size))
        feeds[name] = np.array(entries, np.int64).reshape(dims)
    elif np.dtype(dtype).kind == "f" and draw(st.booleans()):  # offsets, grids, scales: of the right shape
        entries = draw(st.lists(st.sampled_from(HOSTILE_FLOATS), min_size=size, max_size=size))
        feeds[name] = np.array(entries, np.float64).astype(dtype).reshape(dims)
    else:
        feeds[name] = draw(values())
    if draw(st.booleans()):
        return [feeds[n] for n, _, _ in spec]
    return feeds


@st.composite
def hostile_inputs(draw, spec):
    """The whole `inputs` argument of an infer call, for inputs `spec` [(name, dims, dtype)]."""
    names = [name for name, _, _ in spec]
    form = draw(
        st.sampled_from(
            ["near_valid", "near_valid", "near_valid", "dict", "dict", "list", "tuple", "single", "none", "weird"]
        )
    )
    if form == "near_valid":
        return draw(near_valid(spec))
    if form == "dict":
        return draw(st.dictionaries(keys(names), values(), max_size=4))
    if form in ("list", "tuple"):
        items = draw(st.lists(values(), max_size=4))
        return items if form == "list" else tuple(items)
    if form == "single":
        return draw(values())
    if form == "none":
        return None
    return draw(st.sampled_from([{1, 2}, "text", b"bytes", object(), iter([np.zeros(3)]), 3 + 4j]))


# ---- the models and the APIs under test ------------------------------------------------------


def input_models():
    """name -> ONNX bytes: fixed shapes, a dynamic batch, and outputs shaped by input values."""
    from onnx import TensorProto, helper

    from .seeds import onnx_seeds

    seeds = onnx_seeds()
    n = helper.make_node
    dyn = helper.make_model(
        helper.make_graph(
            [n("Add", ["a", "b"], ["y"])],
            "dyn",
            [
                helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 3]),
                helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 3]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    tile = helper.make_model(
        helper.make_graph(
            [n("Tile", ["x", "reps"], ["t"]), n("ReduceSum", ["t"], ["y"], keepdims=0)],
            "tile",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                helper.make_tensor_value_info("reps", TensorProto.INT64, [2]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    # Offsets, grids, indices and scales given at run time reach the kernels' index arithmetic.
    F = TensorProto.FLOAT
    value_driven = {
        "deform_conv_offsets": seeds["deform_conv"],
        "affine_grid_theta": seeds["affine_grid_sample"],
        "max_unpool_indices": helper.make_model(
            helper.make_graph(
                [n("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                "unpool",
                [
                    helper.make_tensor_value_info("x", F, [1, 2, 2, 2]),
                    helper.make_tensor_value_info("i", TensorProto.INT64, [1, 2, 2, 2]),
                ],
                [helper.make_tensor_value_info("y", F, None)],
            ),
            opset_imports=[helper.make_opsetid("", 12)],
        ),
        "quantize_scale": helper.make_model(
            helper.make_graph(
                [n("QuantizeLinear", ["x", "s", "z"], ["q"]), n("DequantizeLinear", ["q", "s", "z"], ["y"])],
                "quantize",
                [
                    helper.make_tensor_value_info("x", F, [4]),
                    helper.make_tensor_value_info("s", F, []),
                    helper.make_tensor_value_info("z", TensorProto.UINT8, []),
                ],
                [helper.make_tensor_value_info("y", F, None)],
            ),
            opset_imports=[helper.make_opsetid("", 13)],
        ),
    }
    return {
        **{name: model.SerializeToString() for name, model in value_driven.items()},
        "add_relu": seeds["add_relu"].SerializeToString(),
        "dynamic_add": dyn.SerializeToString(),
        "shape_from_input": seeds["shape_from_input"].SerializeToString(),
        "constant_of_shape_input": seeds["constant_of_shape_input"].SerializeToString(),
        "tile_from_input": tile.SerializeToString(),
    }


def run_api(api: str, model_bytes: bytes, inputs):
    """One call of `api` ("sync", "request", "queue", "aio") with `inputs`."""
    import aiov as ov

    compiled = ov.compile_model(model_bytes)
    inputs = materialize(inputs)
    if api == "sync":
        compiled(inputs)
    elif api == "request":
        compiled.create_infer_request().infer(inputs)
    elif api == "queue":
        queue = ov.AsyncInferQueue(compiled, 2)
        queue.start_async(inputs)
        queue.start_async(inputs)
        queue.wait_all()
    elif api == "aio":
        import asyncio

        from aiov import aio

        async def main():
            acompiled = aio.CompiledModel(compiled)
            return await acompiled(inputs)

        asyncio.run(main())
    else:
        raise AssertionError(api)
    return None


APIS = ("sync", "request", "queue", "aio")
