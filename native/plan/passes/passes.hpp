// The graph passes, one file each; what each does is written above its definition and in
// docs/passes.md. AIOV_GRAPH_PASSES lists them once, in the order graph_passes() runs them:
// folding first gives later passes constants to match; convolutions go to NHWC before layout
// changes sink and cancel; rotary embeddings, attention, layer and RMS norms and MatMul+bias
// become fused ops before epilogues fold into those; chains take the elementwise ops left over;
// an image quantized to NHWC last, once nothing treats aiov.Quantize as layout-blind.
#pragma once
#include "plan/passes/pass.hpp"

// clang-format off
#define AIOV_GRAPH_PASSES(X)                                                                  \
  X(fold_constants) X(drop_unread_pool_indices) X(recognise_gelu)           /* clean-up */    \
  X(recognise_swish)                                                                          \
  X(fuse_requantization) X(pools_and_moves_on_quantized_bytes) X(quantized_lookups) /* int8 */      \
  X(convolutions_to_nhwc) X(quantized_convolutions_to_nhwc) X(batch_norms_to_scale_shift)     \
  X(sink_layout_changes) X(convolutions_read_planar)                        /* layout */      \
  X(fuse_rotary_embedding) X(fuse_attention) X(fuse_layer_norm) X(fuse_rms_norm)             \
  X(fuse_matmul_bias) X(fuse_quantized_matmul) X(fuse_quantized_add)       /* fused ops */   \
  X(fuse_epilogues) X(fuse_elementwise_chains)                              /* epilogues */   \
  X(quantize_to_nhwc)                                                       /* int8 image */
// clang-format on

namespace aiov::passes {

#define AIOV_DECLARE_PASS(name) bool name(PassContext& ctx);
AIOV_GRAPH_PASSES(AIOV_DECLARE_PASS)
#undef AIOV_DECLARE_PASS

// Run after the passes above only when products compute in bf16 (optimize_graph's precision).
bool carry_bf16(PassContext& ctx);

}  // namespace aiov::passes
