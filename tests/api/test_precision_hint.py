"""INFERENCE_PRECISION_HINT: f32, bf16 and f16 in every spelling OpenVINO accepts, what a compiled
model reports it runs, the default (bf16 where the CPU has bf16 instructions, as OpenVINO,
unless EXECUTION_MODE_HINT is ACCURACY or AIOV_INFERENCE_PRECISION pins it), and f16 accepted
only where the CPU has f16 instructions (refused with the feature it needs elsewhere). The
kernels' accuracy is tested in tests/kernels/test_bf16_paths.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import aiov as ov
from aiov import opset13 as ops
from aiov.properties import hint as hints

from model_builders import bert_encoder, bert_feeds


def bf16(x):
    """x rounded to bf16 (nearest even), as f32."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


def f16(x):
    """x rounded to f16 (nearest even), as f32."""
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


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


needs_f16 = pytest.mark.skipif(not ov._core.cpu_has_avx512_fp16(), reason="this CPU has no AVX512-FP16")


@needs_f16
@pytest.mark.parametrize("spelling", ["f16", "F16", "float16", ov.Type.f16])
def test_f16_hint_runs_products_on_f16_operands(spelling):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((70, 33)).astype(np.float32)
    x = rng.standard_normal((4, 70)).astype(np.float32)
    compiled = ov.compile_model(matmul_model(w), "CPU", {"INFERENCE_PRECISION_HINT": spelling})
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f16
    got = compiled(x)[0]
    want = f16(x).astype(np.float64) @ f16(w).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    f32 = x.astype(np.float64) @ w.astype(np.float64)
    assert 1e-5 < np.max(np.abs(got - f32)) < 1e-2 * np.max(np.abs(f32))  # rounded, to f16's precision


@needs_f16
def test_f16_bert_encoder_matches_f32_within_f16_tolerance():
    # MatMuls against weights, attention's products of activations, LayerNorm and GELU kept f32.
    proto = bert_encoder(hidden=64, heads=4, layers=2)
    feeds = bert_feeds(2, 16, 64)
    data = proto.SerializeToString()
    ref = ov.compile_model(data, config={"INFERENCE_PRECISION_HINT": "f32"})(feeds)[0]
    got = ov.compile_model(data, config={"INFERENCE_PRECISION_HINT": "f16"})(feeds)[0]
    bf16_got = ov.compile_model(data, config={"INFERENCE_PRECISION_HINT": "bf16"})(feeds)[0]
    err = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
    assert 0 < err < 5e-3
    assert err < np.max(np.abs(bf16_got - ref)) / np.max(np.abs(ref))  # f16 keeps 3 more bits


def test_unknown_precisions_are_refused_with_what_is_expected():
    w = np.ones((8, 8), np.float32)
    with pytest.raises(ov.InputError, match="expected f32, bf16 or f16, got 'i8'"):
        ov.compile_model(matmul_model(w), "CPU", {"INFERENCE_PRECISION_HINT": "i8"})


F16_SCRIPT = """
import numpy as np, aiov as ov
from aiov import opset13 as ops
x = ops.parameter([2, 8], np.float32, name="x")
model = ov.Model([ops.matmul(x, ops.constant(np.ones((8, 8), np.float32)), False, False)], [x], "mm")
caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
try:
    ov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f16"})
    print("FP16" in caps, "accepted")
except ov.InputError as e:
    print("FP16" in caps, e)
"""


@pytest.mark.parametrize("cap", ["scalar", None])
def test_f16_is_offered_only_where_f16_instructions_run(cap, run_capped):
    # Forced below AVX512-FP16 (as on a CPU without it) the hint is refused, naming what it
    # needs, and FP16 is not among the capabilities; with the CPU's own path it is both.
    listed, outcome = run_capped(F16_SCRIPT, 60, AIOV_F16_ISA=cap, AIOV_GEMM_ISA=None).split(" ", 1)
    if cap is None and ov._core.cpu_has_avx512_fp16():
        assert (listed, outcome) == ("True", "accepted")
    else:
        assert listed == "False"
        assert "f16 needs AVX512-FP16 or AMX-FP16 kernels" in outcome
        assert ("AIOV_F16_ISA" in outcome) == ov._core.cpu_has_avx512_fp16()


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


@needs_f16
def test_environment_pin_takes_f16_where_the_cpu_has_it():
    assert run_default(pin="f16")[1:] == ["f16", "f16"]
