// The small ops ONNX added for decoder-only language models around Attention: RotaryEmbedding
// (rotating query/key head vectors by their position), TensorScatter (writing new keys or
// values into a fixed-size KV cache) and SwiGLU (the gated feed-forward activation).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "ops/attention_common.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// ---- RotaryEmbedding --------------------------------------------------------------------
// X is [batch, heads, seq, head_size] or [batch, seq, heads * head_size]; each head vector's
// first rotary_embedding_dim values are rotated pairwise, pairs being (k, k + dim/2) or, when
// interleaved, (2k, 2k + 1); the angles' cos/sin come from the caches, row `position_ids[b, s]`
// of [max_position, dim/2] caches, or row (b, s) of [batch, seq, dim/2] caches without ids
// (a batch or seq of 1 broadcast, as the graph's cos and sin were before fuse_rotary_embedding).

std::vector<PortInfo> infer_rotary_embedding(const InferContext& c) {
  const Node& n = c.node;
  const ElementType t = c.in[0].type;
  if (!widenable_float(t) || c.in[1].type != t || c.in[2].type != t)
    throw InputError(n.describe() + ": X, cos_cache and sin_cache must be of one float type, got " + type_name(t) +
                     ", " + type_name(c.in[1].type) + " and " + type_name(c.in[2].type));
  const PartialShape& x = c.in[0].shape;
  if (x.rank_known && x.rank() != 3 && x.rank() != 4)
    throw InputError(n.describe() + ": X must be [batch, heads, seq, head_size] or [batch, seq, hidden], got " +
                     x.str());
  if (x.rank_known && x.rank() == 3 && n.attr_int("num_heads") <= 0)
    throw InputError(n.describe() + ": a 3-D X needs the num_heads attribute");
  const bool ids = c.in.size() > 3;
  if (ids && c.in[3].type != ElementType::i64 && c.in[3].type != ElementType::i32)
    throw InputError(n.describe() + ": position_ids must be i64 or i32, got " + type_name(c.in[3].type));
  const int64_t cache_rank = ids ? 2 : 3;
  for (size_t i : {1, 2})
    if (c.in[i].shape.rank_known && c.in[i].shape.rank() != cache_rank)
      throw InputError(n.describe() + ": " + (i == 1 ? "cos_cache" : "sin_cache") + " must have rank " +
                       std::to_string(cache_rank) +
                       (ids ? " ([max_position, rotary_dim / 2]) with position_ids"
                            : " ([batch, seq, rotary_dim / 2]) without position_ids") +
                       ", got " + c.in[i].shape.str());
  PartialShape out = x;
  // A 4-D X rotated whole has head_size = 2 * the caches' last dim (which prepare checks).
  const PartialShape& cache = c.in[1].shape;
  if (x.rank_known && x.rank() == 4 && x.dims[3] < 0 && n.attr_int("rotary_embedding_dim") == 0 && cache.rank_known &&
      cache.rank() > 0 && cache.dims.back() > 0)
    out.dims[3] = 2 * cache.dims.back();
  return {PortInfo{t, out}};
}

// The rotation of `heads` head vectors `head_stride` apart that share one position's angles:
// pairs (k, k + half) (contiguous halves, vectorized in the CPU's clone) or, interleaved,
// (2k, 2k + 1); values past the rotary dims are copied.
AIOV_MULTIVERSION void rotate_heads(const float* in, float* out, int64_t heads, int64_t head_stride,
                                    const float* __restrict cs, const float* __restrict sn, int64_t half,
                                    int64_t rotary, int64_t head, bool interleaved) {
  for (int64_t h = 0; h < heads; ++h, in += head_stride, out += head_stride) {
    if (!interleaved) {
      const float* __restrict x1 = in;
      const float* __restrict x2 = in + half;
      float* __restrict y1 = out;
      float* __restrict y2 = out + half;
      for (int64_t k = 0; k < half; ++k) {
        const float a = x1[k], b = x2[k];
        y1[k] = cs[k] * a - sn[k] * b;
        y2[k] = sn[k] * a + cs[k] * b;
      }
    } else {
      for (int64_t k = 0; k < half; ++k) {
        const float a = in[2 * k], b = in[2 * k + 1];
        out[2 * k] = cs[k] * a - sn[k] * b;
        out[2 * k + 1] = sn[k] * a + cs[k] * b;
      }
    }
    if (rotary < head) std::copy(in + rotary, in + head, out + rotary);
  }
}

KernelFn prepare_rotary_embedding(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  auto fail = [&](const std::string& what) { throw InputError(n.describe() + ": " + what); };
  const Dims& x = ctx.in[0].shape;
  const bool four_d = x.size() == 4;
  const int64_t B = x[0], S = four_d ? x[2] : x[1];
  const int64_t H = four_d ? x[1] : n.attr_int("num_heads");
  if (!four_d && x[2] % H != 0)
    fail("the hidden size " + std::to_string(x[2]) + " is not a multiple of the " + std::to_string(H) + " heads");
  const int64_t Dh = four_d ? x[3] : x[2] / H;
  const int64_t R = n.attr_int("rotary_embedding_dim") > 0 ? n.attr_int("rotary_embedding_dim") : Dh;
  if (R > Dh || R % 2 != 0)
    fail("rotary_embedding_dim " + std::to_string(R) + " must be even and at most the head size " + std::to_string(Dh));
  const int64_t half = R / 2;
  const bool ids = ctx.in.size() > 3;
  const Dims& cache = ctx.in[1].shape;
  if (ctx.in[2].shape != cache)
    fail("cos_cache " + dims_str(cache) + " and sin_cache " + dims_str(ctx.in[2].shape) + " differ");
  if (cache.back() != half)
    fail("the caches' last dimension " + std::to_string(cache.back()) +
         " must be rotary_dim / 2 = " + std::to_string(half));
  if (ids && ctx.in[3].shape != Dims{B, S})
    fail("position_ids must be [" + std::to_string(B) + ", " + std::to_string(S) + "], got " +
         dims_str(ctx.in[3].shape));
  // Without ids the caches are [batch, seq, half]; a batch or seq of 1 serves them all (the
  // graph pass that makes this op from Llama's export gives one cache row per position).
  if (!ids && ((cache[0] != B && cache[0] != 1) || (cache[1] != S && cache[1] != 1)))
    fail("without position_ids the caches must be [" + std::to_string(B) + " (or 1), " + std::to_string(S) +
         " (or 1), " + std::to_string(half) + "], got " + dims_str(cache));
  const int64_t positions = cache[0];
  const int64_t cache_batch_step = !ids && cache[0] == 1 ? 0 : S, cache_seq_step = !ids && cache[1] == 1 ? 0 : 1;
  const bool interleaved = n.attr_int("interleaved") != 0;
  const bool ids64 = ids && ctx.in[3].type == ElementType::i64;
  const std::string who = n.describe();
  // Work per (batch, position) row: its H head vectors; rows are spread over the pool in
  // blocks once a call has enough of them to pay for it.
  const int64_t row_values = H * Dh;
  return [=](const KernelArgs& a) {
    const float* X = a.in[0]->as<float>();
    const float* cos_c = a.in[1]->as<float>();
    const float* sin_c = a.in[2]->as<float>();
    float* Y = a.out[0]->as<float>();
    std::vector<int64_t> rows;  // each (b, s)'s cache row, checked before any thread starts
    if (ids) {
      rows.resize((size_t)(B * S));
      for (int64_t i = 0; i < B * S; ++i) {
        const int64_t row = ids64 ? a.in[3]->as<int64_t>()[i] : a.in[3]->as<int32_t>()[i];
        if (row < 0 || row >= positions)
          throw InputError(who + ": position id " + std::to_string(row) + " is outside the caches' " +
                           std::to_string(positions) + " positions");
        rows[(size_t)i] = row;
      }
    }
    auto run = [&](int64_t first, int64_t last) {
      for (int64_t bs = first; bs < last; ++bs) {
        const int64_t b = bs / S, s = bs % S;
        const int64_t row = ids ? rows[(size_t)bs] : b * cache_batch_step + s * cache_seq_step;
        const float* cs = cos_c + row * half;
        const float* sn = sin_c + row * half;
        const int64_t at = four_d ? (b * H * S + s) * Dh : bs * row_values;
        rotate_heads(X + at, Y + at, H, four_d ? S * Dh : Dh, cs, sn, half, R, Dh, interleaved);
      }
    };
    const int64_t total = B * S;
    constexpr int64_t kValuesPerBlock = 16384;  // below this, threads cost more than they save
    if (a.ctx && a.ctx->pool && total > 1 && total * row_values >= 2 * kValuesPerBlock)
      a.ctx->pool->parallel_for(total, std::max<int64_t>(1, kValuesPerBlock / std::max<int64_t>(1, row_values)), run,
                                a.ctx->max_threads);
    else
      run(0, total);
  };
}

// ---- TensorScatter ----------------------------------------------------------------------
// present = past with `update` written along `axis` from write_indices[b] on (per batch
// sample b; modulo the cache length in circular mode).

std::vector<PortInfo> infer_tensor_scatter(const InferContext& c) {
  const Node& n = c.node;
  if (c.in[1].type != c.in[0].type)
    throw InputError(n.describe() + ": update must be of past_cache's type " + type_name(c.in[0].type) + ", got " +
                     type_name(c.in[1].type));
  if (c.in.size() > 2 && c.in[2].type != ElementType::i64)
    throw InputError(n.describe() + ": write_indices must be i64, got " + type_name(c.in[2].type));
  const PartialShape &past = c.in[0].shape, &upd = c.in[1].shape;
  if (past.rank_known && upd.rank_known) {
    if (past.rank() < 2 || upd.rank() != past.rank())
      throw InputError(n.describe() + ": past_cache " + past.str() + " and update " + upd.str() +
                       " must have one rank of 2 or more");
    const int64_t axis = normalize_axis(n, n.attr_int("axis"), past.rank());
    if (axis == 0) throw InputError(n.describe() + ": axis cannot be the batch dimension 0");
  }
  return {c.in[0]};
}

KernelFn prepare_tensor_scatter(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  const Dims &past = ctx.in[0].shape, &upd = ctx.in[1].shape;
  const int64_t axis = normalize_axis(n, n.attr_int("axis"), (int64_t)past.size());
  for (size_t d = 0; d < past.size(); ++d)
    if (d == (size_t)axis ? upd[d] > past[d] : upd[d] != past[d])
      throw InputError(n.describe() + ": update " + dims_str(upd) + " does not fit past_cache " + dims_str(past) +
                       " (the same dims, at most as long along axis " + std::to_string(axis) + ")");
  if (ctx.in.size() > 2 && ctx.in[2].shape != Dims{past[0]})
    throw InputError(n.describe() + ": write_indices must be [" + std::to_string(past[0]) + "], got " +
                     dims_str(ctx.in[2].shape));
  const AroundAxis cache = around_axis(past, axis), piece = around_axis(upd, axis);
  const int64_t batch = past[0], per_batch = cache.outer / batch;
  const size_t elem = element_bytes(n, ctx.in[0].type);
  const bool circular = n.attr_str("mode") == "circular";
  const bool has_indices = ctx.in.size() > 2;
  const std::string who = n.describe();
  return [=](const KernelArgs& a) {
    const char* src = static_cast<const char*>(a.in[0]->data);
    const char* up = static_cast<const char*>(a.in[1]->data);
    char* dst = static_cast<char*>(a.out[0]->data);
    if (dst != src) std::memcpy(dst, src, elem * (size_t)a.in[0]->count());
    const size_t row = elem * (size_t)cache.inner;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t start = has_indices ? a.in[2]->as<int64_t>()[b] : 0;
      if (start < 0 || (!circular && start + piece.len > cache.len))
        throw InputError(who + ": write index " + std::to_string(start) + " with " + std::to_string(piece.len) +
                         " new entries does not fit the cache length " + std::to_string(cache.len));
      for (int64_t o = b * per_batch; o < (b + 1) * per_batch; ++o)
        for (int64_t s = 0; s < piece.len; ++s) {
          const int64_t at = circular && cache.len ? (start + s) % cache.len : start + s;
          std::memcpy(dst + (o * cache.len + at) * row, up + (o * piece.len + s) * row, row);
        }
    }
  };
}

// ---- SwiGLU -----------------------------------------------------------------------------

std::vector<PortInfo> infer_swiglu(const InferContext& c) {
  const Node& n = c.node;
  if (!widenable_float(c.in[0].type) || c.in[1].type != c.in[0].type)
    throw InputError(n.describe() + ": A and B must be of one float type, got " + type_name(c.in[0].type) + " and " +
                     type_name(c.in[1].type));
  const PartialShape &a = c.in[0].shape, &b = c.in[1].shape;
  if (a.rank_known && b.rank_known) {
    bool differ = a.rank() != b.rank();
    for (size_t d = 0; !differ && d < a.dims.size(); ++d)
      differ = a.dims[d] >= 0 && b.dims[d] >= 0 && a.dims[d] != b.dims[d];
    if (differ)
      throw InputError(n.describe() + ": A " + a.str() + " and B " + b.str() +
                       " must have one shape (no broadcasting)");
  }
  return {PortInfo{c.in[0].type, a.rank_known ? a : b}};
}

KernelFn prepare_swiglu(const PrepareContext& ctx) {
  if (ctx.in[0].shape != ctx.in[1].shape)
    throw InputError(ctx.node.describe() + ": A " + dims_str(ctx.in[0].shape) + " and B " + dims_str(ctx.in[1].shape) +
                     " must have one shape (no broadcasting)");
  const float alpha = (float)ctx.node.attr_float("alpha");
  return [alpha](const KernelArgs& a) {
    const float* A = a.in[0]->as<float>();
    const float* Bv = a.in[1]->as<float>();
    float* Y = a.out[0]->as<float>();
    const int64_t count = a.out[0]->count();
    for (int64_t i = 0; i < count; ++i) Y[i] = A[i] / (1.0f + std::exp(-alpha * A[i])) * Bv[i];
  };
}

}  // namespace

void register_decoder_block_ops(OpRegistry& r) {
  r.add(OpDef{"RotaryEmbedding", 3, 4, infer_rotary_embedding, widened<prepare_rotary_embedding>}
            .with_attrs({int_attr("num_heads", 0).at_least(0), int_attr("rotary_embedding_dim", 0).at_least(0),
                         int_attr("interleaved", 0).between(0, 1)})
            .onnx_op("RotaryEmbedding", 23));
  r.add(with_reused_input(OpDef{"TensorScatter", 2, 3, infer_tensor_scatter, prepare_tensor_scatter}, 0)
            .with_attrs({int_attr("axis", -2), str_attr("mode", "linear", {"linear", "circular"})})
            .onnx_op("TensorScatter", 24));
  r.add(OpDef{"SwiGLU", 2, 2, infer_swiglu, widened<prepare_swiglu>}
            .with_attrs({float_attr("alpha", 1.0)})
            .onnx_op("SwiGLU", 28));
}

}  // namespace aiov
