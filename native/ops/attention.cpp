// aiov.Attention: softmax(scale * Q K^T + mask) V for every (batch, head), made by the graph
// optimizer from the MatMul -> scale -> Add(mask) -> Softmax -> MatMul chain of a transformer
// layer. Q, K and V come as [batch, seq, heads, head_size] (the Reshape before the usual
// [0, 2, 1, 3] transposes) and the result is written in that layout too, so the four
// transposes, the scaled and masked score tensors and the softmax pass disappear: each
// (batch, head) task keeps its seq x seq scores in a cache-resident scratch.
#include <algorithm>
#include <cmath>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/attention_bf16.hpp"
#include "kernels/attention_f32.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_threads.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<PortInfo> infer_attention(const InferContext& c) {
  for (size_t i = 0; i < 3; ++i) {
    if (c.in[i].type != ElementType::f32) throw InputError(c.node.describe() + ": expected f32 Q, K and V");
    if (c.in[i].shape.rank_known && c.in[i].shape.rank() != 4)
      throw InputError(c.node.describe() + ": Q, K and V must be [batch, seq, heads, head_size], got " +
                       c.in[i].shape.str());
  }
  const PartialShape& q = c.in[0].shape;
  const PartialShape& v = c.in[2].shape;
  if (!q.rank_known || !v.rank_known) return {PortInfo{ElementType::f32, PartialShape::dynamic_rank()}};
  return {PortInfo{ElementType::f32, PartialShape(Dims{q.dims[0], q.dims[1], q.dims[2], v.dims[3]})}};
}

KernelFn prepare_attention(const PrepareContext& ctx) {
  const Dims& q = ctx.in[0].shape;
  const Dims& k = ctx.in[1].shape;
  const Dims& v = ctx.in[2].shape;
  const int64_t B = q[0], Sq = q[1], H = q[2], D = q[3], Sk = k[1], Dv = v[3];
  if (k[0] != B || v[0] != B || k[2] != H || v[2] != H || k[3] != D || v[1] != Sk)
    throw InputError(ctx.node.describe() + ": Q " + dims_str(q) + ", K " + dims_str(k) + " and V " + dims_str(v) +
                     " do not agree");
  const float scale = (float)ctx.node.attr_float("scale");
  // The mask broadcasts to [B, H, Sq, Sk]: a stride of 0 along each dim where it has size 1.
  bool has_mask = ctx.in.size() > 3;
  int64_t mstride[4] = {0, 0, 0, 0};
  if (has_mask) {
    Dims m = ctx.in[3].shape;
    if (m.size() > 4) throw InputError(ctx.node.describe() + ": mask rank above 4");
    m.insert(m.begin(), 4 - m.size(), 1);
    const int64_t full[4] = {B, H, Sq, Sk};
    int64_t st = 1;
    for (int d = 3; d >= 0; --d) {
      if (m[d] != 1 && m[d] != full[d])
        throw InputError(ctx.node.describe() + ": mask " + dims_str(ctx.in[3].shape) + " does not broadcast to " +
                         dims_str(Dims{B, H, Sq, Sk}));
      mstride[d] = m[d] == 1 ? 0 : st;
      st *= m[d];
    }
  }
  // Under a bf16 hint both products take bf16 operands; the mask and softmax stay f32.
  const GemmPrecision precision = gemm_precision(ctx.inference_precision);
  // One head: its two products, and ~5 ns per score for the mask and softmax (an exp each).
  const double head_ns =
      gemm_detail::est_ns(2.0 * Sq * Sk * (D + Dv), 4.0 * (Sq * D + Sk * (D + Dv) + Sq * Dv)) + 5.0 * (double)(Sq * Sk);
  return [=](const KernelArgs& a) {
    const float* Q = a.in[0]->as<float>();
    const float* K = a.in[1]->as<float>();
    const float* V = a.in[2]->as<float>();
    const float* M = has_mask ? a.in[3]->as<float>() : nullptr;
    float* O = a.out[0]->as<float>();
    auto operands = [&](int64_t t) {
      const int64_t b = t / H, h = t % H;
      return AttentionHead{Q + (b * Sq * H + h) * D,  H * D,  K + (b * Sk * H + h) * D,  H * D,
                           V + (b * Sk * H + h) * Dv, H * Dv, O + (b * Sq * H + h) * Dv, H * Dv};
    };
    // One loop over a thread's heads for either precision's head kernel.
    auto run_heads = [&](auto& heads, int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / H, h = t % H;
        const bool more = t + 1 < t1;
        const AttentionHead next = more ? operands(t + 1) : AttentionHead{};
        AttentionBias bias;
        if (M) bias = AttentionBias{M + b * mstride[0] + h * mstride[1], mstride[2], mstride[3] != 0};
        heads.head(operands(t), bias, more ? &next : nullptr);
      }
    };
    auto run = [&](int64_t t0, int64_t t1) {
      if (precision == GemmPrecision::bf16) {  // operands rounded once per head (attention_bf16.hpp)
        Bf16Attention heads(Sq, Sk, D, Dv, scale);
        run_heads(heads, t0, t1);
      } else {  // attention_f32.hpp
        F32Attention heads(Sq, Sk, D, Dv, scale, precision);
        run_heads(heads, t0, t1);
      }
    };
    if (a.ctx->pool)
      a.ctx->pool->parallel_for_units(B * H, head_ns, run, a.ctx->max_threads);
    else
      run(0, B * H);
  };
}

}  // namespace

void register_attention_ops(OpRegistry& r) {
  r.add(OpDef{"aiov.Attention", 3, 4, infer_attention, prepare_attention}.with_attrs({float_attr("scale", 1.0)}));
}

}  // namespace aiov
