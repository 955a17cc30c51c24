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
      const OpDef& def = reg.get(n->op);
      std::vector<TensorView> ins(n->inputs.size());
      for (size_t i = 0; i < ins.size(); ++i) {
        const Node& c = *n->inputs[i].node;
        ins[i] = TensorView{c.constant->data(), c.outputs[0].type, c.outputs[0].shape.dims};
      }
      std::vector<PortInfo> outs = infer_on(def, *n, ins, std::vector<bool>(ins.size(), true));
      size_t total = 0;
      bool static_shapes = true;
      for (const PortInfo& o : outs) {
        static_shapes = static_shapes && o.shape.is_static();
        if (static_shapes) total += byte_size(o.type, numel(o.shape.dims));
      }
      if (!static_shapes || total > kMaxFoldedBytes) continue;
      PrepareContext pctx{*n, ins, {}};
      for (const PortInfo& o : outs) pctx.out.push_back(TensorView{nullptr, o.type, o.shape.dims});
      std::vector<BufferPtr> results;
      fold_now(def, pctx, results);
      for (size_t o = 0; o < outs.size(); ++o) {
        NodePtr c = make_constant(outs[o].type, outs[o].shape.dims, pctx.out[o].data, pctx.out[o].bytes(), n->name);
        c->output_names = {n->output_names.size() > o ? n->output_names[o] : std::vector<std::string>{}};
        ctx.replace(Value{n, (int)o}, Value{c, 0});
        changed = true;
      }
    } catch (const std::exception&) {
      // Left to the planner, which reports the error with the model's real input shapes.
    }
  }
  return changed;
}

}  // namespace aiov::passes
