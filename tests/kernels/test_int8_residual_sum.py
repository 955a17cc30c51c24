"""aiov.QuantizedConv's residual sum (a ResNet block's last convolution adding its skip
connection as it writes its bytes: passes/fuse_quantized_add) on every path the dispatcher can
pick: the VNNI u8 strips (1x1 over channels in whole quads) adding in registers, and the tiles
of the direct kernels, of patches made per block and of AMX, which add after each tile's merge.
Each runs in a subprocess capped with AIOV_INT8_ISA (skipped where the CPU lacks it) and must
give the very bytes of the separate ops: the convolution requantized to u8, then aiov.QuantizedAdd
of those bytes and the residual (in either order)."""

import json

import pytest
from int8_scripts import script_prelude

SCRIPT = (
    script_prelude(5)
    + r"""
# (batch, channels, size, outputs, kernel, stride, pad, data type): 1x1s over quads (the strips:
# 49 rows of 3 panels, 6 panels, a batch of 2 with 40 outputs, 17 outputs, 784 rows shared over
# threads), s8 data (shifted into u8, then the strips), channels off quads, 3x3 and 1x1 stride 2
# windows (the direct kernels, or patches when the filters have zero points).
cases = [(1, 64, 7, 48, 1, 1, 0, np.uint8), (1, 16, 9, 96, 1, 1, 0, np.uint8), (2, 32, 5, 40, 1, 1, 0, np.uint8),
         (1, 20, 13, 17, 1, 1, 0, np.uint8), (1, 64, 28, 64, 1, 1, 0, np.uint8), (1, 32, 7, 40, 1, 1, 0, np.int8),
         (1, 6, 9, 24, 1, 1, 0, np.uint8), (1, 8, 11, 33, 3, 1, 1, np.uint8), (1, 16, 10, 24, 1, 2, 0, np.uint8)]
checked = 0
moved = 0
inside = 0
total = 0
for n, c, h, o, k, stride, pad, xt in cases:
    for zero_filters, per_channel, layout in [(True, True, "nhwc"), (False, False, "nhwc"), (True, False, "nchw")]:
        x, w = ints(xt, (n, c, h, h)), ints(np.int8, (o, c, k, k))
        za = ints(xt, ())
        zw = np.zeros(o, np.int8) if zero_filters else ints(np.int8, (o,))
        factor = rng.uniform(1e-4, 1e-3, o if per_channel else 1).astype(np.float32)
        bias = rng.standard_normal(o).astype(np.float32)
        attrs = {"strides": [stride] * 2, "pads_begin": [pad] * 2, "pads_end": [pad] * 2, "dilations": [1, 1],
                 "layout": layout}
        if layout == "nhwc":
            x = x.transpose(0, 2, 3, 1).copy()
        y_scale, y_zero = np.float32(0.1), np.uint8(9)
        for relu in (False, True):
            base = [x, w, za, zw, factor, bias, y_scale, y_zero]
            conv = T.run_op("aiov.QuantizedConv", base, dict(attrs, relu=relu))[0]
            # Scales that put many sums on and next to half-integers of the sum's scale (where the
            # requantization must not round the other way), one that does not, and one far from
            # one with extreme zero points (the folded sum's widest window).
            for r_scale, r_zero, s_scale, s_zero in [(np.float32(0.05), np.uint8(0), np.float32(0.1), np.uint8(128)),
                                                     (np.float32(0.05), np.uint8(77), np.float32(0.1), np.uint8(30)),
                                                     (np.float32(0.031), np.uint8(200), np.float32(0.13), np.uint8(100)),
                                                     (np.float32(0.19), np.uint8(255), np.float32(0.061), np.uint8(3))]:
                r = ints(np.uint8, conv.shape)
                sum_inputs = [r, r_scale, r_zero, s_scale, s_zero]
                want = T.run_op("aiov.QuantizedAdd", [conv, y_scale, y_zero, r, r_scale, r_zero, s_scale, s_zero])[0]
                swapped = T.run_op("aiov.QuantizedAdd", [r, r_scale, r_zero, conv, y_scale, y_zero, s_scale, s_zero])[0]
                assert np.array_equal(want, swapped)
                for threads in (1, 2):
                    got = T.run_op("aiov.QuantizedConv", base + sum_inputs, dict(attrs, relu=relu), threads=threads)[0]
                    assert got.dtype == np.uint8 and np.array_equal(got, want), (n, c, h, o, k, xt, zero_filters,
                                                                                 layout, relu, r_zero, threads,
                                                                                 np.argwhere(got != want)[:5])
                    checked += 1
                moved += int(np.sum(want != conv))
                inside += int(np.sum((want > 0) & (want < 255)))
                total += want.size
# The residual's shape is checked: one of another shape is refused.
x, w = ints(np.uint8, (1, 8, 5, 5)), ints(np.int8, (16, 8, 1, 1))
try:
    T.run_op("aiov.QuantizedConv", [x, w, np.uint8(0), np.int8(0), np.float32(1e-3), np.zeros(16, np.float32),
                                    np.float32(0.1), np.uint8(0), ints(np.uint8, (1, 16, 5, 4)), np.float32(0.1),
                                    np.uint8(0), np.float32(0.1), np.uint8(0)])
    refused = ""
except Exception as e:
    refused = str(e)
print(json.dumps({"isa": ov._core.gemm_int8_isa(), "checked": checked, "moved": moved / total,
                  "inside": inside / total, "refused": refused}))
"""
)

ISAS = ["scalar", "avx512_vnni", "amx"]  # each includes the ones before it


def cpu_int8_isa():
    import aiov

    return aiov._core.cpu_int8_isa()


@pytest.mark.parametrize("isa", ISAS[::-1])
def test_residual_sum_gives_the_separate_ops_bytes(isa, run_capped):
    if ISAS.index(isa) > ISAS.index(cpu_int8_isa()):
        pytest.skip(f"this CPU has no {isa}")
    result = json.loads(run_capped(SCRIPT, 600, AIOV_INT8_ISA=isa, AIOV_GEMM_ISA=None))
    assert result["isa"] == isa  # the forced path is the one that ran
    assert result["checked"] == 9 * 3 * 2 * 4 * 2
    # The sum changed most bytes and kept most inside the range (it was not vacuous).
    assert result["moved"] > 0.7 and result["inside"] > 0.5
    assert "residual" in result["refused"] and "shape" in result["refused"]
