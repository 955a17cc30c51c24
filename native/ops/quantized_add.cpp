// aiov.QuantizedAdd: the sum of two u8 tensors of the same shape, each dequantized by its
// scale and zero point, requantized to u8: what a QDQ model's residual connection
// (DequantizeLinear x2 -> Add -> QuantizeLinear) computes, in one pass over the bytes. The
// f32 steps are those of the separate ops, so the result is the same bytes.
// Inputs: a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero (scales f32, zero points
// u8, one value each).
#include "executor/executor.hpp"
#include "kernels/quantized_bytes.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

bool one_of(const PortInfo& p, ElementType t) {
  return p.type == t && (!p.shape.rank_known || numel(p.shape.dims) == 1);
}

std::vector<PortInfo> infer_quantized_add(const InferContext& c) {
  const Node& n = c.node;
  if (c.in[0].type != ElementType::u8 || c.in[3].type != ElementType::u8)
    throw InputError(n.describe() + ": adds u8 tensors, got " + type_name(c.in[0].type) + " and " +
                     type_name(c.in[3].type));
  for (int i : {1, 4, 6})
    if (!one_of(c.in[i], ElementType::f32) || !one_of(c.in[i + 1], ElementType::u8))
      throw InputError(n.describe() + ": input " + std::to_string(i) +
                       " needs one f32 scale and one u8 zero point, got " + type_name(c.in[i].type) + " " +
                       c.in[i].shape.str() + " and " + type_name(c.in[i + 1].type) + " " + c.in[i + 1].shape.str());
  const PartialShape &a = c.in[0].shape, &b = c.in[3].shape;
  if (a.rank_known && b.rank_known && a.is_static() && b.is_static() && a.dims != b.dims)
    throw InputError(n.describe() + ": operands must have one shape, got " + a.str() + " and " + b.str());
  return {PortInfo{ElementType::u8, a.rank_known ? a : b}};
}

KernelFn prepare_quantized_add(const PrepareContext& ctx) {
  const int64_t n = numel(ctx.in[0].shape);
  if (numel(ctx.in[3].shape) != n)
    throw InputError(ctx.node.describe() + ": operands must have one shape, got " + dims_str(ctx.in[0].shape) +
                     " and " + dims_str(ctx.in[3].shape));
  return [n](const KernelArgs& k) {
    const uint8_t *a = k.in[0]->as<uint8_t>(), *b = k.in[3]->as<uint8_t>();
    const QuantizedSum s{*k.in[1]->as<float>(), (float)*k.in[2]->as<uint8_t>(),
                         *k.in[4]->as<float>(), (float)*k.in[5]->as<uint8_t>(),
                         *k.in[6]->as<float>(), (int32_t)*k.in[7]->as<uint8_t>()};
    uint8_t* y = k.out[0]->as<uint8_t>();
    const auto run = [&](int64_t i0, int64_t i1) { quantized_sum_u8(a + i0, b + i0, i1 - i0, s, y + i0); };
    if (k.ctx->pool && n >= (int64_t{1} << 16))
      k.ctx->pool->parallel_for(n, int64_t{1} << 14, run, k.ctx->max_threads);
    else
      run(0, n);
  };
}

}  // namespace

void register_quantized_add_ops(OpRegistry& r) {
  // The sum may take over the first operand's bytes when they die here (the kernels read each
  // block before writing it): one tensor fewer in the arena.
  r.add(with_reused_input(
      OpDef{"aiov.QuantizedAdd", 8, 8, infer_quantized_add, prepare_quantized_add}.ir({"aiov.QuantizedAdd"}, "aiov1"),
      0));
}

}  // namespace aiov
