"""A user's type checker sees aiov's types (aiov/py.typed, and the aiov._core stubs the build
generates with nanobind's stubgen), not Any."""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import aiov

pytest.importorskip("mypy")

SNIPPET = textwrap.dedent("""
    import numpy as np
    import aiov as ov
    from aiov import aio

    core = ov.Core()
    model = core.read_model("model.onnx")
    compiled = core.compile_model(model, "CPU")
    reveal_type(compiled)
    reveal_type(compiled(np.zeros((1, 3), np.float32)))
    reveal_type(compiled.create_infer_request())
    reveal_type(ov.Tensor(np.zeros(3, np.float32)))
    reveal_type(ov._core.CompletionPort().fd)


    async def main() -> None:
        twin = await aio.compile_model(model, "CPU")
        reveal_type(twin)
        reveal_type(await twin(np.zeros((1, 3), np.float32)))
""")

EXPECTED = [
    "aiov._compiled.CompiledModel",
    "aiov._results.OVDict",
    "aiov._request.InferRequest",
    "aiov._tensor.Tensor",
    "int",
    "aiov.aio._compiled.CompiledModel",
    "aiov._results.OVDict",
]


def test_mypy_knows_the_api_types(tmp_path):
    user = tmp_path / "user.py"
    user.write_text(SNIPPET)
    package_root = pathlib.Path(aiov.__file__).resolve().parents[1]
    env = dict(os.environ)
    if "site-packages" not in package_root.parts:
        # An editable install: type checkers do not run its import hook, so point at the sources
        # (where an editable build leaves the generated aiov/_core.pyi).
        env["MYPYPATH"] = str(package_root)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull, "--no-error-summary", str(user)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    revealed = [  # older mypy (the one for Python 3.9) spells builtins with their module
        line.split('Revealed type is "', 1)[1].rstrip('"').replace("builtins.", "")
        for line in proc.stdout.splitlines()
        if "Revealed type is" in line
    ]
    assert revealed == EXPECTED, proc.stdout + proc.stderr
    assert "error" not in proc.stdout, proc.stdout
