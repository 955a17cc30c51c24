"""INFERENCE_PRECISION_HINT: f32 and bf16 in every spelling OpenVINO accepts, what a compiled
model reports it runs, the default (bf16 where the CPU has bf16 instructions, as OpenVINO,
unless EXECUTION_MODE_HINT is ACCURACY or AIOV_INFERENCE_PRECISION pins it), and f16 refused
with the CPU feature it needs. The kernels' accuracy is tested in tests/kernels/test_bf16_paths.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import aiov as ov
from aiov import opset13 as ops
from aiov.properties import hint as hints


def bf16(x):
    """x rounded to bf16 (nearest even), as f32."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


def matmul_model(w):
    x = ops.parameter([4, w.shape[0]], np.float32, name="x")
    return ov.Model([ops.matmul(x, ops.constant(w), False, False)], [x], "mm")


@pytest.mark.parametrize("spelling", ["bf16", "BF16", "bfloat16", ov.Type.bf16])
def test_bf16_hint_runs_products_on_bf16_operands(spelling):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((70, 33)).astype(np.float32)
    x = rng.standard_normal((4, 70)).astype(np.float32)
    compiled = ov.compile_model(matmul_model(w), "CPU", {"INFERENCE_PRECISION_HINT": spelling})
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    got = compiled(x)[0]
    want = bf16(x).astype(np.float64) @ bf16(w).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    f32 = x.astype(np.float64) @ w.astype(np.float64)
    assert np.max(np.abs(got - f32)) > 1e-4  # the operands really were rounded


def test_hint_through_the_property_helper_and_f32():
    w = np.ones((8, 8), np.float32)
    compiled = ov.compile_model(matmul_model(w), "CPU", dict([hints.inference_precision(ov.Type.bf16)]))
    assert compiled.get_property(hints.inference_precision) == ov.Type.bf16
    compiled = ov.compile_model(matmul_model(w), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


def test_f16_and_unknown_precisions_are_refused_with_what_they_need():
    w = np.ones((8, 8), np.float32)
    with pytest.raises(ov.InputError, match="f16 needs AVX512-FP16 or AMX-FP16"):
        ov.compile_model(matmul_model(w), "CPU", {"INFERENCE_PRECISION_HINT": "f16"})
    with pytest.raises(ov.InputError, match="expected f32 or bf16, got 'i8'"):
        ov.compile_model(matmul_model(w), "CPU", {"INFERENCE_PRECISION_HINT": "i8"})


def test_precision_is_fixed_at_compile_time():
    compiled = ov.compile_model(matmul_model(np.ones((8, 8), np.float32)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with pytest.raises(ov.InputError, match="fixed at compile time"):
        compiled.set_property({"INFERENCE_PRECISION_HINT": "bf16"})


DEFAULT_SCRIPT = """
import sys, numpy as np, aiov as ov
from aiov import opset13 as ops
x = ops.parameter([2, 8], np.float32, name="x")
model = ov.Model([ops.matmul(x, ops.constant(np.ones((8, 8), np.float32)), False, False)], [x], "mm")
config = {"EXECUTION_MODE_HINT": sys.argv[1]} if len(sys.argv) > 1 else {}
compiled = ov.compile_model(model, "CPU", config)
print(ov._core.gemm_bf16_isa(), compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
      ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name())
"""


def run_default(*args, pin=None):
    env = {k: v for k, v in os.environ.items() if k != "AIOV_INFERENCE_PRECISION"}
    if pin:
        env["AIOV_INFERENCE_PRECISION"] = pin
    proc = subprocess.run(
        [sys.executable, "-c", DEFAULT_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_default_follows_openvino_bf16_where_the_cpu_has_it():
    isa, compiled, core = run_default()
    expected = "f32" if isa == "scalar" else "bf16"
    assert (compiled, core) == (expected, expected)


def test_accuracy_mode_and_the_environment_pin_keep_f32():
    assert run_default("ACCURACY")[1] == "f32"
    assert run_default(pin="f32")[1:] == ["f32", "f32"]
    assert run_default(pin="bf16")[1] == "bf16"
