"""aiov logs through ``logging.getLogger("aiov")``: silent by default, model reads and compiles
with their times at DEBUG."""

import logging
import subprocess
import sys
from pathlib import Path

import aiov as ov

from model_builders import tiny_model


def test_compile_and_read_are_logged_at_debug(caplog, tmp_path):
    path = tmp_path / "tiny.xml"
    ov.save_model(tiny_model(), str(path))
    with caplog.at_level(logging.DEBUG, logger="aiov"):
        model = ov.Core().read_model(str(path))
        ov.Core().compile_model(model, "CPU")
    messages = [r.getMessage() for r in caplog.records if r.name == "aiov"]
    assert any(m.startswith(f"read_model {path} took ") for m in messages), messages
    assert any(m.startswith("compile_model ") and "GEMM ISA" in m for m in messages), messages


def test_nothing_is_printed_at_the_default_level():
    tests = str(Path(__file__).parents[1])
    code = (
        f"import sys; sys.path.insert(0, {tests!r}); import aiov as ov; from model_builders import tiny_model;"
        "ov.compile_model(tiny_model(), 'CPU')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""
