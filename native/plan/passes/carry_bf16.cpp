#include <unordered_set>

#include "ops/fused_conv.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

using NodeSet = std::unordered_set<const Node*>;

// A MaxPool that pools bf16 where it lies (kernels/pool_bf16): NHWC, 2-D, its values only.
bool pools_bf16(const Node& n) {
  if (n.op != op_name::MaxPool || n.outputs.size() != 1 || n.attr_str("layout") != "nhwc") return false;
  const PartialShape& x = n.inputs[0].node->outputs[n.inputs[0].index].shape;
  return x.rank_known && x.rank() == 4;
}

// Whether node n may write bf16, given which nodes still would (`bf16`): a fused convolution
// that can; a MaxPool that pools bf16 or a Concat (a copy of bytes) whose inputs all come
// from nodes writing bf16. And whether everything that reads it takes bf16: a fused
// convolution as its data, or as a residual it merges in bf16, or a pool or Concat that
// writes bf16 itself; no graph output is n's.
bool may_write_bf16(PassContext& ctx, const Node& n, const NodeSet& bf16, const NodeSet& outputs) {
  if (n.op == op_name::MaxPool || n.op == op_name::Concat) {
    if (n.op == op_name::MaxPool && !pools_bf16(n)) return false;
    for (const Value& v : n.inputs)
      if (!bf16.count(v.node.get())) return false;
  } else if (n.op != op_name::FusedConv || !fused_conv_writes_bf16(n) || n.outputs[0].type != ElementType::f32) {
    return false;
  }
  if (outputs.count(&n) || ctx.users(n).empty()) return false;
  for (const Node* u : ctx.users(n)) {
    if (u->op == op_name::MaxPool || u->op == op_name::Concat) {
      if (!bf16.count(u)) return false;
      continue;
    }
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
// output on to the next block and its residual). MaxPools and Concats between such
// convolutions (ResNet's pool after its stem, SqueezeNet's fire modules and pools) pass the
// bf16 tensor on as it lies. Everything else stays f32: a tensor any other op reads (an
// unfused Add, a graph output) is written in f32, so regions meet the rest of the graph in
// f32, as OpenVINO keeps the ops without bf16 kernels in f32.
bool carry_bf16(PassContext& ctx) {
  NodeSet outputs;
  for (const Value& o : ctx.graph().outputs) outputs.insert(o.node.get());
  // Every candidate first, then those that may not write bf16 dropped until none is left to
  // drop: a Concat loses its place with any input's, and its inputs theirs with it.
  NodeSet bf16;
  for (const NodePtr& n : ctx.order())
    if (ctx.live(*n) && (n->op == op_name::FusedConv || n->op == op_name::MaxPool || n->op == op_name::Concat))
      bf16.insert(n.get());
  for (bool dropped = true; dropped;) {
    dropped = false;
    for (const NodePtr& n : ctx.order())
      if (bf16.count(n.get()) && !may_write_bf16(ctx, *n, bf16, outputs)) {
        bf16.erase(n.get());
        dropped = true;
      }
  }
  bool any_conv = false;
  for (const Node* n : bf16) any_conv = any_conv || n->op == op_name::FusedConv;
  if (!any_conv) return false;
  // In order, so each reader is rebuilt after its producers and infers from their bf16 outputs.
  return ctx.rewrite_live([&](const NodePtr& n) {
    const bool out16 = bf16.count(n.get()) != 0;
    if (n->op == op_name::MaxPool || n->op == op_name::Concat) {
      if (!out16) return false;
      ctx.replace(Value{n, 0}, Value{make_node(n->op, n->inputs, n->attrs, n->name), 0});
      return true;
    }
    if (n->op != op_name::FusedConv) return false;
    const Value& x = n->inputs[0];
    if (!out16 && x.node->outputs[x.index].type != ElementType::bf16) return false;
    Attrs attrs = n->attrs;
    attrs["output_type"] = std::string(out16 ? "bf16" : "f32");
    ctx.replace(Value{n, 0}, Value{make_node(n->op, n->inputs, attrs, n->name), 0});
    return true;
  });
}

}  // namespace aiov::passes
