"""The style is enforced, not remembered: ruff (lint and format) over the Python code and
clang-format over native/, with the configurations in pyproject.toml and .clang-format."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tool(name):
    path = shutil.which(name, path=str(pathlib.Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (it comes with the 'test' extra)")
    return path


def _run(args):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_to_report():
    proc = _run([_tool("ruff"), "check", "--no-cache", "."])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_code_is_formatted():
    proc = _run([_tool("ruff"), "format", "--no-cache", "--check", "."])
    assert proc.returncode == 0, "run `ruff format .`:\n" + proc.stdout + proc.stderr


def test_native_code_is_formatted():
    files = _run(["git", "ls-files", "native/*.cpp", "native/*.hpp", "native/*.inc"]).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    proc = _run([_tool("clang-format"), "--dry-run", "--Werror", *files])
    assert proc.returncode == 0, "run `clang-format -i` on these files:\n" + proc.stderr[-4000:]
