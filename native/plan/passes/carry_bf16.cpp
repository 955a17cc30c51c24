#include <unordered_set>

#include "ops/fused_conv.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// Whether every reader of conv n's output is a fused convolution that reads it as its data
// and takes bf16 data, or as its residual and merges a bf16 one where it lies, and no graph
// output is n's: then nothing but bf16 products and their merges ever read that tensor.
bool only_bf16_convolutions_read(PassContext& ctx, const Node& n, const std::unordered_set<const Node*>& outputs) {
  if (outputs.count(&n) || ctx.users(n).empty()) return false;
  for (const Node* u : ctx.users(n)) {
    if (u->op != op_name::FusedConv || !fused_conv_carries_bf16(*u)) return false;
    for (size_t i = 0; i < u->inputs.size(); ++i)
      if (u->inputs[i].node.get() == &n && i != 0 && !(i == 3 && fused_conv_reads_bf16_residual(*u))) return false;
  }
  return true;
}

}  // namespace

// Under INFERENCE_PRECISION_HINT bf16 (not in AIOV_GRAPH_PASSES: it runs only then, last):
// a fused convolution whose output only bf16-capable fused convolutions read, as their data
// or as a residual they merge in bf16, writes it in bf16 (output_type bf16), and those read it
// without rounding their input again (1x1 -> 3x3 -> 1x1 in a bottleneck, and the block's
// output on to the next block and its residual). Everything else stays f32: a tensor any other
// op reads (pooling, an Add left unfused, a graph output) is written in f32, so regions meet the
// rest of the graph in f32, as OpenVINO keeps the ops without bf16 kernels in f32.
bool carry_bf16(PassContext& ctx) {
  std::unordered_set<const Node*> outputs;
  for (const Value& o : ctx.graph().outputs) outputs.insert(o.node.get());
  std::unordered_set<const Node*> writes_bf16;
  for (const NodePtr& n : ctx.order())
    if (ctx.live(*n) && n->op == op_name::FusedConv && fused_conv_carries_bf16(*n) &&
        n->outputs[0].type == ElementType::f32 && only_bf16_convolutions_read(ctx, *n, outputs))
      writes_bf16.insert(n.get());
  if (writes_bf16.empty()) return false;
  // In order, so each reader is rebuilt after its producer and infers from the bf16 input.
  return ctx.rewrite_live([&](const NodePtr& n) {
    if (n->op != op_name::FusedConv) return false;
    const bool out16 = writes_bf16.count(n.get()) != 0;
    const Value& x = n->inputs[0];
    if (!out16 && x.node->outputs[x.index].type != ElementType::bf16) return false;
    Attrs attrs = n->attrs;
    attrs["output_type"] = std::string(out16 ? "bf16" : "f32");
    ctx.replace(Value{n, 0}, Value{make_node(n->op, n->inputs, attrs, n->name), 0});
    return true;
  });
}

}  // namespace aiov::passes
