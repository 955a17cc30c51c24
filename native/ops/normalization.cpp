// Normalizations with their own statistics per row: GroupNormalization (mean and variance
// per sample and channel group) and RMSNormalization (root mean square over trailing dims).
// Statistics accumulate in double whatever the element type (ONNX's stash_type asks for f32
// or wider).
#include <cmath>

#include "kernels/dispatch.hpp"
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

std::vector<PortInfo> infer_group_norm(const InferContext& c) {
  const PortInfo& x = c.in[0];
  expect_float(c.node, x);
  expect_type_match(c.node, x, c.in[1]);
  expect_type_match(c.node, x, c.in[2]);
  const int64_t groups = c.node.attr_int("num_groups");
  if (x.shape.rank_known) {
    if (x.shape.rank() < 2)
      throw InputError(c.node.describe() + ": data must have rank 2 or more, got " + x.shape.str());
    const int64_t ch = x.shape.dims[1];
    if (ch != kDynamic && ch % groups)
      throw InputError(c.node.describe() + ": num_groups " + std::to_string(groups) + " must divide the channels (" +
                       std::to_string(ch) + ")");
    for (int i = 1; i <= 2; ++i) {
      const PartialShape& s = c.in[i].shape;
      if (s.rank_known && (s.rank() != 1 || (ch != kDynamic && s.dims[0] != kDynamic && s.dims[0] != ch)))
        throw InputError(c.node.describe() + ": " + (i == 1 ? "scale" : "bias") + " must have shape [" +
                         std::to_string(ch) + "] (one per channel), got " + s.str());
    }
  }
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
}

}  // namespace aiov
