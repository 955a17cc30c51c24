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
bool fold_static_shape(PassContext& ctx, const NodePtr& n) {
  const PartialShape& s = n->inputs[0].node->outputs[n->inputs[0].index].shape;
  const ElementType t = n->outputs[0].type;
  if (!s.is_static() || (t != ElementType::i64 && t != ElementType::i32)) return false;
  std::vector<int64_t> dims(s.dims.begin(), s.dims.end());
  NodePtr c;
  if (t == ElementType::i64) {
    c = make_constant(t, Dims{(int64_t)dims.size()}, dims.data(), dims.size() * 8, n->name);
  } else {
    std::vector<int32_t> narrow(dims.begin(), dims.end());
    for (size_t i = 0; i < dims.size(); ++i)
      if (narrow[i] != dims[i]) return false;  // (as the kernel would: not representable)
    c = make_constant(t, Dims{(int64_t)narrow.size()}, narrow.data(), narrow.size() * 4, n->name);
  }
  ctx.replace(Value{n, 0}, Value{c, 0});
  return true;
}

bool outputs_static(const Node& n) {
  for (const PortInfo& o : n.outputs)
    if (!o.shape.is_static()) return false;
  return true;
}

bool reads_static_shapes(const Node& n) {
  for (const Value& in : n.inputs)
    if (!in.node->outputs[in.index].shape.is_static()) return false;
  return true;
}

// A node of unknown output dims whose inputs folded above it (a reshape target, slice bounds
// computed from shapes) is made again so its dims are inferred from them: the shapes of the
// values after it can fold in turn. Ops holding subgraphs keep theirs as they are.
bool infer_again(PassContext& ctx, const NodePtr& n) {
  if (outputs_static(*n) || n->op == "If" || n->op == "Loop" || n->op == "Scan") return false;
  NodePtr again;
  try {
    again = make_node(n->op, n->inputs, n->attrs, n->name);
  } catch (const std::exception&) {
    return false;  // left as it is, for the planner to report
  }
  if (!outputs_static(*again) || again->outputs.size() != n->outputs.size()) return false;
  for (size_t o = 0; o < n->outputs.size(); ++o) ctx.replace(Value{n, (int)o}, Value{again, (int)o});
  return true;
}
}  // namespace

// Nodes whose inputs are all constants become constants, and so does the shape of a value of
// known dims. Nodes are visited inputs first, so a whole constant subgraph folds in this one walk.
bool fold_constants(PassContext& ctx) {
  const OpRegistry& reg = OpRegistry::instance();
  bool changed = false;
  for (const NodePtr& n : ctx.order()) {
    if (n->op == op_name::Parameter || n->op == op_name::Constant || n->inputs.empty()) continue;
    if (const OpDef* def = reg.find(n->op); def && def->stateful) continue;  // its value is per request
    if (n->op == op_name::ShapeOf && fold_static_shape(ctx, n)) {
      changed = true;
      continue;
    }
    bool all_const = true, some_const = false;
    for (const Value& in : n->inputs) {
      all_const = all_const && const_of(in);
      some_const = some_const || const_of(in);
    }
    if (!all_const) {
      if (some_const || reads_static_shapes(*n)) changed |= infer_again(ctx, n);
      continue;
    }
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
