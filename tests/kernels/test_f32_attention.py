"""The fused attention's f32 heads on every path the dispatcher can pick: the AVX-512 head kernel
(attention_f32_avx512.cpp) and the generic products with the AVX2 or the portable kernels, each
forced in a subprocess with AIOV_GEMM_ISA (skipped where the CPU lacks it). Q, K, V and the
mask are the model's inputs; the result is checked against float64 attention of the same f32
values. The shapes cross the kernel's edges: query rows off its 8-row blocks (1, 9, 17, 37,
130), keys off its 16-key panels and 32-key tiles (1, 5, 17, 33, 39, 70), head sizes below one
vector, between one and two, above two (3, 7, 16, 24, 40, 64) with D != Dv; masks broadcast along
each dim and of every rank, a mask of -inf on all keys but one, and scores in the hundreds
(exp of them overflows f32 without the maximum taken first). Under AVX-512 the heads of fewer
than D / 8 query rows (here 1 x 16) take the generic products, the others the kernel."""

import json

import pytest

SCRIPT = r"""
import json, os, sys, numpy as np, aiov as ov
from onnx import TensorProto, helper
sys.path.insert(0, os.environ["AIOV_TESTS"])
import model_builders as zoo

def cross_attention(heads, d, dv, mask_rank, scale):
    # q [b, sq, h, d], k [b, sk, h, d], v [b, sk, h, dv]: the per-head Transposes, the scaled
    # and masked scores, Softmax, the context back to [b, sq, h, dv]; fused into aiov.Attention.
    g = zoo.GraphBuilder(1)
    t = lambda x, perm: g.op("Transpose", [x], perm=perm)
    scores = g.op("Mul", [g.op("MatMul", [t("q", [0, 2, 1, 3]), t("k", [0, 2, 3, 1])]), g.const(np.float32(scale))])
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", s, heads, w])
              for n, s, w in (("q", "sq", d), ("k", "sk", d), ("v", "sk", dv))]
    if mask_rank is not None:
        scores = g.op("Add", [scores, "mask"])
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [None] * mask_rank))
    probs = g.op("Softmax", [scores], axis=-1)
    t(g.op("MatMul", [probs, t("v", [0, 2, 1, 3])]), [0, 2, 1, 3])
    return g.model(inputs).SerializeToString()

rng = np.random.default_rng(5)
worst = 0.0
fused = True
cases = [  # b, sq, sk, h, d, dv, mask, magnitude of q and k
    (3, 17, 17, 2, 16, 16, "full", 1),        # ViT's heads
    (2, 39, 39, 2, 16, 16, None, 1),          # wav2vec2's
    (2, 37, 70, 3, 24, 40, "keys", 1),
    (1, 1, 1, 2, 16, 16, "keys", 1),          # one query, one key
    (2, 9, 5, 2, 7, 3, "row", 1),
    (1, 130, 33, 2, 64, 64, "heads", 1),
    (2, 17, 39, 3, 40, 24, "queries", 1),
    (2, 8, 17, 2, 16, 8, "rank2", 1),
    (1, 16, 33, 2, 32, 32, "rank1", 1),
    (2, 17, 17, 2, 16, 16, "one_key", 1),     # -inf on all keys but one per row
    (2, 24, 40, 2, 32, 32, "keys", 20),       # scores in the hundreds
]
for b, sq, sk, h, d, dv, mask, magnitude in cases:
    scale = 1 / np.sqrt(d)
    mask_shape = {"full": (b, h, sq, sk), "keys": (b, 1, 1, sk), "row": (1, 1, sq, 1), "heads": (1, h, 1, sk),
                  "queries": (b, 1, sq, 1), "rank2": (sq, sk), "rank1": (sk,), "one_key": (b, 1, sq, sk),
                  None: None}[mask]
    model = cross_attention(h, d, dv, None if mask_shape is None else len(mask_shape), scale)
    feeds = {"q": (magnitude * rng.standard_normal((b, sq, h, d))).astype(np.float32),
             "k": (magnitude * rng.standard_normal((b, sk, h, d))).astype(np.float32),
             "v": rng.standard_normal((b, sk, h, dv)).astype(np.float32)}
    if mask == "one_key":
        keep = rng.integers(0, sk, size=(b, 1, sq))
        feeds["mask"] = np.where(np.arange(sk) == keep[..., None], 0, -np.inf).astype(np.float32)
    elif mask_shape is not None:
        feeds["mask"] = np.where(rng.random(mask_shape) < 0.25, -1e4, rng.standard_normal(mask_shape)).astype(np.float32)
    compiled = ov.compile_model(model, config={"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    got = request.infer(feeds)[0]
    fused &= [p.node_type for p in request.get_profiling_info()].count("aiov.Attention") == 1
    q, k, v = (feeds[n].astype(np.float64).transpose(0, 2, 1, 3) for n in "qkv")
    s = (q @ k.transpose(0, 1, 3, 2)) * scale
    s = s + (feeds["mask"] if mask_shape is not None else 0)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = (p @ v).transpose(0, 2, 1, 3)
    # f32 scores err by a few ulp of their size (of the kept ones: a key 30 below its row's
    # maximum weighs less than 1e-13), which moves each probability by as much relatively;
    # the products and the sums add a few ulp of the largest |v|.
    kept = np.where(s > s.max(-1, keepdims=True) - 30, np.abs(s), 0)
    bound = 2e-7 * float(np.max(np.abs(v))) * (8 + float(np.max(kept)))
    worst = max(worst, float(np.max(np.abs(got - want))) / bound)
print(json.dumps({"isa": ov._core.gemm_isa(), "worst": worst, "fused": fused}))
"""

ISAS = ["scalar", "avx2", "avx512"]  # each includes the ones before it


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_f32_attention_matches_float64_reference(isa, run_capped):
    pytest.importorskip("onnx")
    best = run_capped("import aiov; print(aiov._core.gemm_isa())", 60, AIOV_GEMM_ISA=None)  # AIOV_GEMM_ISA only lowers
    if ISAS.index(isa) > ISAS.index(best):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 300, AIOV_GEMM_ISA=isa))
    assert result["isa"] == isa  # the forced path is the one that ran
    assert result["fused"]  # every model's attention ran as the fused op
    # Within f32 rounding of the scores, products and sums: 1.0 is the bound itself.
    assert result["worst"] < 1.0
