#include <unordered_set>

#include "ops/fused_conv.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

using NodeSet = std::unordered_set<const Node*>;

// Whether every reader of n's output is a fused convolution that reads it as its data and
// takes bf16 data, or as its residual and merges a bf16 one where it lies, or one of
// `pools` (MaxPools whose own readers are such), and no graph output is n's: then nothing but
// bf16 products, their merges and pooling ever read that tensor.
bool only_bf16_readers(PassContext& ctx, const Node& n, const NodeSet& outputs, const NodeSet& pools) {
  if (outputs.count(&n) || ctx.users(n).empty()) return false;
  for (const Node* u : ctx.users(n)) {
    if (pools.count(u)) continue;
    if (u->op != op_name::FusedConv || !fused_conv_carries_bf16(*u)) return false;
    for (size_t i = 0; i < u->inputs.size(); ++i)
      if (u->inputs[i].node.get() == &n && i != 0 && !(i == 3 && fused_conv_reads_bf16_residual(*u))) return false;
  }
  return true;
}

// A MaxPool that pools bf16 where it lies (kernels/pool_bf16): NHWC, 2-D, its values only.
bool pools_bf16(const Node& n) {
  if (n.op != op_name::MaxPool || n.outputs.size() != 1 || n.attr_str("layout") != "nhwc") return false;
  const PartialShape& x = n.inputs[0].node->outputs[n.inputs[0].index].shape;
  return x.rank_known && x.rank() == 4;
}

}  // namespace

// Under INFERENCE_PRECISION_HINT bf16 (not in AIOV_GRAPH_PASSES: it runs only then, last):
// a fused convolution whose output only bf16-capable fused convolutions read, as their data
// or as a residual they merge in bf16, writes it in bf16 (output_type bf16), and those read it
// without rounding their input again (1x1 -> 3x3 -> 1x1 in a bottleneck, and the block's
// output on to the next block and its residual). A MaxPool between such convolutions (ResNet's
// after its stem, SqueezeNet's) pools the bf16 tensor as it lies. Everything else stays f32: a
// tensor any other op reads (an unfused Add, a graph output) is written in f32, so regions
// meet the rest of the graph in f32, as OpenVINO keeps the ops without bf16 kernels in f32.
bool carry_bf16(PassContext& ctx) {
  NodeSet outputs;
  for (const Value& o : ctx.graph().outputs) outputs.insert(o.node.get());
  NodeSet pools;  // MaxPools that would pool bf16 for bf16 readers
  for (const NodePtr& n : ctx.order())
    if (ctx.live(*n) && pools_bf16(*n) && only_bf16_readers(ctx, *n, outputs, {})) pools.insert(n.get());
  NodeSet writes_bf16;
  for (const NodePtr& n : ctx.order())
    if (ctx.live(*n) && n->op == op_name::FusedConv && fused_conv_writes_bf16(*n) &&
        n->outputs[0].type == ElementType::f32 && only_bf16_readers(ctx, *n, outputs, pools))
      writes_bf16.insert(n.get());
  if (writes_bf16.empty()) return false;
  // In order, so each reader is rebuilt after its producer and infers from the bf16 input.
  return ctx.rewrite_live([&](const NodePtr& n) {
    const Value& x = n->inputs.empty() ? Value{} : n->inputs[0];
    const bool bf16_input = x.node && x.node->outputs[x.index].type == ElementType::bf16;
    if (n->op == op_name::MaxPool) {
      if (!bf16_input) return false;  // only a pool in `pools` reads a convolution writing bf16
      ctx.replace(Value{n, 0}, Value{make_node(n->op, n->inputs, n->attrs, n->name), 0});
      return true;
    }
    if (n->op != op_name::FusedConv) return false;
    const bool out16 = writes_bf16.count(n.get()) != 0;
    if (!out16 && !bf16_input) return false;
    Attrs attrs = n->attrs;
    attrs["output_type"] = std::string(out16 ? "bf16" : "f32");
    ctx.replace(Value{n, 0}, Value{make_node(n->op, n->inputs, attrs, n->name), 0});
    return true;
  });
}

}  // namespace aiov::passes
