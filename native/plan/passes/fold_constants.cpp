#include "plan/fold.hpp"
#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {
constexpr size_t kMaxFoldedBytes = size_t{64} << 20;  // larger results stay computed per plan
}  // namespace

// Nodes whose inputs are all constants become constants. Nodes are visited inputs first, so a
// whole constant subgraph folds in this one walk.
bool fold_constants(PassContext& ctx) {
  const OpRegistry& reg = OpRegistry::instance();
  bool changed = false;
  for (const NodePtr& n : ctx.order()) {
    if (n->op == op_name::Parameter || n->op == op_name::Constant || n->inputs.empty()) continue;
    if (const OpDef* def = reg.find(n->op); def && def->stateful) continue;  // its value is per request
    bool all_const = true;
    for (const Value& in : n->inputs) all_const = all_const && const_of(in);
    if (!all_const) continue;
    try {
      const std::vector<NodePtr> constants = fold_node(*n, kMaxFoldedBytes);
      for (size_t o = 0; o < constants.size(); ++o) {
        ctx.replace(Value{n, (int)o}, Value{constants[o], 0});
        changed = true;
      }
    } catch (const std::exception&) {
      // Left to the planner, which reports the error with the model's real input shapes.
    }
  }
  return changed;
}

}  // namespace aiov::passes
