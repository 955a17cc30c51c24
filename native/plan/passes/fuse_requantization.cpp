#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// One value of `type`, static: what aiov.Quantize and the requantizing merge take.
bool one_value(const Value& v, ElementType type) {
  const PortInfo& p = v.node->outputs[v.index];
  return p.type == type && p.shape.is_static() && numel(p.shape.dims) == 1;
}

}  // namespace

// In QDQ models every convolution's f32 result is quantized again for the next one
// (onnxruntime's quantize_static writes Conv -> QuantizeLinear, sometimes with a Relu
// between). aiov.QuantizedConv dequantizing to f32, then aiov.Quantize to u8, becomes one
// aiov.QuantizedConv whose merge requantizes (the same operations, so the same bytes): no f32
// tensor between the convolutions, and the next reads the u8 it writes. A Relu between them
// is the merge's too.
bool fuse_requantization(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& conv : ctx.order()) {
    if (conv->op != op_name::QuantizedConv || !ctx.live(*conv) || conv->inputs.size() < 5 || conv->inputs.size() > 6 ||
        conv->attr_int("relu", 0))
      continue;
    Node* last = conv.get();
    Node* q = ctx.sole_user(*last);
    const bool relu = q && q->op == op_name::Relu;
    if (relu) q = ctx.sole_user(*(last = q));
    if (!q || q->op != op_name::Quantize || q->inputs[0].node.get() != last ||
        !one_value(q->inputs[1], ElementType::f32) || !one_value(q->inputs[2], ElementType::u8))
      continue;
    const PartialShape& ys = conv->outputs[0].shape;
    const Node* filters = const_of(conv->inputs[1]);
    if (!filters) continue;
    const int64_t O = filters->outputs[0].shape.dims[0];
    std::vector<Value> inputs = conv->inputs;
    if (inputs.size() == 5) inputs.push_back(Value{f32_constant(Dims{O}, std::vector<float>(O, 0.0f), ""), 0});
    inputs.push_back(q->inputs[1]);
    inputs.push_back(q->inputs[2]);
    Attrs attrs = conv->attrs;
    if (relu) attrs["relu"] = int64_t{1};
    NodePtr fused = make_node(op_name::QuantizedConv, inputs, attrs, conv->name);
    if (fused->outputs[0].shape.dims != ys.dims) continue;
    ctx.replace(Value{PassContext::shared(q), 0}, Value{fused, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
