// aiov.Attention: softmax(scale * Q K^T + mask) V for every (batch, head), made by the graph
// optimizer from the MatMul -> scale -> Add(mask) -> Softmax -> MatMul chain of a transformer
// layer. Q, K and V come as [batch, seq, heads, head_size] (the Reshape before the usual
// [0, 2, 1, 3] transposes) and the result is written in that layout too, so the four
// transposes, the scaled and masked score tensors and the softmax pass disappear: each
// (batch, head) task keeps its seq x seq scores in a cache-resident scratch. An input may
// instead be [batch, heads, seq, head_size] (heads_first: the chain's operand already split,
// as after Llama's rotary embedding) or one part of a packed [batch, seq, parts, heads,
// head_size] tensor (part: Swin's qkv rows, read in place rather than transposed apart).
// A batch of 1 broadcasts. K and V may have fewer heads than Q: one (broadcast) or, with
// grouped_kv, a divisor Hkv of H (grouped-query attention): query head h reads KV head
// h / (H / Hkv). The mask broadcasts to [batch, H, Sq, Sk], or with mask_period > 0 has that
// many entries along batch, batch b reading entry b % mask_period (Swin's shifted windows:
// window b of the batch is window b % nW of its image). With scale_input, the last input is
// one value the scale is multiplied by as the model runs (a factor the graph computes from
// shapes, as torch's exports do), so Q need not be scaled on its own.
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

const char* const kOperandNames[3] = {"Q", "K", "V"};

// Where input i's heads are: its layout attrs (heads_first, part) checked against its rank.
struct OperandLayout {
  bool heads_first = false;
  int64_t part = -1;  // >= 0: a part of a packed [batch, seq, parts, heads, head_size] tensor
  int64_t rank() const { return part >= 0 ? 5 : 4; }
};

OperandLayout operand_layout(const Node& node, size_t i) {
  const std::vector<int64_t> heads_first = node.attr_ints("heads_first", {});
  const std::vector<int64_t> part = node.attr_ints("part", {});
  if ((!heads_first.empty() && heads_first.size() != 3) || (!part.empty() && part.size() != 3))
    throw InputError(node.describe() + ": heads_first and part take one entry for each of Q, K and V");
  OperandLayout l;
  l.heads_first = !heads_first.empty() && heads_first[i] != 0;
  l.part = part.empty() ? -1 : part[i];
  if (l.part < -1 || (l.part >= 0 && l.heads_first))
    throw InputError(node.describe() + ": " + kOperandNames[i] + " is either heads-first or a part of a packed tensor");
  return l;
}

// An operand's dims as (batch, seq, heads, head_size), whatever its layout; -1 where unknown.
std::vector<int64_t> bshd(const OperandLayout& l, const std::vector<int64_t>& d) {
  if (l.part >= 0) return {d[0], d[1], d[3], d[4]};
  if (l.heads_first) return {d[0], d[2], d[1], d[3]};
  return {d[0], d[1], d[2], d[3]};
}

std::vector<PortInfo> infer_attention(const InferContext& c) {
  std::vector<int64_t> qd, vd;
  for (size_t i = 0; i < 3; ++i) {
    const OperandLayout l = operand_layout(c.node, i);
    if (c.in[i].type != ElementType::f32) throw InputError(c.node.describe() + ": expected f32 Q, K and V");
    if (!c.in[i].shape.rank_known) continue;
    if (c.in[i].shape.rank() != l.rank())
      throw InputError(c.node.describe() + ": " + kOperandNames[i] + " must be " +
                       (l.part >= 0     ? "[batch, seq, parts, heads, head_size]"
                        : l.heads_first ? "[batch, heads, seq, head_size]"
                                        : "[batch, seq, heads, head_size]") +
                       ", got " + c.in[i].shape.str());
    if (l.part >= 0 && c.in[i].shape.dims[2] >= 0 && l.part >= c.in[i].shape.dims[2])
      throw InputError(c.node.describe() + ": " + kOperandNames[i] + " reads part " + std::to_string(l.part) + " of " +
                       c.in[i].shape.str());
    if (i == 0) qd = bshd(l, c.in[i].shape.dims);
    if (i == 2) vd = bshd(l, c.in[i].shape.dims);
  }
  if (c.node.attr_int("scale_input", 0)) {
    const PortInfo& f = c.in.back();
    if (c.in.size() < 4 || f.type != ElementType::f32 || (f.shape.is_static() && numel(f.shape.dims) != 1))
      throw InputError(c.node.describe() + ": scale_input takes one f32 value as the last input");
  }
  if (qd.empty() || vd.empty()) return {PortInfo{ElementType::f32, PartialShape::dynamic_rank()}};
  // A batch of 1 broadcasts (learned queries against a batch of keys, as MatMul would).
  int64_t batch = 1;
  bool known = true;
  for (size_t i = 0; i < 3; ++i) {
    const PartialShape& s = c.in[i].shape;
    const int64_t b = s.rank_known ? s.dims[0] : -1;
    if (b != 1) batch = b;
    known = known && b >= 0;
  }
  if (!known) batch = -1;
  return {PortInfo{ElementType::f32, PartialShape(Dims{batch, qd[1], qd[2], vd[3]})}};
}

// Where one operand's heads are in its buffer, in floats: head (b, h) starts at
// offset + b * batch + h * head, its rows `row` apart.
struct HeadStrides {
  int64_t offset, batch, head, row;
};

HeadStrides head_strides(const OperandLayout& l, const Dims& d) {
  if (l.part >= 0) return {l.part * d[3] * d[4], d[1] * d[2] * d[3] * d[4], d[4], d[2] * d[3] * d[4]};
  if (l.heads_first) return {0, d[1] * d[2] * d[3], d[2] * d[3], d[3]};
  return {0, d[1] * d[2] * d[3], d[3], d[2] * d[3]};
}

KernelFn prepare_attention(const PrepareContext& ctx) {
  OperandLayout layout[3];
  std::vector<int64_t> dims[3];  // each operand as (batch, seq, heads, head_size)
  HeadStrides at[3];
  for (size_t i = 0; i < 3; ++i) {
    layout[i] = operand_layout(ctx.node, i);
    const Dims& d = ctx.in[i].shape;
    if ((int64_t)d.size() != layout[i].rank() || (layout[i].part >= 0 && layout[i].part >= d[2]))
      throw InputError(ctx.node.describe() + ": " + kOperandNames[i] + " " + dims_str(d) + " does not fit its layout");
    dims[i] = bshd(layout[i], d);
    at[i] = head_strides(layout[i], d);
  }
  const std::vector<int64_t>&q = dims[0], &k = dims[1], &v = dims[2];
  const int64_t B = q[0] != 1   ? q[0]
                    : k[0] != 1 ? k[0]
                                : v[0],
                Sq = q[1], H = q[2], D = q[3], Sk = k[1], Hkv = k[2], Dv = v[3];
  bool batches_agree = true;
  for (size_t i = 0; i < 3; ++i) {
    batches_agree = batches_agree && (dims[i][0] == B || dims[i][0] == 1);
    if (dims[i][0] == 1) at[i].batch = 0;  // one batch entry, read by every batch
  }
  if (!batches_agree || v[2] != Hkv || k[3] != D || v[1] != Sk)
    throw InputError(ctx.node.describe() + ": Q " + dims_str(ctx.in[0].shape) + ", K " + dims_str(ctx.in[1].shape) +
                     " and V " + dims_str(ctx.in[2].shape) + " do not agree");
  // Fewer KV heads than Q's: one broadcast to all (as MatMul would), or groups of query heads
  // when the graph repeated them so (grouped_kv: the optimizer matched repeat_kv).
  const bool grouped = ctx.node.attr_int("grouped_kv", 0) != 0;
  if (Hkv != H && Hkv != 1 && (!grouped || Hkv <= 0 || H % Hkv != 0))
    throw InputError(ctx.node.describe() + ": " + std::to_string(Hkv) + " key/value heads " +
                     (grouped ? "do not divide " : "do not match ") + std::to_string(H) + " query heads");
  const int64_t group = Hkv > 0 ? std::max<int64_t>(H / Hkv, 1) : 1;  // query heads sharing one KV head
  const float scale = (float)ctx.node.attr_float("scale");
  const bool scale_input = ctx.node.attr_int("scale_input", 0) != 0;
  const size_t factor_at = scale_input ? ctx.in.size() - 1 : 0;  // 0: none
  if (scale_input ? ctx.in.size() < 4 || numel(ctx.in[factor_at].shape) != 1 : ctx.in.size() > 4)
    throw InputError(ctx.node.describe() + ": the scale factor is one value, the last input, with scale_input");
  // The mask broadcasts to [B, H, Sq, Sk]: a stride of 0 along each dim where it has size 1.
  // With a period along batch, batch b reads entry b % period.
  bool has_mask = ctx.in.size() - (scale_input ? 1 : 0) > 3;
  const int64_t period = ctx.node.attr_int("mask_period", 0);
  int64_t mstride[4] = {0, 0, 0, 0};
  if (has_mask) {
    Dims m = ctx.in[3].shape;
    if (m.size() > 4) throw InputError(ctx.node.describe() + ": mask rank above 4");
    m.insert(m.begin(), 4 - m.size(), 1);
    if (period > 0 && (m[0] != period || B % period != 0))
      throw InputError(ctx.node.describe() + ": mask " + dims_str(ctx.in[3].shape) + " has no period of " +
                       std::to_string(period) + " along a batch of " + std::to_string(B));
    const int64_t full[4] = {period > 0 ? period : B, H, Sq, Sk};
    int64_t st = 1;
    for (int d = 3; d >= 0; --d) {
      if (m[d] != 1 && m[d] != full[d])
        throw InputError(ctx.node.describe() + ": mask " + dims_str(ctx.in[3].shape) + " does not broadcast to " +
                         dims_str(Dims{B, H, Sq, Sk}));
      mstride[d] = m[d] == 1 ? 0 : st;
      st *= m[d];
    }
  } else if (period > 0) {
    throw InputError(ctx.node.describe() + ": mask_period without a mask");
  }
  const int64_t mask_batches = period > 0 ? period : std::max<int64_t>(B, 1);
  // Under a bf16 hint both products take bf16 operands; the mask and softmax stay f32.
  const GemmPrecision precision = gemm_precision(ctx.inference_precision);
  // Heads of at most 16 dims run on the f32 kernel under a bf16 hint too: rounding Q, K and V
  // to bf16 pairs costs more than the dot products save on them (one thread, whole models:
  // ViT 116 -> 95 us, Swin 199 -> 151, Llama 53 -> 34, wav2vec2 289 -> 247; at 32 dims, BERT's,
  // the two kernels were within noise, and the bf16 one is kept from there up).
  const bool bf16_heads = precision == GemmPrecision::bf16 && D > 16;
  // One head: its two products, and ~5 ns per score for the mask and softmax (an exp each).
  const double head_ns =
      gemm_detail::est_ns(2.0 * Sq * Sk * (D + Dv), 4.0 * (Sq * D + Sk * (D + Dv) + Sq * Dv)) + 5.0 * (double)(Sq * Sk);
  return [=](const KernelArgs& a) {
    const float* Q = a.in[0]->as<float>();
    const float* K = a.in[1]->as<float>();
    const float* V = a.in[2]->as<float>();
    const float* M = has_mask ? a.in[3]->as<float>() : nullptr;
    float* O = a.out[0]->as<float>();
    const float scale_now = factor_at ? scale * a.in[factor_at]->as<float>()[0] : scale;
    // Head t = (b, h)'s mask rows and operands; query head h reads KV head h / group.
    auto mask_of = [&](int64_t b, int64_t h) { return M + (b % mask_batches) * mstride[0] + h * mstride[1]; };
    auto operands = [&](int64_t t) {
      const int64_t b = t / H, h = t % H;
      return AttentionHead{Q + at[0].offset + b * at[0].batch + h * at[0].head,
                           at[0].row,
                           K + at[1].offset + b * at[1].batch + (h / group) * at[1].head,
                           at[1].row,
                           V + at[2].offset + b * at[2].batch + (h / group) * at[2].head,
                           at[2].row,
                           O + (b * Sq * H + h) * Dv,
                           H * Dv};
    };
    // One loop over a thread's heads for either precision's head kernel.
    auto run_heads = [&](auto& heads, int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / H, h = t % H;
        const bool more = t + 1 < t1;
        const AttentionHead next = more ? operands(t + 1) : AttentionHead{};
        AttentionBias bias;
        if (M) bias = AttentionBias{mask_of(b, h), mstride[2], mstride[3] != 0};
        heads.head(operands(t), bias, more ? &next : nullptr);
      }
    };
    auto run = [&](int64_t t0, int64_t t1) {
      if (bf16_heads) {  // operands rounded once per head (attention_bf16.hpp)
        Bf16Attention heads(Sq, Sk, D, Dv, scale_now);
        run_heads(heads, t0, t1);
      } else {  // attention_f32.hpp
        F32Attention heads(Sq, Sk, D, Dv, scale_now, precision);
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
  r.add(OpDef{"aiov.Attention", 3, 5, infer_attention, prepare_attention}.with_attrs(
      {float_attr("scale", 1.0), ints_attr("heads_first"), ints_attr("part"), int_attr("grouped_kv", 0),
       int_attr("mask_period", 0), int_attr("scale_input", 0)}));
}

}  // namespace aiov
