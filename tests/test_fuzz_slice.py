"""A bounded slice of the fuzzer (tests/fuzz) for CI: about a minute of mutated ONNX and IR
models and hostile input values through every API, each case in a child process. Fails on
any crash or hang; `python -m tests.fuzz --minutes N` runs longer campaigns."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fuzz import harness  # noqa: E402
from tests.fuzz.campaign import Campaign  # noqa: E402

SLICE_SECONDS = float(os.environ.get("AIOV_FUZZ_SLICE_SECONDS", "60"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fuzz harness forks a child per case")
def test_a_minute_of_fuzzing_finds_no_crash_or_hang(tmp_path):
    campaign = Campaign(seed=20261204, out_dir=str(tmp_path), log=lambda message: None)
    summary = campaign.run(SLICE_SECONDS)
    print(summary.text())
    assert summary.cases >= 20, summary.text()
    assert sum(summary.counts[g]["success"] for g in ("onnx", "ir")) > 0, "no mutated model ran: " + summary.text()
    # Crashes in a triaged, reported native class (a shape whose element count wraps int64:
    # tests/test_fuzz_regressions.py, xfail until the native fix) are printed, not failed on.
    failures = summary.aiov_failures(include_known=False)
    assert not failures, "\n".join(f"{f['class']} ({f['group']}, {f['mutator']}): {f['detail']} -> {f['saved']}"
                                   for f in failures)


def test_the_harness_tells_the_classes_apart():
    import aiov as ov
    import signal

    def unclear():
        raise KeyError("r1")

    def clean():
        raise ov.InputError("input 'x': expected f32 data, got complex")

    def crash():
        os.kill(os.getpid(), signal.SIGSEGV)

    def hang():
        import time
        time.sleep(60)

    assert harness.run_case(lambda: None)[0] == "success"
    assert harness.run_case(clean)[0] == "clean"
    assert harness.run_case(unclear)[0] == "unclear"
    assert harness.run_case(lambda: ov.compile_model(b"not a model") and None)[0] == "clean"
    cls, detail = harness.run_case(crash)
    assert cls == "crash" and "SIGSEGV" in detail
    assert harness.run_case(hang, timeout=1.0)[0] == "hang"
