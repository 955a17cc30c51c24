"""bf16 and f16 products (INFERENCE_PRECISION_HINT bf16, f16) on every path the dispatcher can
pick: AMX tiles, AVX512_BF16 dot products and the portable loops for bf16; AVX512-FP16 and the
portable loops for f16. Each runs in a subprocess capped with AIOV_BF16_ISA or AIOV_F16_ISA
(skipped where the CPU lacks it), reports which kernels ran, and is checked two ways: against
a float64 product of the operands rounded to bf16 or f16 (the kernels' only rounding is the
operands', accumulation is f32, so that is tight), and, through models, against f32 within a
bf16 or f16 tolerance (f16 only where the hint is accepted: the CPU's f16 path). The shapes cross every edge of the tiles (M, N, K off the 16/32 multiples,
odd K, one row or column), the epilogues, both thread counts, and every source of A the
convolutions use (matrix, rows, runs, grids, a planar stem copied to NHWC)."""

import json

import pytest

SCRIPT = r"""
import json, logging, math, os, sys, numpy as np, aiov as ov
sys.path.insert(0, os.environ["AIOV_TESTS"])
import model_builders as zoo
T = ov._core._testing
PREC = os.environ["AIOV_TEST_PRECISION"]
ERF = np.vectorize(math.erf)

def rounded(x):
    # Round to nearest even, as the kernels round their operands.
    if PREC == "f16":
        return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32)

rng = np.random.default_rng(0)
exact = 0.0  # against the bf16-rounded operands' product
for m, k, n, ta, tb in [(1, 1, 1, 0, 0), (1, 7, 3, 0, 0), (2, 33, 17, 0, 1), (17, 31, 33, 1, 0),
                        (16, 32, 16, 0, 0), (31, 64, 47, 1, 1), (33, 65, 32, 0, 0), (100, 333, 70, 0, 1),
                        (65, 1, 5, 0, 0), (257, 96, 129, 0, 0), (40, 512, 48, 0, 0),
                        # large enough to split over 2 threads: few rows (A rounded once and
                        # shared, column pairs shared out), a few row blocks (rows split evenly,
                        # not along tiles), then many (row tiles shared out, each thread's in
                        # blocks; an odd tile count, a short last tile)
                        (60, 512, 256, 0, 0), (200, 160, 300, 0, 0), (300, 700, 200, 0, 0),
                        (2000, 64, 48, 0, 1), (1030, 80, 70, 0, 0)]:
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    oa, ob = (a.T if ta else a), (b.T if tb else b)
    bias = rng.standard_normal(n).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    ref = rounded(oa).astype(np.float64) @ rounded(ob).astype(np.float64)
    scale = np.max(np.abs(ref)) + 1
    for threads in (1, 2):
        got = np.asarray(T.gemm(a, b, bool(ta), bool(tb), threads=threads, precision=PREC))
        exact = max(exact, float(np.max(np.abs(got - ref)) / scale))
        got = np.asarray(T.gemm(a, b, bool(ta), bool(tb), alpha=0.5, beta=2.0, c=res, threads=threads,
                                precision=PREC))
        exact = max(exact, float(np.max(np.abs(got - (0.5 * rounded(oa).astype(np.float64) @ rounded(ob) + 2 * res))) / scale))
        if not ta:
            got = np.asarray(T.gemm_packed(a, b, False, bool(tb), bias=bias, residual=res, activation="relu",
                                           threads=threads, precision=PREC))
            exact = max(exact, float(np.max(np.abs(got - np.maximum(ref + bias + res, 0))) / scale))
            got = np.asarray(T.gemm_packed(a, b, False, bool(tb), activation="sigmoid", threads=threads,
                                           precision=PREC))
            exact = max(exact, float(np.max(np.abs(got - 1 / (1 + np.exp(-ref))))))
            # Gelu with bias and residual: merged in the tiles on the bf16 instruction sets.
            got = np.asarray(T.gemm_packed(a, b, False, bool(tb), bias=bias, residual=res, activation="gelu_erf",
                                           threads=threads, precision=PREC))
            pre = ref + bias + res
            exact = max(exact, float(np.max(np.abs(got - 0.5 * pre * (1 + ERF(pre / np.sqrt(2))))) / scale))

# A NaN spreads to its own row only; a value beyond the precision's range rounds as the
# operands do (to an infinity in f16, as OpenVINO's f16; bf16 has f32's range).
a = np.ones((3, 40), np.float32)
a[1, 5], a[2, 7] = np.nan, 1e6
got = np.asarray(T.gemm_packed(a, np.full((40, 20), 0.5, np.float32), precision=PREC))
special = bool(np.all(got[0] == 20) and np.all(np.isnan(got[1]))
               and np.allclose(got[2], rounded(np.float32(1e6)) * 0.5 + 19.5))

isa = ov._core.gemm_f16_isa() if PREC == "f16" else ov._core.gemm_bf16_isa()
if PREC == "f16" and isa == "scalar":  # the hint is refused without f16 instructions
    print(json.dumps({"isa": isa, "exact": exact, "special": special, "loose": None}))
    sys.exit()

# Models: reduced precision against f32, every convolution path (runs, rows, planar grids, direct 1x1,
# grouped), MatMul against constant and computed weights, attention.
g = zoo.GraphBuilder(3)
y1 = g.conv_bn("x", 16, 40, 3, 2, act="relu")
y2 = g.op("Relu", [g.op("Add", [g.conv_bn(y1, 40, 40, 3, 1, group=2, act=None), y1])])
g.op("Sigmoid", [g.conv_bn(g.conv_bn(y2, 40, 24, 5, 2, act=None), 24, 20, 1, 1, act="relu")])
convs = g.model([zoo.image_input(16, 45)])
g = zoo.GraphBuilder(5)
g.conv_bn(g.conv_bn("x", 3, 40, 3, 1, act="relu"), 40, 8, 3, 1, act=None)
planar = g.model([zoo.image_input(3, 37)])
# A 7x7/2 stem on the planar image (copied to NHWC under bf16: K = 7 x 7 x 3 = 147; two
# images large enough to be copied on both threads), its windows crossing every edge, then
# convolutions on 32 channels (runs), 8 (rows) and a grouped one.
g = zoo.GraphBuilder(6)
y = g.conv_bn(g.conv_bn(g.conv_bn("x", 3, 32, 7, 2, act="relu"), 32, 8, 3, 1, act="relu"), 8, 12, 3, 1, act="relu")
g.conv_bn(g.conv_bn(y, 12, 12, 3, 2, group=3, act="relu"), 12, 6, 5, 1, act=None)
stem = g.model([zoo.image_input(3, 107)])
# Bottlenecks of 16 channels and more, which carry bf16 tensors between their convolutions:
# 1x1 and in-place 3x3 reading bf16, tiles rounded to bf16 as they are written.
bottlenecks = zoo.resnet50(blocks=(2, 1), width=16, classes=5)
cases = [(convs, {"x": rng.standard_normal((2, 16, 45, 45)).astype(np.float32)}),
         (bottlenecks, {"x": rng.standard_normal((2, 3, 40, 40)).astype(np.float32)}),
         (planar, {"x": rng.standard_normal((2, 3, 37, 37)).astype(np.float32)}),
         (stem, {"x": rng.standard_normal((2, 3, 107, 107)).astype(np.float32)})] + zoo.small_networks(rng)
plans = []  # the kernels each plan picked (logged at DEBUG)
class Plans(logging.Handler):
    def emit(self, record):
        plans.append(record.getMessage())
logging.getLogger("aiov").addHandler(Plans())
logging.getLogger("aiov").setLevel(logging.DEBUG)
loose = 0.0  # reduced precision against f32
for proto, feeds in cases:
    data = proto.SerializeToString()
    ref = ov.compile_model(data, config={"INFERENCE_PRECISION_HINT": "f32"})(feeds)[0]
    compiled = ov.compile_model(data, config={"INFERENCE_PRECISION_HINT": PREC})
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == PREC
    got = compiled(feeds)[0]
    loose = max(loose, float(np.max(np.abs(got - ref)) / (np.max(np.abs(ref)) + 1e-30)))
stem_copied = any("planar input copied to NHWC" in p for p in plans)
# On avx512_bf16 every even-channel window takes the direct kernel (conv_bf16.hpp); on AMX and
# the portable loops, the GEMM paths.
carried_paths = (("direct bf16 conv (taps read in place) NHWC, f32 in, bf16 out",
                  "direct bf16 conv (taps read in place) NHWC, bf16 in, bf16 out",
                  "direct bf16 conv (taps read in place) NHWC, bf16 in, f32 out") if isa == "avx512_bf16" else
                 ("1x1 conv as one GEMM NHWC, f32 in, bf16 out",
                  "image read in place NHWC, bf16 in, bf16 out", "GEMM NHWC, bf16 in, f32 out"))
# MobileNet's inverted bottlenecks carry bf16 through their depthwise convolutions, on every set.
carried = PREC == "bf16" and all(any(k in p for p in plans) for k in
                                 carried_paths + ("depthwise NHWC, bf16 in, bf16 out",))
print(json.dumps({"isa": isa, "exact": exact, "special": special, "loose": loose, "stem_copied": stem_copied,
                  "carried": carried}))
"""

ISAS = ["scalar", "avx512_bf16", "amx"]  # each includes the ones before it


def cpu_bf16_isa():
    import aiov

    return aiov._core.cpu_bf16_isa()


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_bf16_path_matches_reference(isa, run_capped):
    if ISAS.index(isa) > ISAS.index(cpu_bf16_isa()):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 300, AIOV_BF16_ISA=isa, AIOV_GEMM_ISA=None, AIOV_TEST_PRECISION="bf16"))
    assert result["isa"] == isa  # the forced path is the one that ran
    assert result["exact"] < 1e-5
    assert result["special"]
    # bf16 keeps 8 bits of mantissa: products of a few layers agree with f32 to about 1%.
    assert 0 < result["loose"] < 5e-2
    assert result["stem_copied"]  # the 7x7 stem ran in bf16, on its image copied to NHWC
    assert result["carried"]  # bottlenecks handed each other bf16 tensors on this path too


F16_ISAS = ["scalar", "avx512_fp16"]


@pytest.mark.parametrize("isa", F16_ISAS[::-1])
def test_f16_path_matches_reference(isa, run_capped):
    import aiov

    if F16_ISAS.index(isa) > F16_ISAS.index(aiov._core.cpu_f16_isa()):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 300, AIOV_F16_ISA=isa, AIOV_GEMM_ISA=None, AIOV_TEST_PRECISION="f16"))
    assert result["isa"] == isa
    assert result["exact"] < 1e-5
    assert result["special"]
    if isa != "scalar":
        # f16 keeps 11 bits of mantissa: about 8 times closer to f32 than bf16.
        assert 0 < result["loose"] < 1e-2


def test_gemm_isa_cap_lowers_bf16_and_f16_to_portable(run_capped):
    # AIOV_GEMM_ISA below avx512 leaves no bf16 or f16 instructions to use: the portable loops run.
    script = "import aiov; print(aiov._core.gemm_bf16_isa(), aiov._core.gemm_f16_isa())"
    assert run_capped(script, 60, AIOV_GEMM_ISA="avx2", AIOV_BF16_ISA=None, AIOV_F16_ISA=None) == "scalar scalar"
