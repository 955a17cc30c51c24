#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// A QDQ model's pooling, a dequantized u8 tensor max-pooled and quantized again with the same
// scale and zero point (DequantizeLinear -> MaxPool -> QuantizeLinear, as quantize_static
// writes it), becomes a MaxPool of the u8 bytes: the maximum commutes with the dequantization
// (increasing, its scale positive) and quantizing a dequantized byte gives it back, so the
// bytes are the same; the convolutions on either side then stay in one u8 NHWC region.
bool max_pools_on_quantized_bytes(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& pool : ctx.order()) {
    if (pool->op != op_name::MaxPool || !ctx.live(*pool) || pool->outputs.size() != 1) continue;
    Node* q = ctx.sole_user(*pool);
    if (!q || q->op != op_name::Quantize) continue;
    DequantizedU8 d;
    float scale = 0;
    const Node* zero = const_of(q->inputs[2]);
    if (!dequantized_u8(pool->inputs[0], d) || !one_float(q->inputs[1], scale) || scale != d.scale || !zero ||
        zero->outputs[0].type != ElementType::u8 || numel(zero->outputs[0].shape.dims) != 1 ||
        *static_cast<const uint8_t*>(zero->constant->data()) != d.zero)
      continue;
    NodePtr bytes = make_node(op_name::MaxPool, {d.q}, pool->attrs, pool->name);
    ctx.replace(Value{PassContext::shared(q), 0}, Value{bytes, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
