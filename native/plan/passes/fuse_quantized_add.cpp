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

}  // namespace

// A QDQ model's residual connection, the sum of two dequantized u8 tensors quantized again
// (DequantizeLinear x2 -> Add -> QuantizeLinear, as the frontend composes them), becomes one
// aiov.QuantizedAdd over the bytes: no f32 tensors, four passes over memory fewer.
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
    NodePtr fused = make_node(op_name::QuantizedAdd, {a, as, az, b, bs, bz, q->inputs[1], q->inputs[2]}, {}, add->name);
    ctx.replace(Value{PassContext::shared(q), 0}, Value{fused, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
