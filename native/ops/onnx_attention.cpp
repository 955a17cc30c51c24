// Attention as ONNX defines it (opsets 23-25): softmax(scale * Q K^T [softcapped] + bias) V per
// (batch, query head), where the bias composes a bool or float mask, the causal frontier, a
// sliding window and per-batch key padding; key/value heads are shared by groups of query heads
// (GQA/MQA); past keys and values are concatenated in front of the new ones. Q, K and V come
// either as [batch, heads, seq, head_size] or as [batch, seq, heads * head_size]; the kernel
// reads either layout through strides, so nothing is transposed or concatenated in memory
// unless the node returns the present key/value.
//
// An omitted optional input (the frontend passes an empty [0] tensor for it) takes no part.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/attention_bf16.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_threads.hpp"
#include "kernels/softmax_row.hpp"
#include "ops/attention_common.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

enum AttentionInput { kQ, kK, kV, kMask, kPastKey, kPastValue, kNonpad };
// What the optional fourth output holds (qk_matmul_output_mode).
enum QkMode { kRawScores, kSoftcapped, kWithBias, kProbabilities };
// Query rows whose scores are computed together: bounds the scratch to kRowBlock x keys.
constexpr int64_t kRowBlock = 32;

std::vector<PortInfo> infer_onnx_attention(const InferContext& c) {
  const Node& n = c.node;
  const ElementType t1 = c.in[kQ].type, t2 = c.in[kV].type;
  if (!widenable_float(t1) || c.in[kK].type != t1 || !widenable_float(t2))
    throw InputError(n.describe() + ": expected Q and K of one float type (f32, f16, bf16) and a float V, got " +
                     type_name(t1) + ", " + type_name(c.in[kK].type) + " and " + type_name(t2));
  if (input_given(c.in, kMask)) {
    const ElementType m = c.in[kMask].type;
    if (m != ElementType::boolean && m != t1)
      throw InputError(n.describe() + ": attn_mask must be boolean or of Q's type " + type_name(t1) + ", got " +
                       type_name(m));
  }
  if (input_given(c.in, kPastKey) != input_given(c.in, kPastValue))
    throw InputError(n.describe() + ": past_key and past_value must be given together");
  if (input_given(c.in, kNonpad)) {
    if (c.in[kNonpad].type != ElementType::i64)
      throw InputError(n.describe() + ": nonpad_kv_seqlen must be i64, got " + type_name(c.in[kNonpad].type));
    if (input_given(c.in, kPastKey))
      throw InputError(n.describe() + ": nonpad_kv_seqlen cannot be combined with past_key and past_value");
  }
  const int64_t outputs = n.attr_int("output_count");
  std::vector<PortInfo> out{{t1, PartialShape::dynamic_rank()}};
  if (outputs >= 3) {
    out.push_back({t1, PartialShape::dynamic_rank()});
    out.push_back({t2, PartialShape::dynamic_rank()});
  }
  if (outputs == 4) out.push_back({t1, PartialShape::dynamic_rank()});
  const PartialShape &q = c.in[kQ].shape, &k = c.in[kK].shape, &v = c.in[kV].shape;
  if (!q.rank_known || !k.rank_known || !v.rank_known) return out;
  if ((q.rank() != 3 && q.rank() != 4) || k.rank() != q.rank() || v.rank() != q.rank())
    throw InputError(n.describe() + ": Q, K and V must all be 4-D [batch, heads, seq, head_size] or all 3-D " +
                     "[batch, seq, hidden], got " + q.str() + ", " + k.str() + " and " + v.str());
  const int64_t hq_attr = n.attr_int("q_num_heads"), hk_attr = n.attr_int("kv_num_heads");
  int64_t B = q.dims[0], Hq, Hk, Sq, Skv, D, Dv;
  if (q.rank() == 3) {
    if (hq_attr <= 0 || hk_attr <= 0)
      throw InputError(n.describe() + ": 3-D Q, K and V need the q_num_heads and kv_num_heads attributes");
    for (auto [dim, heads, what] : {std::tuple{q.dims[2], hq_attr, "Q"}, std::tuple{k.dims[2], hk_attr, "K"},
                                    std::tuple{v.dims[2], hk_attr, "V"}})
      if (dim >= 0 && dim % heads != 0)
        throw InputError(n.describe() + ": the hidden size " + std::to_string(dim) + " of " + what +
                         " is not a multiple of its " + std::to_string(heads) + " heads");
    Hq = hq_attr, Hk = hk_attr, Sq = q.dims[1], Skv = k.dims[1];
    D = dim_div(q.dims[2], Hq), Dv = dim_div(v.dims[2], Hk);
  } else {
    Hq = q.dims[1], Hk = k.dims[1], Sq = q.dims[2], Skv = k.dims[2], D = q.dims[3], Dv = v.dims[3];
  }
  int64_t total = Skv;
  if (input_given(c.in, kPastKey)) {
    const PartialShape& p = c.in[kPastKey].shape;
    total = p.rank_known && p.rank() == 4 ? dim_sum(p.dims[2], Skv) : kDynamic;
  }
  out[0].shape = q.rank() == 3 ? PartialShape(Dims{B, Sq, dim_mul(Hq, Dv)}) : PartialShape(Dims{B, Hq, Sq, Dv});
  if (outputs >= 3) {
    out[1].shape = PartialShape(Dims{B, Hk, total, D});
    out[2].shape = PartialShape(Dims{B, Hk, total, Dv});
  }
  if (outputs == 4) out[3].shape = PartialShape(Dims{B, Hq, Sq, total});
  return out;
}

// Everything the kernel needs, found from the concrete shapes once per plan.
struct AttentionPlan {
  int64_t B, Hq, Hk, Sq, Skv, P, T, D, Dv;
  bool three_d;
  float scale, softcap;
  bool causal;
  int64_t left, right;  // window bounds, -1: unbounded
  int64_t qk_mode;
  size_t outputs;
  bool has_mask, bool_mask, has_past, has_nonpad;
  int64_t mask_len = 0;                // the mask's key dimension (keys beyond it are masked)
  int64_t mask_stride[3] = {0, 0, 0};  // per batch, query head, query row (0: broadcast)
  bool any_bias() const { return has_mask || causal || left >= 0 || right >= 0 || has_nonpad; }
};

AttentionPlan plan_attention(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  auto fail = [&](const std::string& what) { throw InputError(n.describe() + ": " + what); };
  const Dims &q = ctx.in[kQ].shape, &k = ctx.in[kK].shape, &v = ctx.in[kV].shape;
  AttentionPlan p{};
  p.three_d = q.size() == 3;
  p.B = q[0];
  if (p.three_d) {
    p.Hq = n.attr_int("q_num_heads"), p.Hk = n.attr_int("kv_num_heads");
    p.Sq = q[1], p.Skv = k[1], p.D = q[2] / p.Hq, p.Dv = v[2] / p.Hk;
    if (k[2] != p.Hk * p.D || v[1] != p.Skv || k[0] != p.B || v[0] != p.B)
      fail("Q " + dims_str(q) + " (" + std::to_string(p.Hq) + " heads), K " + dims_str(k) + " and V " + dims_str(v) +
           " (" + std::to_string(p.Hk) + " heads) do not agree");
  } else {
    p.Hq = q[1], p.Sq = q[2], p.D = q[3], p.Hk = k[1], p.Skv = k[2], p.Dv = v[3];
    if (k[0] != p.B || v[0] != p.B || k[3] != p.D || v[1] != p.Hk || v[2] != p.Skv)
      fail("Q " + dims_str(q) + ", K " + dims_str(k) + " and V " + dims_str(v) +
           " do not agree ([batch, heads, seq, head_size], K and V with the same heads and seq)");
  }
  if (p.Hk <= 0 || p.Hq % p.Hk != 0)
    fail("the " + std::to_string(p.Hq) + " query heads are not a multiple of the " + std::to_string(p.Hk) +
         " key/value heads");
  p.has_past = input_given(ctx.in, kPastKey);
  p.P = 0;
  if (p.has_past) {
    const Dims &pk = ctx.in[kPastKey].shape, &pv = ctx.in[kPastValue].shape;
    if (pk.size() != 4 || pv.size() != 4 || pk[0] != p.B || pk[1] != p.Hk || pk[3] != p.D || pv[0] != p.B ||
        pv[1] != p.Hk || pv[2] != pk[2] || pv[3] != p.Dv)
      fail("past_key " + dims_str(pk) + " and past_value " + dims_str(pv) + " must be [" + std::to_string(p.B) + ", " +
           std::to_string(p.Hk) + ", past_seq, head_size] with head sizes " + std::to_string(p.D) + " and " +
           std::to_string(p.Dv));
    p.P = pk[2];
  }
  p.T = p.P + p.Skv;
  p.has_nonpad = input_given(ctx.in, kNonpad);
  if (p.has_nonpad && ctx.in[kNonpad].shape != Dims{p.B})
    fail("nonpad_kv_seqlen must be [" + std::to_string(p.B) + "], got " + dims_str(ctx.in[kNonpad].shape));
  p.has_mask = input_given(ctx.in, kMask);
  if (p.has_mask) {
    const Dims& m = ctx.in[kMask].shape;
    p.bool_mask = ctx.in[kMask].type == ElementType::boolean;
    if (m.empty() || m.size() > 4) fail("attn_mask must have rank 1 to 4, got " + dims_str(m));
    p.mask_len = m.back();
    if (p.mask_len > p.T)
      fail("attn_mask " + dims_str(m) + " has more keys than the " + std::to_string(p.T) + " attended");
    // Leading dims align to [batch, q_heads, q_seq] from the right; size 1 broadcasts.
    const int64_t full[3] = {p.B, p.Hq, p.Sq};
    int64_t stride = p.mask_len;
    for (int d = 2, md = (int)m.size() - 2; d >= 0; --d, --md) {
      const int64_t size = md >= 0 ? m[md] : 1;
      if (size != 1 && size != full[d])
        fail("attn_mask " + dims_str(m) + " does not broadcast to " + dims_str(Dims{p.B, p.Hq, p.Sq, p.T}));
      p.mask_stride[d] = size == 1 ? 0 : stride;
      stride *= size;
    }
  }
  const double scale = n.attr_float("scale");
  p.scale = scale != 0.0 ? (float)scale : (float)(1.0 / std::sqrt((double)std::max<int64_t>(p.D, 1)));
  p.softcap = (float)n.attr_float("softcap");
  p.causal = n.attr_int("is_causal") != 0;
  p.left = n.attr_int("left_window_size");
  p.right = n.attr_int("right_window_size");
  p.qk_mode = n.attr_int("qk_matmul_output_mode");
  p.outputs = ctx.out.size();
  return p;
}

// Writes the present key or value [B, Hk, P + Skv, width]: the past rows, then the new ones
// (read in the 3-D or 4-D layout).
void write_present(const AttentionPlan& p, const float* past, const float* cur, int64_t width, float* dst, int64_t bh) {
  const int64_t b = bh / p.Hk, h = bh % p.Hk;
  float* out = dst + bh * p.T * width;
  if (p.P) std::memcpy(out, past + bh * p.P * width, sizeof(float) * (size_t)(p.P * width));
  out += p.P * width;
  for (int64_t s = 0; s < p.Skv; ++s) {
    const float* row = p.three_d ? cur + ((b * p.Skv + s) * p.Hk + h) * width : cur + (bh * p.Skv + s) * width;
    std::memcpy(out + s * width, row, sizeof(float) * (size_t)width);
  }
}

KernelFn prepare_onnx_attention(const PrepareContext& ctx) {
  const AttentionPlan p = plan_attention(ctx);
  const GemmPrecision precision = gemm_precision(ctx.inference_precision);
  return [p, precision](const KernelArgs& a) {
    const float* Q = a.in[kQ]->as<float>();
    const float* K = a.in[kK]->as<float>();
    const float* V = a.in[kV]->as<float>();
    const float* past_k = p.has_past ? a.in[kPastKey]->as<float>() : nullptr;
    const float* past_v = p.has_past ? a.in[kPastValue]->as<float>() : nullptr;
    const int64_t* nonpad = p.has_nonpad ? a.in[kNonpad]->as<int64_t>() : nullptr;
    const void* mask = p.has_mask ? a.in[kMask]->data : nullptr;
    float* Y = a.out[0]->as<float>();
    float* qk = p.outputs == 4 ? a.out[3]->as<float>() : nullptr;
    ThreadPool* pool = a.ctx->pool;
    auto tasks = [&](int64_t count, double unit_ns, const std::function<void(int64_t, int64_t)>& fn) {
      if (pool)
        pool->parallel_for_units(count, unit_ns, fn, a.ctx->max_threads);
      else
        fn(0, count);
    };
    if (p.outputs >= 3) {
      float* present_k = a.out[1]->as<float>();
      float* present_v = a.out[2]->as<float>();
      // A head's present key and value: copies of its T rows.
      tasks(p.B * p.Hk, gemm_detail::est_ns(0, 8.0 * (double)(p.T * (p.D + p.Dv))), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          write_present(p, past_k, K, p.D, present_k, t);
          write_present(p, past_v, V, p.Dv, present_v, t);
        }
      });
    }
    const int64_t group = p.Hq / p.Hk;
    const int64_t ldq = p.three_d ? p.Hq * p.D : p.D, ldy = p.three_d ? p.Hq * p.Dv : p.Dv;
    const int64_t ldk = p.three_d ? p.Hk * p.D : p.D, ldv = p.three_d ? p.Hk * p.Dv : p.Dv;
    const float neg_inf = -INFINITY;
    // Row i of query head t (batch b, head h), its scaled scores in place: softcapped, biased,
    // made probabilities, each form exposed as the fourth output asks. offset: keys before the
    // query block; valid_keys: keys not padding.
    auto to_probabilities = [&](int64_t t, int64_t b, int64_t h, int64_t i, int64_t offset, int64_t valid_keys,
                                float* row) {
      float* qk_row = qk ? qk + (t * p.Sq + i) * p.T : nullptr;
      auto expose = [&](int64_t mode) {
        if (qk_row && p.qk_mode == mode) std::memcpy(qk_row, row, sizeof(float) * (size_t)p.T);
      };
      expose(kRawScores);
      if (p.softcap > 0.0f)
        for (int64_t j = 0; j < p.T; ++j) row[j] = p.softcap * std::tanh(row[j] / p.softcap);
      expose(kSoftcapped);
      bool attends = true;
      if (p.any_bias()) {
        attends = false;
        const int64_t moff = b * p.mask_stride[0] + h * p.mask_stride[1] + i * p.mask_stride[2];
        const uint8_t* mb = p.has_mask && p.bool_mask ? static_cast<const uint8_t*>(mask) + moff : nullptr;
        const float* mf = p.has_mask && !p.bool_mask ? static_cast<const float*>(mask) + moff : nullptr;
        const int64_t pos = i + offset;  // the query's absolute position
        for (int64_t j = 0; j < p.T; ++j) {
          float bias = 0.0f;
          if (p.has_mask) bias = j >= p.mask_len ? neg_inf : mb ? (mb[j] ? 0.0f : neg_inf) : mf[j];
          const bool outside = (p.causal && j > pos) || (p.left >= 0 && pos - j > p.left) ||
                               (p.right >= 0 && j - pos > p.right) || j >= valid_keys;
          if (outside) bias = neg_inf;
          row[j] += bias;
          attends |= bias != neg_inf;
        }
      }
      expose(kWithBias);
      // A row with no key to attend gives zeros (not the NaN of an all -inf softmax).
      if (attends)
        softmax_row(row, row, p.T);
      else
        std::fill(row, row + p.T, 0.0f);
      expose(kProbabilities);
    };
    auto run = [&](int64_t t0, int64_t t1) {
      if (precision == GemmPrecision::bf16 && p.P == 0 && p.T > 0) {  // operands rounded once per head
        Bf16Attention heads(p.Sq, p.T, p.D, p.Dv, p.scale);
        auto operands = [&](int64_t t) {
          const int64_t b = t / p.Hq, h = t % p.Hq, hk = h / group, bhk = b * p.Hk + hk;
          return AttentionHead{p.three_d ? Q + (b * p.Sq * p.Hq + h) * p.D : Q + t * p.Sq * p.D,        ldq,
                               p.three_d ? K + (b * p.Skv * p.Hk + hk) * p.D : K + bhk * p.Skv * p.D,   ldk,
                               p.three_d ? V + (b * p.Skv * p.Hk + hk) * p.Dv : V + bhk * p.Skv * p.Dv, ldv,
                               p.three_d ? Y + (b * p.Sq * p.Hq + h) * p.Dv : Y + t * p.Sq * p.Dv,      ldy};
        };
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t b = t / p.Hq, h = t % p.Hq;
          const int64_t offset = nonpad ? nonpad[b] - p.Sq : 0, valid_keys = nonpad ? nonpad[b] : p.T;
          const bool more = t + 1 < t1;
          const AttentionHead next = more ? operands(t + 1) : AttentionHead{};
          heads.head(
              operands(t),
              [&](int64_t row0, int64_t rows, float* scores, int64_t ld) {
                for (int64_t r = 0; r < rows; ++r)
                  to_probabilities(t, b, h, row0 + r, offset, valid_keys, scores + r * ld);
              },
              more ? &next : nullptr);
        }
        return;
      }
      thread_local std::vector<float> scores;
      scores.resize((size_t)(kRowBlock * std::max<int64_t>(p.T, 1)));
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / p.Hq, h = t % p.Hq, hk = h / group, bhk = b * p.Hk + hk;
        // The new keys/values of this head (their rows are ldk/ldv apart) and its past ones.
        const float* kh = p.three_d ? K + (b * p.Skv * p.Hk + hk) * p.D : K + bhk * p.Skv * p.D;
        const float* vh = p.three_d ? V + (b * p.Skv * p.Hk + hk) * p.Dv : V + bhk * p.Skv * p.Dv;
        const float* pkh = past_k ? past_k + bhk * p.P * p.D : nullptr;
        const float* pvh = past_v ? past_v + bhk * p.P * p.Dv : nullptr;
        // Keys before the query block: the past, or the padding-aware offset of an external cache.
        const int64_t offset = p.has_past ? p.P : (nonpad ? nonpad[b] - p.Sq : 0);
        const int64_t valid_keys = nonpad ? nonpad[b] : p.T;
        for (int64_t i0 = 0; i0 < p.Sq; i0 += kRowBlock) {
          const int64_t rows = std::min(kRowBlock, p.Sq - i0);
          const float* qrow = p.three_d ? Q + ((b * p.Sq + i0) * p.Hq + h) * p.D : Q + (t * p.Sq + i0) * p.D;
          float* yrow = p.three_d ? Y + ((b * p.Sq + i0) * p.Hq + h) * p.Dv : Y + (t * p.Sq + i0) * p.Dv;
          float* S = scores.data();
          if (p.P) gemm(precision, false, true, rows, p.P, p.D, p.scale, qrow, ldq, pkh, p.D, 0.0f, S, p.T, nullptr);
          if (p.Skv)
            gemm(precision, false, true, rows, p.Skv, p.D, p.scale, qrow, ldq, kh, ldk, 0.0f, S + p.P, p.T, nullptr);
          for (int64_t r = 0; r < rows; ++r) {
            to_probabilities(t, b, h, i0 + r, offset, valid_keys, S + r * p.T);
          }
          if (p.P) gemm(precision, false, false, rows, p.Dv, p.P, 1.0f, S, p.T, pvh, p.Dv, 0.0f, yrow, ldy, nullptr);
          if (p.Skv)
            gemm(precision, false, false, rows, p.Dv, p.Skv, 1.0f, S + p.P, p.T, vh, ldv, p.P ? 1.0f : 0.0f, yrow, ldy,
                 nullptr);
          if (p.T == 0)
            for (int64_t r = 0; r < rows; ++r) std::fill(yrow + r * ldy, yrow + r * ldy + p.Dv, 0.0f);
        }
      }
    };
    // One query head: its two products over all T keys, and ~5 ns per score for the bias and
    // softmax (an exp each).
    const double head_ns =
        gemm_detail::est_ns(2.0 * p.Sq * p.T * (p.D + p.Dv), 4.0 * (p.Sq * p.D + p.T * (p.D + p.Dv) + p.Sq * p.Dv)) +
        5.0 * (double)(p.Sq * p.T);
    tasks(p.B * p.Hq, head_ns, run);
  };
}

std::string softmax_precision_is_a_float_type(const Node&, const std::vector<PortInfo>&, const Attr& value) {
  const int64_t code = std::get<int64_t>(value);
  // ONNX type codes: FLOAT, FLOAT16, DOUBLE, BFLOAT16 (0: Q's type).
  for (int64_t ok : {0, 1, 10, 11, 16})
    if (code == ok) return "";
  return "one of the ONNX float type codes 1, 10, 11 or 16";
}

std::string output_count_is_1_3_or_4(const Node&, const std::vector<PortInfo>&, const Attr& value) {
  const int64_t count = std::get<int64_t>(value);
  return count == 1 || count == 3 || count == 4 ? "" : "1 (Y), 3 (Y, present key and value) or 4 (and the scores)";
}

// Only in OpenVINO's ScaledDotProductAttention-13 form (4-D, mask, causal; the scale is its
// fifth input) can the op be an IR layer: the attributes that form lacks are not IR attributes.
AttrSpec onnx_only(AttrSpec spec) { return spec.ir_name("-"); }

}  // namespace

void register_onnx_attention_ops(OpRegistry& r) {
  r.add(OpDef{"Attention", 3, 7, infer_onnx_attention, widened<prepare_onnx_attention>}
            .with_attrs({onnx_only(float_attr("scale", 0.0)), bool_attr("is_causal", false).ir_name("causal"),
                         onnx_only(int_attr("q_num_heads", 0).at_least(0)),
                         onnx_only(int_attr("kv_num_heads", 0).at_least(0)),
                         onnx_only(float_attr("softcap", 0.0).at_least(0.0)),
                         onnx_only(int_attr("qk_matmul_output_mode", 0).between(0, 3)),
                         onnx_only(int_attr("softmax_precision", 0).checked_by(softmax_precision_is_a_float_type)),
                         onnx_only(int_attr("left_window_size", -1).at_least(-1)),
                         onnx_only(int_attr("right_window_size", -1).at_least(-1)),
                         int_attr("output_count", 1).checked_by(output_count_is_1_3_or_4).ir_name("-").onnx_name("-")})
            .ir({"ScaledDotProductAttention"}, "opset13"));
}

}  // namespace aiov
