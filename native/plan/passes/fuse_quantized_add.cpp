#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// The tensor's u8 operand, scale and zero point, as aiov.QuantizedAdd reads them.
bool dequantized_u8(const Value& v, Value& q, Value& scale, Value& zero) {
  DequantizedU8 d;
  if (!passes::dequantized_u8(v, d)) return false;
  q = d.q;
  scale = Value{f32_constant(Dims{}, {d.scale}, ""), 0};
  zero = Value{make_constant(ElementType::u8, Dims{}, &d.zero, 1, ""), 0};
  return true;
}

// Both of rank r with each dim equal, or unknown in both.
bool same_shape(const PartialShape& a, const PartialShape& b) {
  if (!a.rank_known || !b.rank_known || a.rank() != b.rank()) return false;
  for (size_t i = 0; i < a.dims.size(); ++i)
    if (a.dims[i] != b.dims[i]) return false;
  return true;
}

// The quantized convolution writing q's u8 for this Add alone (q read by its dequantization
// alone, that read by the Add alone, so nothing else waits for the bytes and the other operand
// cannot depend on them), with one group and no residual yet: it can add the other operand in
// its merge. Else null.
Node* convolution_for_sum(const PassContext& ctx, const Value& q, const Node& add) {
  Node* conv = q.node.get();
  if (conv->op != op_name::QuantizedConv || conv->inputs.size() != 8 || conv->attr_int("group", 1) != 1) return nullptr;
  const Node* n = conv;
  for (int step = 0; step < 4 && n && n != &add; ++step) n = ctx.sole_user(*n);  // Convert [Subtract] Multiply Add
  return n == &add ? conv : nullptr;
}

// A 1x1 window moving by 1 with no padding: the product of the data's rows as they lie, whose
// merge (the integer GEMM's u8 strips) adds the residual in registers; other windows add it to
// each tile after their merge.
bool pointwise(const Node& conv) {
  const PartialShape& f = conv.inputs[1].node->outputs[conv.inputs[1].index].shape;
  if (!f.rank_known) return false;
  for (size_t i = 2; i < f.dims.size(); ++i)
    if (f.dims[i] != 1) return false;
  for (const char* attr : {"strides", "pads_begin", "pads_end"})
    for (int64_t v : conv.attr_ints(attr, {}))
      if (v != (attr[0] == 's' ? 1 : 0)) return false;
  return true;
}

}  // namespace

// A QDQ model's residual connection, the sum of two dequantized u8 tensors quantized again
// (DequantizeLinear x2 -> Add -> QuantizeLinear, as the frontend composes them), becomes one
// aiov.QuantizedAdd over the bytes: no f32 tensors, four passes over memory fewer; or, when a
// quantized convolution writes one operand for it alone, that convolution's residual sum.
bool fuse_quantized_add(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& add : ctx.order()) {
    if (add->op != op_name::Add || !ctx.live(*add) || !numpy_broadcast(*add)) continue;
    Node* q = ctx.sole_user(*add);
    if (!q || q->op != op_name::Quantize || q->inputs[2].node->outputs[q->inputs[2].index].type != ElementType::u8)
      continue;
    Value a, as, az, b, bs, bz;
    if (!dequantized_u8(add->inputs[0], a, as, az) || !dequantized_u8(add->inputs[1], b, bs, bz)) continue;
    // One shape (no broadcasting): the Add's own where it is known, else the same dims
    // wherever the operands know them (dims a pass left unknown are the ones both lost).
    const PartialShape &sa = a.node->outputs[a.index].shape, &sb = b.node->outputs[b.index].shape;
    if (!same_shape(sa, sb)) continue;
    // When a convolution writes an operand for the sum alone, it adds the other in the merge
    // that writes its bytes (a ResNet block's last 1x1 and its skip connection; a pointwise one
    // first, where both are); else the bytes are added in a pass of their own.
    Node* conv_a = convolution_for_sum(ctx, a, *add);
    Node* conv_b = convolution_for_sum(ctx, b, *add);
    if (conv_a && conv_b && !pointwise(*conv_a) && pointwise(*conv_b)) conv_a = nullptr;
    NodePtr fused;
    if (conv_a || conv_b) {
      Node* conv = conv_a ? conv_a : conv_b;
      std::vector<Value> inputs = conv->inputs;
      for (const Value& v : conv_a ? std::vector<Value>{b, bs, bz} : std::vector<Value>{a, as, az}) inputs.push_back(v);
      inputs.push_back(q->inputs[1]);
      inputs.push_back(q->inputs[2]);
      fused = make_node(op_name::QuantizedConv, inputs, conv->attrs, conv->name);
    } else {
      fused = make_node(op_name::QuantizedAdd, {a, as, az, b, bs, bz, q->inputs[1], q->inputs[2]}, {}, add->name);
    }
    ctx.replace(Value{PassContext::shared(q), 0}, Value{fused, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
