// aiov.QuantizedLookup: y[i] = table[x[i]] over u8 tensors. A QDQ model's elementwise
// activation between a dequantization and a quantization (DequantizeLinear -> Sigmoid ->
// QuantizeLinear, HardSigmoid, Clip, ...) maps each of the 256 input bytes to one output byte,
// so the optimizer tabulates it once (plan/passes/quantized_lookups.cpp) and the run is a
// byte gather: no f32 tensor, one pass over memory.
// Inputs: x (u8, any shape), table (u8, 256 values).
#include "executor/executor.hpp"
#include "kernels/quantized_bytes.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<PortInfo> infer_quantized_lookup(const InferContext& c) {
  const Node& n = c.node;
  if (c.in[0].type != ElementType::u8 || c.in[1].type != ElementType::u8)
    throw InputError(n.describe() + ": looks u8 bytes up in a u8 table, got " + type_name(c.in[0].type) + " and " +
                     type_name(c.in[1].type));
  const PartialShape& table = c.in[1].shape;
  if (table.rank_known && table.is_static() && numel(table.dims) != 256)
    throw InputError(n.describe() + ": the table needs 256 entries, got shape " + table.str());
  return {PortInfo{ElementType::u8, c.in[0].shape}};
}

KernelFn prepare_quantized_lookup(const PrepareContext& ctx) {
  if (numel(ctx.in[1].shape) != 256)
    throw InputError(ctx.node.describe() + ": the table needs 256 entries, got shape " + dims_str(ctx.in[1].shape));
  const int64_t n = numel(ctx.in[0].shape);
  if (ctx.out_row_stride) {
    // Rows of the last axis into a Concat's slice, ctx.out_row_stride bytes apart.
    const int64_t row = ctx.in[0].shape.back(), rows = row ? n / row : 0, stride = ctx.out_row_stride;
    return [row, rows, stride](const KernelArgs& k) {
      const uint8_t* x = k.in[0]->as<uint8_t>();
      const uint8_t* table = k.in[1]->as<uint8_t>();
      uint8_t* y = k.out[0]->as<uint8_t>();
      const auto run = [&](int64_t r0, int64_t r1) {
        lookup_u8_rows(x + r0 * row, r1 - r0, row, table, y + r0 * stride, stride);
      };
      if (k.ctx->pool && rows > 1)
        k.ctx->pool->parallel_for_units(rows, lookup_ns_per_byte() * (double)row, run, k.ctx->max_threads);
      else
        run(0, rows);
    };
  }
  return [n](const KernelArgs& k) {
    const uint8_t* x = k.in[0]->as<uint8_t>();
    const uint8_t* table = k.in[1]->as<uint8_t>();
    uint8_t* y = k.out[0]->as<uint8_t>();
    const auto run = [&](int64_t i0, int64_t i1) { lookup_u8(x + i0, i1 - i0, table, y + i0); };
    if (k.ctx->pool && n > 1)
      k.ctx->pool->parallel_for_units(n, lookup_ns_per_byte(), run, k.ctx->max_threads);
    else
      run(0, n);
  };
}

bool lookup_writes_concat_slice(const Node& n) {
  const PartialShape& shape = n.outputs[0].shape;
  return shape.rank_known && shape.rank() >= 1;
}

}  // namespace

void register_quantized_lookup_ops(OpRegistry& r) {
  // Layout-blind: the table is one value for the whole tensor, whatever its layout.
  // The bytes looked up may be written over their input (each block is read before it is written).
  r.add(with_reused_input(OpDef{"aiov.QuantizedLookup", 2, 2, infer_quantized_lookup, prepare_quantized_lookup}
                              .blind(LayoutBlind::per_tensor)
                              .concat_slice(lookup_writes_concat_slice)
                              .ir({"aiov.QuantizedLookup"}, "aiov1"),
                          0));
}

}  // namespace aiov
