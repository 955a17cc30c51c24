"""The runnable examples run to completion and print what they promise."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "script, expected",
    [
        ("quickstart.py", "queue finished 16 jobs"),
        ("async_quickstart.py", "queue finished 64 jobs"),
        ("trio_pipeline.py", "200 items classified"),
        ("imap_pipeline.py", "300 frames classified in order"),
        ("imap_pipeline_trio.py", "300 frames measured in order"),
    ],
)
def test_example_runs(script, expected):
    proc = subprocess.run(
        [sys.executable, "-X", "dev", str(ROOT / "examples" / script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert expected in proc.stdout
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
