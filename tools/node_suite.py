"""Runs every case of ONNX's backend node suite on aiov and, when installed, onnxruntime and
OpenVINO, and prints pass counts per op and in total, side by side.

    python tools/node_suite.py [--engines aiov,onnxruntime,openvino] [--json FILE] [-k PATTERN]

Each engine runs in a child process that is restarted after a crash, so a case that kills
the interpreter counts as a crash instead of ending the run. A case passes when every data
set's outputs match ONNX's expected outputs with the case's own tolerances (the rule
tests/frontends/test_onnx_conformance.py applies)."""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import re
import sys
import warnings

ENGINES = ("aiov", "onnxruntime", "openvino")
CASE_TIMEOUT_S = 60
# Cases whose expected values are one draw of a random generator (as in the conformance test).
RANDOM_VALUES = r"bernoulli|training_dropout(_default)?(_mask)?$"


def load_cases(pattern=None):
    from aiov.onnx_backend import node_test_cases

    cases = node_test_cases()
    if pattern:
        cases = [c for c in cases if re.search(pattern, c.name)]
    return sorted(cases, key=lambda c: c.name)


def op_of(case, by_name):
    """The op a case tests: its single op, or for an _expanded case the op of its unexpanded twin."""
    base = re.sub(r"_expanded.*$", "", case.name)
    twin = by_name.get(base, case)
    ops = sorted({n.op_type for n in twin.model.graph.node})
    return ops[0] if len(ops) == 1 else "+".join(ops)


def _runner(engine):
    import numpy as np

    if engine == "aiov":
        from aiov.onnx_backend import AiovBackend

        def run(model, inputs):
            return AiovBackend.prepare(model).run(inputs)
    elif engine == "onnxruntime":
        import onnxruntime as ort

        def run(model, inputs):
            sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            names = [i.name for i in sess.get_inputs()]
            return sess.run(None, dict(zip(names, inputs)))
    else:
        import openvino as ov

        core = ov.Core()

        def run(model, inputs):
            import os
            import tempfile

            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "m.onnx")
                with open(path, "wb") as f:
                    f.write(model.SerializeToString())
                compiled = core.compile_model(path, "CPU")
                results = compiled(list(inputs))
                return [results[o] for o in compiled.outputs]

    return run, np


def _check(case, run, np):
    import onnx
    from onnx import numpy_helper

    for inputs, outputs in case.data_sets:
        inputs = [
            numpy_helper.to_array(i)
            if isinstance(i, onnx.TensorProto)
            else i
            if isinstance(i, (list, dict)) or i is None
            else np.asarray(i)
            for i in inputs
        ]
        got = run(case.model, inputs)
        if len(got) != len(outputs):
            return "wrong"
        for g, e in zip(got, outputs):
            if not _matches(case, g, e, np):
                return "wrong"
    return "pass"


def _matches(case, g, e, np):
    """Whether output `g` is the expected `e`: a tensor, a sequence (list) or an empty optional (None)."""
    import onnx
    from onnx import numpy_helper

    if e is None or isinstance(e, list):
        if e is None or g is None:
            return g is None and e is None
        g = list(g) if isinstance(g, (list, tuple)) else None
        return g is not None and len(g) == len(e) and all(_matches(case, a, b, np) for a, b in zip(g, e))
    if g is None or isinstance(g, (list, tuple)):
        return False
    e = numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else np.asarray(e)
    g = np.asarray(g)
    if g.shape != e.shape:
        return False
    if re.search(RANDOM_VALUES, case.name):  # one random draw: only shape and type can match
        return g.dtype == e.dtype
    if e.dtype == object:
        return True
    if e.dtype.kind == "V" or g.dtype.kind == "V":  # ml_dtypes (bf16, fp8...): compare as floats
        e, g = e.astype(np.float64), g.astype(np.float64)
    try:
        np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol, equal_nan=True)
    except (AssertionError, TypeError, ValueError):
        return False
    return True


def _child(engine, pattern, start, conn):
    warnings.simplefilter("ignore")
    run, np = _runner(engine)
    cases = load_cases(pattern)
    for i in range(start, len(cases)):
        conn.send(("start", i))
        try:
            with np.errstate(all="ignore"):
                outcome = _check(cases[i], run, np)
        except Exception as exc:  # a refusal or failure: the engine said no
            outcome = "error:" + type(exc).__name__
        conn.send(("done", i, outcome))
    conn.send(("end",))


def run_engine(engine, pattern, total):
    outcomes = {}
    start = 0
    ctx = mp.get_context("spawn")
    while start < total:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(engine, pattern, start, child), daemon=True)
        proc.start()
        child.close()
        current = None
        while True:
            if not parent.poll(CASE_TIMEOUT_S):
                proc.kill()
                if current is not None:
                    outcomes[current] = "hang"
                break
            try:
                msg = parent.recv()
            except EOFError:
                if current is not None:
                    outcomes[current] = "crash"
                break
            if msg[0] == "start":
                current = msg[1]
            elif msg[0] == "done":
                outcomes[msg[1]] = msg[2]
                current = None
            else:
                current = None
                break
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        start = max(outcomes, default=-1) + 1
        if current is None and start >= total:
            break
    return outcomes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("-k", dest="pattern", default=None, help="regular expression on case names")
    ap.add_argument("--json", default=None, help="write every case's outcome per engine here")
    ap.add_argument("--ops", action="store_true", help="print the per-op table")
    args = ap.parse_args(argv)
    cases = load_cases(args.pattern)
    by_name = {c.name: c for c in cases}
    engines = []
    for e in args.engines.split(","):
        try:
            __import__({"aiov": "aiov", "onnxruntime": "onnxruntime", "openvino": "openvino"}[e])
            engines.append(e)
        except ImportError:
            print(f"{e}: not installed, skipped", file=sys.stderr)
    results = {e: run_engine(e, args.pattern, len(cases)) for e in engines}
    per_op = collections.defaultdict(lambda: collections.Counter())
    ops_passing = collections.defaultdict(set)
    for i, case in enumerate(cases):
        op = op_of(case, by_name)
        per_op[op]["cases"] += 1
        for e in engines:
            if results[e].get(i) == "pass":
                per_op[op][e] += 1
                ops_passing[e].add(op)
    if args.ops:
        print(f"{'op':32}{'cases':>7}" + "".join(f"{e:>13}" for e in engines))
        for op in sorted(per_op):
            c = per_op[op]
            print(f"{op:32}{c['cases']:>7}" + "".join(f"{c[e]:>13}" for e in engines))
    print(f"{len(cases)} cases, {len(per_op)} ops")
    for e in engines:
        kinds = collections.Counter(v.split(":")[0] for v in results[e].values())
        print(
            f"{e:12} passed {kinds['pass']:5}  wrong {kinds['wrong']:4}  refused {kinds['error']:5}  "
            f"crashed {kinds['crash']:3}  hung {kinds['hang']:3}  ops with a passing case {len(ops_passing[e])}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({e: {cases[i].name: v for i, v in results[e].items()} for e in engines}, f, indent=0)


if __name__ == "__main__":
    main()
