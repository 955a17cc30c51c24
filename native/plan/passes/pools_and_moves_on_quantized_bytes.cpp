#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// Ops that give the same bytes on a u8 tensor as on its dequantization quantized again: a
// MaxPool (the maximum commutes with the increasing dequantization), and the ops that only
// move, repeat or drop elements (a reshape, a transpose, a Pad that repeats edges or pads with
// zero, which quantizes to the zero point exactly). Quantizing a dequantized byte gives it back.
bool same_on_bytes(const Node& n) {
  if (n.op == op_name::MaxPool) return n.outputs.size() == 1;
  if (n.op == op_name::Reshape || n.op == op_name::Squeeze || n.op == op_name::Unsqueeze || n.op == op_name::Transpose)
    return true;
  if (n.op != op_name::Pad) return false;
  float fill = 0;
  return n.attr_str("pad_mode", "constant") != "constant" || n.inputs.size() < 4 ||
         (one_float(n.inputs[3], fill) && fill == 0.0f);
}

}  // namespace

// A QDQ model's pooling and data movement, a dequantized u8 tensor max-pooled, reshaped,
// transposed or padded and quantized again with the same scale and zero point
// (DequantizeLinear -> op -> QuantizeLinear, as quantize_static writes it), becomes the op on
// the u8 bytes (a Pad's zero as the zero point): the same bytes, without two passes over floats;
// the convolutions on either side then stay in one u8 NHWC region.
bool pools_and_moves_on_quantized_bytes(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& op : ctx.order()) {
    if (!ctx.live(*op) || !same_on_bytes(*op)) continue;
    Node* q = ctx.sole_user(*op);
    if (!q || q->op != op_name::Quantize) continue;
    DequantizedU8 d;
    float scale = 0;
    const Node* zero = const_of(q->inputs[2]);
    if (!dequantized_u8(op->inputs[0], d) || !one_float(q->inputs[1], scale) || scale != d.scale || !zero ||
        zero->outputs[0].type != ElementType::u8 || numel(zero->outputs[0].shape.dims) != 1 ||
        *static_cast<const uint8_t*>(zero->constant->data()) != d.zero)
      continue;
    std::vector<Value> inputs = op->inputs;
    inputs[0] = d.q;
    if (op->op == op_name::Pad && inputs.size() > 3)
      inputs[3] = Value{make_constant(ElementType::u8, Dims{}, &d.zero, 1, ""), 0};
    NodePtr bytes = make_node(op->op, inputs, op->attrs, op->name);
    ctx.replace(Value{PassContext::shared(q), 0}, Value{bytes, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
