// Normalizations with their own statistics per row: GroupNormalization (mean and variance
// per sample and channel group) and RMSNormalization (root mean square over trailing dims).
// Statistics accumulate in double whatever the element type (ONNX's stash_type asks for f32
// or wider). aiov.GroupNorm, the optimizer's fused form, keeps f32 statistics as MVN does.
#include <algorithm>
#include <cmath>

#include "kernels/dispatch.hpp"
#include "kernels/epilogue.hpp"
#include "kernels/gelu_row.hpp"
#include "kernels/isa.hpp"
#include "kernels/normalize_row.hpp"
#include "kernels/strided_walk.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// A kernel normalizing `rows` rows of `len` elements of input 0 into output 0, in parallel:
// normalize(xr, yr, scale, bias, r) for row r, scale being input 1 and bias input 2 (null when
// the op has none), all of input 0's float type.
template <class Normalize>
KernelFn normalize_rows(const PrepareContext& ctx, int64_t rows, int64_t len, Normalize normalize) {
  const bool has_bias = ctx.in.size() > 2;
  return dispatch_float_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [=](const KernelArgs& a) {
      const T* x = a.in[0]->as<T>();
      const T* scale = a.in[1]->as<T>();
      const T* bias = has_bias ? a.in[2]->as<T>() : nullptr;
      T* y = a.out[0]->as<T>();
      for_rows(*a.ctx, rows, len, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) normalize(x + r * len, y + r * len, scale, bias, r);
      });
    };
  });
}

void expect_float(const Node& n, const PortInfo& p) {
  if (p.type != ElementType::dynamic && !is_float(p.type))
    throw InputError(n.describe() + ": expected a float element type, got " + type_name(p.type));
}

// ---- GroupNormalization(data [N, C, ...], scale [C], bias [C]; num_groups, epsilon) ------

// Data [N, C, ...] of rank 2 or more with num_groups dividing C, and inputs 1 and 2 (the
// per-channel scale and shift, named as the op names them) of shape [C].
void check_group_shapes(const InferContext& c, const char* scale_name, const char* shift_name) {
  const PartialShape& x = c.in[0].shape;
  const int64_t groups = c.node.attr_int("num_groups");
  if (!x.rank_known) return;
  if (x.rank() < 2) throw InputError(c.node.describe() + ": data must have rank 2 or more, got " + x.str());
  const int64_t ch = x.dims[1];
  if (ch != kDynamic && ch % groups)
    throw InputError(c.node.describe() + ": num_groups " + std::to_string(groups) + " must divide the channels (" +
                     std::to_string(ch) + ")");
  for (int i = 1; i <= 2; ++i) {
    const PartialShape& s = c.in[i].shape;
    if (s.rank_known && (s.rank() != 1 || (ch != kDynamic && s.dims[0] != kDynamic && s.dims[0] != ch)))
      throw InputError(c.node.describe() + ": " + (i == 1 ? scale_name : shift_name) + " must have shape [" +
                       std::to_string(ch) + "] (one per channel), got " + s.str());
  }
}

std::vector<PortInfo> infer_group_norm(const InferContext& c) {
  const PortInfo& x = c.in[0];
  expect_float(c.node, x);
  expect_type_match(c.node, x, c.in[1]);
  expect_type_match(c.node, x, c.in[2]);
  check_group_shapes(c, "scale", "bias");
  return {PortInfo{x.type, x.shape}};
}

KernelFn prepare_group_norm(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  const int64_t n = s[0], ch = s[1], groups = ctx.node.attr_int("num_groups");
  int64_t spatial = 1;
  for (size_t d = 2; d < s.size(); ++d) spatial *= s[d];
  const int64_t per_group = ch / groups, len = per_group * spatial;
  const double eps = ctx.node.attr_float("epsilon");
  return normalize_rows(ctx, n * groups, len,
                        [=](const auto* xr, auto* yr, const auto* scale, const auto* bias, int64_t r) {
                          using T = std::remove_pointer_t<decltype(yr)>;
                          double sum = 0, sq = 0;
                          for (int64_t i = 0; i < len; ++i) sum += (double)load(xr[i]);
                          const double mean = len ? sum / (double)len : 0.0;
                          for (int64_t i = 0; i < len; ++i) {
                            const double d = (double)load(xr[i]) - mean;
                            sq += d * d;
                          }
                          const double inv = 1.0 / std::sqrt((len ? sq / (double)len : 0.0) + eps);
                          const int64_t c0 = (r % groups) * per_group;
                          for (int64_t c = 0; c < per_group; ++c) {
                            const double k = inv * (double)load(scale[c0 + c]), b = (double)load(bias[c0 + c]);
                            for (int64_t i = c * spatial; i < (c + 1) * spatial; ++i)
                              yr[i] = store<T>((decltype(load(xr[i])))(((double)load(xr[i]) - mean) * k + b));
                          }
                        });
}

// ---- RMSNormalization(data, scale; axis, epsilon) ----------------------------------------

std::vector<PortInfo> infer_rms_norm(const InferContext& c) {
  const PortInfo& x = c.in[0];
  expect_float(c.node, x);
  expect_type_match(c.node, x, c.in[1]);
  if (x.shape.rank_known) {
    const int64_t axis = normalize_axis(c.node, c.node.attr_int("axis"), x.shape.rank());
    const PartialShape& s = c.in[1].shape;
    const int64_t norm_rank = x.shape.rank() - axis;
    if (s.rank_known) {
      bool ok = s.rank() <= norm_rank;
      for (int64_t i = 1; ok && i <= s.rank(); ++i) {
        const int64_t a = s.dims[s.rank() - i], b = x.shape.dims[x.shape.rank() - i];
        ok = a == 1 || a == kDynamic || b == kDynamic || a == b;
      }
      if (!ok)
        throw InputError(c.node.describe() + ": scale " + s.str() + " does not broadcast to the normalized dims of " +
                         x.shape.str() + " (from axis " + std::to_string(axis) + ")");
    }
  }
  return {PortInfo{x.type, x.shape}};
}

KernelFn prepare_rms_norm(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  const int64_t axis = normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)s.size());
  int64_t rows = 1, len = 1;
  for (int64_t d = 0; d < axis; ++d) rows *= s[d];
  for (size_t d = axis; d < s.size(); ++d) len *= s[d];
  // Where each element of a normalized row finds its scale (scale broadcasts from the right).
  const Dims& sc = ctx.in[1].shape;
  Dims norm(s.begin() + axis, s.end());
  if (sc.size() > norm.size())
    throw InputError(ctx.node.describe() + ": scale " + dims_str(sc) + " has more dims than the normalized ones");
  Dims sc_full(norm.size() - sc.size(), 1);
  sc_full.insert(sc_full.end(), sc.begin(), sc.end());
  const auto sc_strides = row_strides(sc_full);
  std::vector<int64_t> sc_steps(norm.size());
  for (size_t d = 0; d < norm.size(); ++d) sc_steps[d] = sc_full[d] == 1 ? 0 : sc_strides[d];
  std::vector<int64_t> scale_at((size_t)len);
  walk_strided(norm, sc_steps, 0, [&](int64_t j, int64_t off) { scale_at[j] = off; });
  const double eps = ctx.node.attr_float("epsilon");
  return normalize_rows(ctx, rows, len, [=](const auto* xr, auto* yr, const auto* scale, const auto*, int64_t) {
    using T = std::remove_pointer_t<decltype(yr)>;
    double sq = 0;
    for (int64_t i = 0; i < len; ++i) {
      const double v = (double)load(xr[i]);
      sq += v * v;
    }
    const double inv = 1.0 / std::sqrt((len ? sq / (double)len : 0.0) + eps);
    for (int64_t i = 0; i < len; ++i)
      yr[i] = store<T>((decltype(load(xr[i])))((double)load(xr[i]) * inv * (double)load(scale[scale_at[i]])));
  });
}

// ---- aiov.GroupNorm(data [N, C, ...], gamma [C], beta [C]; num_groups, eps, eps_mode, act) --
// Made by the optimizer (fuse_layer_norm) from MVN over a sample's channel group (an
// InstanceNormalization, torch's GroupNorm export: a Reshape to [N, G, -1] around MVN), the
// per-channel scale and shift after it and an activation: one pass over each row where the
// MVN, an elementwise chain for the scale-shift and one for the activation each read and
// wrote the whole tensor (wav2vec2's feature extractor: GroupNorm over 512 channels, Gelu).

std::vector<PortInfo> infer_fused_group_norm(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (x.type != ElementType::f32 && x.type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected f32 data, got " + type_name(x.type));
  for (int i = 1; i <= 2; ++i)
    if (c.in[i].type != ElementType::f32 && c.in[i].type != ElementType::dynamic)
      throw InputError(c.node.describe() + ": gamma and beta must be f32, got " + type_name(c.in[i].type));
  check_group_shapes(c, "gamma", "beta");
  return {PortInfo{ElementType::f32, x.shape}};
}

// Sum and sum of squared deviations of a row, with 16 partial sums (vectorized without
// reassociating one accumulator), as MVN's rows.
AIOV_MULTIVERSION void row_moments(const float* __restrict x, int64_t len, float& mean, float& squares) {
  constexpr int kLanes = 16;
  float part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] += x[i + l];
  double sum = 0.0;
  for (; i < len; ++i) sum += x[i];
  for (int l = 0; l < kLanes; ++l) sum += part[l];
  const float m = (float)(sum / (double)len);
  float sq[kLanes] = {};
  for (i = 0; i + kLanes <= len; i += kLanes)
    for (int l = 0; l < kLanes; ++l) sq[l] += (x[i + l] - m) * (x[i + l] - m);
  double var = 0.0;
  for (; i < len; ++i) var += (double)((x[i] - m) * (x[i] - m));
  for (int l = 0; l < kLanes; ++l) var += sq[l];
  mean = m;
  squares = (float)var;
}

// y = x * k + d over one channel's values of a row (the portable path: statistics and the
// affine in one pass).
AIOV_MULTIVERSION void scale_shift(const float* __restrict x, float* __restrict y, int64_t n, float k, float d) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * k + d;
}

KernelFn prepare_fused_group_norm(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  const int64_t n = s[0], ch = s[1], groups = ctx.node.attr_int("num_groups");
  if (ch % groups)
    throw InputError(ctx.node.describe() + ": num_groups " + std::to_string(groups) + " must divide the channels (" +
                     std::to_string(ch) + ")");
  int64_t spatial = 1;
  for (size_t d = 2; d < s.size(); ++d) spatial *= s[d];
  const int64_t per_group = ch / groups, len = per_group * spatial, rows = n * groups;
  const float eps = (float)ctx.node.attr_float("eps");
  const bool eps_outside = ctx.node.attr_str("eps_mode") == "outside_sqrt";
  const Activation act{act_kind_from_name(ctx.node.attr_str("act")), (float)ctx.node.attr_float("act_alpha"),
                       (float)ctx.node.attr_float("act_beta")};
  static const normalize_detail::GroupNormRowsFn avx512_rows =
      selected_isa() == Isa::avx512 ? normalize_detail::avx512_group_norm_rows() : nullptr;
  static const gelu_detail::GeluRowFn avx512_gelu =
      selected_isa() == Isa::avx512 ? gelu_detail::avx512_gelu_erf_row() : nullptr;
  const gelu_detail::GeluRowFn gelu_erf = act.kind == ActKind::gelu_erf ? avx512_gelu : nullptr;
  return [=](const KernelArgs& a) {
    const float* x = a.in[0]->as<float>();
    const float* gamma = a.in[1]->as<float>();
    const float* beta = a.in[2]->as<float>();
    float* y = a.out[0]->as<float>();
    if (len == 0) return;
    for_rows(*a.ctx, rows, len, [&](int64_t r0, int64_t r1) {
      // Blocks of rows that stay in L1 between the normalization (with the channels' scale and
      // shift) and the activation, which runs over the whole block at once (one masked tail).
      constexpr int64_t kBlockFloats = 4096, kMaxBlockRows = 16;
      const int64_t block = std::clamp<int64_t>(kBlockFloats / len, 1, kMaxBlockRows);
      float mean[kMaxBlockRows], scale[kMaxBlockRows];
      for (int64_t b0 = r0; b0 < r1; b0 += block) {
        const int64_t nb = std::min(block, r1 - b0);
        if (avx512_rows) {
          avx512_rows(x + b0 * len, y + b0 * len, nb, len, eps, eps_outside, b0, groups, spatial, gamma, beta);
        } else {
          // The block's statistics, then each channel's normalization and affine at once.
          for (int64_t j = 0; j < nb; ++j) row_moments(x + (b0 + j) * len, len, mean[j], scale[j]);
          for (int64_t j = 0; j < nb; ++j) {
            const float var = scale[j] / (float)len;
            scale[j] = eps_outside ? 1.0f / (std::sqrt(var) + eps) : 1.0f / std::sqrt(var + eps);
          }
          for (int64_t j = 0; j < nb; ++j) {
            const int64_t r = b0 + j, c0 = r % groups * per_group;
            for (int64_t c = 0; c < per_group; ++c) {
              const float k = scale[j] * gamma[c0 + c], d = beta[c0 + c] - mean[j] * k;
              scale_shift(x + r * len + c * spatial, y + r * len + c * spatial, spatial, k, d);
            }
          }
        }
        float* yb = y + b0 * len;
        if (gelu_erf)
          gelu_erf(yb, yb, nb * len);
        else if (act.kind != ActKind::none)
          apply_epilogue_row(yb, nb * len, nullptr, nullptr, act);
      }
    });
  };
}

}  // namespace

void register_normalization_ops(OpRegistry& r) {
  // ONNX's GroupNormalization before opset 21 scales per group: its converter is hand-written.
  r.add(
      OpDef{"GroupNormalization", 3, 3, infer_group_norm, prepare_group_norm}
          .with_attrs({int_attr("num_groups", 1).must_be_given().at_least(1), float_attr("epsilon", 1e-5).at_least(0)})
          .ir({"GroupNormalization"}, "opset12")
          .opset_builder("group_normalization"));
  // OpenVINO has no public RMS op. stash_type only asks for f32 or wider statistics, which
  // the kernel always keeps.
  r.add(OpDef{"RMSNormalization", 2, 2, infer_rms_norm, prepare_rms_norm}
            .with_attrs(
                {int_attr("axis", -1), float_attr("epsilon", 1e-5).at_least(0), int_attr("stash_type", 1).ir_name("-")})
            .ir({"aiov.RMSNormalization"}, "aiov1")
            .onnx_op("RMSNormalization", 23));
  r.add(OpDef{"aiov.GroupNorm", 3, 3, infer_fused_group_norm, prepare_fused_group_norm}.with_attrs(
      {int_attr("num_groups", 1).must_be_given().at_least(1), float_attr("eps", 1e-5).at_least(0),
       str_attr("eps_mode", "inside_sqrt", {"inside_sqrt", "outside_sqrt"}),
       str_attr("act", "none", std::vector<std::string>(kActNames, kActNames + kActKindCount))
           .ir_name("-")
           .onnx_name("-"),
       float_attr("act_alpha", 0.0), float_attr("act_beta", 0.0)}));
}

}  // namespace aiov
