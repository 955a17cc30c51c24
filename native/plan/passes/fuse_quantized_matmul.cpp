#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// One f32 value, or N along the last axis (a 1-D [N]): what the integer GEMM's merge applies
// per column.
bool column_factor(const Value& v, int64_t N) {
  const PortInfo& p = v.node->outputs[v.index];
  if (p.type != ElementType::f32 || !p.shape.is_static()) return false;
  const Dims& d = p.shape.dims;
  return d.empty() || (d.size() == 1 && (d[0] == 1 || d[0] == N));
}

}  // namespace

// The dequantization after an integer product (what onnxruntime's quantize_dynamic writes:
// MatMulInteger -> Cast to float -> Mul by activation scale x weight scale, then the float
// model's bias Add) folds into the product's merge: aiov.QuantizedMatMul with the factor (and
// the bias) writes f32 once, with no s32 tensor in between. A product that already writes f32
// (QDQ models read that way) takes the bias Add after it. A Relu after the f32 result is the
// merge's too (attribute "relu"), so no pass over the product is left for it.
bool fuse_quantized_matmul(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& mm : ctx.order()) {
    if (mm->op != op_name::QuantizedMatMul || !ctx.live(*mm) || mm->attr_int("relu", 0)) continue;
    const PartialShape& ys = mm->outputs[0].shape;
    if (!ys.rank_known || ys.dims.back() < 0) continue;
    const int64_t N = ys.dims.back();
    std::vector<Value> inputs = mm->inputs;
    Node* last = mm.get();
    if (inputs.size() == 4) {  // s32 out: the Cast and the Mul by the factor
      Node* cast = ctx.sole_user(*mm);
      if (!cast || cast->op != op_name::Convert || cast->outputs[0].type != ElementType::f32) continue;
      Node* mul = ctx.sole_user(*cast);
      if (!mul || mul->op != op_name::Multiply || !numpy_broadcast(*mul)) continue;
      const Value& factor = other_input(*mul, cast);
      if (factor.node.get() == cast || !column_factor(factor, N)) continue;
      inputs.push_back(factor);
      last = mul;
    }
    Node* add = inputs.size() < 6 ? ctx.sole_user(*last) : nullptr;
    std::vector<float> bias;
    if (add && add->op == op_name::Add && numpy_broadcast(*add) &&
        channel_vector(other_input(*add, last), (int)ys.rank(), (int)ys.rank() - 1, N, bias)) {
      inputs.push_back(Value{f32_constant(Dims{N}, bias, mm->name + "/bias"), 0});
      last = add;
    }
    Attrs attrs;
    Node* relu = inputs.size() > 4 ? ctx.sole_user(*last) : nullptr;
    if (relu && relu->op == op_name::Relu) {
      attrs["relu"] = int64_t{1};
      last = relu;
    }
    if (last == mm.get()) continue;
    NodePtr fused = make_node(op_name::QuantizedMatMul, inputs, attrs, mm->name);
    if (fused->outputs[0].shape.dims != last->outputs[0].shape.dims) continue;  // the Mul or Add broadcast further
    ctx.replace(Value{PassContext::shared(last), 0}, Value{fused, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
