"""Structure-aware ONNX mutators. Each takes a ModelProto (mutated in place) and a seeded
``random.Random``; it returns a short description of what it changed, or None when it found
nothing to change. ``mutate`` applies one to three of them to a copy of a seed."""

from __future__ import annotations

import random

import numpy as np
from onnx import AttributeProto, ModelProto, TensorProto, helper, numpy_helper

# Values that break arithmetic: zero, negatives, int32/int64 edges, products that wrap.
INTERESTING_INTS = [
    0,
    1,
    -1,
    2,
    -2,
    3,
    7,
    64,
    255,
    256,
    65535,
    2**31 - 1,
    2**31,
    -(2**31),
    2**32 + 1,
    2**61 + 3,
    2**62,
    2**63 - 1,
    -(2**63),
    10**9,
]
INTERESTING_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, 3.4e38, float("inf"), float("-inf"), float("nan")]
OVERFLOW_SHAPES = [
    [2**61 + 3, 2, 4],
    [2**62, 4],
    [2**32, 2**32],
    [-1, -1],
    [0, 2**40],
    [3, -2],
    [2**31, 2**31, 4],
    [1] * 70,
]


def _pick_int(rng):
    return rng.choice(INTERESTING_INTS) if rng.random() < 0.8 else rng.randint(-10, 300)


def _all_tensor_names(model):
    g = model.graph
    names = [i.name for i in g.input] + [t.name for t in g.initializer]
    for node in g.node:
        names += [o for o in node.output if o]
    return names


def mut_dims(model: ModelProto, rng):
    """A graph input or output dimension: interesting value, symbolic, or the shape removed."""
    values = list(model.graph.input) + list(model.graph.output)
    values = [v for v in values if v.type.HasField("tensor_type")]
    if not values:
        return None
    v = rng.choice(values)
    shape = v.type.tensor_type.shape
    choice = rng.random()
    if choice < 0.15:
        v.type.tensor_type.ClearField("shape")
        return f"dims: {v.name} shape removed"
    if not shape.dim or choice < 0.3:
        d = shape.dim.add()
        d.dim_value = rng.choice([1, 2, 0])
        return f"dims: {v.name} rank +1"
    d = rng.choice(list(shape.dim))
    if choice < 0.45:
        d.dim_param = "sym"
        return f"dims: {v.name} dim symbolic"
    value = _pick_int(rng)
    d.dim_value = max(min(value, 2**63 - 1), -(2**63))
    return f"dims: {v.name} dim={value}"


def mut_elem_type(model: ModelProto, rng):
    """A graph input's element type, or a Cast target: another type, or not a type at all."""
    candidates = [i for i in model.graph.input if i.type.HasField("tensor_type")]
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    codes = list(range(0, 24)) + [99, -1]
    if casts and rng.random() < 0.3:
        node = rng.choice(casts)
        for a in node.attribute:
            if a.name == "to":
                a.i = rng.choice(codes)
                return f"elem_type: Cast to={a.i}"
    if not candidates:
        return None
    v = rng.choice(candidates)
    v.type.tensor_type.elem_type = rng.choice(codes)
    return f"elem_type: {v.name}={v.type.tensor_type.elem_type}"


def _all_nodes(model: ModelProto):
    """The nodes of the graph and of every subgraph (Scan/Loop/If bodies, FlexAttention's
    score_mod), outermost first."""
    nodes, graphs = [], [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            nodes.append(node)
            for attr in node.attribute:
                graphs += [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
    return nodes


def mut_attribute(model: ModelProto, rng):
    """An attribute of a node (in a subgraph too): interesting values, another list length,
    another type, deleted, or a new unknown one."""
    nodes = _all_nodes(model)
    if not nodes:
        return None
    node = rng.choice(nodes)
    if not node.attribute or rng.random() < 0.1:
        name = rng.choice(
            [
                "axis",
                "group",
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "perm",
                "keepdims",
                "epsilon",
                "alpha",
                "to",
                "mode",
                "allowzero",
                "output_padding",
                "k",
                "offset_group",
                "align_corners",
                "num_scan_inputs",
                "scan_input_axes",
                "scan_output_directions",
                "storage_order",
                "saturate",
                "block_size",
                "bogus",
            ]
        )
        kind = rng.choice(["int", "ints", "float"])
        value = {
            "int": _pick_int(rng),
            "ints": [_pick_int(rng) for _ in range(rng.randint(0, 5))],
            "float": rng.choice(INTERESTING_FLOATS),
        }[kind]
        attr_type = {"int": AttributeProto.INT, "ints": AttributeProto.INTS, "float": AttributeProto.FLOAT}[kind]
        node.attribute.append(helper.make_attribute(name, value, attr_type=attr_type))
        return f"attr: {node.op_type}.{name} added={value!r}"[:200]
    attr = rng.choice(list(node.attribute))
    choice = rng.random()
    if choice < 0.1:
        node.attribute.remove(attr)
        return f"attr: {node.op_type}.{attr.name} deleted"
    if choice < 0.2:  # same name, another type
        new_type = rng.choice(
            [
                AttributeProto.INT,
                AttributeProto.FLOAT,
                AttributeProto.INTS,
                AttributeProto.STRING,
                AttributeProto.FLOATS,
                AttributeProto.TENSOR,
                0,
            ]
        )
        attr.type = new_type
        return f"attr: {node.op_type}.{attr.name} type={new_type}"
    if attr.type == AttributeProto.INT:
        attr.i = max(min(_pick_int(rng), 2**63 - 1), -(2**63))
        return f"attr: {node.op_type}.{attr.name}={attr.i}"
    if attr.type == AttributeProto.FLOAT:
        attr.f = rng.choice(INTERESTING_FLOATS)
        return f"attr: {node.op_type}.{attr.name}={attr.f}"
    if attr.type == AttributeProto.INTS:
        values = list(attr.ints)
        if rng.random() < 0.4 or not values:
            values = [_pick_int(rng) for _ in range(rng.choice([0, 1, 2, 3, 4, 5, 8]))]
        else:
            values[rng.randrange(len(values))] = _pick_int(rng)
        del attr.ints[:]
        attr.ints.extend(max(min(v, 2**63 - 1), -(2**63)) for v in values)
        return f"attr: {node.op_type}.{attr.name}={values}"[:200]
    if attr.type == AttributeProto.FLOATS:
        del attr.floats[:]
        attr.floats.extend(rng.choice(INTERESTING_FLOATS) for _ in range(rng.randint(0, 4)))
        return f"attr: {node.op_type}.{attr.name} floats"
    if attr.type == AttributeProto.STRING:
        attr.s = rng.choice(
            [
                b"",
                b"xyz",
                b"\xff\xfe",
                b"ij,jk->ik",
                b"...,->",
                b"i,i,i,i->",
                b"constant",
                b"reflect",
                b"tanh",
                b"linear",
                b"cubic",
                "\u00e9".encode(),
            ]
        )
        return f"attr: {node.op_type}.{attr.name}={attr.s!r}"
    if attr.type == AttributeProto.TENSOR:
        _mutate_tensor(attr.t, rng)
        return f"attr: {node.op_type}.{attr.name} tensor"
    return None


def _mutate_tensor(tensor, rng):
    choice = rng.random()
    if choice < 0.35:  # dims that no longer match the data
        del tensor.dims[:]
        tensor.dims.extend(rng.choice(OVERFLOW_SHAPES + [[0], [1], [2, 2], [], [3, 0, 5]]))
    elif choice < 0.55:  # data that no longer matches the dims
        if tensor.raw_data:
            data = tensor.raw_data
            tensor.raw_data = data[: rng.randrange(len(data) + 1)] if rng.random() < 0.7 else data + data[:7]
        else:
            for field in ("float_data", "int64_data", "int32_data", "double_data"):
                values = getattr(tensor, field)
                if len(values):
                    del values[rng.randrange(len(values)) :]
    elif choice < 0.75:
        tensor.data_type = rng.choice(list(range(0, 24)) + [77])
    else:  # values that break shape arithmetic (for shape-like int tensors)
        array = np.array(rng.choice(OVERFLOW_SHAPES + [[2**61 + 3, 2, 4]]), dtype=np.int64)
        new = numpy_helper.from_array(array, tensor.name)
        tensor.CopyFrom(new)


def mut_initializer(model: ModelProto, rng):
    """An initializer: dims, data length, data type or overflowing int64 values."""
    inits = list(model.graph.initializer)
    if not inits:
        return None
    prefer_ints = [t for t in inits if t.data_type == TensorProto.INT64]
    t = rng.choice(prefer_ints) if prefer_ints and rng.random() < 0.5 else rng.choice(inits)
    _mutate_tensor(t, rng)
    return f"initializer: {t.name}"


QUANTIZED_OPS = {
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 4, 5, 6, 7, 8),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "ConvInteger": (2, 3),
    "MatMulInteger": (2, 3),
}
_HOSTILE_SCALES = [0.0, -0.0, -1.0, 1e-45, 1e-38, 1e38, 3.4e38, float("inf"), float("-inf"), float("nan")]


def mut_quant_params(model: ModelProto, rng):
    """A scale, zero point or bias of a quantized op: zero, negative, subnormal, huge, inf or
    NaN scales; zero points at and past their type's range, of another type than their data,
    or of another length than the channels; a scalar made a list and back."""
    by_name = {t.name: t for t in model.graph.initializer if t.data_location != TensorProto.EXTERNAL}
    names = sorted(
        {
            node.input[i]
            for node in _all_nodes(model)
            for i in QUANTIZED_OPS.get(node.op_type, ())
            if i < len(node.input) and node.input[i] in by_name
        }
    )
    if not names:
        return None
    t = by_name[rng.choice(names)]
    value = numpy_helper.to_array(t)
    choice = rng.random()
    if choice < 0.4 and value.dtype.kind == "f":
        new = np.full(value.shape, rng.choice(_HOSTILE_SCALES), value.dtype)
        if value.size > 1 and rng.random() < 0.5:  # one channel's only
            new = value.copy()
            new.flat[rng.randrange(value.size)] = rng.choice(_HOSTILE_SCALES)
    elif choice < 0.6 and value.dtype.kind in "iu":
        info = np.iinfo(value.dtype)
        new = np.full(value.shape, rng.choice([info.min, info.max, 0, 1, -1 % (info.max + 1)]), value.dtype)
    elif choice < 0.75:  # another integer type (int8 zero point for uint8 data, int32, ...)
        new = value.astype(rng.choice([np.int8, np.uint8, np.int32, np.int16, np.float32, np.int64]))
    elif choice < 0.9:  # another length: per-channel against the wrong axis, or empty
        length = rng.choice([0, 1, 2, 5, 64]) if value.size > 1 else rng.choice([0, 2, 3, 7])
        new = np.resize(value.reshape(-1), length).astype(value.dtype)
    else:  # a rank it should not have
        new = value.reshape((1,) * rng.choice([1, 2, 4]) + value.shape)
    t.CopyFrom(numpy_helper.from_array(new, t.name))
    return f"quant_params: {t.name} {value.dtype}{list(value.shape)} -> {new.dtype}{list(new.shape)}"


def mut_edges(model: ModelProto, rng):
    """The graph's wiring: an input renamed, emptied, pointed elsewhere; a node removed,
    duplicated, or the node order shuffled (valid ONNX); a cycle."""
    g = model.graph
    nodes = list(g.node)
    if not nodes:
        return None
    choice = rng.random()
    node = rng.choice(nodes)
    if choice < 0.3 and node.input:
        i = rng.randrange(len(node.input))
        target = rng.choice(_all_tensor_names(model) + ["", "nowhere", node.output[0] if node.output else "x"])
        node.input[i] = target
        return f"edges: {node.op_type} input {i} -> {target!r}"
    if choice < 0.4:
        node.input.append(rng.choice(_all_tensor_names(model) + [""]))
        return f"edges: {node.op_type} extra input"
    if choice < 0.5 and node.input:
        del node.input[-1]
        return f"edges: {node.op_type} input dropped"
    if choice < 0.6:
        g.node.remove(node)
        return f"edges: {node.op_type} removed"
    if choice < 0.7:
        copy = g.node.add()
        copy.CopyFrom(node)
        return f"edges: {node.op_type} duplicated"
    if choice < 0.85:
        shuffled = list(g.node)
        rng.shuffle(shuffled)
        del g.node[:]
        g.node.extend(shuffled)
        return "edges: node order shuffled"
    if node.output and len(nodes) > 1:  # a cycle: an earlier node reads a later output
        first = nodes[0]
        last = nodes[-1]
        if first.input and last.output:
            first.input[0] = last.output[0]
            return "edges: cycle"
    node.output[0] = rng.choice(_all_tensor_names(model)) if node.output else "y"
    return f"edges: {node.op_type} output renamed"


def mut_opset(model: ModelProto, rng):
    """The opset version (or its domain), or the IR version."""
    choice = rng.random()
    if choice < 0.7 and model.opset_import:
        model.opset_import[0].version = rng.choice([0, 1, 6, 7, 9, 11, 12, 13, 15, 17, 18, 19, 21, 23, 99, 10**6])
        return f"opset: {model.opset_import[0].version}"
    if choice < 0.85:
        model.opset_import[0].domain = rng.choice(["ai.onnx.ml", "com.microsoft", "bogus"])
        return f"opset: domain {model.opset_import[0].domain}"
    model.ir_version = rng.choice([0, 1, 3, 4, 7, 8, 9, 10, 11, 100])
    return f"opset: ir_version {model.ir_version}"


HOSTILE_LOCATIONS = [
    "weights.bin",
    "../weights.bin",
    "../../../../etc/passwd",
    "/etc/passwd",
    "/dev/zero",
    "/proc/self/mem",
    "",
    ".",
    "sub/../../x",
    "nul\x00byte",
    "C:\\windows\\win.ini",
    "~/.ssh/id_rsa",
    "/dev/stdin",
    "a" * 300,
]


def mut_external_data(model: ModelProto, rng):
    """An initializer moved to external data at a hostile location, offset or length."""
    inits = list(model.graph.initializer)
    if not inits:
        return None
    t = rng.choice(inits)
    t.ClearField("raw_data")
    for field in ("float_data", "int64_data", "int32_data", "double_data"):
        t.ClearField(field)
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    entries = [("location", rng.choice(HOSTILE_LOCATIONS))]
    if rng.random() < 0.5:
        entries.append(("offset", str(rng.choice([0, 1, -1, 2**63, 2**40]))))
    if rng.random() < 0.5:
        entries.append(("length", str(rng.choice([0, 4, -4, 2**62, 10**12]))))
    for key, value in entries:
        e = t.external_data.add()
        e.key, e.value = key, value
    return f"external_data: {t.name} {entries}"[:200]


def mut_bytes(data: bytes, rng) -> bytes:
    """Havoc on the serialized protobuf: flipped, inserted or removed bytes."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not data:
            break
        choice = rng.random()
        pos = rng.randrange(len(data))
        if choice < 0.6:
            data[pos] ^= 1 << rng.randrange(8)
        elif choice < 0.8:
            data[pos:pos] = bytes([rng.randrange(256)])
        else:
            del data[pos : pos + rng.randint(1, 16)]
    return bytes(data)


MUTATORS = {
    "dims": mut_dims,
    "elem_type": mut_elem_type,
    "attribute": mut_attribute,
    "initializer": mut_initializer,
    "edges": mut_edges,
    "opset": mut_opset,
    "external_data": mut_external_data,
    "quant_params": mut_quant_params,
}


def mutate(seed: ModelProto, rng: random.Random):
    """(serialized bytes, mutator name, notes): one to three structural mutations, sometimes
    followed by byte havoc. The name is the first mutator's (for per-mutator counts)."""
    model = ModelProto()
    model.CopyFrom(seed)
    notes = []
    first = None
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        name = rng.choice(list(MUTATORS))
        try:
            note = MUTATORS[name](model, rng)
        except (ValueError, TypeError):  # the mutation itself was not expressible: skip it
            note = None
        if note:
            first = first or name
            notes.append(note)
    data = model.SerializeToString()
    if first is None or rng.random() < 0.08:
        data = mut_bytes(data, rng)
        first = first or "bytes"
        notes.append("bytes: havoc")
    return data, first, notes
