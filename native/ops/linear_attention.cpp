// The recurrent sequence mixers of linear-attention and state-space decoders (Gated DeltaNet,
// Mamba), as ONNX opset 27 defines them: LinearAttention (a per-head state matrix updated token
// by token and read by the queries) and CausalConvWithState (the causal depthwise convolution
// before it, carrying its last k - 1 inputs between calls). Both return their new state so a
// decoder runs prefill and single-token steps through one model.
//
// An omitted optional input (the frontend passes an empty [0] tensor for it) takes no part.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "executor/executor.hpp"
#include "ops/attention_common.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

float silu(float x) { return x / (1.0f + std::exp(-x)); }

// ---- LinearAttention --------------------------------------------------------------------
// query [B, T, Hq * dk], key [B, T, Hk * dk], value [B, T, Hk * dv]; state [B, Hk, dk, dv].

enum LinearInput { kQuery, kKey, kValue, kPastState, kDecay, kBeta };

bool gated(const std::string& rule) { return rule == "gated" || rule == "gated_delta"; }
bool delta(const std::string& rule) { return rule == "delta" || rule == "gated_delta"; }

std::vector<PortInfo> infer_linear_attention(const InferContext& c) {
  const Node& n = c.node;
  const ElementType t = c.in[kQuery].type;
  for (size_t i : {kKey, kValue})
    if (c.in[i].type != t || !widenable_float(t))
      throw InputError(n.describe() + ": query, key and value must be of one float type, got " + type_name(t) + ", " +
                       type_name(c.in[kKey].type) + " and " + type_name(c.in[kValue].type));
  const std::string rule = n.attr_str("update_rule");
  if (gated(rule) != input_given(c.in, kDecay))
    throw InputError(n.describe() + ": update_rule '" + rule + "' " + (gated(rule) ? "needs" : "takes no") +
                     " decay input");
  if (delta(rule) != input_given(c.in, kBeta))
    throw InputError(n.describe() + ": update_rule '" + rule + "' " + (delta(rule) ? "needs" : "takes no") +
                     " beta input");
  for (size_t i : {kDecay, kBeta})
    if (input_given(c.in, i) && c.in[i].type != t)
      throw InputError(n.describe() + ": " + (i == kDecay ? "decay" : "beta") + " must be of the query's type " +
                       type_name(t) + ", got " + type_name(c.in[i].type));
  const bool past = input_given(c.in, kPastState);
  if (past && !widenable_float(c.in[kPastState].type))
    throw InputError(n.describe() + ": past_state must be a float tensor, got " + type_name(c.in[kPastState].type));
  const int64_t Hq = n.attr_int("q_num_heads"), Hk = n.attr_int("kv_num_heads");
  if (Hq % Hk != 0)
    throw InputError(n.describe() + ": q_num_heads " + std::to_string(Hq) + " must be a multiple of kv_num_heads " +
                     std::to_string(Hk));
  const ElementType state_type = past ? c.in[kPastState].type : t;
  const PartialShape &q = c.in[kQuery].shape, &v = c.in[kValue].shape;
  for (size_t i : {kQuery, kKey, kValue})
    if (c.in[i].shape.rank_known && c.in[i].shape.rank() != 3)
      throw InputError(n.describe() + ": query, key and value must be [batch, seq, heads * head_size], got " +
                       c.in[i].shape.str());
  if (!q.rank_known || !v.rank_known)
    return {PortInfo{t, PartialShape::dynamic_rank()}, PortInfo{state_type, PartialShape::dynamic_rank()}};
  const int64_t dk = dim_div(q.dims[2], Hq), dv = dim_div(v.dims[2], Hk);
  return {PortInfo{t, PartialShape(Dims{q.dims[0], q.dims[1], dim_mul(Hq, dv)})},
          PortInfo{state_type, PartialShape(Dims{q.dims[0], Hk, dk, dv})}};
}

KernelFn prepare_linear_attention(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  auto fail = [&](const std::string& what) { throw InputError(n.describe() + ": " + what); };
  const Dims &q = ctx.in[kQuery].shape, &k = ctx.in[kKey].shape, &v = ctx.in[kValue].shape;
  const int64_t B = q[0], T = q[1], Hq = n.attr_int("q_num_heads"), Hk = n.attr_int("kv_num_heads");
  if (q[2] % Hq != 0 || v[2] % Hk != 0)
    fail("query " + dims_str(q) + " and value " + dims_str(v) + " do not split into " + std::to_string(Hq) + " and " +
         std::to_string(Hk) + " heads");
  const int64_t dk = q[2] / Hq, dv = v[2] / Hk;
  if (k != Dims{B, T, Hk * dk} || v[0] != B || v[1] != T)
    fail("query " + dims_str(q) + ", key " + dims_str(k) + " and value " + dims_str(v) +
         " do not agree (key must be [" + std::to_string(B) + ", " + std::to_string(T) + ", " +
         std::to_string(Hk * dk) + "])");
  const bool past = input_given(ctx.in, kPastState);
  if (past && ctx.in[kPastState].shape != Dims{B, Hk, dk, dv})
    fail("past_state must be " + dims_str(Dims{B, Hk, dk, dv}) + ", got " + dims_str(ctx.in[kPastState].shape));
  const std::string rule = n.attr_str("update_rule");
  const bool gate = gated(rule), correct = delta(rule);
  int64_t decay_width = 0, beta_width = 0;  // per token: values per kv head (decay) or in all (beta)
  if (gate) {
    const Dims& d = ctx.in[kDecay].shape;
    if (d.size() != 3 || d[0] != B || d[1] != T || (d[2] != Hk && d[2] != Hk * dk))
      fail("decay must be [" + std::to_string(B) + ", " + std::to_string(T) + ", " + std::to_string(Hk) + " or " +
           std::to_string(Hk * dk) + "], got " + dims_str(d));
    decay_width = d[2] / Hk;
  }
  if (correct) {
    const Dims& b = ctx.in[kBeta].shape;
    if (b.size() != 3 || b[0] != B || b[1] != T || (b[2] != Hk && b[2] != 1))
      fail("beta must be [" + std::to_string(B) + ", " + std::to_string(T) + ", " + std::to_string(Hk) +
           " or 1], got " + dims_str(b));
    beta_width = b[2];
  }
  const double scale_attr = n.attr_float("scale");
  const float scale = scale_attr != 0.0 ? (float)scale_attr : (float)(1.0 / std::sqrt((double)dk));
  return [=](const KernelArgs& a) {
    const float* Q = a.in[kQuery]->as<float>();
    const float* K = a.in[kKey]->as<float>();
    const float* V = a.in[kValue]->as<float>();
    const float* S0 = past ? a.in[kPastState]->as<float>() : nullptr;
    const float* G = gate ? a.in[kDecay]->as<float>() : nullptr;
    const float* Bt = correct ? a.in[kBeta]->as<float>() : nullptr;
    float* Y = a.out[0]->as<float>();
    float* S = a.out[1]->as<float>();  // the state, updated in place token by token
    const int64_t group = Hq / Hk;
    auto run = [&](int64_t t0, int64_t t1) {
      std::vector<float> update((size_t)dv);
      for (int64_t bh = t0; bh < t1; ++bh) {
        const int64_t b = bh / Hk, h = bh % Hk;
        float* state = S + bh * dk * dv;
        if (S0)
          std::memcpy(state, S0 + bh * dk * dv, sizeof(float) * (size_t)(dk * dv));
        else
          std::fill(state, state + dk * dv, 0.0f);
        for (int64_t t = 0; t < T; ++t) {
          const int64_t token = b * T + t;
          const float* kt = K + (token * Hk + h) * dk;
          const float* vt = V + (token * Hk + h) * dv;
          if (G) {
            const float* g = G + (token * Hk + h) * decay_width;
            for (int64_t d = 0; d < dk; ++d) {
              const float f = std::exp(g[decay_width == 1 ? 0 : d]);
              for (int64_t m = 0; m < dv; ++m) state[d * dv + m] *= f;
            }
          }
          std::copy(vt, vt + dv, update.begin());
          if (Bt) {
            const float beta = Bt[token * beta_width + (beta_width == 1 ? 0 : h)];
            for (int64_t m = 0; m < dv; ++m) {
              float retrieved = 0.0f;
              for (int64_t d = 0; d < dk; ++d) retrieved += state[d * dv + m] * kt[d];
              update[m] = beta * (vt[m] - retrieved);
            }
          }
          for (int64_t d = 0; d < dk; ++d)
            for (int64_t m = 0; m < dv; ++m) state[d * dv + m] += kt[d] * update[m];
          for (int64_t hq = h * group; hq < (h + 1) * group; ++hq) {
            const float* qt = Q + (token * Hq + hq) * dk;
            float* out = Y + (token * Hq + hq) * dv;
            std::fill(out, out + dv, 0.0f);
            for (int64_t d = 0; d < dk; ++d)
              for (int64_t m = 0; m < dv; ++m) out[m] += qt[d] * state[d * dv + m];
            for (int64_t m = 0; m < dv; ++m) out[m] *= scale;
          }
        }
      }
    };
    // One key head: per token, a pass over its [dk, dv] state for the update, one per query
    // head reading it, and one each for the decay and the delta rule's retrieval; ~0.5 ns per
    // state element a pass (contiguous multiply-adds the compiler vectorizes).
    const double passes = 1.0 + (double)group + (G ? 1.0 : 0.0) + (Bt ? 1.0 : 0.0);
    if (a.ctx->pool)
      a.ctx->pool->parallel_for_units(B * Hk, 0.5 * passes * (double)(T * dk * dv), run, a.ctx->max_threads);
    else
      run(0, B * Hk);
  };
}

// ---- CausalConvWithState ----------------------------------------------------------------
// input [B, C, L], weight [C, 1, k], bias [C], state [B, C, k - 1]: each channel convolved
// with its own kernel over (state, input); the new state is the last k - 1 of that sequence.

enum ConvInput { kInput, kWeight, kBias, kPast };

std::vector<PortInfo> infer_causal_conv(const InferContext& c) {
  const Node& n = c.node;
  const ElementType t = c.in[kInput].type;
  if (!widenable_float(t)) throw InputError(n.describe() + ": input must be a float tensor, got " + type_name(t));
  for (size_t i : {kWeight, kBias, kPast})
    if (input_given(c.in, i) && c.in[i].type != t)
      throw InputError(n.describe() + ": weight, bias and past_state must be of the input's type " + type_name(t) +
                       ", got " + type_name(c.in[i].type));
  const PartialShape &x = c.in[kInput].shape, &w = c.in[kWeight].shape;
  if ((x.rank_known && x.rank() != 3) || (w.rank_known && w.rank() != 3))
    throw InputError(n.describe() + ": input must be [batch, channels, length] and weight [channels, 1, k], got " +
                     x.str() + " and " + w.str());
  if (!x.rank_known) return {PortInfo{t, x}, PortInfo{t, PartialShape::dynamic_rank()}};
  const int64_t k = w.rank_known && w.dims[2] >= 1 ? w.dims[2] : kDynamic;
  return {PortInfo{t, x}, PortInfo{t, PartialShape(Dims{x.dims[0], x.dims[1], k < 0 ? kDynamic : k - 1})}};
}

KernelFn prepare_causal_conv(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  const Dims &x = ctx.in[kInput].shape, &w = ctx.in[kWeight].shape;
  const int64_t B = x[0], C = x[1], L = x[2], K = w[2];
  if (w[0] != C || w[1] != 1 || K < 1)
    throw InputError(n.describe() + ": weight must be [" + std::to_string(C) + ", 1, k] with k >= 1, got " +
                     dims_str(w));
  const bool bias = input_given(ctx.in, kBias), past = input_given(ctx.in, kPast);
  if (bias && ctx.in[kBias].shape != Dims{C})
    throw InputError(n.describe() + ": bias must be [" + std::to_string(C) + "], got " + dims_str(ctx.in[kBias].shape));
  if (past && ctx.in[kPast].shape != Dims{B, C, K - 1})
    throw InputError(n.describe() + ": past_state must be " + dims_str(Dims{B, C, K - 1}) + ", got " +
                     dims_str(ctx.in[kPast].shape));
  const bool act = n.attr_str("activation") != "none";
  return [=](const KernelArgs& a) {
    const float* X = a.in[kInput]->as<float>();
    const float* W = a.in[kWeight]->as<float>();
    const float* Bs = bias ? a.in[kBias]->as<float>() : nullptr;
    const float* P = past ? a.in[kPast]->as<float>() : nullptr;
    float* Y = a.out[0]->as<float>();
    float* state = a.out[1]->as<float>();
    std::vector<float> seq((size_t)(K - 1 + L));
    for (int64_t bc = 0; bc < B * C; ++bc) {
      const int64_t c = bc % C;
      if (P)
        std::copy(P + bc * (K - 1), P + (bc + 1) * (K - 1), seq.begin());
      else
        std::fill(seq.begin(), seq.begin() + (K - 1), 0.0f);
      std::copy(X + bc * L, X + (bc + 1) * L, seq.begin() + (K - 1));
      const float* wc = W + c * K;
      for (int64_t t = 0; t < L; ++t) {
        float sum = Bs ? Bs[c] : 0.0f;
        for (int64_t i = 0; i < K; ++i) sum += wc[i] * seq[(size_t)(t + i)];
        Y[bc * L + t] = act ? silu(sum) : sum;
      }
      std::copy(seq.end() - (K - 1), seq.end(), state + bc * (K - 1));
    }
  };
}

}  // namespace

void register_linear_attention_ops(OpRegistry& r) {
  r.add(OpDef{"LinearAttention", 3, 6, infer_linear_attention, widened<prepare_linear_attention>}.with_attrs(
      {int_attr("q_num_heads", 1).at_least(1).must_be_given(), int_attr("kv_num_heads", 1).at_least(1).must_be_given(),
       float_attr("scale", 0.0), int_attr("chunk_size", 64).at_least(1),
       str_attr("update_rule", "gated_delta", {"linear", "gated", "delta", "gated_delta"})}));
  r.add(OpDef{"CausalConvWithState", 2, 4, infer_causal_conv, widened<prepare_causal_conv>}.with_attrs(
      {str_attr("activation", "none", {"none", "silu", "swish"})}));
}

}  // namespace aiov
