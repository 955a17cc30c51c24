#include <unordered_set>

#include "plan/fold.hpp"
#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {
constexpr size_t kMaxFoldedBytes = size_t{64} << 20;  // larger results stay computed per plan

// The shape of a value whose dims are all known is a constant (the model's inputs are checked
// against their static dims on every call): exporters compute reshape targets and slice bounds
// from shapes (torch's `x.view(n, g, -1, h, w)`), which then fold too, and the passes after see
// them as constants.
NodePtr fold_static_shape(PassContext& ctx, const NodePtr& n) {
  const PartialShape& s = n->inputs[0].node->outputs[n->inputs[0].index].shape;
  const ElementType t = n->outputs[0].type;
  if (!s.is_static() || (t != ElementType::i64 && t != ElementType::i32)) return nullptr;
  std::vector<int64_t> dims(s.dims.begin(), s.dims.end());
  NodePtr c;
  if (t == ElementType::i64) {
    c = make_constant(t, Dims{(int64_t)dims.size()}, dims.data(), dims.size() * 8, n->name);
  } else {
    std::vector<int32_t> narrow(dims.begin(), dims.end());
    for (size_t i = 0; i < dims.size(); ++i)
      if (narrow[i] != dims[i]) return nullptr;  // (as the kernel would: not representable)
    c = make_constant(t, Dims{(int64_t)narrow.size()}, narrow.data(), narrow.size() * 4, n->name);
  }
  ctx.replace(Value{n, 0}, Value{c, 0});
  return c;
}

bool outputs_static(const Node& n) {
  for (const PortInfo& o : n.outputs)
    if (!o.shape.is_static()) return false;
  return true;
}

// A node of unknown output dims whose inputs folded above it (a reshape target, slice bounds
// computed from shapes) is made again so its dims are inferred from them: the shapes of the
// values after it can fold in turn. Ops holding subgraphs keep theirs as they are. The new
// node, or null.
NodePtr infer_again(PassContext& ctx, const NodePtr& n) {
  if (outputs_static(*n) || n->op == "If" || n->op == "Loop" || n->op == "Scan") return nullptr;
  NodePtr again;
  try {
    again = make_node(n->op, n->inputs, n->attrs, n->name);
  } catch (const std::exception&) {
    return nullptr;  // left as it is, for the planner to report
  }
  if (!outputs_static(*again) || again->outputs.size() != n->outputs.size()) return nullptr;
  for (size_t o = 0; o < n->outputs.size(); ++o) ctx.replace(Value{n, (int)o}, Value{again, (int)o});
  return again;
}
}  // namespace

// Nodes whose inputs are all constants become constants, and so does the shape of a value of
// known dims. Nodes are visited inputs first, so a whole constant subgraph folds in this one walk.
bool fold_constants(PassContext& ctx) {
  const OpRegistry& reg = OpRegistry::instance();
  bool changed = false;
  // The nodes this walk made (constants, re-inferred nodes): only a reader of one can learn
  // more of its dims than it was inferred with.
  std::unordered_set<const Node*> made;
  auto reads_made = [&](const Node& n) {
    for (const Value& in : n.inputs)
      if (made.count(in.node.get())) return true;
    return false;
  };
  for (const NodePtr& n : ctx.order()) {
    if (n->op == op_name::Parameter || n->op == op_name::Constant || n->inputs.empty()) continue;
    if (const OpDef* def = reg.find(n->op); def && def->stateful) continue;  // its value is per request
    if (n->op == op_name::ShapeOf) {
      if (NodePtr c = fold_static_shape(ctx, n)) {
        made.insert(c.get());
        changed = true;
        continue;
      }
    }
    bool all_const = true;
    for (const Value& in : n->inputs) all_const = all_const && const_of(in);
    if (!all_const) {
      if (!reads_made(*n)) continue;
      if (NodePtr again = infer_again(ctx, n)) {
        made.insert(again.get());
        changed = true;
      }
      continue;
    }
    try {
      const std::vector<NodePtr> constants = fold_node(*n, kMaxFoldedBytes);
      for (size_t o = 0; o < constants.size(); ++o) {
        ctx.replace(Value{n, (int)o}, Value{constants[o], 0});
        made.insert(constants[o].get());
        changed = true;
      }
    } catch (const std::exception&) {
      // Left to the planner, which reports the error with the model's real input shapes.
    }
  }
  return changed;
}

}  // namespace aiov::passes
