// What aiov.FusedConv (ops/conv_nhwc.cpp) tells the graph passes about itself.
#pragma once
#include "plan/graph.hpp"

namespace aiov {

// Whether this aiov.FusedConv may read and write bf16 tensors (output_type bf16, a bf16
// input): NHWC input, one group (not a single channel in and out) or strided depthwise with
// an activation its bf16 store merges (none, ReLU, clamp). Its prepare refuses bf16 data otherwise.
bool fused_conv_carries_bf16(const Node& n);

}  // namespace aiov
