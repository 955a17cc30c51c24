"""ONNX's own node test cases (generated from the case modules the onnx package ships) run
through aiov's onnx.backend implementation. Every case of the ops the frontend covers either
passes or is excluded below with the reason."""

import re
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from aiov.frontends.onnx import supported_ops  # noqa: E402
from aiov.onnx_backend import AiovBackend  # noqa: E402

OPS = set(supported_ops())  # every op the frontend converts: adding a converter adds its cases

# (pattern on the case name, reason). First match wins.
EXCLUDED = [
    (
        r"float8|float4|_int4|uint4|_int2|uint2|FLOAT8|FLOAT4|INT4|UINT4|INT2|UINT2|e8m0",
        "8-, 4- and 2-bit float/int ONNX types are not aiov element types",
    ),
    (r"bfloat16|BFLOAT16|_bf16", "bf16 model inputs: numpy has no bfloat16 dtype to feed"),
    (r"string|STRING", "string tensors are not supported"),
    (r"sequence|optional|_opt$", "sequence and optional types are not supported"),
    (r"maxpool_2d_uint8", "integer pooling (aiov pools f32)"),
    (r"wrap_pad", "Pad mode 'wrap'"),
    (r"constant_pad_(negative_)?axes|center_crop_pad", "Pad with both pads and axes given at run time"),
    (
        r"attention_(4d_diff_heads_mask4d_padded_kv|causal_boolmask_nan_robustness|24_fullymasked_qk_matmul_output_mode3_zero"
        r"|24_qk_matmul_output_mode3_softmax_precision|4d_causal_nonpad_attn_mask_composition|local_window_.*)_expanded",
        "Attention's function body pads its bias with a Pad whose pads and axes are both run-time inputs",
    ),
    (r"causal_conv_with_state.*fp16", "f16 convolution (aiov convolves f32)"),
    (
        r"attention_4d_causal_fp16_expanded",
        "f16 MatMul/Softmax chain: aiov's f16 intermediates round differently (1.2e-3 relative against the case's "
        "1e-3; onnxruntime passes): a kernel-precision follow-up",
    ),
    (r"training_dropout|batchnorm_.*training", "training-mode outputs (masks, statistics)"),
    (
        r"resize_.*(cubic|antialias|tf_crop|_axes_|not_larger|not_smaller|half_pixel_symmetric)",
        "Resize modes beyond nearest/linear with the common coordinate transforms",
    ),
    (r"einsum_batch_diagonal", "Einsum with a repeated letter (diagonal)"),
    (r"maxpool_with_argmax_2d_precomputed_strides", "MaxPool Indices in column-major storage_order=1"),
    (r"_opset1$|not_2d$|not_3d$|not_4d$", "opset 1 models (aiov reads opset 7 and later)"),
]


def _cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    selected = []
    for case in cases:
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
            e = numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else np.asarray(e)
            assert g.shape == e.shape
            if e.dtype == object:
                continue
            np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol, equal_nan=True)


def test_backend_reports_device_and_compatibility():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert AiovBackend.supports_device("CPU") and not AiovBackend.supports_device("CUDA")
    assert AiovBackend.is_compatible(model)
    (y,) = AiovBackend.run_model(model, [np.array([-1.0, 2.0], np.float32)])
    np.testing.assert_array_equal(y, [0.0, 2.0])
