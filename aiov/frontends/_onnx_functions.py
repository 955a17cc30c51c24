"""ONNX ops aiov has no converter for but whose schema defines them as a function of other ops
(FlexAttention's body, built for the node's attributes and input types): the node is replaced
by that body's nodes, renamed into the calling graph, and those are converted instead. The
``onnx`` package is imported only when a model has such an op."""

from __future__ import annotations

from .._errors import InputError
from . import _onnx_proto as _proto


def _schema(node, opset: int):
    """The node's schema at the model's opset (the latest for other domains), or None."""
    from onnx import defs

    domain = "" if node.domain == "ai.onnx" else node.domain
    try:
        if domain:
            return defs.get_schema(node.op_type, domain=domain)
        return defs.get_schema(node.op_type, opset, "")
    except Exception:
        return None


def expandable(node, opset: int) -> bool:
    """Whether the node's op is defined by a function body aiov can convert instead."""
    schema = _schema(node, opset)
    return schema is not None and (schema.has_function or schema.has_context_dependent_function)


def _input_type(port):
    """An ONNX TypeProto for an aiov port: its element type and (partial) shape."""
    from onnx import helper

    pshape = port.get_partial_shape()
    dims = None
    if pshape.rank.is_static:
        dims = [d.get_length() if d.is_static else None for d in pshape]
    return helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(port.get_element_type().to_dtype()), dims)


def expand(node, inputs, opset: int, label: str):
    """(nodes, default-domain opset) of the node's function body: formal inputs and outputs
    renamed to the node's, every other value to a name under the node's label."""
    schema = _schema(node, opset)
    if schema is None or not (schema.has_function or schema.has_context_dependent_function):
        raise InputError(f"ONNX node {node.op_type} '{label}': aiov has no converter for it and ONNX no function body")
    pb2 = _proto.proto_module()
    if schema.has_context_dependent_function:
        types = [_input_type(p).SerializeToString() if p is not None else b"" for p in inputs]
        body = pb2.FunctionProto.FromString(schema.get_context_dependent_function(node.SerializeToString(), types))
    else:
        body = pb2.FunctionProto.FromString(schema.function_body.SerializeToString())
    attrs = {a.name: a for a in node.attribute}
    names = {"": ""}
    names.update(zip(body.input, list(node.input) + [""] * (len(body.input) - len(node.input))))
    names.update(zip(body.output, node.output))
    nodes = []
    for inner in body.node:
        if any(a.type in (5, 10) for a in inner.attribute):  # GRAPH, GRAPHS
            raise InputError(
                f"ONNX node {node.op_type} '{label}': its function body has subgraphs, which aiov cannot inline"
            )
        copy = pb2.NodeProto()
        copy.CopyFrom(inner)
        for lst in (copy.input, copy.output):
            for i, name in enumerate(lst):
                lst[i] = names.setdefault(name, f"{label}/{node.op_type}/{name}")
        if not copy.name:
            copy.name = f"{label}/{inner.op_type}_{len(nodes)}"
        # Attributes the body takes from the node: the node's value, else the op's default.
        kept = []
        for a in copy.attribute:
            if not a.ref_attr_name:
                kept.append(a)
                continue
            given = attrs.get(a.ref_attr_name)
            if given is None and schema.attributes[a.ref_attr_name].default_value.name:
                given = schema.attributes[a.ref_attr_name].default_value
            if given is not None:
                value = pb2.AttributeProto.FromString(given.SerializeToString())
                value.name = a.name
                kept.append(value)
        del copy.attribute[:]
        copy.attribute.extend(kept)
        nodes.append(copy)
    body_opset = next((o.version for o in body.opset_import if o.domain in ("", "ai.onnx")), opset)
    return nodes, body_opset
