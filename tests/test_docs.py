"""The documentation site builds from the repository with ``mkdocs build --strict`` (a broken
link between pages, a missing page or a docstring mkdocstrings cannot render fails), and its
supported-ops page is the engine's registry."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).parents[1]


def test_the_site_builds_strictly_and_lists_every_registered_op(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ops_page = (tmp_path / "site" / "ops" / "index.html").read_text()
    from aiov._core import op_types

    for op in op_types():
        assert f"<td>{op}</td>" in ops_page, op
    assert "<!-- ops-table -->" not in ops_page
