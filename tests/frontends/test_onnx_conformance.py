"""ONNX's own node test cases (generated from the case modules the onnx package ships) run
through aiov's onnx.backend implementation. Every case of the ops the frontend covers either
passes or is excluded below with the reason."""

import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from aiov.frontends.onnx import supported_ops  # noqa: E402
from aiov.onnx_backend import AiovBackend, node_test_cases  # noqa: E402

from graph_checks import onnx_before_1_20  # noqa: E402
from model_builders import one_node_model  # noqa: E402

OPS = set(supported_ops())  # every op the frontend converts: adding a converter adds its cases

# Cases whose expected values are one draw of a random generator: only shapes and types can match.
RANDOM_VALUES = r"bernoulli|training_dropout(_default)?(_mask)?$"

# (pattern on the case name, reason). First match wins.
EXCLUDED = [
    (r"string|STRING", "string tensors are not supported"),
    (
        r"attention_4d_causal_fp16_expanded",
        "the expected values keep the reference's f16 Softmax rounding (it rounds exp and the row sum to f16 "
        "before dividing): aiov's output is exactly every op of the expansion computed exactly and rounded once "
        "to f16, and its Softmax alone differs from the reference's (as onnxruntime's does); 2 of 192 outputs "
        "end 1 f16 ulp away (1.2e-3 relative against the case's rtol of 1e-3)",
    ),
    (
        r"attention_.*_bf16",
        "bf16 Attention: the reference rounds every intermediate (MatMul, Softmax) to bf16 (8 mantissa bits); "
        "aiov computes in f32 and rounds once, 1 bf16 ulp (0.4%) from the reference against the case's rtol of "
        "1e-3 (onnxruntime runs no bf16 Attention)",
    ),
    (
        r"dft_inverse(_opset19)?$",
        "the expected values keep float32 FFT rounding noise (1.9e-7 where the exact value is 0) above the case's "
        "atol of 1e-7: the exact (f64) inverse misses them by 1.5e-6, aiov (which transforms in double) is within "
        "4.4e-7 of the exact values (onnxruntime fails these too, 1.9e-5 away)",
    ),
]
if onnx_before_1_20():
    # onnx 1.19 (the last for Python 3.9) expects NaN for a zero vector; 1.20 corrected it to 0.
    EXCLUDED.append((r"^test_l2normalization_axis_0$", "onnx < 1.20 expects NaN where the norm is 0"))
    # Attention's qk_matmul_output modes were renumbered and softcap moved before the bias in
    # the revised spec (onnx 1.20+, onnxruntime); 1.19's cases follow the first text.
    EXCLUDED.append(
        (r"^test_attention_.*qk_matmul_(bias|softcap)", "onnx < 1.20 orders Attention's score modes as its first spec")
    )
    # Its int8 QLinearMatMul cases expect wrapped results (20 for -236); 1.20 saturates, as ONNX says.
    EXCLUDED.append(
        (r"^test_qlinearmatmul_[23]D_int8_", "onnx < 1.20 expects int8 results that wrap instead of saturating")
    )


def _cases():
    selected = []
    for case in node_test_cases():
        ops = {n.op_type for n in case.model.graph.node}
        if ops & OPS and not ops - OPS:
            selected.append(case)
    return selected


CASES = _cases()


def _reason(name):
    for pattern, reason in EXCLUDED:
        if re.search(pattern, name, re.IGNORECASE):
            return reason
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    reason = _reason(case.name)
    if reason:
        pytest.skip(reason)
    rep = AiovBackend.prepare(case.model)
    for inputs, outputs in case.data_sets:
        got = rep.run(inputs)
        assert len(got) == len(outputs)
        for g, e in zip(got, outputs):
            _expect_value(case, g, e)


def _expect_value(case, g, e):
    """`g` matches the expected `e`: a tensor, a sequence (list) of them, or an empty optional (None)."""
    if e is None or isinstance(e, list):
        assert type(g) is type(e), f"expected {type(e).__name__}, got {type(g).__name__}"
        for gi, ei in zip(g or [], e or []):
            _expect_value(case, gi, ei)
        assert len(g or []) == len(e or [])
        return
    e = numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else np.asarray(e)
    assert g.shape == e.shape
    if re.search(RANDOM_VALUES, case.name):
        assert g.dtype == e.dtype
        return
    if e.dtype == object:
        return
    if "ml_dtypes" in (e.dtype.type.__module__, g.dtype.type.__module__):  # bf16, fp8, int4...: values
        assert g.dtype == e.dtype
        e, g = e.astype(np.float64), g.astype(np.float64)
    np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol, equal_nan=True)


def test_backend_reports_device_and_compatibility():
    model = one_node_model("Relu")
    assert AiovBackend.supports_device("CPU") and not AiovBackend.supports_device("CUDA")
    assert AiovBackend.is_compatible(model)
    (y,) = AiovBackend.run_model(model, [np.array([-1.0, 2.0], np.float32)])
    np.testing.assert_array_equal(y, [0.0, 2.0])
