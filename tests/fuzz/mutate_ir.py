"""Structure-aware OpenVINO IR mutators: the XML (Const offsets and sizes, shapes,
precisions and element types, edges, layer attributes and versions, entities) and the .bin
(truncated, grown, flipped). ``mutate`` returns (xml text, bin bytes, mutator, notes)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

from .mutate_onnx import INTERESTING_INTS, OVERFLOW_SHAPES

TYPES = [
    "f32",
    "f16",
    "bf16",
    "f64",
    "i64",
    "i32",
    "i16",
    "i8",
    "u64",
    "u32",
    "u16",
    "u8",
    "u4",
    "i4",
    "u1",
    "boolean",
    "string",
    "dynamic",
    "undefined",
    "FP32",
    "I64",
    "BIN",
    "",
    "f8e4m3",
    "nonsense",
]


def _layers(root):
    layers = root.find("layers")
    return list(layers) if layers is not None else []


def mut_const_data(root, bin_data, rng):
    """A Const layer's offset or size: negative, past the end, wrapping, or the shape made
    to disagree with the size (modulo 2**64 included)."""
    consts = [layer for layer in _layers(root) if layer.get("type") == "Const" and layer.find("data") is not None]
    if not consts:
        return None
    data = rng.choice(consts).find("data")
    key = rng.choice(["offset", "size", "shape", "shape"])
    if key == "shape":
        value = ",".join(str(v) for v in rng.choice(OVERFLOW_SHAPES + [[0], [], [1, 1, 1, 1]]))
    else:
        value = str(
            rng.choice(
                INTERESTING_INTS + [len(bin_data), len(bin_data) - 1, len(bin_data) + 1, 2**64 - 1, 2**64 + 8, -(2**64)]
            )
        )
        if rng.random() < 0.1:
            value = rng.choice(["", "abc", "1e3", "0x10", " 4", "4.5"])
    data.set(key, value)
    return f"const_data: {key}={value}"[:200]


def mut_types(root, bin_data, rng):
    """An element_type / destination_type / port precision replaced."""
    choice = rng.random()
    layers = _layers(root)
    if not layers:
        return None
    layer = rng.choice(layers)
    data = layer.find("data")
    if choice < 0.6 and data is not None:
        for key in ("element_type", "destination_type", "output_type", "index_element_type"):
            if key in data.attrib:
                data.set(key, rng.choice(TYPES))
                return f"types: {layer.get('type')}.{key}={data.get(key)}"
    ports = layer.findall(".//port")
    if ports:
        port = rng.choice(ports)
        port.set("precision", rng.choice(TYPES))
        return f"types: port precision {port.get('precision')}"
    return None


def mut_shape(root, bin_data, rng):
    """A Parameter's shape or a port <dim>."""
    layers = _layers(root)
    params = [layer for layer in layers if layer.get("type") == "Parameter" and layer.find("data") is not None]
    if params and rng.random() < 0.5:
        data = rng.choice(params).find("data")
        value = rng.choice(
            [
                "?",
                "-1",
                "",
                "2,?",
                "..",
                "0",
                "2,3,4,5,6,7,8,9",
                "-5,2",
                "1..3",
                "9223372036854775807,2",
                ",".join(str(v) for v in rng.choice(OVERFLOW_SHAPES)),
            ]
        )
        data.set("shape", value)
        return f"shape: Parameter shape={value!r}"[:200]
    dims = root.findall(".//dim")
    if not dims:
        return None
    dim = rng.choice(dims)
    dim.text = str(rng.choice(INTERESTING_INTS + ["-1", "?", "x"]))
    return f"shape: dim={dim.text}"


def mut_edges(root, bin_data, rng):
    """Edges: endpoints moved to other layers or ports (cycles, self loops, missing layers),
    removed or duplicated; layers removed."""
    edges_elem = root.find("edges")
    if edges_elem is None or not len(edges_elem):
        return None
    edges = list(edges_elem)
    ids = [layer.get("id") for layer in _layers(root)]
    choice = rng.random()
    edge = rng.choice(edges)
    if choice < 0.5:
        key = rng.choice(["from-layer", "from-port", "to-layer", "to-port"])
        value = (
            rng.choice(ids + ["999", "-1", "", "x", "0", "1", "2", "3"])
            if "layer" in key
            else str(rng.choice([0, 1, 2, 3, 5, -1, 2**31]))
        )
        edge.set(key, value)
        return f"edges: {key}={value}"
    if choice < 0.65:
        edges_elem.remove(edge)
        return "edges: removed"
    if choice < 0.8:
        edges_elem.append(ET.fromstring(ET.tostring(edge)))
        return "edges: duplicated"
    if choice < 0.9:  # a back edge: the last layer's output feeds the first consumer
        last = edges[-1]
        edge.set("from-layer", last.get("to-layer"))
        return "edges: cycle"
    layers = root.find("layers")
    victims = [layer for layer in layers if layer.get("type") not in ("Parameter",)]
    if victims:
        layers.remove(rng.choice(victims))
        return "edges: layer removed"
    return None


def mut_attributes(root, bin_data, rng):
    """A layer's <data> attribute (axis, special_zero, transpose_a, ...), its type or version."""
    layers = [layer for layer in _layers(root) if layer.get("type") not in ("Parameter", "Result", "Const")]
    if not layers:
        return None
    layer = rng.choice(layers)
    choice = rng.random()
    if choice < 0.2:
        layer.set("version", rng.choice(["opset1", "opset8", "opset99", "", "opset", "x"]))
        return f"attributes: version={layer.get('version')}"
    if choice < 0.35:
        layer.set(
            "type",
            rng.choice(
                [
                    "Add",
                    "MatMul",
                    "Softmax",
                    "Reshape",
                    "Convert",
                    "Bogus",
                    "Result",
                    "Const",
                    "Parameter",
                    "Concat",
                    "Divide",
                ]
            ),
        )
        return f"attributes: type={layer.get('type')}"
    data = layer.find("data")
    if data is None:
        data = ET.SubElement(layer, "data")
    keys = list(data.attrib) or ["axis"]
    key = rng.choice(keys + ["axis", "special_zero", "auto_broadcast", "m_pythondiv"])
    value = rng.choice(
        [str(v) for v in INTERESTING_INTS] + ["true", "false", "maybe", "", "numpy", "none", "pdpd", "1.5", "-0"]
    )
    data.set(key, value)
    return f"attributes: {layer.get('type')}.{key}={value}"


ENTITY_HEADERS = [
    '<!DOCTYPE net [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
    '<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>',
    '<!DOCTYPE net [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE net [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]>',
    '<!DOCTYPE net [<!ENTITY name "Relu">]>',
]


def mut_entities(text, rng):
    """A DTD with entities (exponential expansion, external files) used in a layer name."""
    header = rng.choice(ENTITY_HEADERS)
    body = text.split("?>", 1)[-1] if text.startswith("<?xml") else text
    ref = {0: "&h;", 1: "&xxe;", 2: "x", 3: "&name;"}[ENTITY_HEADERS.index(header)]
    body = body.replace('name="', f'name="{ref}', 1)
    return '<?xml version="1.0"?>\n' + header + body, "entities"


def mut_bin(bin_data: bytes, rng):
    """The .bin truncated, emptied, grown, or with flipped bytes."""
    choice = rng.random()
    if choice < 0.4:
        return bin_data[: rng.randrange(len(bin_data) + 1)], "bin: truncated"
    if choice < 0.5:
        return b"", "bin: empty"
    if choice < 0.6:
        return bin_data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))), "bin: grown"
    data = bytearray(bin_data)
    for _ in range(rng.randint(1, 16)):
        if data:
            data[rng.randrange(len(data))] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return bytes(data), "bin: bytes changed"


def mut_text(text: str, rng):
    """Havoc on the XML text (unbalanced tags, stray characters)."""
    data = list(text)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.4:
            data[pos] = rng.choice(["<", ">", '"', "&", "/", "0", "9", "-", "\x00", "\u00e9"])
        elif choice < 0.7:
            del data[pos : pos + rng.randint(1, 20)]
        else:
            data[pos:pos] = list(rng.choice(["<layer>", "</layers>", "<edge/>", "<![CDATA[x]]>", "<!-- -->"]))
    return "".join(data), "text: havoc"


TREE_MUTATORS = {
    "const_data": mut_const_data,
    "types": mut_types,
    "shape": mut_shape,
    "edges": mut_edges,
    "attributes": mut_attributes,
}


def mutate(seed, rng: random.Random):
    """(xml text, bin bytes, mutator name, notes) from a seed (xml text, bin bytes)."""
    text, bin_data = seed
    choice = rng.random()
    if choice < 0.1:
        text, note = mut_entities(text, rng)
        return text, bin_data, "entities", [note]
    if choice < 0.2:
        bin_data, note = mut_bin(bin_data, rng)
        return text, bin_data, "bin", [note]
    if choice < 0.27:
        text, note = mut_text(text, rng)
        return text, bin_data, "text", [note]
    root = ET.fromstring(text)
    notes, first = [], None
    for _ in range(rng.choice([1, 1, 2, 3])):
        name = rng.choice(list(TREE_MUTATORS))
        note = TREE_MUTATORS[name](root, bin_data, rng)
        if note:
            first = first or name
            notes.append(note)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode"), bin_data, first or "none", notes
