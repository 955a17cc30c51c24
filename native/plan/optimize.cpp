#include "plan/optimize.hpp"
#include "core/environment.hpp"

#include <cstdlib>
#include <cstring>

#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov {

// The order is AIOV_GRAPH_PASSES's, and why is written above it (plan/passes/passes.hpp).
const std::vector<Pass>& graph_passes() {
#define AIOV_PASS_ENTRY(name) {#name, passes::name},
  static const std::vector<Pass> passes{AIOV_GRAPH_PASSES(AIOV_PASS_ENTRY)};
#undef AIOV_PASS_ENTRY
  return passes;
}

Graph optimize_graph(const Graph& g, ElementType precision) {
  // Once per process; a throw here repeats on every compile until the name is fixed.
  static const bool names_checked = (check_pass_op_names(), true);
  (void)names_checked;
  PassContext ctx(g);
  for (const Pass& pass : graph_passes())
    if (pass.run(ctx)) ctx.refresh();
  // AIOV_BF16_TENSORS=0 keeps f32 between the bf16 products (to compare).
  if (precision == ElementType::bf16 && env_int("AIOV_BF16_TENSORS", 1) != 0 && passes::carry_bf16(ctx)) ctx.refresh();
  return ctx.graph();
}

bool graph_optimization_enabled() { return env_int("AIOV_GRAPH_OPT", 1) != 0; }

}  // namespace aiov
