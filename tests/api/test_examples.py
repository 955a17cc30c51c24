"""The runnable examples run to completion and print what they promise."""

import os
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


# A sitecustomize that makes the modules named in AIOV_TEST_HIDDEN unimportable, as if the
# extra that brings them were not installed.
_HIDER = """
import importlib.abc, os, sys

class _Hidden(importlib.abc.MetaPathFinder):
    hidden = os.environ["AIOV_TEST_HIDDEN"].split(",")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Hidden())
"""


@pytest.mark.parametrize(
    "script, hidden, install",
    [
        ("trio_pipeline.py", "trio", "pip install 'aiov[trio]'"),
        ("imap_pipeline_trio.py", "trio", "pip install 'aiov[trio]'"),
        ("fastapi_service.py", "fastapi", "pip install 'aiov[serve]' fastapi"),
        ("fastapi_service.py", "uvicorn", "pip install 'aiov[serve]' fastapi"),
        ("ray_serve.py", "ray", "pip install 'aiov[ray]'"),
    ],
)
def test_example_names_its_extra_when_a_module_is_missing(tmp_path, script, hidden, install):
    (tmp_path / "sitecustomize.py").write_text(_HIDER)
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=path, AIOV_TEST_HIDDEN=hidden),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert install in proc.stderr and hidden in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
