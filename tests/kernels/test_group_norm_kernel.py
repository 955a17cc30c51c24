"""aiov.GroupNorm (the optimizer's fused group and instance normalization: statistics per sample
and channel group, then each channel's scale and shift, then an activation) run directly
(aiov._core._testing.run_op) on each kernel set: the AVX-512 rows (with the Gelu row for the
erf form), and the portable loops' clones under AIOV_GEMM_ISA=avx2 and scalar; against numpy in
float64 within f32 tolerance."""

import json

import pytest

SCRIPT = r"""
import json, math, numpy as np, aiov

erf = np.vectorize(math.erf)

def reference(x, gamma, beta, groups, eps, eps_mode, act):
    n, c = x.shape[:2]
    xg = x.astype(np.float64).reshape(n, groups, -1)
    mean = xg.mean(axis=2, keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=2, keepdims=True)
    scale = 1 / (np.sqrt(var) + eps) if eps_mode == "outside_sqrt" else 1 / np.sqrt(var + eps)
    y = ((xg - mean) * scale).reshape(x.shape)
    bshape = (1, c) + (1,) * (x.ndim - 2)
    y = y * gamma.reshape(bshape) + beta.reshape(bshape)
    if act == "relu":
        y = np.maximum(y, 0)
    elif act == "gelu_erf":
        y = 0.5 * y * (1 + erf(y / math.sqrt(2)))
    elif act == "clamp":
        y = np.clip(y, -0.5, 0.7)
    return y

# shape, groups, act, affine ("random", "identity": ones and zeros, "runtime": not known when prepared), eps_mode
CASES = [
    ((8, 16, 79), 16, "gelu_erf", "identity", "inside_sqrt"),  # wav2vec2: instance norm, one channel a row
    ((8, 16, 79), 16, "gelu_erf", "random", "inside_sqrt"),
    ((2, 12, 5, 6), 3, "relu", "random", "inside_sqrt"),  # four channels a group: per-channel affine inside a row
    ((2, 12, 5, 6), 1, "none", "runtime", "outside_sqrt"),
    ((3, 6, 7), 2, "clamp", "random", "inside_sqrt"),
    ((1, 32, 600), 4, "gelu_erf", "runtime", "inside_sqrt"),  # rows longer than a block of L1
    ((5, 8), 4, "gelu_erf", "random", "inside_sqrt"),  # no spatial dims: two values a group
]
rng = np.random.default_rng(5)
results = []
for shape, groups, act, affine, eps_mode in CASES:
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    if affine == "identity":
        gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    else:
        gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
        beta = rng.standard_normal(c).astype(np.float32)
    attrs = {"num_groups": groups, "eps": 1e-5, "eps_mode": eps_mode, "act": act,
             "act_alpha": -0.5 if act == "clamp" else 0.0, "act_beta": 0.7 if act == "clamp" else 0.0}
    runtime = [0, 1, 2] if affine == "runtime" else [0]
    expected = reference(x, gamma, beta, groups, 1e-5, eps_mode, act)
    for threads in (1, 0):
        (got,) = aiov._core._testing.run_op("aiov.GroupNorm", [x, gamma, beta], attrs, runtime_inputs=runtime,
                                            threads=threads)
        got = np.asarray(got)
        results.append([list(got.shape) == list(shape), float(np.abs(got - expected).max())])
print(json.dumps({"isa": aiov._core.gemm_isa(), "results": results}))
"""

ISAS = ["scalar", "avx2", "avx512"]  # each includes the ones before it


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_group_norm_matches_numpy(isa, run_capped):
    best = run_capped("import aiov; print(aiov._core.gemm_isa())", 60, AIOV_GEMM_ISA=None)
    if ISAS.index(isa) > ISAS.index(best):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 180, AIOV_GEMM_ISA=isa))
    assert result["isa"] == isa  # the forced set is the one that ran
    for same_shape, error in result["results"]:
        assert same_shape and error < 2e-5


def test_group_norm_rejects_groups_that_do_not_divide_the_channels():
    import numpy as np

    from aiov._core import _testing

    x = np.zeros((2, 6, 4), np.float32)
    with pytest.raises(Exception, match="num_groups 4 must divide the channels"):
        _testing.run_op("aiov.GroupNorm", [x, np.ones(6, np.float32), np.zeros(6, np.float32)], {"num_groups": 4})
