"""Per-op-type audit of aiov against OpenVINO over every model of benchmarks/engine.py and the zoo:
for each model and precision, the time each kind of op takes in aiov's profile and in OpenVINO's
(PERF_COUNT), their ratio, and a flag where aiov is more than --ratio times slower on a kind that
costs at least --share of the model's time (the issue's goal: no op type slower than 1.5x).

    python tools/op_type_audit.py [--models KEY,...] [--precisions f32,bf16] [--int8]
                                  [--save FILE] [--load FILE] [--runs N] [--details N]

Each (model, precision) is profiled in a child process of its own (benchmarks/engine.py's
profile_nodes: the two frameworks' profiled runs alternate), so a crash or a timeout costs one
row. Both run on one thread unless --threads says otherwise: the per-op comparison the issue
asks for, and on a machine shared with other work the one that holds still (two threads each
under load made OpenVINO's totals swing fivefold between runs). --save appends each profile to
a JSON-lines file as it comes; --load reprints saved profiles without running anything (with
--models, only those).

How op types are matched. The two profiles do not name the same work alike: aiov fuses a
convolution with its BatchNorm, bias, residual and activation into `aiov.FusedConv`, OpenVINO
into `Convolution`; an activation chain is `aiov.ElementwiseChain` in one and `Subgraph`, `MulAdd`
or `Eltwise` in the other. Both are folded into kinds of work by runtime op type (KIND below; a
type not listed is its own kind), with two corrections told by the ONNX op a node is named after
(both frameworks keep the ONNX node's name on the node that stands for it, OpenVINO with
suffixes such as `/WithoutBiases`, its reorders as `<producer>_<layouts>_<consumer>`):
- Attention is every node of the QK^T -> softmax -> V block, however fused: `aiov.Attention`,
  Softmax, a MatMul of two activations (not of a constant weight: that is a MatMul), and
  OpenVINO's snippet (`Subgraph`) named after the block's last product or head-merging Transpose.
- OpenVINO's snippet named after an ONNX LayerNormalization is LayerNorm/MVN.
- OpenVINO's reorder of a model input for the convolution that reads it is Convolution: aiov's
  first convolution reads the NCHW image as it lies, inside its own node.
- int8 (FOLDED_TYPES): OpenVINO runs the quantization of an activation inside the int8 convolution
  or fully connected layer that reads it (or that produces it: an output quantization; any other
  producer's, a LayerNorm's or an activation's, in that producer's post-ops), and a residual add of
  two quantized tensors inside the convolution that produces one of them (a sum post-op); aiov runs
  them as nodes of their own. So an aiov.Quantize / aiov.DynamicQuantize counts toward the kind of
  the product its output feeds (through DequantizeLinear, reshapes and a Pad: Convolution for a
  Conv, ConvInteger or QLinearConv, MatMul for a MatMul, Gemm or MatMulInteger of constant weights),
  else of the product it comes from, else of the ONNX op it comes from (KIND, with KIND_BY_ONNX_OP)
  where OpenVINO takes a quantization into that op's post-ops (QUANTIZATION_HOSTS); one of a
  Gather's, a Pad's or a Concat's output runs on its own on both sides and counts as Quantize there;
  an aiov.QuantizedAdd counts toward the kind of the product feeding it (back through QuantizeLinear
  / DequantizeLinear), and one whose name the ONNX graph does not know (aiov names an unnamed ONNX
  node itself) as Convolution in a model with convolutions. Those the graph tells nothing of keep
  their own kind (Quantize, Eltwise). aiov.QuantizedLookup (an activation between a dequantization
  and a quantization, as a byte table) is Eltwise: OpenVINO's activation with the quantization in
  its post-ops.
A kind is compared as a whole, so what one side fuses into a convolution and the other runs on
its own shows up in both rows, and a kind the other side has no node of (OpenVINO's RoPE, a Pad
it folded into the convolution after it) is flagged as such. The details of a flagged kind list
its costliest nodes on both sides with the ONNX op each stands for. Times are each node's
median over --runs profiled inferences (one preempted run on a shared machine lifts a mean).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

# Runtime op types of aiov and OpenVINO's CPU plugin, folded into one kind per sort of work.
KIND = {
    # convolutions, with whatever each side fused into them
    "aiov.FusedConv": "Convolution",
    "aiov.QuantizedConv": "Convolution",
    "aiov.FusedConvTranspose": "Convolution",
    "Convolution": "Convolution",
    "GroupConvolution": "Convolution",
    "ConvolutionBackpropData": "Convolution",
    "Deconvolution": "Convolution",
    "ConvTranspose": "Convolution",
    "Conv": "Convolution",
    # matrix products
    "aiov.FusedMatMul": "MatMul",
    "aiov.QuantizedMatMul": "MatMul",
    "MatMul": "MatMul",
    "FullyConnected": "MatMul",
    "FullyConnectedQuantizedLegacy": "MatMul",
    "FullyConnectedCompressed": "MatMul",
    "Gemm": "MatMul",
    "Einsum": "MatMul",
    # elementwise arithmetic and activations, alone or chained
    "aiov.ElementwiseChain": "Eltwise",
    "aiov.QuantizedAdd": "Eltwise",
    "Subgraph": "Eltwise",
    "Eltwise": "Eltwise",
    "Add": "Eltwise",
    "Subtract": "Eltwise",
    "Multiply": "Eltwise",
    "Divide": "Eltwise",
    "Sub": "Eltwise",  # (ONNX's names: the op a quantization's data comes from)
    "Mul": "Eltwise",
    "Div": "Eltwise",
    "Power": "Eltwise",
    "Maximum": "Eltwise",
    "Minimum": "Eltwise",
    "Relu": "Eltwise",
    "PRelu": "Eltwise",
    "Elu": "Eltwise",
    "Clamp": "Eltwise",
    "Sigmoid": "Eltwise",
    "HardSigmoid": "Eltwise",
    "HSigmoid": "Eltwise",
    "HSwish": "Eltwise",
    "HardSwish": "Eltwise",
    "Swish": "Eltwise",
    "Mish": "Eltwise",
    "Tanh": "Eltwise",
    "Gelu": "Eltwise",
    "Erf": "Eltwise",
    "Exp": "Eltwise",
    "Log": "Eltwise",
    "Sqrt": "Eltwise",
    "Abs": "Eltwise",
    "Negative": "Eltwise",
    "Floor": "Eltwise",
    "Ceiling": "Eltwise",
    "Round": "Eltwise",
    "SquaredDifference": "Eltwise",
    "Select": "Eltwise",
    "MulAdd": "Eltwise",
    "PowerStatic": "Eltwise",
    "SwishCPU": "Eltwise",
    "Equal": "Eltwise",
    "Less": "Eltwise",
    "Greater": "Eltwise",
    "LogicalNot": "Eltwise",
    "LogicalAnd": "Eltwise",
    "LogicalOr": "Eltwise",
    "Where": "Eltwise",
    "BatchNormInference": "Eltwise",
    # layout changes
    "Transpose": "Transpose/Reorder",
    "Reorder": "Transpose/Reorder",
    "DepthToSpace": "Transpose/Reorder",
    "SpaceToDepth": "Transpose/Reorder",
    "ShuffleChannels": "Transpose/Reorder",
    # pooling (OpenVINO runs a global average pool as a ReduceMean: see Reduce)
    "MaxPool": "Pooling",
    "AvgPool": "Pooling",
    "Pooling": "Pooling",
    "AdaptiveAvgPool": "Pooling",
    "AdaptiveMaxPool": "Pooling",
    "GlobalAveragePool": "Reduce",
    "GlobalMaxPool": "Reduce",
    "ReduceMean": "Reduce",
    "ReduceSum": "Reduce",
    "ReduceMax": "Reduce",
    "ReduceMin": "Reduce",
    "ReduceProd": "Reduce",
    "ReduceL2": "Reduce",
    "Reduce": "Reduce",
    # normalizations
    "aiov.LayerNorm": "LayerNorm/MVN",
    "aiov.RMSNorm": "LayerNorm/MVN",
    "aiov.GroupNorm": "LayerNorm/MVN",
    "GroupNormalization": "LayerNorm/MVN",
    "MVN": "LayerNorm/MVN",
    "RMS": "LayerNorm/MVN",
    "NormalizeL2": "LayerNorm/MVN",
    "LRN": "LRN",
    # rotary position embedding: OpenVINO fuses Llama's rotate_half chain into RoPE, aiov into
    # ONNX's RotaryEmbedding (fuse_rotary_embedding)
    "RotaryEmbedding": "RoPE",
    # attention: its products of two activations and its softmax, fused or not (see kind_of)
    "aiov.Attention": "Attention",
    "ScaledDotProductAttention": "Attention",
    "Softmax": "Attention",
    "SoftMax": "Attention",
    "LogSoftmax": "Softmax",
    # data movement
    "Concat": "Concat",
    "Concatenation": "Concat",
    "Split": "Split/Slice",
    "VariadicSplit": "Split/Slice",
    "Slice": "Split/Slice",
    "StridedSlice": "Split/Slice",
    "Gather": "Gather",
    "GatherElements": "Gather",
    "GatherND": "Gather",
    "Interpolate": "Resize",
    "Resize": "Resize",
    "Pad": "Pad",
    "Tile": "Broadcast/Tile",
    "Broadcast": "Broadcast/Tile",
    # views and shape arithmetic (OpenVINO runs some of these as copies, aiov as views)
    "Reshape": "Reshape/Shape",
    "Squeeze": "Reshape/Shape",
    "Unsqueeze": "Reshape/Shape",
    "Flatten": "Reshape/Shape",
    "ShapeOf": "Reshape/Shape",
    "Range": "Reshape/Shape",
    # quantization steps
    "aiov.Quantize": "Quantize",
    "aiov.DynamicQuantize": "Quantize",
    # an activation between a dequantization and a quantization, computed as a byte table: the
    # activation OpenVINO runs as an Eltwise (its quantization in that Eltwise's post-ops)
    "aiov.QuantizedLookup": "Eltwise",
    "FakeQuantize": "Quantize",
    "QuantizeLinear": "Quantize",
    "DequantizeLinear": "Quantize",
    "Convert": "Convert",
    # recurrent layers
    "LSTMSequence": "RNN",
    "GRUSequence": "RNN",
    "RNNSequence": "RNN",
    "RNNSeq": "RNN",
    "RNNCell": "RNN",
    "LSTM": "RNN",
    "GRU": "RNN",
}

# aiov's int8 steps that OpenVINO runs inside its int8 products (see the module's docstring):
# counted toward the kind of the product they feed (quantizations) or come from (residual adds).
FOLDED_TYPES = {"aiov.Quantize", "aiov.DynamicQuantize", "aiov.QuantizedAdd"}
CONV_OPS = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose"}
PRODUCT_OPS = {"MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"}
# The kinds of op OpenVINO's CPU graph optimizer fuses a following quantization into (its
# Fuse*AndSimpleOperation passes, FusePoolingAndFakeQuantize): the quantization of a Gather's,
# a Pad's or a Concat's output runs on its own there (a Subgraph or FakeQuantize node named after
# the QuantizeLinear), so both sides count such a quantization as Quantize (STANDALONE_TYPES).
QUANTIZATION_HOSTS = {"Convolution", "MatMul", "Eltwise", "LayerNorm/MVN", "Resize", "Reduce", "Pooling"}
STANDALONE_TYPES = FOLDED_TYPES | {"FakeQuantize", "Subgraph", "Eltwise"}
# ONNX ops that pass a quantized tensor on unchanged in value, walked through to its product.
# (Pad: OpenVINO folds a Pad into the convolution that reads it.)
PASS_THROUGH_OPS = {
    "DequantizeLinear",
    "QuantizeLinear",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Pad",
}
LEGEND = (
    "(int8: aiov's Quantize / DynamicQuantize count toward the Convolution or MatMul they feed, else"
    " the one (or the op) they come from; its QuantizedAdd toward the product feeding it: OpenVINO"
    " runs both inside its int8 products, or a quantization in its producer's post-ops)"
)

# Profile rows that are not work: OpenVINO lists its inputs, outputs and constants, and nodes
# it optimized out at 0 us.
NOT_WORK = {"Parameter", "Result", "Input", "Output", "Constant"}

# Suffixes and prefixes OpenVINO adds to an ONNX node's name on the node that runs it.
OV_NAME_SUFFIXES = ("/WithoutBiases", "/DequantizationMultiply", "/DequantizationSubtract", "/fq_input_0")


# A fused node of a generic runtime type whose ONNX op tells what it is: OpenVINO's snippets
# (`Subgraph`) run whole attention blocks and layer norms, named after the ONNX node that ends
# them (an attention block ends with its product by V, or the Transpose that merges the heads).
KIND_BY_ONNX_OP = {"Transpose": "Attention", "Softmax": "Attention", "LayerNormalization": "LayerNorm/MVN"}
FUSED_GENERIC_TYPES = {"Subgraph", "Eltwise", "MulAdd"}


def kind_of(row):
    """The kind of work a profiled node did: by its runtime type (KIND), except a generic fused
    node named after an ONNX op that says more (KIND_BY_ONNX_OP), and a MatMul whose operands
    are both activations (attention's products) told from one with constant weights."""
    op_type = row["type"]
    if op_type in FOLDED_TYPES and row.get("folds"):
        return row["folds"]
    if op_type in STANDALONE_TYPES and row.get("folds") == "Quantize":
        return "Quantize"
    if op_type == "Reorder" and row.get("onnx") == "Conv input":
        # aiov's first convolution reads the planar image itself (convolutions_read_planar).
        return "Convolution"
    if op_type in FUSED_GENERIC_TYPES:
        if row.get("onnx") == "MatMul" and not row.get("weights"):
            return "Attention"
        if row.get("onnx") in KIND_BY_ONNX_OP:
            return KIND_BY_ONNX_OP[row["onnx"]]
    if op_type == "MatMul":
        # OpenVINO turns every MatMul with constant weights into FullyConnected; aiov keeps a
        # plain MatMul where no bias fused into it.
        return "MatMul" if row.get("weights") else "Attention"
    return KIND.get(op_type, op_type)


def onnx_index(proto_bytes):
    """(ONNX op type, constant weights?, kind it folds into or None) by node name and by output
    name, to tell which ONNX op a profiled node stands for."""
    import onnx

    model = onnx.load_from_string(proto_bytes)
    by_name, by_output = {}, {}
    inputs = {i.name for i in model.graph.input}
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    nodes = list(model.graph.node)  # (one wrapper per node: kept, as ids key them below)
    has_weights = {}
    for node in nodes:
        # A product whose second operand is a weight (possibly through a Transpose, Cast or
        # DequantizeLinear of one).
        has_weights[id(node)] = (
            node.op_type in ("MatMul", "Gemm", "MatMulInteger") and len(node.input) > 1 and node.input[1] in constants
        )
        if node.op_type in ("Transpose", "Cast", "Identity", "DequantizeLinear") and node.input:
            if node.input[0] in constants:
                constants |= set(node.output)
    folds = folded_kinds(nodes, has_weights)
    for node in nodes:
        op = (node.op_type, has_weights[id(node)], folds.get(id(node)))
        if node.name:
            by_name[node.name] = op
        for out in node.output:
            by_output[out] = op
    by_output.update({name: ("input", False, None) for name in inputs - constants})
    return by_name, by_output


def folded_kinds(nodes, has_weights):
    """The kind OpenVINO folds each quantization (into the product its output feeds) and each
    Add (into the product feeding it) into, by node id: Convolution or MatMul (see FOLDED_TYPES)."""
    producer, consumers = {}, {}
    for node in nodes:
        for out in node.output:
            producer[out] = node
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def product_kind(node):
        if node.op_type in CONV_OPS:
            return "Convolution"
        if node.op_type in PRODUCT_OPS and (has_weights[id(node)] or node.op_type == "QLinearMatMul"):
            return "MatMul"
        return None

    def reached(start, step, depth=4):
        """Product kinds reached from `start` by `step` (consumers or producers), through
        PASS_THROUGH_OPS."""
        kinds, frontier = set(), [start]
        for _ in range(depth):
            nxt = []
            for node in frontier:
                for other in step(node):
                    kind = product_kind(other)
                    if kind:
                        kinds.add(kind)
                    elif other.op_type in PASS_THROUGH_OPS:
                        nxt.append(other)
            frontier = nxt
        return kinds

    def readers(node):
        return [c for out in node.output[:1] for c in consumers.get(out, [])]

    def writers(node):
        return [producer[name] for name in node.input if name in producer]

    def source_kind(node):
        """The kind of the op a quantization's data comes from (past PASS_THROUGH_OPS) when
        OpenVINO can take the quantization into that op's post-ops (QUANTIZATION_HOSTS), else
        Quantize: both sides run it on its own. None when the graph tells nothing."""
        for _ in range(8):
            data = producer.get(node.input[0]) if node.input else None
            if data is None:
                return None
            if data.op_type not in PASS_THROUGH_OPS:
                kind = KIND_BY_ONNX_OP.get(data.op_type) if data.op_type in KIND_BY_ONNX_OP else KIND.get(data.op_type)
                return kind if kind in QUANTIZATION_HOSTS else "Quantize"
            node = data
        return None

    out = {}
    for node in nodes:
        if node.op_type in ("QuantizeLinear", "DynamicQuantizeLinear"):
            kinds = reached(node, readers) or reached(node, writers)
            if not kinds and source_kind(node):
                out[id(node)] = source_kind(node)
                continue
        elif node.op_type in ("Add", "QLinearAdd"):
            kinds = reached(node, writers)
        else:
            continue
        if kinds:
            out[id(node)] = "Convolution" if "Convolution" in kinds else "MatMul"
    return out


def onnx_op(name, by_name, by_output):
    """The ONNX op a profiled node is named after, and whether that op multiplies by constant
    weights: by its name, or the name with OpenVINO's suffixes; an OpenVINO reorder
    (`<producer>_<layouts>_<consumer>`) is named after its consumer, and after "input" too when it
    reorders a model input (the image a first convolution reads, which aiov's convolution reads
    as it lies). ('?', False) when the name tells nothing."""

    def lookup(candidate):
        for suffix in OV_NAME_SUFFIXES:
            candidate = candidate.split(suffix)[0]
        return by_name.get(candidate) or by_output.get(candidate)

    found = lookup(name)
    if found:
        return found
    for layout in ("_abcd_", "_acdb_", "_abc_", "_acb_", "_ab_", "_ba_"):
        if layout not in name:
            continue
        producer, _, rest = name.partition("_")
        consumer = rest.rsplit("_", 1)[-1] if "/" not in rest else rest[rest.index("/") :]
        op = lookup(consumer)
        if op:
            from_input = (by_output.get(producer) or ("?",))[0] == "input"
            return (op[0] + " input" if from_input else op[0]), op[1], None
    return "?", False, None


def collect(key, precision, runs, threads):
    """One (model, precision) profile as a JSON-able dict."""
    import engine

    mine, theirs, walls, ov_precision, proto = engine.profile_nodes(key, precision, runs, threads)
    by_name, by_output = onnx_index(proto)

    def rows(nodes):
        return [
            {"name": n, "type": t, "us": us, "exec": ex, "onnx": op, "weights": weights, "folds": folds}
            for n, (t, us, ex) in nodes.items()
            for op, weights, folds in [onnx_op(n, by_name, by_output)]
            if t not in NOT_WORK
        ]

    return {
        "model": key,
        "precision": precision,
        "threads": threads,
        "ov_precision": ov_precision,
        "walls_us": walls,
        "aiov": rows(mine),
        "openvino": rows(theirs) if theirs is not None else None,
    }


def run_child(key, precision, runs, threads, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--collect", key, precision, "--runs", str(runs)]
    cmd += ["--threads", str(threads)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": key, "precision": precision, "error": f"timed out after {timeout} s"}
    last = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
    if done.returncode != 0 or not last:
        # The last lines that are not a quantizer's warnings, and how the child ended.
        lines = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if not ln.startswith("WARNING")]
        how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        return {"model": key, "precision": precision, "error": " | ".join(lines[-3:] + [how])}
    return json.loads(last[0])


def with_fallback_folds(rows):
    """The rows, an aiov.QuantizedAdd the ONNX graph does not name counted as Convolution where
    the model has convolutions (see FOLDED_TYPES)."""
    if not any(kind_of(r) == "Convolution" for r in rows):
        return rows
    return [
        dict(r, folds="Convolution") if r["type"] == "aiov.QuantizedAdd" and r.get("onnx") == "?" else r for r in rows
    ]


def by_kind(rows):
    out = {}
    for r in with_fallback_folds(rows):
        k = kind_of(r)
        out[k] = out.get(k, 0.0) + r["us"]
    return out


@dataclasses.dataclass
class KindRow:
    kind: str
    aiov_us: float
    ov_us: float
    share: float  # of aiov's time in nodes
    ov_share: float  # of OpenVINO's
    flagged: bool

    @property
    def ratio(self):
        return self.aiov_us / self.ov_us if self.ov_us > 0 else None


def compare(profile, ratio_limit, share_limit, min_us=0.0):
    """Per kind of work, aiov's time next to OpenVINO's, the kinds costing aiov most more first;
    flagged where aiov/ov > ratio_limit (or OpenVINO has no node of that kind: it fused the work
    into another) on a kind costing aiov at least share_limit of its time and at least min_us
    more than OpenVINO (both profiles count in whole or half microseconds)."""
    mine = by_kind(profile["aiov"])
    theirs = by_kind(profile["openvino"] or [])
    total = sum(mine.values()) or 1e-9
    ov_total = sum(theirs.values()) or 1e-9
    rows = []
    for k in sorted(set(mine) | set(theirs), key=lambda k: -(mine.get(k, 0.0) - theirs.get(k, 0.0))):
        a, o = mine.get(k, 0.0), theirs.get(k, 0.0)
        if a < 0.05 and o < 0.05:
            continue
        slower = a > ratio_limit * o and a - o >= min_us
        rows.append(KindRow(k, a, o, a / total, o / ov_total, slower and a / total >= share_limit))
    return rows


def flag_text(row):
    if not row.flagged:
        return ""
    return "<< (none in ov: fused elsewhere?)" if row.ratio is None else "<<"


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}"


def print_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def report(profiles, ratio_limit, share_limit, min_us, details):
    """Each profile's per-kind table; returns the flagged rows as (model, precision, KindRow)."""
    flagged = []
    print(LEGEND + "\n")
    for p in profiles:
        head = f"== {p['model']} at {p['precision']}, {p.get('threads') or 'default'} thread(s)"
        if "error" in p:
            print(f"== {p['model']} at {p['precision']}: failed: {p['error']}\n")
            continue
        a_total = sum(r["us"] for r in p["aiov"])
        if p["openvino"] is None:
            print(f"{head}: aiov {a_total / 1e3:.3f} ms in nodes, no OpenVINO\n")
            continue
        o_total = sum(r["us"] for r in p["openvino"])
        print(
            f"{head}: aiov {a_total / 1e3:.3f} ms in nodes, openvino ({p['ov_precision']}) {o_total / 1e3:.3f} ms,"
            f" aiov/ov {a_total / max(o_total, 1e-9):.2f}"
        )
        rows = compare(p, ratio_limit, share_limit, min_us)
        print_table(
            ["kind", "aiov ms", "ov ms", "aiov/ov", "aiov share", "ov share", "flag"],
            [
                [
                    r.kind,
                    f"{r.aiov_us / 1e3:.3f}",
                    f"{r.ov_us / 1e3:.3f}",
                    fmt_ratio(r.ratio),
                    f"{r.share:.0%}",
                    f"{r.ov_share:.0%}",
                    flag_text(r),
                ]
                for r in rows
            ],
        )
        for r in rows:
            if r.flagged:
                flagged.append((p["model"], p["precision"], r))
                if details:
                    print_details(p, r.kind, details)
        print()
    return flagged


def print_details(profile, kind, top):
    for side in ("aiov", "openvino"):
        rows = with_fallback_folds(profile[side])
        nodes = sorted((r for r in rows if kind_of(r) == kind), key=lambda r: -r["us"])[:top]
        for r in nodes:
            print(
                f"    {kind:<12} {side:<8} {r['us']:9.1f} us  onnx {r['onnx']:<18} {r['name'][:60]}  {r['exec'][:60]}"
            )


def geomean(values):
    return math.exp(sum(math.log(max(v, 1e-9)) for v in values) / len(values))


def summary(flagged, profiles, ratio_limit, share_limit, min_us):
    """Per kind over every model and precision: the geometric mean of aiov/ov over the profiles
    where it costs aiov at least the share, the worst of them, and how often it is flagged."""
    per_kind = {}
    for p in profiles:
        if "error" in p or p["openvino"] is None:
            continue
        for r in compare(p, ratio_limit, share_limit, min_us):
            if r.share >= share_limit and r.ratio is not None:
                per_kind.setdefault(r.kind, []).append((r.ratio, p["model"], p["precision"]))
    print(f"== summary: kinds costing aiov >= {share_limit:.0%} of a model, aiov/ov over those models")
    rows = []
    for k, items in sorted(per_kind.items(), key=lambda kv: -geomean([r for r, *_ in kv[1]])):
        worst = max(items)
        n_flagged = sum(1 for _, _, r in flagged if r.kind == k)
        rows.append(
            [
                k,
                len(items),
                f"{geomean([r for r, *_ in items]):.2f}",
                f"{worst[0]:.2f} ({worst[1]} {worst[2]})",
                n_flagged,
            ]
        )
    print_table(["kind", "models", "geomean aiov/ov", "worst", f"flagged > {ratio_limit}x"], rows)
    print()
    print(
        f"== flagged: aiov/ov > {ratio_limit} on a kind costing aiov >= {share_limit:.0%} of the model"
        f" and >= {min_us:g} us more than OpenVINO"
    )
    print_table(
        ["model", "precision", "kind", "aiov ms", "ov ms", "aiov/ov", "aiov share"],
        [
            [m, pr, r.kind, f"{r.aiov_us / 1e3:.3f}", f"{r.ov_us / 1e3:.3f}", fmt_ratio(r.ratio), f"{r.share:.0%}"]
            for m, pr, r in flagged
        ],
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated keys (default: every engine and zoo model)")
    parser.add_argument("--precisions", default="f32,bf16")
    parser.add_argument("--int8", action="store_true", help="add the int8 table's models (at aiov's default, bf16)")
    parser.add_argument("--runs", type=int, default=15, help="profiled inferences per framework")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads of each framework (0: their defaults); one by default, the steadiest on a shared machine",
    )
    parser.add_argument("--ratio", type=float, default=1.5, help="flag aiov/ov above this")
    parser.add_argument("--share", type=float, default=0.02, help="... on a kind costing aiov at least this share")
    parser.add_argument(
        "--min-us",
        type=float,
        default=5.0,
        help="... and at least this many us more than OpenVINO (a zoo model's nodes take a few us, "
        "both profiles count in whole or half us)",
    )
    parser.add_argument("--details", type=int, default=3, help="nodes listed per side for a flagged kind")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per profile")
    parser.add_argument("--save", help="append each profile to this JSON-lines file")
    parser.add_argument("--load", help="reprint the profiles of this JSON-lines file instead of running")
    parser.add_argument("--collect", nargs=2, metavar=("KEY", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.collect:
        print(json.dumps(collect(args.collect[0], args.collect[1], args.runs, args.threads)))
        return 0

    wanted = args.models.split(",") if args.models else None
    if args.load:
        with open(args.load) as fh:
            profiles = [json.loads(line) for line in fh if line.strip()]
        if wanted:
            profiles = [p for p in profiles if p["model"] in wanted]
        # The last profile of each (model, precision) wins: a file appended to by reruns.
        latest = {(p["model"], p["precision"]): p for p in profiles}
        profiles = list(latest.values())
    else:
        import engine

        specs = engine._all_specs()
        keys = wanted or [k for k in specs if not k.endswith("_int8")]
        jobs = [(k, pr) for k in keys for pr in args.precisions.split(",") if not k.endswith("_int8")]
        if args.int8 and not wanted:
            jobs += [(k, "bf16") for k in specs if k.endswith("_int8")]
        jobs += [(k, "bf16") for k in keys if k.endswith("_int8")]
        profiles = []
        for key, precision in jobs:
            print(f"profiling {key} at {precision}", file=sys.stderr, flush=True)
            p = run_child(key, precision, args.runs, args.threads, args.timeout)
            profiles.append(p)
            if args.save:
                with open(args.save, "a") as fh:
                    fh.write(json.dumps(p) + "\n")
    flagged = report(profiles, args.ratio, args.share, args.min_us, args.details)
    summary(flagged, profiles, args.ratio, args.share, args.min_us)
    return 0


if __name__ == "__main__":
    sys.exit(main())
