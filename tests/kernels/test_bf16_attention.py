"""The fused attention's bf16 heads (INFERENCE_PRECISION_HINT bf16) on every path the dispatcher
can pick: AMX tiles, AVX512_BF16 dot products and the portable loops, each forced in a
subprocess with AIOV_BF16_ISA (skipped where the CPU lacks it). Q, K and V are the model's
inputs, so the only roundings are the kernel's: Q (scaled), K, V and the probabilities to
bf16, everything else f32. The result is checked against a float64 reference of the rounded
operands, within what rounding the probabilities can move it. The shapes cross the tiles'
edges (query and key lengths off the 16/32 multiples, more query rows than one block, head
sizes below and above one 32-column tile, one query row, fewer keys than one 16-key panel)
with masks of every broadcast form. Heads of at most 16 dims run on the f32 heads under the
bf16 hint too (cheaper than rounding them): checked against the unrounded reference."""

import json

import pytest

SCRIPT = r"""
import json, os, sys, numpy as np, aiov as ov
from onnx import TensorProto, helper
sys.path.insert(0, os.environ["AIOV_TESTS"])
import model_builders as zoo

def rounded(x):  # to bf16, nearest even, as the kernels round
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)

def cross_attention(heads, d, dv, mask_shape, scale):
    # q [b, sq, h, d], k [b, sk, h, d], v [b, sk, h, dv]: the per-head Transposes, the scaled
    # and masked scores, Softmax, the context back to [b, sq, h, dv]; fused into aiov.Attention.
    g = zoo.GraphBuilder(1)
    t = lambda x, perm: g.op("Transpose", [x], perm=perm)
    scores = g.op("Mul", [g.op("MatMul", [t("q", [0, 2, 1, 3]), t("k", [0, 2, 3, 1])]), g.const(np.float32(scale))])
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", s, heads, w])
              for n, s, w in (("q", "sq", d), ("k", "sk", d), ("v", "sk", dv))]
    if mask_shape is not None:
        scores = g.op("Add", [scores, "mask"])
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [None] * len(mask_shape)))
    probs = g.op("Softmax", [scores], axis=-1)
    t(g.op("MatMul", [probs, t("v", [0, 2, 1, 3])]), [0, 2, 1, 3])
    return g.model(inputs).SerializeToString()

rng = np.random.default_rng(3)
worst = 0.0
worst_f32_heads = 0.0
fused = True
for b, sq, sk, h, d, dv, mask in [(2, 37, 70, 3, 24, 40, "keys"), (1, 1, 17, 2, 32, 16, None),
                                   (3, 130, 33, 2, 64, 64, "full"), (2, 16, 128, 4, 32, 32, "row"),
                                   (1, 65, 65, 1, 80, 8, "keys"), (2, 3, 5, 2, 18, 24, "row"),
                                   (2, 9, 21, 3, 16, 24, "keys")]:
    scale = 1 / np.sqrt(d)
    mask_shape = {"keys": (b, 1, 1, sk), "full": (b, h, sq, sk), "row": (1, 1, sq, 1), None: None}[mask]
    model = cross_attention(h, d, dv, mask_shape, scale)
    feeds = {"q": rng.standard_normal((b, sq, h, d)).astype(np.float32),
             "k": rng.standard_normal((b, sk, h, d)).astype(np.float32),
             "v": rng.standard_normal((b, sk, h, dv)).astype(np.float32)}
    if mask_shape is not None:
        feeds["mask"] = np.where(rng.random(mask_shape) < 0.25, -1e4, 0).astype(np.float32)
    compiled = ov.compile_model(model, config={"INFERENCE_PRECISION_HINT": "bf16", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    got = request.infer(feeds)[0]
    fused &= [p.node_type for p in request.get_profiling_info()].count("aiov.Attention") == 1
    f32_heads = d <= 16
    keep = (lambda x: x) if f32_heads else rounded
    q = keep(feeds["q"] * np.float32(scale)).astype(np.float64).transpose(0, 2, 1, 3)
    k = keep(feeds["k"]).astype(np.float64).transpose(0, 2, 1, 3)
    v = keep(feeds["v"]).astype(np.float64).transpose(0, 2, 1, 3)
    s = q @ k.transpose(0, 1, 3, 2) + (feeds["mask"] if mask_shape is not None else 0)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = (p @ v).transpose(0, 2, 1, 3)
    if f32_heads:  # f32 throughout: within f32 accumulation of the largest |v|
        worst_f32_heads = max(worst_f32_heads, float(np.max(np.abs(got - want))) / float(np.max(np.abs(v))))
        continue
    # Rounding the probabilities moves each output by at most 2^-9 of the largest |v| it weighs.
    worst = max(worst, float(np.max(np.abs(got - want))) / (2.0**-9 * float(np.max(np.abs(v)))))
print(json.dumps({"isa": ov._core.gemm_bf16_isa(), "worst": worst, "worst_f32_heads": worst_f32_heads,
                  "fused": fused}))
"""

ISAS = ["scalar", "avx512_bf16", "amx"]  # each includes the ones before it


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_bf16_attention_matches_rounded_reference(isa, run_capped):
    import aiov

    pytest.importorskip("onnx")
    if ISAS.index(isa) > ISAS.index(aiov._core.cpu_bf16_isa()):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 300, AIOV_BF16_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["isa"] == isa  # the forced path is the one that ran
    assert result["fused"]  # every model's attention ran as the fused op
    # Within the probabilities' rounding (plus f32 accumulation): 1.0 is the bound itself.
    assert result["worst"] < 1.0
    assert result["worst_f32_heads"] < 1e-5  # far below the 2^-9 a bf16 rounding would leave
