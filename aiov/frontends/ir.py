"""OpenVINO IR (version 10/11) reader and writer: ``model.xml`` describes the graph,
``model.bin`` holds the data of its Const layers.

The reader builds nodes through the native op registry, so every output type and shape
comes from aiov's own shape inference (the <dim>s in the xml are not trusted). The writer
emits IR that both aiov and OpenVINO read back."""

from __future__ import annotations

import heapq
import os
import re
import xml.etree.ElementTree as ET

import numpy as np

from .. import _core
from .._errors import InputError
from .._graph import Node, make_result
from .._model import Model
from .._tensor import element_count
from .._types import _TYPE_IDS, PartialShape, Type

# ---- element types -------------------------------------------------------------------------

# IR element_type spellings (plus the legacy precision names some IRs carry) -> aiov type names.
_IR_TYPES = {name: name for name in _TYPE_IDS if name not in ("undefined", "dynamic")}
_IR_TYPES.update(
    {
        "bool": "boolean",
        "BOOL": "boolean",
        "FP32": "f32",
        "FP16": "f16",
        "FP64": "f64",
        "BF16": "bf16",
        "I4": "i4",
        "I8": "i8",
        "I16": "i16",
        "I32": "i32",
        "I64": "i64",
        "U1": "u1",
        "U4": "u4",
        "U8": "u8",
        "U16": "u16",
        "U32": "u32",
        "U64": "u64",
        "BIN": "u1",
    }
)
_PRECISION = {
    "f32": "FP32",
    "f16": "FP16",
    "f64": "FP64",
    "bf16": "BF16",
    "boolean": "BOOL",
    "i4": "I4",
    "i8": "I8",
    "i16": "I16",
    "i32": "I32",
    "i64": "I64",
    "u1": "U1",
    "u4": "U4",
    "u8": "U8",
    "u16": "U16",
    "u32": "U32",
    "u64": "U64",
}

# ---- ops --------------------------------------------------------------------------------------
# Every op whose registry entry names an IR layer type (aiov._core.op_schema()) is read and
# written generically: layer types, version and attribute spellings all come from there.

_SPECIAL = {"Parameter", "Const", "Constant", "Result"}
_BY_TYPE = {}  # op type -> description
_BY_IR_TYPE = {}  # IR layer type -> description


def _ops_by_ir_type() -> dict:
    if not _BY_TYPE:
        for desc in _core.op_schema():
            _BY_TYPE[desc["type"]] = desc
            for ir_type in desc["ir_types"]:
                _BY_IR_TYPE[ir_type] = desc
    return _BY_IR_TYPE


def _op_description(op_type):
    _ops_by_ir_type()
    return _BY_TYPE.get(op_type)


def supported_layer_types() -> list:
    return sorted(_SPECIAL | set(_ops_by_ir_type()) | set(_ADAPTED))


# ---- names -----------------------------------------------------------------------------------


def _split_names(text: str) -> list:
    """The ``names`` attribute of a port: comma separated, ``\\,`` escapes a comma."""
    names, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == ",":
            cur.append(",")
            i += 2
            continue
        if ch == ",":
            names.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    names.append("".join(cur).strip())
    return [n for n in names if n]


def _join_names(names) -> str:
    return ",".join(n.replace(",", "\\,") for n in sorted(names))


# ---- reading ---------------------------------------------------------------------------------


class _Layer:
    __slots__ = ("id", "type", "name", "version", "data", "in_ports", "out_ports", "xml", "read_ports")

    def __init__(self, elem):
        self.xml = elem
        self.id = elem.get("id")
        self.type = elem.get("type")
        self.name = elem.get("name") or ""
        self.version = elem.get("version") or ""
        if self.id is None or self.type is None:
            raise InputError(f"IR layer {ET.tostring(elem, encoding='unicode')[:120]!r} has no id or type")
        data = elem.find("data")
        self.data = dict(data.attrib) if data is not None else {}
        self.in_ports = [p.get("id") for p in _ports(elem, "input")]
        self.out_ports = _ports(elem, "output")
        self.read_ports = set()  # ids of the output ports some edge reads

    def describe(self) -> str:
        return f"{self.type} layer '{self.name}' (id {self.id})"

    def fail(self, what: str):
        raise InputError(f"IR {self.describe()}: {what}")


def _ports(elem, section):
    sec = elem.find(section)
    return [] if sec is None else sec.findall("port")


def _parse_bool(layer, key, text):
    t = text.strip().lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    layer.fail(f"attribute {key}={text!r} is not a boolean")


def _parsed(layer, parse, text, complaint):
    """``parse(text)``, or the layer's error saying ``complaint`` when the text is not one."""
    try:
        return parse(text)
    except (ValueError, TypeError):
        layer.fail(complaint)


def _parse_int(layer, key, text):
    return _parsed(layer, int, text, f"attribute {key}={text!r} is not an integer")


def _parse_type(layer, key, text):
    name = _IR_TYPES.get(text.strip())
    if name is None:
        layer.fail(f"element type {key}={text!r} is not supported by aiov")
    return name


def _parse_shape(layer, text):
    return _parsed(layer, lambda t: PartialShape(t.replace(" ", "")), text, f"shape {text!r} cannot be parsed")


def _parse_float(layer, key, text):
    return _parsed(layer, float, text, f"attribute {key}={text!r} is not a number")


def _parse_list(layer, key, text, parse):
    return [parse(layer, key, t) for t in text.split(",") if t.strip()]


def _op_attrs(layer, desc) -> dict:
    """The layer's <data> as the op's attributes, by the registry's schema."""
    attrs = {}
    for spec in desc["attrs"]:
        ir_key = spec["ir"]
        if ir_key == "-":
            continue
        text = layer.data.get(ir_key)
        if text is None:
            if spec["required"]:
                layer.fail(f"missing attribute '{ir_key}'")
            continue  # the engine's default
        kind = spec["kind"]
        if kind == "bool":
            attrs[spec["name"]] = _parse_bool(layer, ir_key, text)
        elif kind == "int":
            attrs[spec["name"]] = _parse_int(layer, ir_key, text)
        elif kind == "float":
            attrs[spec["name"]] = _parse_float(layer, ir_key, text)
        elif kind == "ints":
            attrs[spec["name"]] = _parse_list(layer, ir_key, text, _parse_int)
        elif kind == "floats":
            attrs[spec["name"]] = _parse_list(layer, ir_key, text, _parse_float)
        elif kind == "type":
            attrs[spec["name"]] = _parse_type(layer, ir_key, text)
        else:
            value = text.strip()
            # IR writers differ in case (NUMPY, numpy): take the schema's spelling.
            match = [c for c in spec["choices"] if c.lower() == value.lower()]
            attrs[spec["name"]] = value if not match or value in spec["choices"] else match[0]
    return attrs


class _Weights:
    """The .bin file, opened lazily (a model without Const layers needs none)."""

    def __init__(self, path, explicit, data=None, mmap=True):
        self.path, self.explicit = path, explicit
        self._data = data  # weights given in memory (read_ir_text)
        self._mmap = mmap  # map the file (ENABLE_MMAP), else read it into memory

    def get(self, layer, offset, size) -> np.ndarray:
        if self._data is None:
            if self.path is None:
                raise InputError(f"IR {layer.describe()} needs weights: pass them with the xml (bytes or a Tensor)")
            if not os.path.isfile(self.path):
                raise InputError(f"IR {layer.describe()} needs the weights file {self.path!r}, which does not exist")
            if os.path.getsize(self.path) == 0:
                self._data = np.zeros(0, np.uint8)
            elif self._mmap:
                self._data = np.memmap(self.path, dtype=np.uint8, mode="r")
            else:
                self._data = np.fromfile(self.path, dtype=np.uint8)
        if offset < 0 or size < 0 or offset + size > self._data.size:
            raise InputError(
                f"the weights file {self.path!r} is truncated or does not match the xml: {layer.describe()} "
                f"needs bytes [{offset}, {offset + size}) but the file has {self._data.size} bytes"
            )
        return np.ascontiguousarray(self._data[offset : offset + size])


def _net_root(parse, xml, what):
    """The <net> element ``parse(xml)`` reads; ``what`` names the xml in the errors."""
    try:
        root = parse(xml)
    except ET.ParseError as exc:
        raise InputError(f"cannot parse {what}: {exc}") from None
    if root.tag != "net":
        raise InputError(f"{what} is not an OpenVINO IR: the root element is <{root.tag}>, not <net>")
    return root


def _read_xml(xml_path):
    return _net_root(lambda path: ET.parse(path).getroot(), xml_path, f"the IR xml {xml_path!r}")


def read_ir_bytes(xml: bytes, weights: bytes, source: str) -> Model:
    """Reads IR held in memory (an exported blob): the xml text and its weights' bytes."""
    root = _net_root(ET.fromstring, xml, f"the IR xml of {source}")
    store = _Weights(source, True)
    store._data = np.frombuffer(weights, dtype=np.uint8)
    return _build(root, store, source)


def read_ir(xml_path, bin_path=None, mmap=True) -> Model:
    """Reads OpenVINO IR v10/v11: ``xml_path`` plus ``bin_path`` (default: the .xml's
    sibling ``.bin``), mapped or (``mmap=False``) read into memory. Raises InputError for
    anything aiov cannot represent."""
    xml_path = os.fspath(xml_path)
    if not os.path.isfile(xml_path):
        raise FileNotFoundError(f"model file not found: {xml_path}")
    explicit = bin_path is not None and os.fspath(bin_path) != ""
    if explicit:
        bin_path = os.fspath(bin_path)
        if not os.path.isfile(bin_path):
            raise FileNotFoundError(f"weights file not found: {bin_path}")
    else:
        bin_path = os.path.splitext(xml_path)[0] + ".bin"
    root = _read_xml(xml_path)
    return _build(root, _Weights(bin_path, explicit, mmap=mmap), xml_path)


def read_ir_text(xml, weights=None) -> Model:
    """Reads an IR held in memory: the xml as str or bytes, the weights as bytes or a 1-D u8
    array (a Tensor's data); without weights a model with Const layers is refused."""
    root = _net_root(ET.fromstring, xml, "the IR xml given in memory")
    if weights is None:
        return _build(root, _Weights(None, False), "<IR xml given in memory>")
    data = np.frombuffer(weights, dtype=np.uint8)
    return _build(root, _Weights("<weights given in memory>", True, data), "<IR xml given in memory>")


def _build(root, weights, source) -> Model:
    version = root.get("version")
    if version not in ("10", "11"):
        raise InputError(f"{source!r}: IR version {version!r} is not supported (aiov reads IR v10 and v11)")
    layers_elem = root.find("layers")
    if layers_elem is None:
        raise InputError(f"{source!r}: the IR has no <layers>")
    layers = {}
    order = []
    for elem in layers_elem.findall("layer"):
        layer = _Layer(elem)
        if layer.id in layers:
            raise InputError(f"{source!r}: two layers have id {layer.id}")
        layers[layer.id] = layer
        order.append(layer.id)

    by_ir_type = _ops_by_ir_type()
    for lid in order:
        layer = layers[lid]
        if layer.type in _SPECIAL:
            continue
        if layer.type in _ADAPTED:
            continue
        desc = by_ir_type.get(layer.type)
        if desc is None:
            raise InputError(
                f"IR layer type '{layer.type}' (version {layer.version or '?'}) is not supported "
                f"by aiov: layer '{layer.name}' (id {layer.id}). Supported layer types: "
                f"{', '.join(supported_layer_types())}"
            )
        if layer.version and layer.version not in _OPSETS and layer.version != desc["ir_version"]:
            raise InputError(
                f"IR {layer.describe()}: version '{layer.version}' is not supported (aiov reads the standard opsets)"
            )

    # edges: (to_layer, to_port) -> (from_layer, from_port)
    sources = {}
    deps = {lid: set() for lid in order}
    users = {lid: [] for lid in order}
    edges_elem = root.find("edges")
    for edge in [] if edges_elem is None else edges_elem.findall("edge"):
        fl, fp, tl, tp = (edge.get(k) for k in ("from-layer", "from-port", "to-layer", "to-port"))
        if None in (fl, fp, tl, tp):
            raise InputError(f"{source!r}: malformed edge {edge.attrib}")
        for lid in (fl, tl):
            if lid not in layers:
                raise InputError(f"{source!r}: an edge refers to layer id {lid}, which does not exist")
        if (tl, tp) in sources:
            raise InputError(f"{source!r}: input port {tp} of {layers[tl].describe()} has two incoming edges")
        sources[(tl, tp)] = (fl, fp)
        layers[fl].read_ports.add(fp)
        if fl not in deps[tl]:
            deps[tl].add(fl)
            users[fl].append(tl)

    # Kahn's algorithm, ties broken by document order.
    position = {lid: i for i, lid in enumerate(order)}
    pending = {lid: len(deps[lid]) for lid in order}
    ready = [position[lid] for lid in order if pending[lid] == 0]
    heapq.heapify(ready)
    topo = []
    while ready:
        lid = order[heapq.heappop(ready)]
        topo.append(lid)
        for u in users[lid]:
            pending[u] -= 1
            if pending[u] == 0:
                heapq.heappush(ready, position[u])
    if len(topo) != len(order):
        stuck = [layers[lid].describe() for lid in order if pending[lid] > 0][:3]
        raise InputError(f"{source!r}: the IR graph has a cycle (involving {', '.join(stuck)})")

    produced = {}  # (layer id, port id) -> Output
    params, results, sinks = [], [], []
    for lid in topo:
        layer = layers[lid]
        inputs = []
        for port in layer.in_ports:
            src = sources.get((lid, port))
            if src is None:
                layer.fail(f"input port {port} is not connected")
            out = produced.get(src)
            if out is None:
                layer.fail(
                    f"input port {port} is connected to port {src[1]} of "
                    f"{layers[src[0]].describe()}, which has no such output"
                )
            inputs.append(out)
        node = _make_layer(layer, inputs, weights)
        _read_layer_rt_info(layer, node)
        if layer.type == "Result":
            results.append(node)
            continue
        if layer.type == "Parameter":
            params.append(node)
        elif layer.type == "Assign":
            sinks.append(node)  # a stateful model's writes: kept though no Result reads them
        n_out = node.get_output_size()
        if len(layer.out_ports) > n_out and layer.type not in _EXTRA_OUTPUTS_UNREAD:
            layer.fail(f"the IR lists {len(layer.out_ports)} outputs, the op has {n_out}")
        # (MaxPool-8/14's indices: made only when a layer reads them, see _make_layer.)
        for index, port in enumerate(layer.out_ports[:n_out]):
            out = node.output(index)
            produced[(lid, port.get("id"))] = out
            names = _split_names(port.get("names") or "")
            if names:
                node._native.set_output_names(index, names)
    if not results:
        raise InputError(f"{source!r}: the IR has no Result layer")
    model = Model(results, sinks, params, root.get("name") or "")
    rt = root.find("rt_info")
    if rt is not None:
        for key, value in _read_rt_tree(rt).items():
            model.get_rt_info()[key] = value
    return model


_OPSETS = {f"opset{i}" for i in range(1, 17)}


# ---- runtime info ----------------------------------------------------------------------------
# A model's rt_info is a tree of elements named by their keys, leaves carrying a value
# attribute; a layer's and a port's are <attribute name= value=> entries (OpenVINO's forms).
# Values are written as text and read back as strings (OVAny.astype/aslist convert them).

_XML_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def _read_rt_tree(elem) -> dict:
    tree = {}
    for child in elem:
        if len(child):
            tree[child.tag] = _read_rt_tree(child)
        else:
            tree[child.tag] = child.get("value", "")
    return tree


def _read_attributes(elem):
    rt = None if elem is None else elem.find("rt_info")
    if rt is None:
        return {}
    return {a.get("name"): a.get("value", "") for a in rt.findall("attribute") if a.get("name")}


def _read_layer_rt_info(layer, node):
    from .._graph import _rt_map

    for key, value in _read_attributes(layer.xml).items():
        _rt_map(node, "node", 0)[key] = value
    if layer.type == "Result":
        return
    for index, port in enumerate(layer.out_ports[: node.get_output_size()]):
        for key, value in _read_attributes(port).items():
            _rt_map(node, "out", index)[key] = value


def _rt_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(_rt_text(v) for v in value)
    return str(value)


def _write_rt_tree(parent, tree: dict, where: str):
    from .._any import unwrap

    for key, value in tree.items():
        value = unwrap(value)
        if not _XML_NAME.match(str(key)):
            raise InputError(f"save_model: the rt_info key {key!r} of {where} is not a valid XML element name")
        if isinstance(value, dict):
            _write_rt_tree(ET.SubElement(parent, str(key)), value, where)
        else:
            ET.SubElement(parent, str(key), {"value": _rt_text(value)})


def _write_attributes(parent, node, kind: str, index: int):
    """The rt_info of a node or port as <rt_info><attribute .../></rt_info> (nothing if empty)."""
    from .._any import unwrap
    from .._graph import _RT_INFO

    info = _RT_INFO.get((node.id, kind, index))
    if not info:
        return
    rt = ET.SubElement(parent, "rt_info")
    for key in info:
        value = unwrap(info[key])
        if isinstance(value, dict):
            continue  # nested maps are a model-level form
        ET.SubElement(rt, "attribute", {"name": str(key), "version": "0", "value": _rt_text(value)})


def _make_layer(layer, inputs, weights) -> Node:
    kind = layer.type
    if kind == "Parameter":
        if inputs:
            layer.fail("a Parameter takes no inputs")
        etype = _parse_type(layer, "element_type", layer.data.get("element_type", "f32"))
        if "shape" in layer.data:
            shape = _parse_shape(layer, layer.data["shape"])
        else:  # old IRs: the output port's dims
            shape = (
                PartialShape([int(d.text) for d in layer.out_ports[0].findall("dim")])
                if layer.out_ports
                else layer.fail("no shape")
            )
        if shape._engine() is None:
            # The native make_parameter does not accept a dynamic rank (None) yet.
            layer.fail("a Parameter of dynamic rank ('...') is not supported by aiov")
        return Node(_core.make_parameter(Type(etype)._id, shape._engine(), layer.name))
    if kind in ("Const", "Constant"):
        if inputs:
            layer.fail("a Const takes no inputs")
        for key in ("element_type", "shape", "offset", "size"):
            if key not in layer.data:
                layer.fail(f"missing attribute '{key}'")
        etype = Type(_parse_type(layer, "element_type", layer.data["element_type"]))
        shape = _parse_shape(layer, layer.data["shape"])
        if not shape.is_static:
            layer.fail(f"a constant needs a static shape, got {layer.data['shape']!r}")
        dims = list(shape.to_shape())
        offset = _parse_int(layer, "offset", layer.data["offset"])
        size = _parse_int(layer, "size", layer.data["size"])
        # Exact arithmetic: a shape and a size that agree only modulo 2**64 must not pass.
        count = element_count(dims, f"Const '{layer.name}'")
        need = (count * etype.bitwidth + 7) // 8
        if size != need:
            layer.fail(f"size={size} bytes does not match shape {shape} of {etype.get_type_name()} ({need} bytes)")
        raw = weights.get(layer, offset, size)
        return Node(_core.make_constant(etype._id, dims, raw, layer.name))
    if kind == "Result":
        if len(inputs) != 1:
            layer.fail(f"a Result takes one input, got {len(inputs)}")
        node = make_result(inputs[0])
        if layer.name:
            node.set_friendly_name(layer.name)
        return node
    adapter = _ADAPTED.get(kind)
    if adapter is not None:
        try:
            return adapter(layer, inputs)
        except InputError as exc:
            text = str(exc)
            raise InputError(text if text.startswith("IR ") else f"IR {layer.describe()}: {text}") from None
    extra = None
    if kind == "MaxPool" and len(layer.out_ports) > 1 and layer.out_ports[1].get("id") in layer.read_ports:
        extra = {"with_indices": True}  # MaxPool-8/14's indices, read by some layer
    return _generic_layer(layer, inputs, _ops_by_ir_type()[kind], extra)


def _generic_layer(layer, inputs, desc, extra_attrs=None) -> Node:
    """A layer whose inputs and attributes are its registry op's."""
    low, high = desc["min_inputs"], desc["max_inputs"]
    if len(inputs) < low or (high >= 0 and len(inputs) > high):
        want = f"at least {low}" if high < 0 else str(low) if low == high else f"{low} to {high}"
        layer.fail(f"expected {want} inputs, got {len(inputs)}")
    attrs = _op_attrs(layer, desc)
    attrs.update(extra_attrs or {})
    native_inputs = [(o._node._native, o._index) for o in inputs]
    try:
        return Node(_core.make_node(desc["type"], native_inputs, attrs, layer.name))
    except Exception as exc:
        raise InputError(f"IR {layer.describe()}: {exc}") from None


# ---- layers that are not 1:1 with a registry op ----------------------------------------------
# OpenVINO spells some ops differently from aiov's registry: grouped convolutions carry the
# group count in a 5-D filter, HardSigmoid takes alpha/beta as inputs. Each adapter rewrites
# the layer into registry ops.

_EXTRA_OUTPUTS_UNREAD = {"MaxPool"}  # MaxPool-8/14's indices, fine while nothing reads them


def _static_dims(layer, port, what) -> list:
    shape = port.get_partial_shape()
    if not shape.is_static:
        layer.fail(f"{what} needs a static shape, got {shape}")
    return [int(d) for d in shape.to_shape()]


def _regrouped(layer, filters) -> tuple:
    """A grouped filter [G, A, B, k...] seen as [G*A, B, k...] for aiov's
    Convolution/ConvTranspose with group=G; returns (port, G)."""
    from .. import opset

    dims = _static_dims(layer, filters, "a grouped filter")
    if len(dims) < 4:
        layer.fail(f"a grouped filter has rank 4 or more (G, out, in, kernel...), got shape {dims}")
    groups = dims[0]
    target = [groups * dims[1], dims[2]] + dims[3:]
    node = opset.reshape(filters, np.array(target, np.int64), False)
    return node.output(0), groups


def _read_group_convolution(layer, inputs) -> Node:
    if len(inputs) != 2:
        layer.fail(f"expected 2 inputs (data, filters), got {len(inputs)}")
    filters, groups = _regrouped(layer, inputs[1])
    return _generic_layer(layer, [inputs[0], filters], _op_description("Convolution"), {"group": groups})


def _read_backprop(layer, inputs, grouped) -> Node:
    if len(inputs) == 3:
        layer.fail("an output_shape input is not supported by aiov (the pads given must say the output size)")
    if len(inputs) != 2:
        layer.fail(f"expected 2 inputs (data, filters), got {len(inputs)}")
    filters, extra = inputs[1], {}
    if grouped:
        filters, extra["group"] = _regrouped(layer, inputs[1])
    return _generic_layer(layer, [inputs[0], filters], _op_description("ConvTranspose"), extra)


def _constant_of(layer, port, what) -> np.ndarray:
    """The value of a constant input (a Const, possibly behind OpenVINO's f16 decompression
    Convert)."""
    from .._graph import constant_value

    node = port.get_node()
    if node.get_type_name() == "Convert" and node.input_value(0).get_node().get_type_name() == "Constant":
        return constant_value(node.input_value(0).get_node()).astype(np.float64)
    if node.get_type_name() != "Constant":
        layer.fail(f"{what} must be a constant, got the output of {node.get_type_name()} '{node.get_friendly_name()}'")
    return constant_value(node)


def _read_hard_sigmoid(layer, inputs) -> Node:
    if len(inputs) != 3:
        layer.fail(f"expected 3 inputs (data, alpha, beta), got {len(inputs)}")
    alpha = _constant_of(layer, inputs[1], "alpha").reshape(-1)
    beta = _constant_of(layer, inputs[2], "beta").reshape(-1)
    if alpha.size != 1 or beta.size != 1:
        layer.fail("alpha and beta must be scalars")
    extra = {"alpha": float(alpha[0]), "beta": float(beta[0])}
    return _generic_layer(layer, inputs[:1], _op_description("HardSigmoid"), extra)


def _is_neutral_mask(port) -> bool:
    """A constant mask that masks nothing (all 0 or all true): how a writer gives SDPA a scale
    without a mask."""
    node = port.get_node()
    if node.get_type_name() != "Constant":
        return False
    from .._graph import constant_value

    value = constant_value(node)
    return bool(np.all(value)) if value.dtype == np.bool_ else not np.any(value)


def _read_sdpa(layer, inputs) -> Node:
    # OpenVINO's mask broadcasts numpy-style; aiov's Attention (ONNX's) pads a shorter key
    # dimension with -inf instead, so a mask with one key column is refused, not misread.
    if not 3 <= len(inputs) <= 5:
        layer.fail(f"expected 3 to 5 inputs (query, key, value, attention_mask, scale), got {len(inputs)}")
    for what, port in zip(("query", "key", "value"), inputs):
        shape = port.get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4:
            layer.fail(f"aiov reads 4-D [batch, heads, seq, size] {what} only, got {shape}")
    extra = {}
    if len(inputs) == 5:
        scale = _constant_of(layer, inputs[4], "scale").reshape(-1)
        if scale.size != 1 or scale[0] == 0:
            layer.fail("scale must be a nonzero scalar")
        extra["scale"] = float(scale[0])
    kept = list(inputs[:3])
    causal = _parse_bool(layer, "causal", layer.data.get("causal", "false"))
    if len(inputs) > 3 and not causal and not _is_neutral_mask(inputs[3]):  # a causal SDPA ignores its mask
        keys = inputs[3].get_partial_shape()
        if keys.rank.is_static and keys.rank.get_length() and keys[-1].is_static and keys[-1].get_length() == 1:
            layer.fail(f"an attention_mask broadcast along the keys ({keys}) is not supported")
        kept.append(inputs[3])
    return _generic_layer(layer, kept, _op_description("Attention"), extra)


# OpenVINO's Interpolate modes -> Resize's (linear_onnx is ONNX's linear; OpenVINO's own linear
# differs only where it antialiases, which Resize does too).
_INTERPOLATE_MODES = {"nearest": "nearest", "linear": "linear", "linear_onnx": "linear", "cubic": "cubic"}


def _read_interpolate(layer, inputs) -> Node:
    """Interpolate-4 (data, sizes, scales[, axes]) and -11 (data, scales_or_sizes[, axes]) as
    the registry's Resize (data, scales, sizes)."""
    from .. import opset

    if layer.version not in ("opset4", "opset11"):
        layer.fail(f"version '{layer.version}' is not supported (aiov reads Interpolate-4 and Interpolate-11)")
    v11, d = layer.version == "opset11", layer.data
    low, high = (2, 3) if v11 else (3, 4)
    if not low <= len(inputs) <= high:
        layer.fail(f"expected {low} to {high} inputs, got {len(inputs)}")
    mode = _INTERPOLATE_MODES.get(d.get("mode", "nearest"))
    if mode is None:
        layer.fail(f"mode {d.get('mode')!r} is not supported by aiov ({', '.join(_INTERPOLATE_MODES)} are)")
    for key in ("pads_begin", "pads_end"):
        if any(_parse_list(layer, key, d.get(key, ""), _parse_int)):
            layer.fail(f"{key}={d[key]!r}: padding before resizing is not supported by aiov")
    if d.get("nearest_mode") == "simple":
        layer.fail("nearest_mode 'simple' is not supported by aiov")
    attrs = {
        "mode": mode,
        "coordinate_transformation_mode": d.get("coordinate_transformation_mode", "half_pixel"),
        "nearest_mode": d.get("nearest_mode", "round_prefer_floor"),
        "cubic_coeff_a": _parse_float(layer, "cube_coeff", d.get("cube_coeff", "-0.75")),
        "antialias": _parse_bool(layer, "antialias", d.get("antialias", "false")),
    }
    by_sizes = d.get("shape_calculation_mode", "sizes") == "sizes"
    values = inputs[1] if v11 or by_sizes else inputs[2]
    axes = inputs[high - 1] if len(inputs) == high else None
    if axes is not None:
        attrs["axes"] = [int(a) for a in _constant_of(layer, axes, "axes").reshape(-1)]
    want = Type.i64 if by_sizes else Type.f32
    if values.get_element_type() != want:
        values = opset.convert(values, want).output(0)
    empty = opset.constant(np.zeros(0, np.float32 if by_sizes else np.int64)).output(0)
    ins = [inputs[0], empty, values] if by_sizes else [inputs[0], values, empty]
    return _generic_layer(layer, ins, _op_description("Resize"), attrs)


_ADAPTED = {
    "Interpolate": _read_interpolate,
    "ScaledDotProductAttention": _read_sdpa,
    "GroupConvolution": _read_group_convolution,
    "ConvolutionBackpropData": lambda layer, inputs: _read_backprop(layer, inputs, False),
    "GroupConvolutionBackpropData": lambda layer, inputs: _read_backprop(layer, inputs, True),
    "HardSigmoid": _read_hard_sigmoid,
}


# ---- writing ---------------------------------------------------------------------------------


def _ir_shape(dims) -> str:
    if dims is None:
        return "..."
    return ",".join("?" if d < 0 else str(d) for d in dims)


def _add_port(parent, port_id, etype_name, dims, names=None):
    attrs = {"id": str(port_id), "precision": _PRECISION.get(etype_name, etype_name.upper())}
    if names:
        attrs["names"] = _join_names(names)
    port = ET.SubElement(parent, "port", attrs)
    for d in dims or []:
        ET.SubElement(port, "dim").text = str(d if d >= 0 else -1)
    return port


def _format_attr(kind, value) -> str:
    if kind == "bool":
        return "true" if value else "false"
    if kind == "int":
        return str(int(value))
    if kind == "float":
        return repr(float(value))
    if kind == "ints":
        return ",".join(str(int(v)) for v in value)
    if kind == "floats":
        return ",".join(repr(float(v)) for v in value)
    return str(value)


def _ir_data(native, desc) -> dict:
    """The op's attributes as IR <data>: given values, else the schema's defaults (an absent
    element type can mean "the input's type", so it stays absent)."""
    attrs = native.attributes()
    data = {}
    for spec in desc["attrs"]:
        if spec["ir"] == "-":
            continue
        value = attrs.get(spec["name"])
        if value is None:
            if spec["required"]:
                raise InputError(f"save_model: {desc['type']} '{native.name}' has no '{spec['name']}' attribute")
            if spec["kind"] == "type" or spec["spatial"]:
                continue
            value = spec["default"]
        data[spec["ir"]] = _format_attr(spec["kind"], value)
    return data


class _Emitter:
    """What a write adapter may add before its layer: ``const(array)`` and ``reshape(source,
    dims)``, each returning the new layer's output as a source (layer, port, type, dims)."""

    __slots__ = ("const", "reshape")

    def __init__(self, const, reshape):
        self.const, self.reshape = const, reshape


def _grouped_filter(native, sources, emit):
    """Filters [A, B, k...] of a group-G op as OpenVINO's [G, A/G, B, k...] (a Reshape layer)."""
    groups = int(native.attributes().get("group", 1))
    dims = sources[1][3]
    if dims is None or any(d < 0 for d in dims):
        raise InputError(f"save_model: grouped {native.op_type} '{native.name}' needs filters of static shape")
    target = [groups, dims[0] // groups] + list(dims[1:])
    return [sources[0], emit.reshape(sources[1], target)]


def _write_convolution(native, desc, sources, emit):
    if int(native.attributes().get("group", 1)) == 1:
        return None
    return ("GroupConvolution", "opset1", _ir_data(native, desc), _grouped_filter(native, sources, emit))


def _write_conv_transpose(native, desc, sources, emit):
    if native.attributes().get("output_shape"):
        raise InputError(
            f"save_model: ConvTranspose '{native.name}' sets output_shape, which OpenVINO's "
            "ConvolutionBackpropData layer cannot carry as an attribute"
        )
    if int(native.attributes().get("group", 1)) == 1:
        return None
    grouped = _grouped_filter(native, sources, emit)
    return ("GroupConvolutionBackpropData", "opset1", _ir_data(native, desc), grouped)


def _write_hard_sigmoid(native, desc, sources, emit):
    attrs = native.attributes()
    alpha = emit.const(np.array(attrs.get("alpha", 0.2), np.float32))
    beta = emit.const(np.array(attrs.get("beta", 0.5), np.float32))
    return ("HardSigmoid", "opset1", {}, [sources[0], alpha, beta])


def _write_pool(native, desc, sources, emit):
    """The oldest opset whose MaxPool/AvgPool carries the node's attributes: 'ceil_torch' is
    opset14's, MaxPool's dilations opset8's."""
    attrs = native.attributes()
    data = _ir_data(native, desc)
    dilated = any(int(d) != 1 for d in attrs.get("dilations", []))
    if attrs.get("with_indices") and attrs.get("column_major_indices"):
        raise InputError(
            f"save_model: MaxPool '{native.name}' gives column-major indices (ONNX storage_order 1), which "
            "OpenVINO's MaxPool cannot say"
        )
    if not attrs.get("with_indices"):
        data.pop("index_element_type", None)
        data.pop("axis", None)
    if native.op_type == "AvgPool":
        if dilated:
            raise InputError(f"save_model: AvgPool '{native.name}' is dilated, which OpenVINO's AvgPool cannot say")
        data.pop("dilations", None)
    if attrs.get("rounding_type") == "ceil_torch":
        version = "opset14"
    elif native.op_type == "MaxPool" and (dilated or attrs.get("with_indices")):
        version = "opset8"
    else:
        data.pop("dilations", None)  # not an attribute of opset1's pooling
        return (desc["ir_types"][0], "opset1", data, sources)
    return (desc["ir_types"][0], version, data, sources)


def _write_sdpa(native, desc, sources, emit):
    """Attention as OpenVINO's ScaledDotProductAttention-13 (its scale is a fifth input, after a
    mask that masks nothing when the node has none); what that layer cannot say is refused."""
    attrs = native.attributes()
    dtype = {"f32": np.float32, "f16": np.float16}.get(sources[0][2])
    key_dims, mask = sources[1][3], sources[3] if len(sources) > 3 else None
    window = int(attrs.get("left_window_size", -1)) >= 0 or int(attrs.get("right_window_size", -1)) >= 0
    same_keys = mask is not None and bool(mask[3]) and key_dims is not None and mask[3][-1] == key_dims[-2]
    beyond = [
        what
        for what, used in (
            ("an element type other than f32 and f16", dtype is None),
            ("3-D inputs", key_dims is None or len(key_dims) != 4),
            ("fewer key/value heads than query heads", key_dims and sources[0][3][1] != key_dims[1]),
            ("past key/value or nonpad_kv_seqlen inputs", len(sources) > 4),
            ("present key/value or score outputs", int(attrs.get("output_count", 1)) != 1),
            ("softcap", float(attrs.get("softcap", 0.0)) != 0.0),
            ("a sliding window", window),
            ("a mask together with is_causal", mask is not None and attrs.get("is_causal")),
            ("a mask whose key dimension may differ from the keys'", mask is not None and not same_keys),
        )
        if used
    ]
    if beyond:
        raise InputError(
            f"save_model: Attention '{native.name}' uses {', '.join(beyond)}, which OpenVINO's "
            "ScaledDotProductAttention cannot say"
        )
    inputs = list(sources[:4])
    scale = float(attrs.get("scale", 0.0))
    if scale:
        if mask is None:
            inputs.append(emit.const(np.zeros((1,), dtype)))
        inputs.append(emit.const(np.array(scale, dtype)))
    return ("ScaledDotProductAttention", "opset13", {"causal": _format_attr("bool", attrs.get("is_causal"))}, inputs)


def _write_resize(native, desc, sources, emit):
    """Resize as Interpolate-11 when Interpolate can say it (scales or sizes, no region of
    interest); otherwise aiov's own layer."""
    attrs = native.attributes()
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    if (
        len(sources) > 3
        or attrs.get("exclude_outside")
        or attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch"
        or coord in ("half_pixel_symmetric", "tf_crop_and_resize")
        or float(attrs.get("extrapolation_value", 0.0)) != 0.0
    ):
        return None
    by_sizes = sources[2][3] != [0]
    if by_sizes == (sources[1][3] != [0]):
        return None  # both or neither given: only aiov's layer says which wins
    data = {
        "mode": {"nearest": "nearest", "linear": "linear_onnx", "cubic": "cubic"}[attrs.get("mode", "nearest")],
        "shape_calculation_mode": "sizes" if by_sizes else "scales",
        "coordinate_transformation_mode": coord,
        "nearest_mode": attrs.get("nearest_mode", "round_prefer_floor"),
        "antialias": "true" if attrs.get("antialias") else "false",
        "cube_coeff": repr(float(attrs.get("cubic_coeff_a", -0.75))),
    }
    rank = sources[0][3]
    if rank is not None:
        data["pads_begin"] = data["pads_end"] = ",".join("0" * len(rank))
    ins = [sources[0], sources[2] if by_sizes else sources[1]]
    if attrs.get("axes"):
        ins.append(emit.const(np.array(attrs["axes"], np.int64)))
    return ("Interpolate", "opset11", data, ins)


_WRITE_ADAPTED = {
    "Resize": _write_resize,
    "Attention": _write_sdpa,
    "MaxPool": _write_pool,
    "AvgPool": _write_pool,
    "Convolution": _write_convolution,
    "ConvTranspose": _write_conv_transpose,
    "HardSigmoid": _write_hard_sigmoid,
}


def save_ir(model, xml_path, bin_path=None):
    """Writes ``model`` as OpenVINO IR v11: ``xml_path`` and ``bin_path`` (default: the .xml's
    sibling ``.bin``). Output tensor names, friendly names and dynamic dimensions are kept."""
    if not isinstance(model, Model):
        raise InputError(f"save_model takes an aiov Model, got {type(model).__name__}")
    xml_path = os.fspath(xml_path)
    if not xml_path.lower().endswith(".xml"):
        raise InputError(f"the IR path must end with .xml, got {xml_path!r}")
    bin_path = os.fspath(bin_path) if bin_path else os.path.splitext(xml_path)[0] + ".bin"
    xml, weights = ir_bytes(model)
    directory = os.path.dirname(os.path.abspath(xml_path))
    os.makedirs(directory, exist_ok=True)
    with open(xml_path, "wb") as f:
        f.write(xml)
    with open(bin_path, "wb") as f:
        f.write(weights)


def ir_bytes(model) -> tuple:
    """``model`` as OpenVINO IR v11 in memory: (xml bytes, weights bytes)."""
    if not isinstance(model, Model):
        raise InputError(f"save_model takes an aiov Model, got {type(model).__name__}")

    net = ET.Element("net", {"name": model.get_friendly_name() or model.get_name(), "version": "11"})
    layers = ET.SubElement(net, "layers")
    edges = []
    blob = bytearray()
    layer_of = {}  # native node id -> (layer id, [output port ids])
    next_id = 0

    def new_layer(name, ir_type, version):
        nonlocal next_id
        elem = ET.SubElement(layers, "layer", {"id": str(next_id), "name": name, "type": ir_type, "version": version})
        next_id += 1
        return elem, next_id - 1

    def fallback_name(native):
        return native.name or f"{native.op_type}_{native.id}"

    def const_layer(array) -> tuple:
        elem, lid = new_layer(f"Constant_{next_id}", "Const", "opset1")
        blob.extend(b"\0" * (-len(blob) % 64))
        offset = len(blob)
        blob.extend(array.tobytes())
        etype = Type(array.dtype).get_type_name()
        dims = list(array.shape)
        data = {"element_type": etype, "shape": ",".join(map(str, dims)), "offset": str(offset)}
        data["size"] = str(array.nbytes)
        ET.SubElement(elem, "data", data)
        _add_port(ET.SubElement(elem, "output"), 0, etype, dims)
        return (lid, 0, etype, dims)

    def reshape_layer(source, dims) -> tuple:
        target = const_layer(np.array(dims, np.int64))
        elem, lid = new_layer(f"Reshape_{next_id}", "Reshape", "opset1")
        ET.SubElement(elem, "data", {"special_zero": "false"})
        inp = ET.SubElement(elem, "input")
        for i, (src_layer, src_port, etype, src_dims) in enumerate((source, target)):
            _add_port(inp, i, etype, src_dims)
            edges.append((src_layer, src_port, lid, i))
        _add_port(ET.SubElement(elem, "output"), 2, source[2], dims)
        return (lid, 2, source[2], list(dims))

    emitter = _Emitter(const_layer, reshape_layer)
    ordered = model._order()
    param_ids = {p._native.id for p in model.get_parameters()}
    natives = [p._native for p in model.get_parameters()] + [n for n in ordered if n.id not in param_ids]
    for native in natives:
        op = native.op_type
        out_type = lambda i: Type._by_id[native.output_type(i)].get_type_name()  # noqa: E731
        if op == "Parameter":
            elem, lid = new_layer(fallback_name(native), "Parameter", "opset1")
            ET.SubElement(elem, "data", {"shape": _ir_shape(native.output_shape(0)), "element_type": out_type(0)})
            first_out = 0
        elif op == "Constant":
            elem, lid = new_layer(fallback_name(native), "Const", "opset1")
            raw = native.constant_bytes()
            dims = native.output_shape(0)
            # keep every constant 64-byte aligned in the .bin
            blob.extend(b"\0" * (-len(blob) % 64))
            offset = len(blob)
            blob.extend(raw.tobytes())
            ET.SubElement(
                elem,
                "data",
                {
                    "element_type": out_type(0),
                    "shape": ",".join(map(str, dims)),
                    "offset": str(offset),
                    "size": str(raw.size),
                },
            )
            first_out = 0
        else:
            desc = _op_description(op)
            sources = []
            for i in range(native.input_count):
                src, index = native.input_value(i)
                src_layer, src_ports = layer_of[src.id]
                etype = Type._by_id[src.output_type(index)].get_type_name()
                sources.append((src_layer, src_ports[index], etype, src.output_shape(index)))
            adapter = _WRITE_ADAPTED.get(op)
            written = adapter(native, desc, sources, emitter) if adapter is not None else None
            if written is None:
                if desc is None or not desc["ir_types"]:
                    raise InputError(f"save_model: {op} '{native.name}' has no OpenVINO IR form in aiov's writer")
                written = (desc["ir_types"][0], desc["ir_version"], _ir_data(native, desc), sources)
            ir_type, version, data, sources = written
            elem, lid = new_layer(fallback_name(native), ir_type, version)
            if data:
                ET.SubElement(elem, "data", data)
            inp = ET.SubElement(elem, "input")
            for i, (src_layer, src_port, etype, dims) in enumerate(sources):
                _add_port(inp, i, etype, dims)
                edges.append((src_layer, src_port, lid, i))
            first_out = len(sources)
        out = ET.SubElement(elem, "output")
        ports = []
        for i in range(native.output_count):
            port = _add_port(out, first_out + i, out_type(i), native.output_shape(i), native.output_names(i))
            _write_attributes(port, native, "out", i)
            ports.append(first_out + i)
        _write_attributes(elem, native, "node", 0)
        layer_of[native.id] = (lid, ports)

    for result in model.get_results():
        src_node, index = result.input_value(0)._source()
        native = src_node._native
        elem, lid = new_layer(result.get_friendly_name() or f"Result_{next_id}", "Result", "opset1")
        _write_attributes(elem, result._native, "node", 0)
        inp = ET.SubElement(elem, "input")
        _add_port(inp, 0, Type._by_id[native.output_type(index)].get_type_name(), native.output_shape(index))
        src_layer, src_ports = layer_of[native.id]
        edges.append((src_layer, src_ports[index], lid, 0))

    edges_elem = ET.SubElement(net, "edges")
    for fl, fp, tl, tp in edges:
        ET.SubElement(
            edges_elem, "edge", {"from-layer": str(fl), "from-port": str(fp), "to-layer": str(tl), "to-port": str(tp)}
        )
    rt = ET.SubElement(net, "rt_info")
    from .. import __version__

    tree = dict(model.get_rt_info().items())
    tree["aiov_version"] = __version__  # which aiov wrote the file
    _write_rt_tree(rt, tree, "the model")

    ET.indent(net, space="\t")
    xml = b'<?xml version="1.0"?>\n' + ET.tostring(net, encoding="utf-8", xml_declaration=False) + b"\n"
    return xml, bytes(blob)
