"""ONNX frontend: an ONNX graph becomes an aiov Model built through the opset builders, so
every node's types and shapes come from the native op registry."""

from __future__ import annotations

import functools
import os

import numpy as np

from .. import _core
from .. import opset as ops
from .._errors import InputError
from .._graph import Node, Output, as_output
from .._model import Model
from .._types import Type
from . import _onnx_functions as _functions
from . import _onnx_proto as _proto

_CONVERTERS = {}
# Subgraphs inside subgraphs: each level is a body compiled and run by the one around it.
_MAX_SUBGRAPH_DEPTH = 16


def converter(*op_types):
    def register(fn):
        for op in op_types:
            _CONVERTERS[op] = fn
        return fn

    return register


def supported_ops() -> list:
    return sorted(_CONVERTERS)


def _one_to_one(desc, since, until):
    """Converter for an ONNX op the registry maps onto `desc` one to one: inputs in order,
    attributes by their ONNX spelling (absent ones take the engine's defaults)."""
    by_onnx = {a["onnx"]: a for a in desc["attrs"] if a["onnx"] != "-"}

    def convert(ctx):
        if until and ctx.opset > until:
            ctx.fail(f"aiov maps this op for ONNX opsets {since} to {until}, the model imports opset {ctx.opset}")
        inputs = list(ctx.inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        if any(i is None for i in inputs):
            ctx.fail("an omitted input in the middle is not supported")
        attrs = {}
        for key, value in ctx.attrs.items():
            spec = by_onnx.get(key)
            if spec is None:
                ctx.fail(f"attribute '{key}' is not supported (aiov reads: {', '.join(by_onnx) or 'none'})")
            attrs[spec["name"]] = value.decode() if isinstance(value, bytes) else value
        return ops._make(desc["type"], inputs, attrs, ctx.node.name)

    return convert


def _register_one_to_one():
    from .. import _core

    for desc in _core.op_schema():
        for name, since, until in desc["onnx"]:
            if name not in _CONVERTERS:  # a hand-written converter wins
                _CONVERTERS[name] = _one_to_one(desc, since, until)


class _Context:
    """Per-node view: inputs as ports (None for omitted optional inputs), attributes, opset."""

    def __init__(self, node, values, opset, depth=0):
        self.node = node
        self.opset = opset
        self.scope = values  # every name visible here: subgraphs capture from it
        self.depth = depth  # subgraph nesting level of the node
        self.inputs = [values[name] if name else None for name in node.input]
        self.attrs = {a.name: _proto.attribute_value(a) for a in node.attribute}

    dequantized: dict = {}  # DequantizeLinear nodes of the graph by output name

    def attr(self, name, default=None):
        value = self.attrs.get(name, default)
        if isinstance(value, bytes):
            value = value.decode()
        return value

    def fail(self, what: str):
        raise InputError(f"ONNX node {self.node.op_type} '{self.node.name or self.node.output[0]}': {what}")

    def const_value(self, index: int):
        """The value of a constant input (e.g. a Reshape target), or None."""
        port = self.inputs[index] if index < len(self.inputs) else None
        if port is None:
            return None
        node = port.get_node()
        if node.get_type_name() != "Constant":
            return None
        return node.get_data()


def _onnx_dtype(elem_type: int):
    try:
        return _proto.tensor_dtype(elem_type)
    except KeyError:
        raise InputError(f"ONNX element type {elem_type} is not supported") from None


def _value_type(type_proto, name, what):
    """(kind, element type, dims or None) of an ONNX value type: a tensor, a sequence of
    tensors, or an optional of either (aiov's value kinds); anything else is refused."""
    kind = type_proto.WhichOneof("value")
    prefix = ""
    if kind == "optional_type":
        type_proto = type_proto.optional_type.elem_type
        kind, prefix = type_proto.WhichOneof("value"), "optional_"
    if kind == "sequence_type":
        inner = type_proto.sequence_type.elem_type
        if inner.WhichOneof("value") not in (None, "tensor_type"):
            raise InputError(f"ONNX graph {what} '{name}' is a sequence of non-tensors; aiov's sequences hold tensors")
        return prefix + "sequence", inner.tensor_type, inner.WhichOneof("value") is not None
    if kind in (None, "tensor_type"):
        return prefix + "tensor", type_proto.tensor_type, kind is not None
    readable = {"map_type": "a map", "sparse_tensor_type": "a sparse tensor"}.get(kind, kind)
    raise InputError(
        f"ONNX graph {what} '{name}' is {readable}; aiov supports tensors, sequences of tensors and optionals"
    )


def _check_tensor_value(info, what):
    """Graph inputs and outputs are tensors, sequences of tensors or optionals of either."""
    _value_type(info.type, info.name, what)


def read_onnx(model, weights=None, weights_dir=None) -> Model:
    """An ONNX model from a path or from bytes. External data is read from `weights_dir`
    (default: the model file's directory); bytes carry no directory, so a model given as bytes
    with external data needs `weights_dir`."""
    # Not ``import onnx`` on the way of a well-formed model: it holds the GIL for seconds
    # (see _onnx_proto); only external data and the diagnosis of a failing node import it.
    try:
        _proto.proto_module()
    except ImportError:  # pragma: no cover - onnx is a dependency
        raise InputError("reading ONNX models needs the 'onnx' package") from None
    try:
        if isinstance(model, (bytes, bytearray, memoryview)):
            base_dir = None
        else:
            base_dir = os.path.dirname(os.path.abspath(os.fspath(model)))
        proto = _proto.load_model(model)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read the ONNX model: {type(exc).__name__}: {exc}") from None
    if weights_dir is not None:
        base_dir = os.fspath(weights_dir)
        if not os.path.isdir(base_dir):
            raise InputError(f"weights_dir {base_dir!r} is not a directory")
    _load_external_data(proto, base_dir, from_bytes=isinstance(model, (bytes, bytearray, memoryview)))
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
    unsupported = {}
    for n in _all_nodes(graph):
        if not _has_converter(n) and not _functions.expandable(n, opset):
            unsupported.setdefault(f"{n.domain + '.' if n.domain else ''}{n.op_type}", _node_label(n))
    if unsupported:
        listed = ", ".join(f"{op} (node '{node}')" for op, node in sorted(unsupported.items()))
        raise InputError(f"the ONNX model uses ops aiov does not support: {listed}")

    values = {}
    for init in graph.initializer:
        if init.name in values:
            raise InputError(f"ONNX initializer '{init.name}' is defined twice")
        values[init.name] = _initializer(init)
    params = []
    seen_inputs = set()
    for inp in graph.input:
        if inp.name in seen_inputs:
            raise InputError(f"ONNX graph input '{inp.name}' is listed twice")
        seen_inputs.add(inp.name)
        if inp.name in values:
            continue  # an initializer also listed as an input (IR version < 4)
        _check_tensor_value(inp, "input")
        params.append(_parameter(inp))
        values[inp.name] = params[-1].output(0)
    _convert_nodes(graph, values, opset, depth=0)
    results = []
    for out in graph.output:
        _check_tensor_value(out, "output")
        if out.name not in values:
            raise InputError(f"ONNX graph output '{out.name}' is not produced by any node, initializer or input")
        port = values[out.name]
        if port.get_node().get_type_name() in ("Parameter", "Constant") or any(port == r for r in results):
            port = as_output(_identity_of(port))  # a distinct value to name
        port.get_tensor().add_names({out.name})
        results.append(port)
    return Model(results, params, graph.name or "onnx_model")


def _convert_nodes(graph, values: dict, opset: int, depth: int):
    """Converts the nodes of `graph` (the model's, or a subgraph's at nesting `depth`) in
    dependency order, adding each output to `values` (name -> port, the enclosing scopes'
    names included)."""
    # Which node made each DequantizeLinear output: a MatMul of two reads them as one
    # integer product (_matmul).
    dequantized = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear" and n.output}
    for node in _sorted_nodes(graph, set(values)):
        try:
            ctx = _Context(node, values, opset, depth)
            ctx.dequantized = dequantized
            if opset < 7:
                _legacy_attributes(ctx)
            if not _has_converter(node):  # an op defined by a function: its body writes the outputs
                _convert_function(node, values, opset, depth)
                continue
            outs = _CONVERTERS[node.op_type](ctx)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            outs = [as_output(port) for port in outs]
        except Exception as exc:
            # A node that breaks ONNX's schema (input count, a required input or attribute, an
            # attribute's type) is named for that; checked only on failure, since the schema
            # needs the whole onnx package.
            _check_node(node, opset)
            if isinstance(exc, InputError):
                raise
            # A converter met a case it does not check: still name the node.
            given = ", ".join(_describe_input(values, name) for name in node.input)
            raise InputError(
                f"ONNX node {node.op_type} '{_node_label(node)}' (inputs: {given or 'none'}) cannot be "
                f"converted: {type(exc).__name__}: {exc}"
            ) from exc
        wanted = [name for name in node.output if name]
        if len(outs) < len(node.output) and any(node.output[len(outs) :]):
            raise InputError(
                f"ONNX node {node.op_type} '{_node_label(node)}': {len(node.output)} outputs are used "
                f"({', '.join(wanted)}) but aiov produces {len(outs)}"
            )
        for name, port in zip(node.output, outs):
            if name:
                values[name] = port


def _has_converter(node) -> bool:
    return node.op_type in _CONVERTERS and node.domain in ("", "ai.onnx")


class _FunctionBody:
    """A function body's nodes, renamed into the calling graph, as _convert_nodes reads a graph."""

    def __init__(self, nodes):
        self.node = nodes


def _convert_function(node, values: dict, opset: int, depth: int):
    """Converts the body ONNX's schema gives an op aiov has no converter for, in its place."""
    inputs = [values[name] if name else None for name in node.input]
    nodes, body_opset = _functions.expand(node, inputs, opset, _node_label(node))
    _convert_nodes(_FunctionBody(nodes), values, body_opset, depth)


def _initializer(init):
    try:
        array = _proto.to_array(init)
    except Exception as exc:
        raise InputError(f"ONNX initializer '{init.name}' cannot be read: {type(exc).__name__}: {exc}") from None
    try:
        return as_output(ops.constant(array, name=init.name))
    except InputError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"ONNX initializer '{init.name}' ({_type_name(init.data_type)}, dims "
            f"{list(init.dims)}) is not supported: {exc}"
        ) from None


def _subgraphs(node) -> list:
    """The GRAPH attributes of a node (If's branches, Loop's and Scan's body)."""
    found = []
    for a in node.attribute:
        if a.type == 5:  # GRAPH
            found.append(a.g)
        elif a.type == 10:  # GRAPHS
            found.extend(a.graphs)
    return found


def _all_nodes(graph, depth=0):
    """The nodes of `graph` and of every subgraph in it."""
    if depth > _MAX_SUBGRAPH_DEPTH:
        raise InputError(f"the ONNX model nests subgraphs more than {_MAX_SUBGRAPH_DEPTH} deep")
    for node in graph.node:
        yield node
        for g in _subgraphs(node):
            yield from _all_nodes(g, depth + 1)


def _free_names(graph) -> list:
    """Names a graph (its subgraphs included) reads but does not define: the values it
    captures from the enclosing scopes, in order of first use."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        defined.update(node.output)
    free = []
    for node in graph.node:
        for name in _reads(node):
            if name and name not in defined and name not in free:
                free.append(name)
    for out in graph.output:
        if out.name not in defined and out.name not in free:
            free.append(out.name)
    return free


def _reads(node) -> list:
    """The names a node reads: its inputs, and what its subgraphs capture."""
    names = list(node.input)
    for g in _subgraphs(node):
        names.extend(_free_names(g))
    return names


def _node_label(node) -> str:
    return node.name or (node.output[0] if len(node.output) else "") or "(unnamed)"


def _describe_input(values, name) -> str:
    if not name:
        return "(omitted)"
    port = values.get(name)
    if port is None:
        return f"'{name}'"
    return f"'{name}' {port.get_element_type().get_type_name()}{port.get_partial_shape()}"


def _parameter(inp):
    if inp.type.WhichOneof("value") is None:
        raise InputError(f"ONNX graph input '{inp.name}' declares no type")
    kind, ttype, _ = _value_type(inp.type, inp.name, "input")
    try:
        dtype = _onnx_dtype(ttype.elem_type)
    except Exception:
        raise InputError(
            f"ONNX graph input '{inp.name}': element type {ttype.elem_type} is not a known ONNX tensor type"
        ) from None
    dims = None
    if ttype.HasField("shape"):
        dims = []
        for i, d in enumerate(ttype.shape.dim):
            if d.HasField("dim_value"):
                if d.dim_value < 0:
                    raise InputError(
                        f"ONNX graph input '{inp.name}': dimension {i} is {d.dim_value}; expected "
                        f"a size >= 0 or a symbolic dimension"
                    )
                dims.append(d.dim_value)
            else:
                dims.append(-1)
    if kind != "tensor" and not ttype.HasField("shape"):
        dims = None
    try:
        return ops.parameter(dims, dtype, name=inp.name, kind=kind)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"ONNX graph input '{inp.name}' ({_type_name(ttype.elem_type)}, dims {dims}) is not supported: {exc}"
        ) from None


def _sorted_nodes(graph, available: set) -> list:
    """The nodes in an order where every input is produced first (ONNX allows any order).
    Missing inputs, tensors produced twice and cycles are errors naming the nodes."""
    nodes = list(graph.node)
    producer = {}
    for i, node in enumerate(nodes):
        for name in node.output:
            if not name:
                continue
            if name in available:
                raise InputError(
                    f"ONNX node {node.op_type} '{_node_label(node)}' produces '{name}', which is "
                    f"already a graph input or initializer"
                )
            if name in producer:
                other = nodes[producer[name]]
                raise InputError(
                    f"ONNX tensor '{name}' is produced twice: by {other.op_type} "
                    f"'{_node_label(other)}' and by {node.op_type} '{_node_label(node)}'"
                )
            producer[name] = i
    waiting = [0] * len(nodes)  # inputs not produced yet, per node
    consumers = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for name in _reads(node):
            if not name or name in available:
                continue
            if name not in producer:
                raise InputError(
                    f"ONNX node {node.op_type} '{_node_label(node)}': input '{name}' is not produced "
                    f"by any node, initializer or graph input"
                )
            waiting[i] += 1
            consumers[producer[name]].append(i)
    ready = [i for i in range(len(nodes)) if waiting[i] == 0]
    ready.reverse()  # pop() from the end keeps the file order among ready nodes
    order = []
    while ready:
        i = ready.pop()
        order.append(nodes[i])
        newly = []
        for j in consumers[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                newly.append(j)
        ready.extend(sorted(newly, reverse=True))
    if len(order) != len(nodes):
        stuck = [nodes[i] for i in range(len(nodes)) if waiting[i] > 0]
        listed = ", ".join(f"{n.op_type} '{_node_label(n)}'" for n in stuck[:8])
        more = f" and {len(stuck) - 8} more" if len(stuck) > 8 else ""
        raise InputError(f"the ONNX graph has a cycle: these nodes wait on each other's outputs: {listed}{more}")
    return order


def _check_node(node, opset: int):
    """Input count, required inputs and attribute types against the ONNX schema, so the
    converters see what they expect (instead of failing with a bare IndexError)."""
    from onnx import defs

    try:
        schema = defs.get_schema(node.op_type, opset, "")
    except Exception:
        return  # no schema at this opset: the converter decides
    label = f"ONNX node {node.op_type} '{_node_label(node)}'"
    count = len(node.input)
    if not schema.min_input <= count <= schema.max_input:
        expected = (
            f"{schema.min_input}"
            if schema.min_input == schema.max_input
            else f"{schema.min_input} to {schema.max_input}"
            if schema.max_input < 2**30
            else f"at least {schema.min_input}"
        )
        raise InputError(f"{label}: expected {expected} input(s) at opset {opset}, got {count}")
    formal = schema.inputs
    for i, name in enumerate(node.input):
        if name or not formal:
            continue
        param = formal[min(i, len(formal) - 1)]
        if param.option != defs.OpSchema.FormalParameterOption.Optional:
            raise InputError(f"{label}: input {i} ('{param.name}') is required but was left empty")
    for attr in node.attribute:
        spec = schema.attributes.get(attr.name)
        if spec is None:
            continue
        if attr.type != spec.type:
            raise InputError(
                f"{label}: attribute '{attr.name}' must be {spec.type.name}, got {_attr_type_name(attr.type)}"
            )
    for name, spec in schema.attributes.items():
        if spec.required and not any(a.name == name for a in node.attribute):
            raise InputError(f"{label}: the required attribute '{name}' is missing")


def _type_name(code: int) -> str:
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(code)
    except ValueError:
        return f"data type {code}"


def _attr_type_name(code: int) -> str:
    from onnx import AttributeProto

    try:
        return AttributeProto.AttributeType.Name(code)
    except ValueError:
        return f"type {code}"


def _external_tensors(graph):
    """Every tensor of `graph` (initializers, attribute values, subgraphs) stored outside."""
    external = _proto.EXTERNAL
    found = [t for t in graph.initializer if t.data_location == external]
    for sparse in graph.sparse_initializer:
        found += [t for t in (sparse.values, sparse.indices) if t.data_location == external]
    for node in graph.node:
        for attr in node.attribute:
            tensors = ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
            found += [t for t in tensors if t.data_location == external]
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                found += _external_tensors(sub)
    return found


def _load_external_data(proto, base_dir, from_bytes: bool):
    """Reads external tensor data from files inside `base_dir` only: no absolute paths, no
    '..', no symbolic links, regular files only (an uploaded model must not read whatever
    the process can)."""
    tensors = _external_tensors(proto.graph)
    if not tensors:
        return
    first = tensors[0]
    location = next((e.value for e in first.external_data if e.key == "location"), "")
    if base_dir is None:
        raise InputError(
            f"ONNX tensor '{first.name}' keeps its data in the external file {location!r}, but the "
            f"model was given as bytes, which carry no directory: pass the directory of its "
            f"external data, read_model(model_bytes, weights_dir=...) (aiov's keyword)"
            if from_bytes
            else f"ONNX tensor '{first.name}' has external data but no base directory"
        )
    root = os.path.realpath(base_dir)
    for tensor in tensors:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        _check_location(tensor.name, location, root)
    try:
        from onnx import external_data_helper

        external_data_helper.load_external_data_for_model(proto, base_dir)
    except Exception as exc:
        raise InputError(
            f"cannot read the ONNX model's external data from {base_dir!r}: {type(exc).__name__}: {exc}"
        ) from None


def _check_location(tensor_name: str, location: str, root: str):
    import stat

    what = f"ONNX tensor '{tensor_name}': external data location {location!r}"
    if not isinstance(location, str):  # protobuf hands out bytes for text that is not UTF-8
        raise InputError(f"{what} is not valid UTF-8 text")
    if not location:
        raise InputError(f"{what}: no location is given")
    if (
        "\0" in location
        or os.path.isabs(location)
        or location.startswith(("/", "\\"))
        or (len(location) > 1 and location[1] == ":")
    ):
        raise InputError(f"{what} is absolute; expected a path relative to the weights directory")
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        raise InputError(f"{what} leaves the weights directory ('..' is refused)")
    path = os.path.join(root, *parts)
    if os.path.realpath(path) != os.path.normpath(path):
        raise InputError(f"{what} goes through a symbolic link; links are refused")
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise InputError(f"{what}: cannot open {path!r}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{what} is not a regular file")


# ---- converters ---------------------------------------------------------------------------


@converter("Pow")
def _pow(ctx):
    base, exponent = ctx.inputs
    if exponent.get_element_type() != base.get_element_type():
        # ONNX lets the exponent have its own type; the result has the base's.
        exponent = ops.convert(exponent, base.get_element_type())
    return ops.power(base, exponent)


@converter("Div")
def _div(ctx):
    a, b = ctx.inputs
    if a.get_element_type().is_integral():
        # ONNX integer division truncates toward zero; the engine's Divide floors like Python.
        return ops._make("Divide", [a, b], {"auto_broadcast": "numpy", "pythondiv": False})
    return ops.divide(a, b)


def _identity_of(port, name=None):
    """A new value equal to `port` (a tensor, sequence or optional)."""
    if port.get_value_kind() != "tensor":
        return ops._make("Identity", [port], {}, name)
    return ops.convert(port, port.get_element_type(), name)


@converter("Identity", "Dropout")
def _identity(ctx):
    x = ctx.inputs[0]
    if ctx.node.op_type == "Identity":
        return _identity_of(x)
    if ctx.node.op_type == "Dropout" and _dropout_trains(ctx):
        return _training_dropout(ctx)
    out = ops.convert(x, x.get_element_type())
    if ctx.node.op_type == "Dropout" and len(ctx.node.output) > 1:
        # Inference: nothing is dropped, the mask is all true.
        return [out, ops.broadcast(ops.constant(np.array(True)), ops.shape_of(x))]
    return out


def _training_dropout(ctx):
    """Dropout in training mode (opset 12+): each element kept when a uniform draw is at least
    `ratio`, the kept ones scaled by 1 / (1 - ratio); seeded by the node's seed. A training
    flag known only at run time picks between this and the input."""
    x = ctx.inputs[0]
    f32 = Type.f32
    if len(ctx.inputs) > 1 and ctx.inputs[1] is not None:
        ratio = _as_f32(ctx.inputs[1])
    else:
        ratio = ops.constant(np.array(0.5, np.float32))
    attrs = dict(_seed_attrs(ctx), distribution="uniform", a=0.0, b=1.0, output_type="f32")
    keep = ops.greater_equal(ops._make("aiov.Random", [x], attrs, ctx.node.name), ratio)
    scale = ops.divide(
        ops.constant(np.array(1, np.float32)), ops.subtract(ops.constant(np.array(1, np.float32)), ratio)
    )
    kept = ops.multiply(ops.convert(keep, f32), scale)
    y = ops.multiply(x, ops.convert(kept, x.get_element_type()))
    if ctx.const_value(2) is None:  # training_mode is a run-time input
        training = ops.convert(ctx.inputs[2], Type.boolean)
        y = ops.select(training, y, x)
        keep = ops.logical_or(keep, ops.logical_not(training))
    return [y, keep] if len(ctx.node.output) > 1 else y


def _dropout_trains(ctx):
    """Whether a Dropout really drops: training_mode (opset 12+) on and a ratio that is not 0."""
    if ctx.opset < 12 or len(ctx.inputs) < 3 or ctx.inputs[2] is None:
        return False
    training = ctx.const_value(2)
    if training is not None and not np.asarray(training).any():
        return False
    ratio = ctx.const_value(1) if len(ctx.inputs) > 1 and ctx.inputs[1] is not None else np.float32(0.5)
    return ratio is None or bool(np.asarray(ratio).any())


@converter("Cast")
def _cast(ctx):
    to = ctx.attr("to")
    if isinstance(to, str):  # opsets 1-5 name the type ("FLOAT")
        from onnx import TensorProto

        try:
            to = TensorProto.DataType.Value(to.upper())
        except ValueError:
            ctx.fail(f"'to' names no ONNX element type: {to!r}")
    return _cast_to(ctx, Type(_onnx_dtype(to)))


def _cast_to(ctx, to):
    """Cast and CastLike: saturate (opset 19) is how values too large for an 8-bit float
    overflow; round_mode (opset 24) how f8e8m0 rounds."""
    attrs = {"destination_type": to.get_type_name()}
    if ctx.opset >= 19:
        attrs["saturate"] = bool(ctx.attr("saturate", 1))
    if ctx.opset >= 24:
        attrs["round_mode"] = ctx.attr("round_mode", "up")
    return ops._make("Convert", [ctx.inputs[0]], attrs)


@converter("BitCast")
def _bit_cast(ctx):
    return ops._make(
        "BitCast", [ctx.inputs[0]], {"destination_type": Type(_onnx_dtype(ctx.attr("to"))).get_type_name()}
    )


@converter("CastLike")
def _cast_like(ctx):
    return _cast_to(ctx, ctx.inputs[1].get_element_type())


@converter("Mod")
def _mod(ctx):
    # fmod=0: the remainder takes the divisor's sign (Python's %; floats too from opset 28), fmod=1: the
    # dividend's (C fmod).
    if ctx.attr("fmod", 0):
        return ops.mod(ctx.inputs[0], ctx.inputs[1])
    return ops.floor_mod(ctx.inputs[0], ctx.inputs[1])


@converter("BitShift")
def _bit_shift(ctx):
    direction = ctx.attr("direction")
    if direction not in ("LEFT", "RIGHT"):
        ctx.fail(f"direction must be LEFT or RIGHT, got {direction!r}")
    shift = ops.bitwise_left_shift if direction == "LEFT" else ops.bitwise_right_shift
    return shift(ctx.inputs[0], ctx.inputs[1])


@converter("Reshape")
def _reshape(ctx):
    # ONNX: 0 copies the input dimension unless allowzero=1. Opsets 1-4 give the shape as an attribute.
    target = ctx.attr("shape") if ctx.opset < 5 else ctx.inputs[1]
    if target is None:
        ctx.fail("the shape attribute is required before opset 5")
    return ops.reshape(ctx.inputs[0], target, special_zero=not ctx.attr("allowzero", 0))


@converter("Concat")
def _concat(ctx):
    # Opsets 1-3 let the axis default to 1.
    axis = ctx.attr("axis", 1 if ctx.opset < 4 else None)
    if axis is None:
        ctx.fail("the axis attribute is required")
    return ops.concat([i for i in ctx.inputs if i is not None], axis)


def _over_trailing_axes(ctx, build):
    """Softmax, LogSoftmax and Hardmax: from opset 13 over one axis; before, over all dims from
    `axis` (default 1) on, computed on the input flattened to 2-D at `axis`."""
    x = ctx.inputs[0]
    if ctx.opset >= 13:
        return build(x, ctx.attr("axis", -1))
    rank = _rank(ctx, x)
    axis = ctx.attr("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if axis == rank - 1:
        return build(x, axis)
    return _unflatten_like(build(_flatten_2d(x, axis), 1), x)


@converter("Softmax")
def _softmax(ctx):
    return _over_trailing_axes(ctx, ops.softmax)


_ATTENTION_ATTRS = (
    "scale",
    "is_causal",
    "q_num_heads",
    "kv_num_heads",
    "softcap",
    "qk_matmul_output_mode",
    "softmax_precision",
    "left_window_size",
    "right_window_size",
)


def _omitted_as_empty(ctx):
    """The node's inputs for an engine op with optional inputs in the middle: trailing omitted
    ones dropped, the others given as empty [0] tensors, which such ops read as absent."""
    count = len(ctx.inputs)
    while count and ctx.inputs[count - 1] is None:
        count -= 1
    return [_given_or_empty(ctx, i, np.float32) for i in range(count)]


@converter("Attention")
def _attention(ctx):
    # The node gives Y, the present key and value together, and the scores only when read.
    unknown = sorted(set(ctx.attrs) - set(_ATTENTION_ATTRS))
    if unknown:
        ctx.fail(f"attribute(s) {', '.join(unknown)} are not supported")
    if ctx.attr("scale") == 0.0:
        ctx.fail("scale 0 is not supported (aiov reads 0 as the default 1/sqrt(head_size))")
    used = [i for i, name in enumerate(ctx.node.output) if name]
    outputs = 4 if 3 in used else 3 if (1 in used or 2 in used) else 1
    attrs = {key: ctx.attr(key) for key in _ATTENTION_ATTRS if key in ctx.attrs}
    attrs["is_causal"] = bool(attrs.get("is_causal", 0))
    attrs["output_count"] = outputs
    return ops._make("Attention", _omitted_as_empty(ctx), attrs, ctx.node.name).outputs()


@converter("LinearAttention", "CausalConvWithState")
def _state_carrying_mixer(ctx):
    attrs = {key: ctx.attr(key) for key in ctx.attrs}
    return ops._make(ctx.node.op_type, _omitted_as_empty(ctx), attrs, ctx.node.name).outputs()


@converter("Constant")
def _constant(ctx):
    if "value" in ctx.attrs:
        return ops.constant(_proto.to_array(ctx.attrs["value"]))
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64)):
        if key in ctx.attrs:
            return ops.constant(np.array(ctx.attrs[key], dtype=dtype))
    for key, dtype in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in ctx.attrs:
            return ops.constant(np.array(ctx.attrs[key], dtype=dtype))
    ctx.fail("only tensor, float(s) and int(s) values are supported")


def _variadic(builder):
    def convert(ctx):
        acc = ctx.inputs[0]
        for x in ctx.inputs[1:]:
            acc = builder(acc, x)
        return acc

    return convert


converter("Max")(_variadic(ops.maximum))
converter("Min")(_variadic(ops.minimum))
converter("Sum")(_variadic(ops.add))


@converter("Mean")
def _mean(ctx):
    total = _variadic(ops.add)(ctx)
    n = ops.constant(np.array(len(ctx.inputs), dtype=ctx.inputs[0].get_element_type().to_dtype()))
    return ops.divide(total, n)


@converter("Gemm")
def _gemm(ctx):
    a, b = ctx.inputs[0], ctx.inputs[1]
    c = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if alpha == 1.0 and beta == 1.0 and not ctx.attr("transA", 0):
        # A QDQ classifier (quantize_static: DQ(x) times DQ(W) with transB, per channel along
        # W's output axis, plus the DQ'd bias): an integer product.
        trans_b = bool(ctx.attr("transB", 0))
        fast = _qdq_product(ctx, 0 if trans_b else 1, functools.partial(_integer_gemm, trans_b))
        if fast is not None:
            return fast
    y = ops.matmul(a, b, bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0)))

    def scalar(value, like):  # in the operand's own type (f16 and bf16 models too)
        return ops.convert(ops.constant(np.array(value, np.float32)), as_output(like).get_element_type())

    if alpha != 1.0:
        y = ops.multiply(y, scalar(alpha, y))
    if c is not None:
        if beta != 1.0:
            c = ops.multiply(c, scalar(beta, c))
        y = ops.add(y, c)
    return y


def as_port(value) -> Output:
    return as_output(value)


# ---- activations, comparisons, logic ------------------------------------------------------

# The 1:1 ops (Relu, Add, Equal, Mish, ...) get their converters from the op registry at the
# end of this module; the ones below differ from the engine's op in ONNX's semantics.


@converter("Gelu")
def _gelu(ctx):
    return ops.gelu(ctx.inputs[0], "tanh" if ctx.attr("approximate", "none") == "tanh" else "erf")


@converter("Clip")
def _clip(ctx):
    x = ctx.inputs[0]
    if ctx.opset < 11:
        return ops.clamp(x, ctx.attr("min", -np.inf), ctx.attr("max", np.inf))
    lo = ctx.inputs[1] if len(ctx.inputs) > 1 else None
    hi = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    lo_v, hi_v = ctx.const_value(1), ctx.const_value(2)
    if (lo is None or lo_v is not None) and (hi is None or hi_v is not None) and x.get_element_type().is_real():
        return ops.clamp(x, -np.inf if lo is None else float(lo_v), np.inf if hi is None else float(hi_v))
    if lo is not None:
        x = ops.maximum(x, lo)
    if hi is not None:
        x = ops.minimum(x, hi)
    return x


# ---- shapes and layout ---------------------------------------------------------------------


def _ints_input(ctx, index, what):
    """An int operand (axes, pads, splits): a list when constant, else the port itself (the
    engine then plans per distinct value of the model input behind it)."""
    value = ctx.const_value(index)
    if value is None:
        return ctx.inputs[index]
    return [int(v) for v in np.asarray(value).reshape(-1)]


@converter("Shape")
def _shape(ctx):
    shape = ops.shape_of(ctx.inputs[0])
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    if start == 0 and end is None:
        return shape
    return ops.slice(shape, [start], [end if end is not None else np.iinfo(np.int64).max], [1], [0])


@converter("ConstantOfShape")
def _constant_of_shape(ctx):
    value = _proto.to_array(ctx.attrs["value"]).reshape(()) if "value" in ctx.attrs else np.float32(0)
    return ops.broadcast(ops.constant(np.asarray(value)), ctx.inputs[0])


@converter("Expand")
def _expand(ctx):
    return ops.broadcast(ctx.inputs[0], ctx.inputs[1], broadcast_spec="BIDIRECTIONAL")


@converter("Tile")
def _tile(ctx):
    return ops.tile(ctx.inputs[0], ctx.inputs[1])


@converter("Range")
def _range(ctx):
    return ops.range(*ctx.inputs[:3])


@converter("Transpose")
def _transpose(ctx):
    perm = ctx.attr("perm")
    if perm is None:
        perm = list(reversed(range(len(ctx.inputs[0].get_partial_shape()))))
    return ops.transpose(ctx.inputs[0], list(perm))


@converter("Gather")
def _gather(ctx):
    return ops.gather(ctx.inputs[0], ctx.inputs[1], ctx.attr("axis", 0))


# ONNX spells the scatter reductions add/mul where OpenVINO (and aiov) say sum/prod.
_SCATTER_REDUCTIONS = {"none": "none", "add": "sum", "mul": "prod", "min": "min", "max": "max"}


def _scatter_reduction(ctx):
    reduction = ctx.attr("reduction", "none")
    if reduction not in _SCATTER_REDUCTIONS:
        ctx.fail(f"reduction '{reduction}' is not one of {', '.join(_SCATTER_REDUCTIONS)}")
    return _SCATTER_REDUCTIONS[reduction]


@converter("ScatterND")
def _scatter_nd(ctx):
    return ops.scatter_nd_update(*ctx.inputs[:3], reduction=_scatter_reduction(ctx))


@converter("ScatterElements", "Scatter")
def _scatter_elements(ctx):
    return ops.scatter_elements_update(*ctx.inputs[:3], ctx.attr("axis", 0), _scatter_reduction(ctx))


@converter("DepthToSpace", "SpaceToDepth")
def _block_move(ctx):
    # ONNX's DCR (its default; SpaceToDepth had no mode before opset 25) is OpenVINO's
    # blocks_first, CRD its depth_first.
    mode = ctx.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        ctx.fail(f"mode '{mode}' is not DCR or CRD")
    if ctx.attr("blocksize") is None:
        ctx.fail("the blocksize attribute is required")
    build = ops.depth_to_space if ctx.node.op_type == "DepthToSpace" else ops.space_to_depth
    return build(ctx.inputs[0], "blocks_first" if mode == "DCR" else "depth_first", ctx.attr("blocksize"))


@converter("ReverseSequence")
def _reverse_sequence(ctx):
    # ONNX's defaults differ from OpenVINO's (batch 0, sequence 1).
    return ops.reverse_sequence(
        *ctx.inputs[:2], batch_axis=ctx.attr("batch_axis", 1), seq_axis=ctx.attr("time_axis", 0)
    )


@converter("OneHot")
def _one_hot(ctx):
    # values is [off, on]; OpenVINO's OneHot takes them as two scalars.
    values = ctx.inputs[2]
    off, on = ops.gather(values, 0, 0), ops.gather(values, 1, 0)
    return ops.one_hot(ctx.inputs[0], ctx.inputs[1], on, off, ctx.attr("axis", -1), "normalize")


@converter("Squeeze")
def _squeeze(ctx):
    axes = (
        ctx.attr("axes")
        if ctx.opset < 13
        else (_ints_input(ctx, 1, "Squeeze axes") if len(ctx.inputs) > 1 and ctx.inputs[1] is not None else None)
    )
    return ops.squeeze(ctx.inputs[0], axes)


@converter("Unsqueeze")
def _unsqueeze(ctx):
    axes = ctx.attr("axes") if ctx.opset < 13 else _ints_input(ctx, 1, "Unsqueeze axes")
    return ops.unsqueeze(ctx.inputs[0], axes)


@converter("Flatten")
def _flatten(ctx):
    x = ctx.inputs[0]
    rank = _rank(ctx, x)
    axis = ctx.attr("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank:
        ctx.fail(f"axis {ctx.attr('axis', 1)} is out of range for rank {rank}")
    return _flatten_2d(x, axis)


def _flatten_2d(x, axis):
    """x as [prod(dims before axis), prod(dims from axis on)]. Sizes that are not known yet
    come from the input's shape when a plan is built."""
    dims = list(x.get_partial_shape())
    lead, trail = dims[:axis], dims[axis:]
    size = lambda ds: int(np.prod([d.get_length() for d in ds], dtype=np.int64))  # noqa: E731
    if all(d.is_static for d in lead):
        return ops.reshape(x, [size(lead), -1] if any(d.is_dynamic for d in trail) else [size(lead), size(trail)])
    if all(d.is_static for d in trail) and size(trail) > 0:
        return ops.reshape(x, [-1, size(trail)])
    if axis == 1:
        return ops.reshape(x, [0, -1], special_zero=True)
    shape = ops.shape_of(x)
    rank = len(dims)
    target = ops.concat(
        [
            ops.reduce_prod(ops.slice(shape, [0], [axis], [1]), [0], keep_dims=True),
            ops.reduce_prod(ops.slice(shape, [axis], [rank], [1]), [0], keep_dims=True),
        ],
        0,
    )
    return ops.reshape(x, target)


def _unflatten_like(y, x):
    """y (a 2-D view of x) back in x's shape: a constant target when x is static."""
    shape = x.get_partial_shape()
    if shape.is_static:
        return ops.reshape(y, [d.get_length() for d in shape])
    return ops.reshape(y, ops.shape_of(x))


@converter("Slice")
def _slice(ctx):
    x = ctx.inputs[0]
    if ctx.opset < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes = ctx.attr("axes", list(range(len(starts))))
        return ops.slice(x, starts, ends, [1] * len(starts), axes)
    starts, ends = ctx.inputs[1], ctx.inputs[2]
    axes = ctx.inputs[3] if len(ctx.inputs) > 3 and ctx.inputs[3] is not None else None
    steps = ctx.inputs[4] if len(ctx.inputs) > 4 and ctx.inputs[4] is not None else None
    if steps is None:
        starts_shape = starts.get_partial_shape()
        if starts_shape.is_static:
            steps = [1] * starts_shape.to_shape()[0]
        else:  # one step of 1 per start, however many there turn out to be
            steps = ops.broadcast(ops.constant(np.array(1, np.int64)), ops.shape_of(starts))
    return ops.slice(x, starts, ends, steps, axes)


@converter("Split")
def _split(ctx):
    x = ctx.inputs[0]
    axis = ctx.attr("axis", 0)
    outputs = len(ctx.node.output)
    if ctx.opset < 13:
        lengths = ctx.attr("split")
        if lengths is None and ctx.opset < 2 and len(ctx.inputs) > 1 and ctx.inputs[1] is not None:
            lengths = _ints_input(ctx, 1, "Split sizes")  # opset 1 also took them as an input
    elif len(ctx.inputs) > 1 and ctx.inputs[1] is not None:
        lengths = _ints_input(ctx, 1, "Split sizes")
    else:
        lengths = None
    if lengths is None:
        shape = x.get_partial_shape()
        dim = shape[axis] if shape.rank.is_static else None  # None: the plan decides the rank
        if dim is not None and dim.is_static and dim.get_length() % outputs:
            # opset 18: the last chunk is smaller.
            size = -(-dim.get_length() // outputs)
            lengths = [size] * (outputs - 1) + [dim.get_length() - size * (outputs - 1)]
        elif (dim is None or dim.is_dynamic) and ctx.opset >= 18 and outputs > 1:
            # The same rule on the size the plan sees: chunks of ceil(size / n), the rest last.
            size = ops.gather(ops.shape_of(x), ops.constant(np.array([axis], np.int64)), 0)
            chunk = ops.divide(ops.add(size, np.array(outputs - 1, np.int64)), np.array(outputs, np.int64))
            rest = ops.subtract(size, ops.multiply(chunk, np.array(outputs - 1, np.int64)))
            lengths = ops.concat([ops.tile(chunk, ops.constant(np.array([outputs - 1], np.int64))), rest], 0)
        else:
            return ops.split(x, axis, outputs).outputs()
    return ops.variadic_split(x, axis, lengths).outputs()


@converter("Pad")
def _pad(ctx):
    x = ctx.inputs[0]
    mode = ctx.attr("mode", "constant")
    if ctx.opset < 11:
        pads, value = ctx.attr("pads", ctx.attr("paddings")), ctx.attr("value", 0.0)  # opset 1: paddings
        axes = None
    else:
        pads = _ints_input(ctx, 1, "Pad pads")
        has_value = len(ctx.inputs) > 2 and ctx.inputs[2] is not None
        value = ctx.const_value(2) if has_value else 0
        if value is None:
            value = ctx.inputs[2]  # read at run time
        axes = _ints_input(ctx, 3, "Pad axes") if len(ctx.inputs) > 3 and ctx.inputs[3] is not None else None
    rank = len(x.get_partial_shape())
    if not isinstance(pads, list) or (axes is not None and not isinstance(axes, list)):
        begins, ends = _run_time_pads(ctx, pads, axes, rank)
        return ops.pad(x, begins, ends, mode, _pad_value(value) if mode == "constant" else None)
    if axes is None:
        axes = list(range(rank))
    half = len(pads) // 2
    begins, ends = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        a = a + rank if a < 0 else a
        begins[a], ends[a] = pads[i], pads[half + i]
    if mode not in ("constant", "edge", "reflect", "wrap"):
        ctx.fail(f"mode {mode!r} is not supported")
    return ops.pad(x, begins, ends, mode, _pad_value(value) if mode == "constant" else None)


def _run_time_pads(ctx, pads, axes, rank):
    """Pads begins and ends [rank] from ONNX's pads (and axes) when either is a run-time value:
    the entries of the listed axes scattered into zeros (the plan folds it once the values are
    known)."""
    if not isinstance(pads, list) and axes is None:
        return ops.slice(pads, [0], [rank], [1]), ops.slice(pads, [rank], [2 * rank], [1])
    if isinstance(pads, list):
        pads = ops.constant(np.array(pads, np.int64))
    if isinstance(axes, list):
        axes = ops.constant(np.array(axes, np.int64))
    count = as_output(axes).get_partial_shape()
    if count.rank.is_dynamic or count.rank.get_length() != 1 or count[0].is_dynamic:
        ctx.fail("run-time axes need a known length")
    n = count[0].get_length()
    axes = ops.convert(axes, "i64")
    # Negative axes count from the end: (a + rank) mod rank.
    axes = ops.floor_mod(ops.add(axes, np.int64(rank)), np.int64(rank))
    zeros = ops.constant(np.zeros(rank, np.int64))
    pads = ops.convert(pads, "i64")
    begins = ops.scatter_elements_update(zeros, axes, ops.slice(pads, [0], [n], [1]), 0)
    ends = ops.scatter_elements_update(zeros, axes, ops.slice(pads, [n], [2 * n], [1]), 0)
    return begins, ends


def _pad_value(value):
    return value if isinstance(value, Output) else np.asarray(value).reshape(())


# ---- convolution, pooling, normalisation, reductions ----------------------------------------


def _spatial(ctx, rank):
    n = rank - 2
    pads = ctx.attr("pads", [0] * (2 * n))
    auto = ctx.attr("auto_pad", "NOTSET").lower()
    return dict(
        strides=ctx.attr("strides", [1] * n),
        pads_begin=pads[:n],
        pads_end=pads[n:],
        dilations=ctx.attr("dilations", [1] * n),
        auto_pad={"notset": "explicit", "valid": "valid", "same_upper": "same_upper", "same_lower": "same_lower"}[auto],
    )


def _rank(ctx, port):
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        ctx.fail("the input rank must be known")
    return len(shape)


def _channel_vector(vec, rank):
    """[C] -> [1, C, 1, ...] so it broadcasts over NC... data."""
    return ops.reshape(vec, [1, -1] + [1] * (rank - 2))


@converter("Conv")
def _conv(ctx):
    fast = _qdq_product(ctx, 0, _integer_conv)
    if fast is not None:
        return fast
    return _convolution(ctx, ctx.inputs[0], ctx.inputs[1], ctx.inputs[2] if len(ctx.inputs) > 2 else None)


def _convolution(ctx, x, w, bias):
    """Conv's attributes applied to x and w (ConvInteger and QLinearConv pass shifted operands)."""
    rank = _rank(ctx, x)
    if rank not in (3, 4, 5):
        ctx.fail("only 1-D, 2-D and 3-D convolutions are supported")
    attrs = _spatial(ctx, rank)
    group = ctx.attr("group", 1)
    y = ops._make("Convolution", [x, w], dict(attrs, group=group), ctx.node.name)
    if bias is not None:
        y = ops.add(y, _channel_vector(bias, rank))
    return y


def _pool(ctx, op):
    x = ctx.inputs[0]
    rank = _rank(ctx, x)
    attrs = _spatial(ctx, rank)
    kernel = ctx.attr("kernel_shape")
    # ONNX's ceil_mode drops a last window that would start in the end padding.
    ceil = "ceil_torch" if ctx.attr("ceil_mode", 0) else "floor"
    if op == "MaxPool":
        indices = len(ctx.node.output) > 1 and bool(ctx.node.output[1])
        # ONNX's Indices count in the whole input tensor, as OpenVINO's axis 0 does.
        node = ops.max_pool(
            x,
            attrs["strides"],
            attrs["dilations"],
            attrs["pads_begin"],
            attrs["pads_end"],
            kernel,
            ceil,
            attrs["auto_pad"],
            "i64",
            0,
            None,
            with_indices=indices,
            column_major_indices=indices and bool(ctx.attr("storage_order", 0)),
        )
        return node.outputs() if indices else node
    return ops.avg_pool(
        x,
        attrs["strides"],
        attrs["pads_begin"],
        attrs["pads_end"],
        kernel,
        not ctx.attr("count_include_pad", 0),
        ceil,
        attrs["auto_pad"],
        dilations=attrs["dilations"],
    )


converter("MaxPool")(lambda ctx: _pool(ctx, "MaxPool"))
converter("AveragePool")(lambda ctx: _pool(ctx, "AvgPool"))


@converter("LpPool")
def _lp_pool(ctx):
    # (sum over the window of |x|^p)^(1/p): an average pool that counts the padding, times
    # the window's size. Padding adds zeros, which do not change an Lp sum.
    x = ctx.inputs[0]
    rank = _rank(ctx, x)
    attrs = _spatial(ctx, rank)
    kernel = ctx.attr("kernel_shape")
    if kernel is None:
        ctx.fail("the kernel_shape attribute is required")
    p = ctx.attr("p", 2)
    if p <= 0:
        ctx.fail(f"p must be positive, got {p}")
    dtype = x.get_element_type().to_dtype()
    powered = ops.multiply(x, x) if p == 2 else ops.power(ops.absolute(x), np.array(p, dtype))
    if ctx.attr("ceil_mode", 0):
        # A window past the padded end averages over fewer elements than the kernel holds.
        ctx.fail("ceil_mode=1 is not supported")
    mean = ops.avg_pool(
        powered,
        attrs["strides"],
        attrs["pads_begin"],
        attrs["pads_end"],
        kernel,
        False,
        "floor",
        attrs["auto_pad"],
        dilations=attrs["dilations"],
    )
    total = ops.multiply(mean, np.array(np.prod(kernel), dtype))
    return ops.sqrt(total) if p == 2 else ops.power(total, np.array(1.0 / p, dtype))


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx):
    x = ctx.inputs[0]
    axes = list(range(2, _rank(ctx, x)))
    builder = ops.reduce_mean if ctx.node.op_type == "GlobalAveragePool" else ops.reduce_max
    return builder(x, axes, keep_dims=True)


@converter("BatchNormalization")
def _batch_norm(ctx):
    eps = ctx.attr("epsilon", 1e-5)
    if ctx.attr("training_mode", 0) or len([o for o in ctx.node.output if o]) > 1:
        return _batch_norm_training(ctx, eps)
    return ops.batch_norm_inference(*ctx.inputs[:5], epsilon=eps)


def _batch_norm_training(ctx, eps):
    """Normalizes with the batch's own statistics (over every axis but the channels) and
    gives the running mean and variance moved toward them by (1 - momentum); before opset 14
    also the batch statistics themselves."""
    x, scale, bias, mean, var = ctx.inputs[:5]
    rank = _rank(ctx, x)
    axes = [0] + list(range(2, rank))
    batch_mean = ops.reduce_mean(x, axes, False)
    centered = ops.subtract(x, _channel_vector(batch_mean, rank))
    batch_var = ops.reduce_mean(ops.multiply(centered, centered), axes, False)
    y = ops.batch_norm_inference(x, scale, bias, batch_mean, batch_var, epsilon=eps)
    momentum = ctx.attr("momentum", 0.9)

    def blend(running, batch):
        keep = ops.convert(ops.constant(np.array(momentum, np.float32)), running.get_element_type())
        take = ops.convert(ops.constant(np.array(1 - momentum, np.float32)), running.get_element_type())
        return ops.add(ops.multiply(running, keep), ops.multiply(batch, take))

    outs = [y, blend(mean, batch_mean), blend(var, batch_var)]
    return outs if ctx.opset >= 14 else outs + [batch_mean, batch_var]


@converter("InstanceNormalization")
def _instance_norm(ctx):
    x, scale, bias = ctx.inputs[:3]
    rank = _rank(ctx, x)
    y = ops.mvn(x, list(range(2, rank)), True, ctx.attr("epsilon", 1e-5))
    return ops.add(ops.multiply(y, _channel_vector(scale, rank)), _channel_vector(bias, rank))


@converter("GroupNormalization")
def _group_norm(ctx):
    # stash_type asks for f32 or wider statistics; the kernel always accumulates in double.
    x, scale, bias = ctx.inputs[:3]
    groups = ctx.attr("num_groups")
    if groups is None:
        ctx.fail("the num_groups attribute is required")
    if ctx.opset < 21:
        # Opset 18 scales and shifts per group: repeat each value over its group's channels.
        dims = list(x.get_partial_shape())
        if len(dims) < 2 or dims[1].is_dynamic:
            ctx.fail("opset 18's per-group scale needs a known channel count")
        channels = dims[1].get_length()
        if channels % groups:
            ctx.fail(f"num_groups {groups} does not divide the {channels} channels")

        def per_channel(v):
            column = ops.reshape(v, [groups, 1], False)
            return ops.reshape(ops.broadcast(column, [groups, channels // groups]), [channels], False)

        scale, bias = per_channel(scale), per_channel(bias)
    return ops.group_normalization(x, scale, bias, groups, ctx.attr("epsilon", 1e-5))


@converter("LayerNormalization")
def _layer_norm(ctx):
    x = ctx.inputs[0]
    rank = _rank(ctx, x)
    axis = ctx.attr("axis", -1)
    axis = axis + rank if axis < 0 else axis
    axes = list(range(axis, rank))
    eps = ctx.attr("epsilon", 1e-5)
    y = ops.mvn(x, axes, True, eps)
    y = ops.multiply(y, ctx.inputs[1])
    if len(ctx.inputs) > 2 and ctx.inputs[2] is not None:
        y = ops.add(y, ctx.inputs[2])
    if len(ctx.node.output) == 1:
        return y
    # The optional Mean and InvStdDev outputs (kept dims), as plain ops.
    mean = ops.reduce_mean(x, axes, keep_dims=True)
    centered = ops.subtract(x, mean)
    variance = ops.reduce_mean(ops.multiply(centered, centered), axes, keep_dims=True)
    inv_std = ops.reciprocal(ops.sqrt(ops.add(variance, np.array(eps, dtype=np.float32))))
    return [y, mean, inv_std]


_REDUCERS = {
    "ReduceSum": ops.reduce_sum,
    "ReduceMean": ops.reduce_mean,
    "ReduceMax": ops.reduce_max,
    "ReduceMin": ops.reduce_min,
    "ReduceProd": ops.reduce_prod,
    "ReduceL2": ops.reduce_l2,
    "ReduceL1": ops.reduce_l1,
    "ReduceSumSquare": ops.reduce_sum_square,
    "ReduceLogSum": ops.reduce_log_sum,
    "ReduceLogSumExp": ops.reduce_log_sum_exp,
}


def _reduce(ctx):
    x = ctx.inputs[0]
    keep = bool(ctx.attr("keepdims", 1))
    if len(ctx.inputs) > 1 and ctx.inputs[1] is not None:
        axes = _ints_input(ctx, 1, "reduction axes")
    else:
        axes = ctx.attr("axes")
    if not isinstance(axes, (list, type(None))):
        return ops._make(
            ctx.node.op_type,
            [x, axes],
            {"keep_dims": keep, "noop_with_empty_axes": ctx.attr("noop_with_empty_axes", 0)},
        )
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return ops.convert(x, x.get_element_type())
        axes = list(range(_rank(ctx, x)))
    return _REDUCERS[ctx.node.op_type](x, axes, keep)


for _op in _REDUCERS:
    converter(_op)(_reduce)


@converter("ArgMax", "ArgMin")
def _arg(ctx):
    return ops._make(
        ctx.node.op_type,
        [ctx.inputs[0]],
        {
            "axis": ctx.attr("axis", 0),
            "keepdims": ctx.attr("keepdims", 1),
            "select_last_index": ctx.attr("select_last_index", 0),
        },
        ctx.node.name,
    )


@converter("LogSoftmax")
def _log_softmax(ctx):
    return _over_trailing_axes(ctx, ops.log_softmax)


@converter("Size")
def _size(ctx):
    return ops.reduce_prod(ops.shape_of(ctx.inputs[0]), [0], keep_dims=False)


@converter("TopK")
def _topk(ctx):
    k = ops.constant(np.array([ctx.attr("k")], np.int64)) if ctx.opset < 10 else ctx.inputs[1]
    node = ops._make(
        "TopK",
        [ctx.inputs[0], k],
        {
            "axis": ctx.attr("axis", -1),
            "mode": "max" if ctx.attr("largest", 1) else "min",
            "sort": "value" if ctx.attr("sorted", 1) else "index",
        },
        ctx.node.name,
    )
    return node.outputs()


@converter("CumSum")
def _cumsum(ctx):
    return ops._make(
        "CumSum",
        ctx.inputs[:2],
        {"exclusive": ctx.attr("exclusive", 0), "reverse": ctx.attr("reverse", 0)},
        ctx.node.name,
    )


@converter("Hardmax")
def _hardmax(ctx):
    return _over_trailing_axes(ctx, ops.hardmax)


@converter("LpNormalization")
def _lp_normalization(ctx):
    x, axis, p = ctx.inputs[0], ctx.attr("axis", -1), ctx.attr("p", 2)
    if p == 1:
        norm = ops.reduce_l1(x, [axis], keep_dims=True)
    elif p == 2:
        norm = ops.reduce_l2(x, [axis], keep_dims=True)
    else:
        ctx.fail(f"p must be 1 or 2, got {p}")
    # A zero vector stays zero (onnxruntime and ONNX's reference agree) instead of 0/0.
    zero = ops.convert(ops.constant(np.zeros((), np.float32)), x.get_element_type())
    return ops.select(ops.equal(norm, zero), zero, ops.divide(x, norm))


@converter("MeanVarianceNormalization")
def _mean_variance_normalization(ctx):
    # ONNX's function body: (x - mean) / sqrt(variance + 1e-9) over `axes`.
    x = ctx.inputs[0]
    rank = _rank(ctx, x)
    axes = sorted(a + rank if a < 0 else a for a in ctx.attr("axes", [0, 2, 3]))
    if axes == list(range(rank - len(axes), rank)) and x.get_element_type() == Type(np.float32):
        return ops.mvn(x, axes, True, 1e-9, "inside_sqrt")  # trailing axes: the native MVN
    centered = ops.subtract(x, ops.reduce_mean(x, axes, keep_dims=True))
    variance = ops.reduce_mean(ops.multiply(centered, centered), axes, keep_dims=True)
    eps = ops.convert(ops.constant(np.array(1e-9, np.float32)), x.get_element_type())
    return ops.divide(centered, ops.sqrt(ops.add(variance, eps)))


@converter("EyeLike")
def _eye_like(ctx):
    eye = ops.eye_like(ctx.inputs[0], ctx.attr("k", 0))
    dtype = ctx.attr("dtype")
    return eye if dtype is None else ops.convert(eye, Type(_onnx_dtype(dtype)))


@converter("LRN")
def _lrn(ctx):
    return ops._make(
        "LRN",
        [ctx.inputs[0]],
        {
            "size": ctx.attr("size"),
            "alpha": ctx.attr("alpha", 1e-4),
            "beta": ctx.attr("beta", 0.75),
            "bias": ctx.attr("bias", 1.0),
        },
        ctx.node.name,
    )


@converter("Einsum")
def _einsum(ctx):
    """Einsum as diagonals, transposes, reductions and one batched MatMul. Sizes not known
    when reading come from the operands' shapes when a plan is built."""
    terms, out = _einsum_terms(ctx)
    if len(terms) != len(ctx.inputs) or len(terms) > 2:
        ctx.fail("one or two operands are supported")
    sizes = {}  # letter -> int, or a [1] tensor of the size
    ports = []
    for k, (term, port) in enumerate(zip(terms, ctx.inputs)):
        shape = port.get_partial_shape()
        if shape.rank.is_dynamic or len(term) != len(shape):
            ctx.fail(f"operand '{term}' needs rank {len(term)}")
        term, port = _einsum_diagonals(term, port)
        terms[k] = term
        shape = port.get_partial_shape()
        for i, (letter, dim) in enumerate(zip(term, shape)):
            if dim.is_static:
                sizes[letter] = dim.get_length()
            elif not isinstance(sizes.get(letter), int):
                sizes[letter] = ops.gather(ops.shape_of(port), [i], 0)
        ports.append(port)

    def as_dims(parts):
        """A reshape target: a list when every part is known, else a tensor."""
        if all(isinstance(p, int) for p in parts):
            return parts
        return ops.concat([ops.constant(np.array([p], np.int64)) if isinstance(p, int) else p for p in parts], 0)

    def prod(letters):
        parts = [sizes[ch] for ch in letters]
        if all(isinstance(p, int) for p in parts):
            return int(np.prod(parts, dtype=np.int64))
        return ops.reduce_prod(as_dims(parts), [0], keep_dims=True)

    def reduce_unused(term, port, keep):
        axes = [i for i, letter in enumerate(term) if letter not in keep]
        if not axes:
            return term, port
        return "".join(ch for ch in term if ch in keep), as_output(ops.reduce_sum(port, axes, False))

    if len(terms) == 1:
        term, port = reduce_unused(terms[0], ports[0], set(out))
        return ops.transpose(port, [term.index(ch) for ch in out])
    a_term, a = reduce_unused(terms[0], ports[0], set(out) | set(terms[1]))
    b_term, b = reduce_unused(terms[1], ports[1], set(out) | set(a_term))
    batch = [ch for ch in a_term if ch in b_term and ch in out]
    contract = [ch for ch in a_term if ch in b_term and ch not in out]
    a_only = [ch for ch in a_term if ch not in b_term]
    b_only = [ch for ch in b_term if ch not in a_term]
    a = ops.reshape(
        ops.transpose(a, [a_term.index(ch) for ch in batch + a_only + contract]),
        as_dims([prod(batch), prod(a_only), prod(contract)]),
    )
    b = ops.reshape(
        ops.transpose(b, [b_term.index(ch) for ch in batch + contract + b_only]),
        as_dims([prod(batch), prod(contract), prod(b_only)]),
    )
    y = ops.reshape(ops.matmul(a, b), as_dims([sizes[ch] for ch in batch + a_only + b_only]))
    order = batch + a_only + b_only
    return ops.transpose(y, [order.index(ch) for ch in out]) if order else y


def _einsum_terms(ctx):
    """The operand terms and the output term, with '...' spelled out as letters the
    equation does not use (aligned to the right, as numpy broadcasts) and implicit output
    made explicit: the broadcast letters first, then the letters used once, sorted."""
    import string

    equation = ctx.attr("equation").replace(" ", "")
    lhs, arrow, out = equation.partition("->")
    terms = lhs.split(",")
    free = [ch for ch in string.ascii_uppercase + string.ascii_lowercase if ch not in equation]
    ellipsis = 0
    for term, port in zip(terms, ctx.inputs):
        if "..." in term:
            shape = port.get_partial_shape()
            if shape.rank.is_dynamic:
                ctx.fail("'...' needs operands of known rank")
            ellipsis = max(ellipsis, len(shape) - (len(term) - 3))
    broadcast = "".join(free[:ellipsis])
    expanded = []
    for term, port in zip(terms, ctx.inputs):
        if "..." in term:
            own = len(port.get_partial_shape()) - (len(term) - 3)
            term = term.replace("...", broadcast[ellipsis - own :])
        expanded.append(term)
    if arrow:
        out = out.replace("...", broadcast)
    else:
        letters = "".join(expanded)
        out = broadcast + "".join(sorted(ch for ch in set(letters) if letters.count(ch) == 1 and ch not in broadcast))
    return expanded, out


def _einsum_diagonals(term, port):
    """A term with a repeated letter ('ii') reads the diagonal: mask with an identity matrix over
    the two axes and sum one of them away, until every letter is used once."""
    while len(set(term)) != len(term):
        letter = next(ch for ch in term if term.count(ch) > 1)
        i = term.index(letter)
        j = term.index(letter, i + 1)
        n = ops.gather(ops.shape_of(port), [i], 0)
        zero = ops.convert(ops.constant(np.zeros((), np.float32)), port.get_element_type())
        eye = ops.eye_like(ops.broadcast(zero, ops.concat([n, n], 0)))
        others = [a for a in range(len(term)) if a not in (i, j)]
        mask = ops.unsqueeze(eye, others) if others else eye
        port = as_output(ops.reduce_sum(ops.multiply(port, mask), [j], False))
        term = term[:j] + term[j + 1 :]
    return term, port


@converter("Resize", "Upsample")
def _resize(ctx):
    x = ctx.inputs[0]
    roi = None
    if ctx.node.op_type == "Upsample" or ctx.opset < 11:
        scales = ctx.inputs[1] if len(ctx.inputs) > 1 else ops.constant(np.array(ctx.attr("scales"), np.float32))
        sizes = None
        coord = "asymmetric"
        nearest = "floor"  # Upsample and Resize-10 take the floor of the source coordinate
    else:
        roi = ctx.inputs[1] if len(ctx.inputs) > 1 else None
        scales = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        sizes = ctx.inputs[3] if len(ctx.inputs) > 3 else None
        coord = ctx.attr("coordinate_transformation_mode", "half_pixel")
        nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    attrs = {"mode": ctx.attr("mode", "nearest"), "coordinate_transformation_mode": coord, "nearest_mode": nearest}
    for key, kind in (
        ("cubic_coeff_a", float),
        ("exclude_outside", bool),
        ("extrapolation_value", float),
        ("antialias", bool),
        ("keep_aspect_ratio_policy", str),
        ("axes", list),
    ):
        if ctx.attr(key) is not None:
            attrs[key] = kind(ctx.attr(key))
    empty_f = ops.constant(np.zeros(0, np.float32))
    empty_i = ops.constant(np.zeros(0, np.int64))
    inputs = [x, scales if scales is not None else empty_f, sizes if sizes is not None else empty_i]
    if coord == "tf_crop_and_resize" and roi is not None:  # the roi matters only there
        inputs.append(roi)
    return ops._make("Resize", inputs, attrs, ctx.node.name)


@converter("ConvTranspose")
def _conv_transpose(ctx):
    x, w = ctx.inputs[0], ctx.inputs[1]
    rank = _rank(ctx, x)
    if rank not in (3, 4, 5):
        ctx.fail("only 1-D, 2-D and 3-D transposed convolutions are supported")
    n = rank - 2
    pads = ctx.attr("pads", [0] * (2 * n))
    auto = ctx.attr("auto_pad", "NOTSET").lower()
    attrs = {
        "strides": ctx.attr("strides", [1] * n),
        "dilations": ctx.attr("dilations", [1] * n),
        "pads_begin": pads[:n],
        "pads_end": pads[n:],
        "output_padding": ctx.attr("output_padding", [0] * n),
        "group": ctx.attr("group", 1),
        "auto_pad": {"notset": "explicit", "valid": "valid"}.get(auto, auto),
    }
    if ctx.attr("output_shape") is not None:
        # The registry's rule derives the pads from the requested size once input sizes are known.
        attrs["output_shape"] = list(ctx.attr("output_shape"))
    y = ops._make("ConvTranspose", [x, w], attrs, ctx.node.name)
    if len(ctx.inputs) > 2 and ctx.inputs[2] is not None:
        y = ops.add(y, _channel_vector(ctx.inputs[2], rank))
    return y


_register_one_to_one()


@converter("LSTM", "GRU", "RNN")
def _recurrent(ctx):
    # The engine's ops take ONNX's inputs in ONNX's order (the builders fill omitted ones).
    op = ctx.node.op_type
    known = {
        "hidden_size",
        "direction",
        "layout",
        "clip",
        "activations",
        "activation_alpha",
        "activation_beta",
        {"LSTM": "input_forget", "GRU": "linear_before_reset", "RNN": "hidden_size"}[op],
    }
    unknown = sorted(set(ctx.attrs) - known)
    if unknown:
        ctx.fail(f"attribute(s) {', '.join(unknown)} are not supported")
    attrs = {key: ctx.attr(key) for key in known if key in ctx.attrs}
    if "activations" in attrs:
        attrs["activations"] = [v.decode() if isinstance(v, bytes) else v for v in attrs["activations"]]
    if any(port is None for port in ctx.inputs[:3]) or len(ctx.inputs) < 3:
        ctx.fail("X, W and R are required")
    builder = {"LSTM": ops.lstm, "GRU": ops.gru, "RNN": ops.rnn}[op]
    return builder(*ctx.inputs, name=ctx.node.name, **attrs).outputs()


# ---- data-dependent shapes and detection/vision ops ---------------------------------------


@converter("Compress")
def _compress(ctx):
    data, condition = ctx.inputs[0], ctx.inputs[1]
    axis = ctx.attr("axis")
    if axis is None:  # no axis: the flattened data
        data = ops.reshape(data, ops.constant(np.array([-1], np.int64)), special_zero=False)
        axis = 0
    return ops._make("aiov.Compress", [data, condition], {"axis": axis}, ctx.node.name)


@converter("Unique")
def _unique(ctx):
    inputs = [ctx.inputs[0]]
    if ctx.attr("axis") is not None:
        inputs.append(ops.constant(np.array(ctx.attr("axis"), np.int64)))
    node = ops._make("Unique", inputs, {"sorted": bool(ctx.attr("sorted", 1))}, ctx.node.name)
    return node.outputs()


@converter("NonMaxSuppression")
def _non_max_suppression(ctx):
    # Omitted optional inputs in the middle take ONNX's defaults (no boxes kept, IoU 0); an
    # omitted score threshold keeps every score.
    boxes, scores, *rest = ctx.inputs
    rest = list(rest)
    while rest and rest[-1] is None:
        rest.pop()
    defaults = [np.array([0], np.int64), np.array([0], np.float32)]
    for i, port in enumerate(rest):
        if port is None:
            if i >= len(defaults):
                ctx.fail("score_threshold omitted before a later input")
            rest[i] = ops.constant(defaults[i])
    attrs = {"center_point_box": ctx.attr("center_point_box", 0)}
    return ops._make("aiov.NonMaxSuppression", [boxes, scores, *rest], attrs, ctx.node.name)


@converter("RoiAlign")
def _roi_align(ctx):
    # Opset 10's RoiAlign had no half-pixel shift (later opsets' output_half_pixel) and no
    # coordinate_transformation_mode attribute.
    attrs = {key: ctx.attr(key) for key in ctx.attrs}
    if ctx.opset < 16:
        attrs["coordinate_transformation_mode"] = "output_half_pixel"
    return ops._make("aiov.RoiAlign", ctx.inputs[:3], attrs, ctx.node.name)


@converter("DeformConv")
def _deform_conv(ctx):
    if len(ctx.inputs) > 4 and ctx.inputs[3] is None and ctx.inputs[4] is not None:
        # A mask without a bias: the engine reads an empty B as none.
        ctx.inputs[3] = ops.constant(np.zeros(0, ctx.inputs[0].get_element_type().to_dtype()))
    (schema,) = [d for d in _core.op_schema() if d["type"] == "aiov.DeformConv"]
    return _one_to_one(schema, 19, None)(ctx)


@converter("GridSample")
def _grid_sample(ctx):
    # Opset 20 renamed bilinear/bicubic to linear/cubic (and made them N-D).
    mode = ctx.attr("mode", "linear" if ctx.opset >= 20 else "bilinear")
    mode = {"linear": "bilinear", "cubic": "bicubic"}.get(mode, mode)
    attrs = {
        "align_corners": bool(ctx.attr("align_corners", 0)),
        "mode": mode,
        "padding_mode": ctx.attr("padding_mode", "zeros"),
    }
    return ops._make("GridSample", ctx.inputs[:2], attrs, ctx.node.name)


# ---- signal processing: windows, MelWeightMatrix, DFT, STFT ---------------------------------


def _onnx_type_name(ctx, key, default=1):
    """An ONNX type-code attribute (output_datatype, dtype) as an aiov element type name."""
    return Type(_onnx_dtype(ctx.attr(key, default))).get_type_name()


def _given_or_empty(ctx, index, dtype=np.int64):
    """Input `index`, or an empty constant standing for an omitted optional input."""
    if index < len(ctx.inputs) and ctx.inputs[index] is not None:
        return ctx.inputs[index]
    return ops.constant(np.zeros(0, dtype))


@converter("HannWindow", "HammingWindow", "BlackmanWindow")
def _window_function(ctx):
    attrs = {"periodic": bool(ctx.attr("periodic", 1)), "output_type": _onnx_type_name(ctx, "output_datatype")}
    return ops._make("aiov." + ctx.node.op_type, ctx.inputs[:1], attrs, ctx.node.name)


@converter("MelWeightMatrix")
def _mel_weight_matrix(ctx):
    attrs = {"output_type": _onnx_type_name(ctx, "output_datatype")}
    return ops._make("aiov.MelWeightMatrix", ctx.inputs[:5], attrs, ctx.node.name)


@converter("DFT")
def _dft(ctx):
    # Opset 20 made the axis an input (default -2); before, an attribute (default 1).
    attrs = {"inverse": bool(ctx.attr("inverse", 0)), "onesided": bool(ctx.attr("onesided", 0))}
    attrs["axis"] = ctx.attr("axis", 1) if ctx.opset < 20 else -2
    inputs = [ctx.inputs[0], _given_or_empty(ctx, 1)]
    if ctx.opset >= 20:
        inputs.append(_given_or_empty(ctx, 2))
    return ops._make("aiov.DFT", inputs, attrs, ctx.node.name)


@converter("STFT")
def _stft(ctx):
    signal = ctx.inputs[0]
    window = _given_or_empty(ctx, 2, signal.get_element_type().to_dtype())
    inputs = [signal, ctx.inputs[1], window, _given_or_empty(ctx, 3)]
    return ops._make("aiov.STFT", inputs, {"onesided": bool(ctx.attr("onesided", 1))}, ctx.node.name)


# ---- random generators (seeded: the same values on every run) -------------------------------


def _seed_attrs(ctx):
    seed = ctx.attr("seed")
    return {"seeded": seed is not None, "seed": float(seed or 0.0)}


@converter("RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike")
def _random(ctx):
    op = ctx.node.op_type
    normal = op.startswith("RandomNormal")
    attrs = _seed_attrs(ctx)
    attrs["distribution"] = "normal" if normal else "uniform"
    attrs["a"] = float(ctx.attr("mean", 0.0) if normal else ctx.attr("low", 0.0))
    attrs["b"] = float(ctx.attr("scale", 1.0) if normal else ctx.attr("high", 1.0))
    if op.endswith("Like"):
        like = ctx.inputs[0]
        dtype = ctx.attr("dtype")
        attrs["output_type"] = (
            like.get_element_type().get_type_name() if dtype is None else _onnx_type_name(ctx, "dtype")
        )
        return ops._make("aiov.Random", [like], attrs, ctx.node.name)
    if ctx.attr("shape") is None:
        ctx.fail("the shape attribute is required")
    attrs["shape"] = list(ctx.attr("shape"))
    attrs["output_type"] = _onnx_type_name(ctx, "dtype")
    return ops._make("aiov.Random", [], attrs, ctx.node.name)


@converter("Bernoulli")
def _bernoulli(ctx):
    p = ctx.inputs[0]
    attrs = _seed_attrs(ctx)
    dtype = ctx.attr("dtype")
    attrs["output_type"] = p.get_element_type().get_type_name() if dtype is None else _onnx_type_name(ctx, "dtype")
    return ops._make("aiov.Bernoulli", [p], attrs, ctx.node.name)


@converter("Multinomial")
def _multinomial(ctx):
    attrs = _seed_attrs(ctx)
    attrs["sample_size"] = ctx.attr("sample_size", 1)
    attrs["output_type"] = _onnx_type_name(ctx, "dtype", 6)  # int32 by default
    return ops._make("aiov.Multinomial", ctx.inputs[:1], attrs, ctx.node.name)


# ---- opsets 1-6: the attributes later opsets dropped ----------------------------------------

# Binary ops that broadcast only when told (broadcast=1), aligning B with A at `axis`.
_LEGACY_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less"}


def _legacy_attributes(ctx):
    """Rewrites a node of opsets 1-6 into its opset-7 form, which the converters read:
    consumed_inputs (an in-place hint) and is_test (inference is all aiov runs) go; a binary
    op's broadcast with an axis becomes B reshaped so numpy's rule lines it up at that axis."""
    op = ctx.node.op_type
    ctx.attrs.pop("consumed_inputs", None)
    ctx.attrs.pop("is_test", None)
    if op == "Gemm":
        ctx.attrs.pop("broadcast", None)  # C broadcasts from opset 7 on anyway
    if op == "BatchNormalization":
        if ctx.attrs.pop("spatial", 1) != 1:
            ctx.fail("spatial=0 (statistics per activation, not per channel) is not supported")
    if op == "Tile" and len(ctx.inputs) > 2:
        ctx.fail("opset-1 Tile (tiles and axis as inputs) is not supported")
    if op in _LEGACY_BROADCAST:
        broadcast, axis = ctx.attrs.pop("broadcast", 0), ctx.attrs.pop("axis", None)
        if broadcast and axis is not None:
            a_rank, b_rank = _rank(ctx, ctx.inputs[0]), _rank(ctx, ctx.inputs[1])
            axis = axis + a_rank if axis < 0 else axis
            trailing = a_rank - axis - b_rank
            if trailing < 0:
                ctx.fail(f"B (rank {b_rank}) does not fit A (rank {a_rank}) from axis {axis}")
            if trailing:
                ctx.inputs[1] = as_output(ops.unsqueeze(ctx.inputs[1], list(range(b_rank, b_rank + trailing))))


# ---- quantization: (De)QuantizeLinear, DynamicQuantizeLinear --------------------------------
# Composed from the engine's ops in f32: x / scale rounded half to even, plus the zero point,
# saturated to the integer type's range; back, (q - zero point) * scale.

_QUANT_RANGES = {
    "u8": (0, 255),
    "i8": (-128, 127),
    "u16": (0, 65535),
    "i16": (-32768, 32767),
    "u4": (0, 15),
    "i4": (-8, 7),
    "u2": (0, 3),
    "i2": (-2, 1),
}
# Float targets: rounding and saturation are Convert's (saturate=False: overflow to inf/NaN).
_QUANT_FLOATS = ("f8e4m3", "f8e5m2", "f8e4m3fnuz", "f8e5m2fnuz", "f4e2m1")


def _quant_param(ctx, param, x, axis, block_size):
    """A scale or zero point shaped to broadcast against x: a scalar as it is, one value per
    slice along `axis` as a column there, and a block parameter (block_size > 0, same rank as
    x) repeated block_size times along `axis`."""
    shape = param.get_partial_shape()
    if shape.rank.is_static and (len(shape) == 0 or (len(shape) == 1 and shape[0].get_length() == 1)):
        return param
    rank = _rank(ctx, x)
    axis = axis + rank if axis < 0 else axis
    if block_size > 0:
        dim = x.get_partial_shape()[axis]
        if dim.is_static:
            index = ops.constant(np.arange(dim.get_length(), dtype=np.int64) // block_size)
        else:
            size = ops.squeeze(ops.gather(ops.shape_of(x), [axis], 0), [0])
            steps = ops.range(ops.constant(np.array(0, np.int64)), size, ops.constant(np.array(1, np.int64)))
            index = ops._make(
                "Divide", [steps, ops.constant(np.array(block_size, np.int64))], {"auto_broadcast": "numpy"}
            )
        return as_output(ops.gather(param, index, axis))
    if len(shape) != 1:
        ctx.fail(f"a per-axis scale or zero point must be 1-D, got {shape}")
    others = [a for a in range(rank) if a != axis]
    return as_output(ops.unsqueeze(param, others)) if others else param


def _quant_axis(ctx):
    return ctx.attr("axis", 1) if ctx.opset >= 13 else 1


def _as_f32(port):
    return port if port.get_element_type() == Type.f32 else as_output(ops.convert(port, Type.f32))


@converter("DequantizeLinear")
def _dequantize_linear(ctx):
    x, scale = ctx.inputs[0], ctx.inputs[1]
    zero = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    axis, block = _quant_axis(ctx), ctx.attr("block_size", 0)
    out_type = scale.get_element_type()
    if ctx.attr("output_dtype"):
        out_type = Type(_onnx_dtype(ctx.attr("output_dtype")))
    y = _as_f32(x)
    if zero is not None:
        y = ops.subtract(y, _quant_param(ctx, _as_f32(zero), x, axis, block))
    y = ops.multiply(y, _quant_param(ctx, _as_f32(scale), x, axis, block))
    return y if out_type == Type.f32 else ops.convert(y, out_type)


def _saturate(ctx, y, type_name, saturate=True):
    if type_name in _QUANT_FLOATS:
        return ops._make("Convert", [y], {"destination_type": type_name, "saturate": saturate})
    if type_name not in _QUANT_RANGES:
        ctx.fail(f"quantizing to {type_name} is not supported ({', '.join(list(_QUANT_RANGES) + list(_QUANT_FLOATS))})")
    lo, hi = _QUANT_RANGES[type_name]
    return ops.convert(ops.clamp(y, float(lo), float(hi)), Type(type_name))


@converter("QuantizeLinear")
def _quantize_linear(ctx):
    x, scale = ctx.inputs[0], ctx.inputs[1]
    zero = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    axis, block = _quant_axis(ctx), ctx.attr("block_size", 0)
    if zero is not None:
        out_type = zero.get_element_type().get_type_name()
    elif ctx.attr("output_dtype"):
        out_type = _onnx_type_name(ctx, "output_dtype")
    else:
        out_type = "u8"
    # Per tensor to 8 bits (activations in QDQ models): one native pass.
    eight = {"u8": np.uint8, "i8": np.int8}
    if out_type in eight and not block and x.get_element_type() == Type.f32 and scale.get_element_type() == Type.f32:
        zero8 = _one_or_each(zero, ops.constant(np.array(0, eight[out_type])).output(0), None)
        if zero8 is not None and _one_or_each(scale, scale, None) is not None:
            return ops._make("aiov.Quantize", [x, scale, zero8], {}, ctx.node.name)
    y = ops.divide(_as_f32(x), _quant_param(ctx, _as_f32(scale), x, axis, block))
    if out_type not in _QUANT_FLOATS:  # float targets round in the conversion itself
        y = ops.round(y, "half_to_even")
    if zero is not None:
        y = ops.add(y, _quant_param(ctx, _as_f32(zero), x, axis, block))
    return _saturate(ctx, y, out_type, bool(ctx.attr("saturate", 1)))


@converter("DynamicQuantizeLinear")
def _dynamic_quantize_linear(ctx):
    # One native op: u8 over the range of x widened to include 0, scale = (max - min) / 255.
    return ops._make("aiov.DynamicQuantize", [_as_f32(ctx.inputs[0])], {}, ctx.node.name).outputs()


def _integer_operand(ctx, x, zero, per_row):
    """x - zero point in f32 (exact for the products of 8- and 16-bit operands that follow);
    a 1-D zero point of A counts per row, one of B per column."""
    x = _as_f32(x)
    if zero is None:
        return x
    zero = _as_f32(zero)
    shape = zero.get_partial_shape()
    if per_row and shape.rank.is_static and len(shape) == 1 and shape[0] != 1:
        zero = as_output(ops.unsqueeze(zero, [1]))
    return as_output(ops.subtract(x, zero))


def _one_or_each(value, like, count):
    """`value` when it is one value or `count` values (count None: one only) of like's type;
    a zero of like's type when absent; None when it is neither."""
    if value is None:
        return ops.constant(np.array(0, like.get_element_type().to_dtype()))
    shape = value.get_partial_shape()
    if not shape.is_static or value.get_element_type() != like.get_element_type():
        return None
    dims = [d.get_length() for d in shape]
    return value if dims in ([], [1]) or (count is not None and dims == [count]) else None


def _integer_matmul(ctx, a, b, a_zero, b_zero, factor=None):
    """aiov.QuantizedMatMul (s32 products on the integer GEMM; f32 times `factor` when given)
    where it applies: 8-bit operands, B 2-D, A's zero point one value, B's one or one per
    column. None elsewhere (the caller composes the product in f32)."""
    eight = (Type.u8, Type.i8)
    if a.get_element_type() not in eight or b.get_element_type() not in eight:
        return None
    a_shape, b_shape = a.get_partial_shape(), b.get_partial_shape()
    if not a_shape.rank.is_static or len(a_shape) < 1 or not b_shape.is_static or len(b_shape) != 2:
        return None
    n = b_shape[1].get_length()
    za, zb = _one_or_each(a_zero, a, None), _one_or_each(b_zero, b, n)
    if za is None or zb is None or (factor is not None and _one_or_each(factor, factor, n) is None):
        return None
    inputs = [a, b, za, zb] + ([factor] if factor is not None else [])
    return ops._make("aiov.QuantizedMatMul", inputs, {}, ctx.node.name)


def _integer_gemm(trans_b, ctx, a, b, a_zero, b_zero, factor, bias=None):
    """Gemm's `_integer_matmul`: constant B [N, K] with trans_b transposed once here, C added
    after (the optimizer folds an [N] bias into the product)."""
    if trans_b:
        b = ops.constant(np.ascontiguousarray(b.get_node().get_data().T)).output(0)
    y = _integer_matmul(ctx, a, b, a_zero, b_zero, factor)
    return y if y is None or bias is None else ops.add(y, bias)


def _integer_conv(ctx, x, w, x_zero, w_zero, factor=None, bias=None):
    """aiov.QuantizedConv where it applies: 8-bit data, constant 8-bit filters (any group), the
    data's zero point one value, the filters' (and the factor) one or one per output channel.
    None elsewhere."""
    eight = (Type.u8, Type.i8)
    if x.get_element_type() not in eight or w.get_element_type() not in eight:
        return None
    x_shape, w_shape = x.get_partial_shape(), w.get_partial_shape()
    if w.get_node().get_type_name() != "Constant" or not x_shape.rank.is_static or len(x_shape) not in (3, 4, 5):
        return None
    if not w_shape.is_static or len(w_shape) != len(x_shape):
        return None
    out = w_shape[0].get_length()
    zx, zw = _one_or_each(x_zero, x, None), _one_or_each(w_zero, w, out)
    if zx is None or zw is None or (factor is not None and _one_or_each(factor, factor, out) is None):
        return None
    if bias is not None:
        b_shape = bias.get_partial_shape()
        if bias.get_element_type() != Type.f32 or not b_shape.is_static or [d.get_length() for d in b_shape] != [out]:
            return None
    inputs = [x, w, zx, zw] + ([factor] if factor is not None else []) + ([bias] if bias is not None else [])
    attrs = dict(_spatial(ctx, len(x_shape)), group=ctx.attr("group", 1))
    return ops._make("aiov.QuantizedConv", inputs, attrs, ctx.node.name)


@converter("MatMul")
def _matmul(ctx):
    weights = ctx.inputs[1].get_partial_shape()
    if len(ctx.inputs) == 2 and weights.rank.is_static and len(weights) == 2:
        fast = _qdq_product(ctx, 1, _integer_matmul)
        if fast is not None:
            return fast
    return ops._make("MatMul", ctx.inputs, {}, ctx.node.name)


def _qdq_product(ctx, weight_axis, integer_product):
    """A MatMul or Conv of two DequantizeLinear outputs (the QDQ form onnxruntime's
    quantize_static writes: activations per tensor, constant weights per tensor or per output
    channel along `weight_axis`) as `integer_product` of the quantized values, dequantized
    by activation scale x weight scale. None when the inputs are anything else."""
    dq = [ctx.dequantized.get(name) for name in ctx.node.input[:2]]
    if len(dq) != 2 or None in dq:
        return None
    (a, a_scale, a_zero), (w, w_scale, w_zero) = [
        ([ctx.scope[name] if name else None for name in node.input] + [None] * 3)[:3] for node in dq
    ]
    subs = [_Context(node, ctx.scope, ctx.opset, ctx.depth) for node in dq]
    if any(sub.attr("block_size", 0) for sub in subs):
        return None
    w_rank = len(w.get_partial_shape())
    w_scales = w_scale.get_partial_shape()
    per_channel = not w_scales.is_static or len(w_scales) > 1 or (len(w_scales) == 1 and w_scales[0].get_length() > 1)
    if per_channel and _quant_axis(subs[1]) not in (weight_axis, weight_axis - w_rank):
        return None
    a_shape = a_scale.get_partial_shape()
    one_scale = a_shape.is_static and [d.get_length() for d in a_shape] in ([], [1])
    if w.get_node().get_type_name() != "Constant" or not one_scale:
        return None
    if a_scale.get_element_type() != Type.f32 or w_scale.get_element_type() != Type.f32:
        return None
    factor = as_output(ops.multiply(a_scale, w_scale))
    bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    extra = (bias,) if bias is not None else ()
    return integer_product(ctx, a, w, a_zero, w_zero, factor, *extra)


@converter("MatMulInteger")
def _matmul_integer(ctx):
    get = lambda i: ctx.inputs[i] if len(ctx.inputs) > i else None  # noqa: E731
    fast = _integer_matmul(ctx, get(0), get(1), get(2), get(3))
    if fast is not None:
        return fast
    a = _integer_operand(ctx, get(0), get(2), True)
    b = _integer_operand(ctx, get(1), get(3), False)
    return ops.convert(ops.matmul(a, b), Type.i32)


@converter("QLinearMatMul")
def _qlinear_matmul(ctx):
    a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero = (list(ctx.inputs) + [None] * 8)[:8]
    # The rescale factor in the scales' own type, as ONNX's reference computes it.
    factor = _as_f32(as_output(ops.divide(ops.multiply(a_scale, b_scale), y_scale)))
    y = _integer_matmul(ctx, a, b, a_zero, b_zero, factor)
    if y is None:
        product = ops.matmul(_integer_operand(ctx, a, a_zero, True), _integer_operand(ctx, b, b_zero, False))
        y = ops.multiply(product, factor)
    y = ops.round(y, "half_to_even")
    if y_zero is not None:
        y = ops.add(y, _as_f32(y_zero))
    return _saturate(ctx, y, (y_zero if y_zero is not None else a).get_element_type().get_type_name())


def _shifted_filters(ctx, w, zero):
    """w - zero point in f32; a 1-D zero point holds one value per output channel."""
    w = _as_f32(w)
    if zero is None:
        return w
    zero = _as_f32(zero)
    shape = zero.get_partial_shape()
    if shape.rank.is_static and len(shape) == 1 and shape[0] != 1:
        zero = as_output(ops.unsqueeze(zero, list(range(1, _rank(ctx, w)))))
    return as_output(ops.subtract(w, zero))


@converter("ConvInteger")
def _conv_integer(ctx):
    x, w, x_zero, w_zero = (list(ctx.inputs) + [None] * 4)[:4]
    fast = _integer_conv(ctx, x, w, x_zero, w_zero)
    if fast is not None:
        return fast
    x = _as_f32(x) if x_zero is None else as_output(ops.subtract(_as_f32(x), _as_f32(x_zero)))
    return ops.convert(_convolution(ctx, x, _shifted_filters(ctx, w, w_zero), None), Type.i32)


@converter("QLinearConv")
def _qlinear_conv(ctx):
    x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero, bias = (list(ctx.inputs) + [None] * 9)[:9]
    factor = _as_f32(as_output(ops.divide(ops.multiply(x_scale, w_scale), y_scale)))
    # The s32 bias is added to the sums before the factor: bias x factor after it, in f32.
    f32_bias = None if bias is None else as_output(ops.multiply(_as_f32(bias), factor))
    y = _integer_conv(ctx, x, w, x_zero, w_zero, factor, f32_bias)
    if y is None:
        xs = _as_f32(x) if x_zero is None else as_output(ops.subtract(_as_f32(x), _as_f32(x_zero)))
        y = _convolution(ctx, xs, _shifted_filters(ctx, w, w_zero), None if bias is None else _as_f32(bias))
        shape = factor.get_partial_shape()
        if shape.rank.is_static and len(shape) == 1 and shape[0] != 1:  # one scale per output channel
            factor = _channel_vector(factor, _rank(ctx, x))
        y = ops.multiply(y, factor)
    y = ops.round(y, "half_to_even")
    if y_zero is not None:
        y = ops.add(y, _as_f32(y_zero))
    return _saturate(ctx, y, (y_zero if y_zero is not None else x).get_element_type().get_type_name())


@converter("Swish")
def _swish(ctx):
    # Opset 24: x * sigmoid(alpha * x); the engine's Swish is alpha = 1.
    x, alpha = ctx.inputs[0], float(ctx.attr("alpha", 1.0))
    if alpha == 1.0:
        return ops.swish(x)
    scaled = ops.multiply(x, ops.convert(ops.constant(np.array(alpha, np.float32)), x.get_element_type()))
    return ops.multiply(x, ops.sigmoid(scaled))


# ---- losses: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss -----------------------------


def _nll_loss(ctx, log_prob, target, weight):
    """-log_prob[n, target[n, ...], ...] weighted by weight[target], 0 where target is
    ignore_index; reduced by sum, by the weighted mean, or not at all."""
    reduction = ctx.attr("reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        ctx.fail(f"reduction must be none, sum or mean, got {reduction!r}")
    rank = _rank(ctx, log_prob)
    ignore = ctx.attr("ignore_index")
    valid = None
    if ignore is not None:
        ignored = ops.constant(np.array(ignore, target.get_element_type().to_dtype()))
        valid = ops.not_equal(target, ignored)
        target = ops.select(valid, target, ops.constant(np.array(0, target.get_element_type().to_dtype())))
    dtype = log_prob.get_element_type()
    picked = ops.squeeze(ops.gather_elements(log_prob, ops.unsqueeze(target, [1]), axis=1), [1])
    if weight is not None:
        w = as_output(ops.gather(weight, target, 0))
        if valid is not None:
            w = as_output(ops.multiply(w, ops.convert(valid, dtype)))
    elif valid is not None:
        w = as_output(ops.convert(valid, dtype))
    else:
        w = None
    loss = ops.negative(picked if w is None else ops.multiply(picked, w))
    if reduction == "none":
        return loss
    axes = list(range(rank - 1))
    total = ops.reduce_sum(loss, axes, False)
    if reduction == "sum":
        return total
    if w is None:
        return ops.reduce_mean(loss, axes, False)
    return ops.divide(total, ops.reduce_sum(w, axes, False))


@converter("NegativeLogLikelihoodLoss")
def _negative_log_likelihood_loss(ctx):
    weight = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    return _nll_loss(ctx, ctx.inputs[0], ctx.inputs[1], weight)


@converter("SoftmaxCrossEntropyLoss")
def _softmax_cross_entropy_loss(ctx):
    log_prob = as_output(ops.log_softmax(ctx.inputs[0], 1))
    weight = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    loss = _nll_loss(ctx, log_prob, ctx.inputs[1], weight)
    return [loss, log_prob] if len(ctx.node.output) > 1 else loss


# ---- control flow: If, Loop, Scan -----------------------------------------------------------
# A subgraph becomes an engine body (``_core.make_body``) that is self-contained: the names it
# reads from enclosing graphs become trailing inputs of its node and parameters of the body.


def _body_parameter(info, fallback):
    """A subgraph input as a parameter: its declared kind, type and shape, else `fallback`'s
    ((element type, dims) or (element type, dims, kind))."""
    dtype, shape = fallback[:2]
    kind = fallback[2] if len(fallback) > 2 else "tensor"
    ttype = None
    if info.type.WhichOneof("value") is not None:
        declared, ttype, typed = _value_type(info.type, info.name, "input")
        kind = declared
        ttype = ttype if typed else None
    if ttype is not None and ttype.elem_type:
        dtype = _onnx_dtype(ttype.elem_type)
    if ttype is not None and ttype.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
    if dtype is None:
        raise InputError(f"ONNX subgraph input '{info.name}' declares no element type")
    return ops.parameter(shape, dtype, name=info.name, kind=kind)


def _same_rank(port, drop=0):
    """Kind, type and shape for a subgraph input that declares none: the port's kind, type and
    rank (less `drop` scanned axes), every dimension free (a carried value may change size per
    step; a sequence's tensors may differ)."""
    shape = port.get_partial_shape()
    kind = port.get_value_kind()
    dims = None if shape.rank.is_dynamic or kind != "tensor" else [-1] * max(0, shape.rank.get_length() - drop)
    return port.get_element_type(), dims, kind


def _captures(ctx, graphs) -> list:
    """The enclosing-scope names the subgraphs read, in order of first use."""
    names = []
    for g in graphs:
        for name in _free_names(g):
            if name not in names:
                names.append(name)
    missing = [name for name in names if name not in ctx.scope]
    if missing:
        ctx.fail(
            f"its subgraph reads {', '.join(repr(m) for m in missing)}, defined neither in the subgraph "
            f"nor in an enclosing graph"
        )
    return names


def _make_body(ctx, graph, fallbacks, captured):
    """`graph` as an engine body: its inputs (typed by `fallbacks` where it declares no type),
    then one parameter per captured name."""
    if ctx.depth + 1 > _MAX_SUBGRAPH_DEPTH:
        ctx.fail(f"subgraphs are nested more than {_MAX_SUBGRAPH_DEPTH} deep")
    if len(graph.input) != len(fallbacks):
        ctx.fail(f"its subgraph '{graph.name}' takes {len(graph.input)} inputs, expected {len(fallbacks)}")
    values = {}
    params = []
    for info, fallback in zip(graph.input, fallbacks):
        params.append(_body_parameter(info, fallback))
        values[info.name] = params[-1].output(0)
    for name in captured:
        outer = ctx.scope[name]
        params.append(
            ops.parameter(outer.get_partial_shape(), outer.get_element_type(), name=name, kind=outer.get_value_kind())
        )
        values[name] = params[-1].output(0)
    for init in graph.initializer:
        values[init.name] = _initializer(init)
    _convert_nodes(graph, values, ctx.opset, ctx.depth + 1)
    outputs = []
    for out in graph.output:
        _check_tensor_value(out, "output")
        if out.name not in values:
            ctx.fail(f"its subgraph '{graph.name}' output '{out.name}' is not produced")
        port = values[out.name]
        outputs.append((port._node._native, port._index))
    return _core.make_body([p._native for p in params], outputs)


def _value_from_static_shapes(port, max_nodes=64):
    """The value of `port` when constants and the static shapes of inputs alone decide it (a
    condition on an input's rank or size, as ONNX's function expansions write), else None.
    Only small computations over constants and the shapes of inputs are run."""
    params = {}
    stack = [port.get_node()]
    seen = set()
    while stack:
        node = stack.pop()
        if node._native.id in seen:
            continue
        seen.add(node._native.id)
        kind = node.get_type_name()
        if kind == "Constant":
            continue
        if kind == "Parameter" or len(seen) > max_nodes:
            return None
        if kind == "ShapeOf":
            source = node.input_value(0)
            if source.get_node().get_type_name() != "Parameter" or not source.get_partial_shape().is_static:
                return None
            params[source.get_node()._native.id] = source.get_node()
            continue
        stack.extend(value.get_node() for value in node.input_values())
    from .._runtime import compile_model

    ordered = list(params.values())
    compiled = compile_model(Model([port], ordered, "read_time_value"), "CPU")
    feeds = [
        np.zeros(p.get_output_partial_shape(0).to_shape(), p.get_output_element_type(0).to_dtype()) for p in ordered
    ]
    return compiled(feeds)[0]


def _control_node(ctx, op, inputs, attrs, bodies):
    ports = [as_output(i) for i in inputs]
    native = _core.make_node(op, [(p._node._native, p._index) for p in ports], attrs, ctx.node.name, bodies)
    return Node(native).outputs()


def _body_attr(ctx):
    graph = ctx.attrs.get("body")
    if graph is None:
        ctx.fail("needs its body")
    return graph


def _single_body_node(ctx, op, inputs, attrs, graph, fallbacks):
    """A node with one "body" graph; the values the body reads from outside follow `inputs`."""
    captured = _captures(ctx, [graph])
    body = _make_body(ctx, graph, fallbacks, captured)
    attrs = {**attrs, "captured": len(captured)}
    return _control_node(ctx, op, [*inputs, *[ctx.scope[n] for n in captured]], attrs, {"body": body})


@converter("If")
def _if(ctx):
    then_graph, else_graph = ctx.attrs.get("then_branch"), ctx.attrs.get("else_branch")
    if then_graph is None or else_graph is None:
        ctx.fail("needs both then_branch and else_branch")
    cond = ctx.const_value(0)
    if cond is None:
        cond = _value_from_static_shapes(ctx.inputs[0])
    if cond is not None:
        # Known when the model is read (common in exports): the taken branch's nodes join
        # the enclosing graph, and the other branch is never converted.
        if np.asarray(cond).size != 1:
            ctx.fail(f"the condition must hold one value, got shape {list(np.shape(cond))}")
        taken = then_graph if bool(np.asarray(cond).reshape(-1)[0]) else else_graph
        values = dict(ctx.scope)
        for init in taken.initializer:
            values[init.name] = _initializer(init)
        _convert_nodes(taken, values, ctx.opset, ctx.depth + 1)
        missing = [o.name for o in taken.output if o.name not in values]
        if missing:
            ctx.fail(f"branch output(s) {', '.join(missing)} are not produced")
        return [values[o.name] for o in taken.output]
    captured = _captures(ctx, [then_graph, else_graph])
    bodies = {
        "then_branch": _make_body(ctx, then_graph, [], captured),
        "else_branch": _make_body(ctx, else_graph, [], captured),
    }
    return _control_node(ctx, "If", [ctx.inputs[0]] + [ctx.scope[n] for n in captured], {}, bodies)


@converter("Loop")
def _loop(ctx):
    graph = _body_attr(ctx)
    inputs = list(ctx.inputs) + [None] * (2 - len(ctx.inputs))
    trips, cond, carried = inputs[0], inputs[1], inputs[2:]
    if any(c is None for c in carried):
        ctx.fail("an omitted loop-carried value is not supported")
    # ONNX: without M the loop runs until cond says stop; without cond, the body's cond is ignored.
    stop_on_cond = cond is not None
    if trips is None:
        trips = ops.constant(np.array(np.iinfo(np.int64).max, dtype=np.int64))
    if cond is None:
        cond = ops.constant(np.array(True))
    fallbacks = [(np.int64, []), (np.bool_, [])] + [_same_rank(c) for c in carried]
    attrs = {"stop_on_cond": stop_on_cond}
    return _single_body_node(ctx, "Loop", [trips, cond, *carried], attrs, graph, fallbacks)


_SCAN_ATTRS = (
    "num_scan_inputs",
    "scan_input_axes",
    "scan_input_directions",
    "scan_output_axes",
    "scan_output_directions",
)


@converter("Scan")
def _scan(ctx):
    graph = _body_attr(ctx)
    inputs = list(ctx.inputs)
    attrs = {key: ctx.attr(key) for key in _SCAN_ATTRS if key in ctx.attrs}
    batch = 0
    if ctx.opset < 9:
        # Scan-8: every state and scanned input has a batch axis first; an optional
        # sequence_lens input comes before them.
        if inputs and inputs[0] is not None:
            ctx.fail("sequence_lens (scans of different lengths per batch entry) is not supported")
        inputs = inputs[1:]
        attrs["batched"] = True
        if "directions" in ctx.attrs:
            attrs["scan_input_directions"] = ctx.attr("directions")
        batch = 1
    if any(i is None for i in inputs):
        ctx.fail("an omitted input is not supported")
    states = len(inputs) - ctx.attr("num_scan_inputs", 0)
    fallbacks = [_same_rank(x, drop=batch + int(i >= states)) for i, x in enumerate(inputs)]
    return _single_body_node(ctx, "Scan", inputs, attrs, graph, fallbacks)


# ---- sequences and optionals ------------------------------------------------------------------


def _type_name_of(elem_type: int) -> str:
    return Type(_onnx_dtype(elem_type)).get_type_name()


@converter("SequenceEmpty")
def _sequence_empty(ctx):
    dtype = ctx.attr("dtype", 1)  # ONNX's default: float
    return ops._make("SequenceEmpty", [], {"element_type": _type_name_of(dtype)}, ctx.node.name)


@converter("Optional")
def _optional(ctx):
    if ctx.inputs and ctx.inputs[0] is not None:
        return ops._make("Optional", [ctx.inputs[0]], {}, ctx.node.name)
    declared = ctx.attrs.get("type")
    if declared is None:
        ctx.fail("an empty optional needs its 'type' attribute")
    kind, ttype, _ = _value_type(declared, ctx.node.output[0], "value")
    if kind not in ("tensor", "sequence"):
        ctx.fail(f"'type' must be a tensor or sequence type, got {kind}")
    attrs = {"element_type": _type_name_of(ttype.elem_type or 1), "of": kind}
    return ops._make("Optional", [], attrs, ctx.node.name)


@converter("SequenceMap")
def _sequence_map(ctx):
    graph = _body_attr(ctx)
    inputs = list(ctx.inputs)
    if any(i is None for i in inputs):
        ctx.fail("an omitted input is not supported")
    # The body takes one tensor of each sequence input, and each tensor input whole.
    fallbacks = []
    for x in inputs:
        kind = x.get_value_kind()
        fallbacks.append((x.get_element_type(), None, "tensor" if kind == "sequence" else kind))
    return _single_body_node(ctx, "SequenceMap", inputs, {}, graph, fallbacks)
