"""A bounded slice of the fuzzer (tests/fuzz) for CI: about a minute of mutated ONNX and IR
models and hostile input values through every API, each case in a child process. Fails on
any crash or hang; `python -m tests.fuzz --minutes N` runs longer campaigns."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.fuzz import harness  # noqa: E402

SLICE_SECONDS = float(os.environ.get("AIOV_FUZZ_SLICE_SECONDS", "60"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fuzz harness forks a child per case")
def test_a_minute_of_fuzzing_finds_no_crash_or_hang(tmp_path):
    # Its own interpreter: the harness forks per case, which needs a parent that has run no
    # inference (this pytest process has aiov worker threads).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz",
            "--minutes",
            str(SLICE_SECONDS / 60),
            "--seed",
            "20261204",
            "--out",
            str(tmp_path),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=SLICE_SECONDS + 240,
    )
    print(proc.stdout[-6000:])
    assert (tmp_path / "summary.json").exists(), proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cases"] >= 20, proc.stdout[-3000:]
    counts = summary["counts"]
    assert counts.get("onnx", {}).get("success", 0) + counts.get("ir", {}).get("success", 0) > 0, (
        "no mutated model ran: " + proc.stdout[-3000:]
    )
    # Any crash or hang of aiov fails (the peers' are only counted).
    failures = [f for f in summary["failures"] if not f["group"].startswith("peer")]
    assert not failures, "\n".join(
        f"{f['class']} ({f['group']}, {f['mutator']}): {f['detail']} -> {f['saved']}" for f in failures
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_the_harness_tells_the_classes_apart():
    # The forked cases touch no engine (this process may have aiov worker threads).
    import signal

    import aiov as ov

    def unclear():
        raise KeyError("r1")

    def clean():
        raise ov.InputError("input 'x': expected f32 data, got complex")

    def crash():
        # The default action, not a handler's: under tools/sanitize.sh ASan's SEGV handler would
        # turn this deliberate crash into a sanitizer report and an abort.
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)

    def hang():
        import time

        time.sleep(60)

    assert harness.run_case(lambda: None)[0] == "success"
    assert harness.run_case(clean)[0] == "clean"
    assert harness.run_case(unclear)[0] == "unclear"
    assert harness.run_fresh("import aiov\naiov.compile_model(b'not a model')")[0] == "clean"
    assert harness.run_fresh("import os, signal\nos.kill(os.getpid(), signal.SIGABRT)")[0] == "crash"
    cls, detail = harness.run_case(crash)
    assert cls == "crash" and "SIGSEGV" in detail
    assert harness.run_case(hang, timeout=1.0)[0] == "hang"


def test_the_blob_mutators_parse_every_seed_blob_to_its_end():
    # The structure-aware blob mutators find attributes, constants and shapes by reading the
    # stream as native/plan/serialize.cpp writes it; a change of that layout must reach them too,
    # or the blob fuzzing silently falls back on blind byte edits.
    import aiov as ov
    from aiov._properties import f16_available

    from tests import model_builders
    from tests.fuzz import mutate_blob

    # (f16 where the CPU multiplies in it; bf16 writes reduced-precision weights everywhere else)
    reduced = "f16" if f16_available() else "bf16"
    for proto in (model_builders.mlp((4, 8, 2)), model_builders.conv_stack((3, 4, 8), classes=3)):
        for hint in ("f32", reduced):
            compiled = ov.compile_model(proto.SerializeToString(), "CPU", {"INFERENCE_PRECISION_HINT": hint})
            _, graphs = mutate_blob.split(compiled.export_model())
            stream = mutate_blob.Stream(bytearray(graphs))
            assert stream.at == len(graphs)
            assert stream.attrs and stream.buffers and stream.shapes
            assert len(stream.constants) >= len(stream.buffers)
            assert stream.weights, "the packed weights' record was not found"
