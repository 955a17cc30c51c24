#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// A MaxPool whose indices (output 1) nothing reads becomes the one-output MaxPool, which may
// run in NHWC with its neighbours: OpenVINO's opset builders always ask for the indices.
bool drop_unread_pool_indices(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& n : ctx.order()) {
    if (n->op != op_name::MaxPool || n->outputs.size() < 2 || !ctx.live(*n)) continue;
    bool read = false;
    for (const Node* u : ctx.users(*n))
      for (const Value& in : u->inputs) read = read || (in.node.get() == n.get() && in.index == 1);
    for (const Value& o : ctx.graph().outputs) read = read || (o.node.get() == n.get() && o.index == 1);
    if (read) continue;
    Attrs attrs = n->attrs;
    attrs["with_indices"] = int64_t{0};
    NodePtr single = make_node(n->op, n->inputs, attrs, n->name);
    single->output_names = {n->output_names.at(0)};
    ctx.replace(Value{n, 0}, Value{single, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
