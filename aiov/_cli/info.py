"""``python -m aiov info [MODEL]``: without a model, what the engine runs with here (workers,
instruction sets, completion port, settings); with one, its inputs and outputs (names, types,
shapes), ops by type, and whether aiov supports every op (for an unsupported ONNX model: which
ops are missing)."""

from __future__ import annotations

import os
import sys
from collections import Counter


def add_parser(commands):
    parser = commands.add_parser(
        "info",
        help="the engine's settings, or the inputs, outputs and ops of a model",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("model", nargs="?", help="an .onnx or .xml (OpenVINO IR) file")
    parser.set_defaults(run=run)


def _port_line(port) -> str:
    names = ", ".join(sorted(port.get_names())) or "(unnamed)"
    return f"  {names}: {port.get_element_type().get_type_name()} {port.get_partial_shape()}"


def onnx_op_counts(path):
    """(op type counts, ops aiov cannot convert) of an ONNX file, read without converting it."""
    from ..frontends import _onnx_proto
    from ..frontends.onnx import supported_ops

    graph = _onnx_proto.load_model(path).graph
    counts = Counter(f"{n.domain + '.' if n.domain not in ('', 'ai.onnx') else ''}{n.op_type}" for n in graph.node)
    known = set(supported_ops())
    missing = sorted(op for op in counts if op not in known)
    return counts, missing


def run(args) -> int:
    import aiov as ov

    from .._errors import InputError

    path = args.model
    if path is None:
        return _print_engine(ov.info())
    if not os.path.exists(path):
        print(f"error: model file not found: {path}", file=sys.stderr)
        return 2
    print(f"model: {path}")
    onnx_counts = missing = None
    if path.lower().endswith(".onnx"):
        try:
            onnx_counts, missing = onnx_op_counts(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not raised
            print(f"error: cannot read the ONNX model: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    try:
        model = ov.Core().read_model(path)
    except (InputError, ValueError, RuntimeError) as exc:
        if onnx_counts is not None:
            _print_counts("ONNX ops", onnx_counts)
        print("supported: no")
        if missing:
            print(f"missing ops: {', '.join(missing)}")
        print(f"reason: {exc}")
        return 1
    print("inputs:")
    for port in model.inputs:
        print(_port_line(port))
    print("outputs:")
    for port in model.outputs:
        print(_port_line(port))
    if onnx_counts is not None:
        _print_counts("ONNX ops", onnx_counts)
    graph_counts = Counter(
        op.get_type_name() for op in model.get_ordered_ops() if op.get_type_name() not in ("Parameter", "Result")
    )
    _print_counts("aiov ops", graph_counts)
    print("supported: yes (every op converts and is implemented)")
    return 0


def _print_counts(title, counts):
    print(f"{title} ({sum(counts.values())} nodes, {len(counts)} types):")
    for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<28}{n:>6}")


def _print_engine(engine: dict) -> int:
    for key, value in engine.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "(defaults)"
        elif isinstance(value, list):
            value = " ".join(value) or "-"
        print(f"{key + ':':<17}{value}")
    return 0
