// The graph passes, one file each. Their order is graph_passes() in plan/optimize.cpp; what
// each does is written above its definition and in docs/passes.md.
#pragma once
#include "plan/passes/pass.hpp"

namespace aiov::passes {

bool fold_constants(PassContext& ctx);
bool drop_unread_pool_indices(PassContext& ctx);
bool recognise_gelu(PassContext& ctx);
bool convolutions_to_nhwc(PassContext& ctx);
bool batch_norms_to_scale_shift(PassContext& ctx);
bool sink_layout_changes(PassContext& ctx);
bool convolutions_read_planar(PassContext& ctx);
bool fuse_attention(PassContext& ctx);
bool fuse_layer_norm(PassContext& ctx);
bool fuse_matmul_bias(PassContext& ctx);
bool fuse_epilogues(PassContext& ctx);
bool fuse_elementwise_chains(PassContext& ctx);

}  // namespace aiov::passes
