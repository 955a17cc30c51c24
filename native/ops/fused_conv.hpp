// What aiov.FusedConv (ops/conv_nhwc.cpp) tells the graph passes about itself.
#pragma once
#include "plan/graph.hpp"

namespace aiov {

// Whether this aiov.FusedConv may read and write bf16 tensors (output_type bf16, a bf16
// input): NHWC input, one group (not a single channel in and out) or strided depthwise with
// an activation its bf16 store merges (none, ReLU, clamp). Its prepare refuses bf16 data otherwise.
bool fused_conv_carries_bf16(const Node& n);

// Whether it may write a bf16 output (output_type bf16): one that carries bf16, or a planar
// image's (a model's stem, f32 in) on the direct bf16 kernel. Elsewhere its prepare rounds an
// f32 output after the kernel (a plan made on such a CPU).
bool fused_conv_writes_bf16(const Node& n);

// Whether it merges a bf16 residual where it lies: one group over an even channel count, on
// the direct bf16 kernel (AVX512_BF16 without AMX). Elsewhere its prepare widens a bf16
// residual to f32 first (a plan made on such a CPU), so the carry_bf16 pass asks this before
// handing it one.
bool fused_conv_reads_bf16_residual(const Node& n);

}  // namespace aiov
