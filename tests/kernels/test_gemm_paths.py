"""Every GEMM path the run-time dispatcher can pick (AVX-512, AVX2+FMA, portable) gives the
same products, also through the fused convolution, epilogue and attention kernels: each ISA
runs in a subprocess capped with AIOV_GEMM_ISA, and is skipped where the CPU lacks it. The
cases reach every micro-kernel of every set (packed, A rows in place, narrow, unpacked B,
indirect runs, grids of step 1 and 2, the wide AVX-512 tiles), dot products, streams and
the packing transposes."""

import json

import pytest

SCRIPT = r"""
import json, numpy as np, aiov as ov, aiov.opset13 as ops
rng = np.random.default_rng(0)
worst = 0.0
for m, k, n, ta, tb, const in [(1, 784, 1024, 0, 0, 1), (3, 17, 33, 1, 0, 0), (64, 100, 129, 0, 1, 1),
                                (257, 31, 7, 1, 1, 0), (5, 13, 2, 0, 0, 1), (130, 300, 70, 0, 0, 0),
                                (600, 700, 128, 0, 0, 1), (530, 90, 64, 0, 1, 1),
                                # A of a few rows read where it lies (or packed: rows 4 KiB apart)
                                (1, 300, 70, 0, 0, 1), (6, 200, 100, 0, 0, 1), (9, 1024, 48, 0, 0, 1),
                                (7, 64, 40, 0, 0, 0),
                                # K below 32 against many columns: A rows read in place too
                                (300, 16, 96, 0, 0, 1), (50, 24, 150, 0, 0, 0), (40, 20, 100, 0, 1, 1),
                                # K in more than one slice on every ISA
                                (70, 1500, 90, 0, 0, 1), (33, 2100, 40, 1, 0, 0),
                                # a few rows against unpacked B with a ragged last panel (AVX2)
                                (5, 64, 40, 0, 0, 0),
                                # weights for a tall A against 128 columns: the wide AVX-512
                                # tiles, on packed A panels (transposed A)
                                (600, 64, 128, 1, 0, 1),
                                # few columns against a long K: dot-product rows on AVX-512 up
                                # to 1024 rows of A (an MLP's classifier first), panels past it
                                (64, 1024, 10, 0, 0, 1), (1024, 600, 24, 0, 1, 1), (1025, 513, 16, 0, 0, 1),
                                # at most 4 columns from A rows in place: the AVX-512 quad tiles
                                # (4 rows a vector), K ragged past groups of 4, rows past quads
                                (601, 37, 3, 0, 0, 1), (45, 64, 4, 0, 0, 0), (29, 130, 1, 0, 0, 1),
                                (7, 6, 2, 0, 0, 1)]:
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    pa = ops.parameter(list(a.shape), np.float32)
    pb = ops.constant(b) if const else ops.parameter(list(b.shape), np.float32)
    params = [pa] if const else [pa, pb]
    out = ov.compile_model(ov.Model(ops.matmul(pa, pb, bool(ta), bool(tb)), params))([a] if const else [a, b])[0]
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    worst = max(worst, float(np.max(np.abs(out - ref)) / (np.max(np.abs(ref)) + 1e-30)))
# The fused kernels (convolution, epilogues, attention, layer norm) on the same ISA, against
# the unoptimized graph.
import os, sys
sys.path.insert(0, os.environ["AIOV_TESTS"])
import model_builders as zoo
# Convolutions that read their input in place (16+ channels per group, several taps): padding,
# stride, groups, a ragged last panel, a residual and an activation applied after the tiles;
# rows of 63 pixels give tiles that lie inside the image (a run per kernel row) and tiles on
# its edge (a run per tap), and enough of them that a task looks them up in several groups.
g = zoo.GraphBuilder(3)
y1 = g.conv_bn("x", 16, 40, 3, 2, act="relu")
y2 = g.op("Relu", [g.op("Add", [g.conv_bn(y1, 40, 40, 3, 1, group=2, act=None), y1])])
g.op("Sigmoid", [g.conv_bn(y2, 40, 24, 5, 2, act=None)])
in_place = g.model([zoo.image_input(16, 125)])
# Products split over threads one tile against one panel at a time: more columns than a panel
# (chunks that start and end inside a row of tiles), then a few tiles against two panels.
g = zoo.GraphBuilder(4)
g.conv_bn(g.conv_bn("x", 16, 136, 3, 2, act="relu"), 136, 72, 3, 11, act=None)
split = g.model([zoo.image_input(16, 63)])
# A few-channel image read as NCHW at stride 1 (ResNet's and MobileNet's stems below take
# stride 2): rows in place and packed over the padding, two panels on AVX-512, the second ragged.
g = zoo.GraphBuilder(5)
g.conv_bn("x", 3, 40, 3, 1, act="relu")
planar = g.model([zoo.image_input(3, 37)])
# 64 output channels over 512+ pixels: the wide AVX-512 tiles read the input in place, as runs
# (16 channels, 5x5: no Winograd) and as a planar image at strides 1 and 2.
g = zoo.GraphBuilder(6)
g.conv_bn("x", 16, 64, 5, 1, act="relu")
wide_runs = g.model([zoo.image_input(16, 20)])
g = zoo.GraphBuilder(7)
g.conv_bn("x", 3, 64, 3, 1, act="relu")
wide_planar = g.model([zoo.image_input(3, 24)])
g = zoo.GraphBuilder(8)
g.conv_bn("x", 3, 64, 7, 2, act=None)
wide_planar_s2 = g.model([zoo.image_input(3, 40)])
# Few output channels against a long K (taps x channels >= 512): a 3x3 convolution keeps its
# panels and reads the input in place (20 outputs: at most 16 take the few-output kernel); the 1x1 one (the input as one matrix) takes the dot rows.
g = zoo.GraphBuilder(9)
g.conv_bn(g.conv_bn("x", 64, 20, 3, 1, act="relu"), 20, 520, 1, 1, act=None)
few_outputs_long_k = g.model([zoo.image_input(64, 16)])
g = zoo.GraphBuilder(10)
g.conv_bn("x", 520, 12, 1, 1, act="relu")
few_outputs_1x1 = g.model([zoo.image_input(520, 8)])
# At most 16 outputs from NHWC (not a GEMM): 16-float vectors, or two of 8 below AVX-512;
# 3x3 at strides 1 and 2 (runs sharing input columns) and 5x5 (a read per tap).
g = zoo.GraphBuilder(11)
y = g.conv_bn(g.conv_bn("x", 8, 12, 3, 1, act="relu"), 12, 9, 3, 2, act="relu")
g.conv_bn(y, 9, 16, 5, 1, act=None)
few_outputs = g.model([zoo.image_input(8, 21)])
# Grouped into at most 16 outputs per group: the same kernel per group (4 into 4, 8 into 12).
g = zoo.GraphBuilder(12)
g.conv_bn(g.conv_bn("x", 16, 16, 3, 1, group=4, act="relu"), 16, 24, 3, 2, group=2, act=None)
few_outputs_grouped = g.model([zoo.image_input(16, 19)])
# 1x1 convolutions into at most 4 channels (SqueezeNet's squeeze layers): the quad tiles with
# a bias, a ReLU, and a residual added (rows of 4 apart from the output's).
g = zoo.GraphBuilder(13)
y = g.conv_bn("x", 24, 4, 1, 1, act="relu")
g.op("Relu", [g.op("Add", [g.conv_bn(y, 4, 4, 1, 1, act=None), y])])
quad = g.model([zoo.image_input(24, 13)])
cases = [(quad, {"x": rng.standard_normal((3, 24, 13, 13)).astype(np.float32)}),
         (few_outputs_long_k, {"x": rng.standard_normal((2, 64, 16, 16)).astype(np.float32)}),
         (few_outputs_1x1, {"x": rng.standard_normal((2, 520, 8, 8)).astype(np.float32)}),
         (in_place, {"x": rng.standard_normal((2, 16, 125, 125)).astype(np.float32)}),
         (few_outputs, {"x": rng.standard_normal((2, 8, 21, 21)).astype(np.float32)}),
         (few_outputs_grouped, {"x": rng.standard_normal((2, 16, 19, 19)).astype(np.float32)}),
         (planar, {"x": rng.standard_normal((2, 3, 37, 37)).astype(np.float32)}),
         (split, {"x": rng.standard_normal((2, 16, 63, 63)).astype(np.float32)}),
         (wide_runs, {"x": rng.standard_normal((2, 16, 20, 20)).astype(np.float32)}),
         (wide_planar, {"x": rng.standard_normal((2, 3, 24, 24)).astype(np.float32)}),
         (wide_planar_s2, {"x": rng.standard_normal((2, 3, 40, 40)).astype(np.float32)})] + zoo.small_networks(rng)
for proto, feeds in cases:
    data = proto.SerializeToString()
    os.environ["AIOV_GRAPH_OPT"] = "0"
    plain = ov.compile_model(data)(feeds)[0]
    os.environ["AIOV_GRAPH_OPT"] = "1"
    fused = ov.compile_model(data)(feeds)[0]
    worst = max(worst, float(np.max(np.abs(fused - plain)) / (np.max(np.abs(plain)) + 1e-30)))
print(json.dumps({"isa": ov._core.gemm_isa(), "worst": worst}))
"""


ISAS = ["scalar", "avx2", "avx512"]  # each includes the ones before it


def best_isa(run_capped):
    """What this CPU runs without a cap (AIOV_GEMM_ISA can only lower it)."""
    return run_capped("import aiov; print(aiov._core.gemm_isa())", 60, AIOV_GEMM_ISA=None)


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_gemm_path_matches_float64_reference(isa, run_capped):
    if ISAS.index(isa) > ISAS.index(best_isa(run_capped)):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 180, AIOV_GEMM_ISA=isa))
    assert result["isa"] == isa
    assert result["worst"] < 1e-5
