#include "plan/optimize.hpp"
#include "core/environment.hpp"

#include <cstdlib>
#include <cstring>

#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov {

// The order matters: folding first gives later passes constants to match; convolutions go to
// NHWC before layout changes sink and cancel; attention, layer norm and MatMul+bias become
// fused ops before epilogues fold into those; chains take the elementwise ops left over.
const std::vector<Pass>& graph_passes() {
  static const std::vector<Pass> passes{
      {"fold_constants", passes::fold_constants},
      {"drop_unread_pool_indices", passes::drop_unread_pool_indices},
      {"recognise_gelu", passes::recognise_gelu},
      {"convolutions_to_nhwc", passes::convolutions_to_nhwc},
      {"batch_norms_to_scale_shift", passes::batch_norms_to_scale_shift},
      {"sink_layout_changes", passes::sink_layout_changes},
      {"convolutions_read_planar", passes::convolutions_read_planar},
      {"fuse_attention", passes::fuse_attention},
      {"fuse_layer_norm", passes::fuse_layer_norm},
      {"fuse_matmul_bias", passes::fuse_matmul_bias},
      {"fuse_epilogues", passes::fuse_epilogues},
      {"fuse_elementwise_chains", passes::fuse_elementwise_chains},
  };
  return passes;
}

Graph optimize_graph(const Graph& g) {
  // Once per process; a throw here repeats on every compile until the name is fixed.
  static const bool names_checked = (check_pass_op_names(), true);
  (void)names_checked;
  PassContext ctx(g);
  for (const Pass& pass : graph_passes())
    if (pass.run(ctx)) ctx.refresh();
  return ctx.graph();
}

bool graph_optimization_enabled() { return env_int("AIOV_GRAPH_OPT", 1) != 0; }

}  // namespace aiov
