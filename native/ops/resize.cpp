// Resize (ONNX semantics): nearest, linear and cubic interpolation (with antialiasing when
// shrinking), every coordinate transform, axes, keep_aspect_ratio_policy and
// tf_crop_and_resize. Separable: each resized axis becomes, per output index, a short list of
// (source index, weight) taps, worked out once per plan.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<double> read_floats(const Node& n, const TensorView& t, const char* what) {
  if (t.type != ElementType::f32 && t.type != ElementType::f64)
    throw InputError(n.describe() + ": " + what + " must be f32 or f64, got " + type_name(t.type));
  std::vector<double> out((size_t)t.count());
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = t.type == ElementType::f64 ? t.as<double>()[i] : (double)t.as<float>()[i];
  return out;
}

// The axes the scales, sizes and roi entries are for: the attribute, else every axis.
std::vector<int64_t> resized_axes(const Node& n, size_t rank) {
  std::vector<int64_t> axes = n.attr_ints("axes");
  if (axes.empty()) {
    for (size_t i = 0; i < rank; ++i) axes.push_back((int64_t)i);
    return axes;
  }
  std::vector<bool> seen(rank, false);
  for (auto& a : axes) {
    a = normalize_axis(n, a, (int64_t)rank);
    if (seen[a]) throw InputError(n.describe() + ": axes lists axis " + std::to_string(a) + " twice");
    seen[a] = true;
  }
  return axes;
}

// Output dims and per-axis scales from the scales (input 1) or sizes (input 2) operand.
void resize_target(const Node& n, const Dims& in, const TensorView* scales, const TensorView* sizes, Dims* out,
                   std::vector<double>* scale) {
  const size_t r = in.size();
  const std::vector<int64_t> axes = resized_axes(n, r);
  out->assign(in.begin(), in.end());
  scale->assign(r, 1.0);
  if (sizes && sizes->count() > 0) {
    auto s = read_int_tensor(n, *sizes, "sizes");
    if (s.size() != axes.size())
      throw InputError(n.describe() + ": sizes need " + std::to_string(axes.size()) + " entries");
    for (size_t i = 0; i < axes.size(); ++i)
      if (s[i] < 0) throw InputError(n.describe() + ": sizes must not be negative, got " + std::to_string(s[i]));
    const std::string policy = n.attr_str("keep_aspect_ratio_policy");
    if (policy == "stretch") {
      for (size_t i = 0; i < axes.size(); ++i) {
        (*out)[axes[i]] = s[i];
        (*scale)[axes[i]] = in[axes[i]] ? (double)s[i] / (double)in[axes[i]] : 1.0;
      }
      return;
    }
    // One scale for every resized axis: the smallest (not_larger) or largest (not_smaller).
    double common = policy == "not_larger" ? HUGE_VAL : 0.0;
    for (size_t i = 0; i < axes.size(); ++i) {
      const double si = in[axes[i]] ? (double)s[i] / (double)in[axes[i]] : 1.0;
      common = policy == "not_larger" ? std::min(common, si) : std::max(common, si);
    }
    for (int64_t a : axes) {
      (*scale)[a] = common;
      (*out)[a] = (int64_t)(common * (double)in[a] + 0.5);
    }
    return;
  }
  if (!scales || scales->count() == 0) throw InputError(n.describe() + ": either scales or sizes is required");
  auto sc = read_floats(n, *scales, "scales");
  if (sc.size() != axes.size())
    throw InputError(n.describe() + ": scales need " + std::to_string(axes.size()) + " entries");
  for (size_t i = 0; i < axes.size(); ++i) {
    if (!(sc[i] > 0) || !std::isfinite(sc[i]))
      throw InputError(n.describe() + ": scales must be positive and finite, got " + std::to_string(sc[i]));
    const double size = std::floor((double)in[axes[i]] * sc[i]);
    if (size > (double)kMaxTensorElements)
      throw InputError(n.describe() + ": scale " + std::to_string(sc[i]) + " is too large");
    (*scale)[axes[i]] = sc[i];
    (*out)[axes[i]] = (int64_t)size;
  }
}

std::vector<PortInfo> infer_resize(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  if (c.node.attr_int("antialias") && c.node.attr_str("mode") == "nearest")
    throw InputError(c.node.describe() + ": antialias needs mode linear or cubic");
  if (!c.in_value[1] || !c.in_value[2]) return {PortInfo{x.type, PartialShape(Dims(x.shape.dims.size(), kDynamic))}};
  // Dynamic input dims stay dynamic (as 0 here, then marked) unless sizes pin them.
  Dims in = x.shape.dims;
  for (auto& d : in) d = std::max<int64_t>(d, 0);
  Dims out;
  std::vector<double> scale;
  resize_target(c.node, in, c.in_value[1], c.in_value[2], &out, &scale);
  bool by_sizes = c.in_value[2]->count() > 0 && c.node.attr_str("keep_aspect_ratio_policy") == "stretch";
  for (size_t i = 0; i < out.size(); ++i)
    if (x.shape.dims[i] < 0 && !(by_sizes && out[i] != in[i])) out[i] = kDynamic;
  return {PortInfo{x.type, PartialShape(out)}};
}

struct ResizeParams {
  std::string coord, mode, nearest;
  double cubic_a;
  bool exclude_outside, antialias;
};

// Source coordinate of output index `o` along an axis (roi: [start, end] for
// tf_crop_and_resize).
double source_coord(const ResizeParams& p, int64_t o, int64_t in_len, int64_t out_len, double scale,
                    const double* roi) {
  const double resized = (double)in_len * scale;  // unfloored, as ONNX measures it
  const std::string& mode = p.coord;
  if (mode == "asymmetric") return o / scale;
  if (mode == "align_corners") return resized == 1 ? 0.0 : (double)o * (in_len - 1) / (resized - 1.0);
  if (mode == "pytorch_half_pixel") return resized == 1 ? -0.5 : (o + 0.5) / scale - 0.5;
  if (mode == "tf_crop_and_resize") {
    const double span = (roi[1] - roi[0]) * (double)(in_len - 1);
    return roi[0] * (double)(in_len - 1) + (resized == 1 ? span / 2 : (double)o * span / (resized - 1.0));
  }
  if (mode == "half_pixel_symmetric") {
    const double offset = in_len / 2.0 * (1 - (double)out_len / resized);
    return offset + (o + 0.5) / scale - 0.5;
  }
  return (o + 0.5) / scale - 0.5;  // half_pixel
}

// Interpolation weights for a source point at fraction `t` past a sample (t in (0, 1]), for
// consecutive samples; their count is the filter's width.
// An antialiasing filter wider than this many taps means a scale no real model uses.
constexpr double kMaxTaps = 4096;

std::vector<double> tap_weights(const Node& n, const ResizeParams& p, double t, double scale) {
  if (p.mode == "nearest") {
    bool right;
    if (t == 1.0)
      right = true;  // on a sample: that sample
    else if (p.nearest == "floor")
      right = false;
    else if (p.nearest == "ceil")
      right = true;
    else if (p.nearest == "round_prefer_ceil")
      right = t >= 0.5;
    else
      right = t > 0.5;
    return {right ? 0.0 : 1.0, right ? 1.0 : 0.0};
  }
  const double a = p.cubic_a;
  auto cubic = [a](double x) {
    x = std::abs(x);
    if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
  };
  const bool cubic_mode = p.mode == "cubic";
  if (!p.antialias) {
    if (!cubic_mode) return {1 - t, t};
    return {cubic(t + 1), cubic(t), cubic(1 - t), cubic(2 - t)};
  }
  // Antialiasing widens the filter by 1/scale when shrinking.
  const double s = std::min(scale, 1.0);
  const double reach = cubic_mode ? 2.0 : 1.0;
  const double first_tap = std::floor(-reach / s) + 1;
  if (2 - 2 * first_tap > kMaxTaps)  // checked before the loop: a tiny scale asks for billions
    throw InputError(n.describe() + ": scale " + std::to_string(scale) + " needs an antialiasing filter wider than " +
                     std::to_string((int64_t)kMaxTaps) + " taps");
  const int64_t first = (int64_t)first_tap;
  std::vector<double> w;
  double sum = 0;
  for (int64_t i = first; i < 2 - first; ++i) {
    const double x = s * ((double)i - t);
    const double v = cubic_mode ? cubic(x) : std::clamp(1 - std::abs(x), 0.0, 1.0);
    w.push_back(v);
    sum += v;
  }
  for (double& v : w) v /= sum;
  return w;
}

struct AxisPlan {
  int64_t axis, in_len, out_len;
  std::vector<int64_t> begin;  // taps of output j: [begin[j], begin[j + 1])
  std::vector<int64_t> index;
  std::vector<float> weight;
  std::vector<bool> outside;  // tf_crop_and_resize: the output is the extrapolation value
};

AxisPlan plan_axis(const Node& n, const ResizeParams& p, int64_t axis, int64_t in_len, int64_t out_len, double scale,
                   const double* roi) {
  if (in_len == 0 && out_len > 0)
    throw InputError(n.describe() + ": cannot resize an empty axis " + std::to_string(axis) + " to " +
                     std::to_string(out_len));
  AxisPlan plan{axis, in_len, out_len, {0}, {}, {}, {}};
  for (int64_t o = 0; o < out_len; ++o) {
    const double x = source_coord(p, o, in_len, out_len, scale, roi);
    const bool outside = p.coord == "tf_crop_and_resize" && (x < 0 || x > (double)(in_len - 1));
    plan.outside.push_back(outside);
    if (outside || !std::isfinite(x)) {
      plan.begin.push_back((int64_t)plan.index.size());
      continue;
    }
    const double f = std::floor(x);
    const double t = x == f ? 1.0 : x - f;
    std::vector<double> w = tap_weights(n, p, t, scale);
    // The taps are consecutive samples around x, as many below it as above.
    const int64_t half = (int64_t)w.size() / 2;
    const int64_t first = (int64_t)f + (x == f ? -half : 1 - half);
    if (p.exclude_outside) {
      double sum = 0;
      for (size_t k = 0; k < w.size(); ++k) {
        const int64_t i = first + (int64_t)k;
        if (i < 0 || i >= in_len) w[k] = 0;
        sum += w[k];
      }
      if (sum != 0)
        for (double& v : w) v /= sum;
    }
    for (size_t k = 0; k < w.size(); ++k) {
      if (w[k] == 0) continue;
      plan.index.push_back(std::clamp<int64_t>(first + (int64_t)k, 0, in_len - 1));
      plan.weight.push_back((float)w[k]);
    }
    plan.begin.push_back((int64_t)plan.index.size());
  }
  return plan;
}

KernelFn prepare_resize(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  if (ctx.in[0].type != ElementType::f32) throw NotSupported(n.describe() + ": only f32 data");
  for (size_t i = 1; i < ctx.in.size(); ++i)
    if (!ctx.in[i].data) throw NotSupported(n.describe() + ": scales, sizes and roi must be known when planning");
  const Dims& in = ctx.in[0].shape;
  Dims out;
  std::vector<double> scale;
  resize_target(n, in, &ctx.in[1], &ctx.in[2], &out, &scale);
  const ResizeParams p{n.attr_str("coordinate_transformation_mode"),
                       n.attr_str("mode"),
                       n.attr_str("nearest_mode"),
                       n.attr_float("cubic_coeff_a"),
                       n.attr_int("exclude_outside") != 0,
                       n.attr_int("antialias") != 0};
  const size_t r = in.size();
  // roi per axis as [start, end], from the operand's starts-then-ends over the resized axes.
  std::vector<double> roi(2 * r);
  for (size_t a = 0; a < r; ++a) roi[2 * a] = 0, roi[2 * a + 1] = 1;
  const std::vector<int64_t> axes = resized_axes(n, r);
  if (p.coord == "tf_crop_and_resize") {
    if (ctx.in.size() < 4 || ctx.in[3].count() == 0) throw InputError(n.describe() + ": tf_crop_and_resize needs roi");
    auto given = read_floats(n, ctx.in[3], "roi");
    if (given.size() != 2 * axes.size())
      throw InputError(n.describe() + ": roi needs " + std::to_string(2 * axes.size()) + " entries");
    for (size_t i = 0; i < axes.size(); ++i) {
      roi[2 * axes[i]] = given[i];
      roi[2 * axes[i] + 1] = given[axes.size() + i];
    }
  }
  std::vector<AxisPlan> plans;
  for (int64_t a : axes) {
    const bool trivial_roi = roi[2 * a] == 0 && roi[2 * a + 1] == 1;
    if (out[a] == in[a] && std::abs(scale[a] - 1.0) < 1e-9 && (trivial_roi || p.coord != "tf_crop_and_resize"))
      continue;
    plans.push_back(plan_axis(n, p, a, in[a], out[a], scale[a], &roi[2 * a]));
  }
  const float extrapolation = (float)n.attr_float("extrapolation_value");
  return [in, plans, extrapolation](const KernelArgs& k) {
    // One axis at a time: the shape goes from `in` to the output through intermediate buffers.
    std::vector<float> a(k.in[0]->as<float>(), k.in[0]->as<float>() + numel(in)), b;
    Dims cur = in;
    for (const AxisPlan& p : plans) {
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < p.axis; ++d) outer *= cur[d];
      for (size_t d = p.axis + 1; d < cur.size(); ++d) inner *= cur[d];
      b.assign((size_t)(outer * p.out_len * inner), 0.0f);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < p.out_len; ++j) {
          float* d = b.data() + (o * p.out_len + j) * inner;
          if (p.outside[j]) {
            std::fill(d, d + inner, extrapolation);
            continue;
          }
          const int64_t t0 = p.begin[j], t1 = p.begin[j + 1];
          const float* base = a.data() + o * p.in_len * inner;
          if (t1 - t0 == 1 && p.weight[t0] == 1.0f) {
            std::memcpy(d, base + p.index[t0] * inner, inner * sizeof(float));
            continue;
          }
          for (int64_t t = t0; t < t1; ++t) {
            const float* s = base + p.index[t] * inner;
            const float w = p.weight[t];
            for (int64_t i = 0; i < inner; ++i) d[i] += w * s[i];
          }
        }
      a.swap(b);
      cur[p.axis] = p.out_len;
    }
    std::memcpy(k.out[0]->data, a.data(), a.size() * sizeof(float));
  };
}

}  // namespace

void register_resize_ops(OpRegistry& r) {
  // Inputs: data, scales, sizes (one of them empty) and, for tf_crop_and_resize, roi. Its IR
  // layer is aiov's own: OpenVINO's Interpolate takes its sizes per listed axis, not for every one.
  r.add(with_value_inputs(
      OpDef{"Resize", 3, 4, infer_resize, widened<prepare_resize>}
          .with_attrs({str_attr("mode", "nearest", {"nearest", "linear", "cubic"}),
                       str_attr("coordinate_transformation_mode", "half_pixel",
                                {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                 "asymmetric", "tf_crop_and_resize"}),
                       str_attr("nearest_mode", "round_prefer_floor",
                                {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}),
                       float_attr("cubic_coeff_a", -0.75), bool_attr("exclude_outside", false),
                       float_attr("extrapolation_value", 0.0), bool_attr("antialias", false),
                       str_attr("keep_aspect_ratio_policy", "stretch", {"stretch", "not_larger", "not_smaller"}),
                       ints_attr("axes")})
          .ir({"aiov.Resize"}, "aiov1"),
      {1, 2, 3}));
}

}  // namespace aiov
