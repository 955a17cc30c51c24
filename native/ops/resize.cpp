// Resize (ONNX semantics): nearest, linear and cubic interpolation (with antialiasing when
// shrinking), every coordinate transform, axes, keep_aspect_ratio_policy and
// tf_crop_and_resize. Separable: each resized axis becomes, per output index, a short list of
// (source index, weight) taps, worked out once per plan.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "executor/executor.hpp"
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

// One axis of a resize over a tensor of known dims: each output index's taps (source index,
// weight) at a fixed stride, with their count.
class ResizePass {
 public:
  ResizePass(const AxisPlan& a, const Dims& dims) : in_len_(a.in_len), out_len_(a.out_len) {
    for (int64_t d = 0; d < a.axis; ++d) outer_ *= dims[d];
    for (size_t d = a.axis + 1; d < dims.size(); ++d) inner_ *= dims[d];
    for (int64_t j = 0; j < out_len_; ++j) taps_ = std::max(taps_, a.begin[j + 1] - a.begin[j]);
    taps_ = std::max<int64_t>(taps_, 1);
    index_.assign((size_t)(out_len_ * taps_), 0);
    weight_.assign((size_t)(out_len_ * taps_), 0.0f);
    for (int64_t j = 0; j < out_len_; ++j) {
      outside_.push_back(a.outside[j] ? 1 : 0);
      count_.push_back(a.begin[j + 1] - a.begin[j]);
      for (int64_t t = a.begin[j]; t < a.begin[j + 1]; ++t) {
        index_[j * taps_ + t - a.begin[j]] = a.index[t];
        weight_[j * taps_ + t - a.begin[j]] = a.weight[t];
      }
      // A lone tap of weight 1 (nearest, or a sample hit exactly) is a copy.
      copies_ = copies_ && (a.outside[j] || (a.begin[j + 1] - a.begin[j] == 1 && a.weight[a.begin[j]] == 1.0f));
    }
  }

  int64_t out_count() const { return outer_ * out_len_ * inner_; }

  void run(const float* x, float* y, float extrapolation, ExecContext* ctx) const {
    // Rows: one (outer, output index) each, inner floats long.
    const int64_t rows = outer_ * out_len_;
    auto work = [&](int64_t r0, int64_t r1) {
      if (inner_ == 1)
        last_axis(x, y, extrapolation, r0, r1);
      else
        rows_of(x, y, extrapolation, r0, r1);
    };
    const int64_t row_work = inner_ * taps_;
    if (ctx && ctx->pool && rows * row_work >= 2 * kGrain)
      ctx->pool->parallel_for(rows, std::max<int64_t>(1, kGrain / row_work), work, ctx->max_threads);
    else
      work(0, rows);
  }

 private:
  // Taps x floats per task: below it threads cost more than they save.
  static constexpr int64_t kGrain = 1 << 15;

  void rows_of(const float* x, float* y, float extrapolation, int64_t r0, int64_t r1) const {
    int64_t o = r0 / out_len_, j = r0 % out_len_;  // row r is output index j of slice o
    for (int64_t r = r0; r < r1; ++r, ++j) {
      if (j == out_len_) j = 0, ++o;
      float* d = y + r * inner_;
      if (outside_[j]) {
        std::fill_n(d, inner_, extrapolation);
        continue;
      }
      const float* base = x + o * in_len_ * inner_;
      const int64_t* idx = &index_[j * taps_];
      const float* w = &weight_[j * taps_];
      if (copies_) {
        std::memcpy(d, base + idx[0] * inner_, (size_t)inner_ * sizeof(float));
        continue;
      }
      if (count_[j] == 0) {  // every weight was 0
        std::fill_n(d, inner_, 0.0f);
        continue;
      }
      const float* s0 = base + idx[0] * inner_;
      const float w0 = w[0];
      for (int64_t i = 0; i < inner_; ++i) d[i] = w0 * s0[i];
      for (int64_t t = 1; t < count_[j]; ++t) {
        const float* s = base + idx[t] * inner_;
        const float wt = w[t];
        for (int64_t i = 0; i < inner_; ++i) d[i] += wt * s[i];
      }
    }
  }

  // The axis is the innermost: each output is a dot product of its taps.
  void last_axis(const float* x, float* y, float extrapolation, int64_t r0, int64_t r1) const {
    int64_t o = r0 / out_len_, j = r0 % out_len_;  // row r is output index j of slice o
    for (int64_t r = r0; r < r1; ++r, ++j) {
      if (j == out_len_) j = 0, ++o;
      if (outside_[j]) {
        y[r] = extrapolation;
        continue;
      }
      const float* base = x + o * in_len_;
      const int64_t* idx = &index_[j * taps_];
      const float* w = &weight_[j * taps_];
      float v = 0.0f;
      for (int64_t t = 0; t < count_[j]; ++t) v += w[t] * base[idx[t]];
      y[r] = v;
    }
  }

  int64_t in_len_, out_len_, outer_ = 1, inner_ = 1, taps_ = 0;
  bool copies_ = true;
  std::vector<int64_t> index_;
  std::vector<float> weight_;
  std::vector<char> outside_;
  std::vector<int64_t> count_;
};

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
  // Shrinking axes first, growing ones last, and of axes growing alike the inner one first:
  // each pass then runs on the smallest tensor it can, and the innermost axis (one output
  // at a time where the others move whole rows) on the smallest of all. The result is the
  // same but for rounding; tf_crop_and_resize keeps the axis order, as its extrapolated
  // values go through the later axes' weights.
  if (p.coord != "tf_crop_and_resize")
    std::stable_sort(plans.begin(), plans.end(), [](const AxisPlan& x, const AxisPlan& y) {
      const int64_t a = x.out_len * y.in_len, b = y.out_len * x.in_len;
      return a != b ? a < b : x.axis > y.axis;
    });
  auto passes = std::make_shared<std::vector<ResizePass>>();
  Dims cur = in;
  for (const AxisPlan& a : plans) {
    passes->push_back(ResizePass(a, cur));
    cur[a.axis] = a.out_len;
  }
  const float extrapolation = (float)n.attr_float("extrapolation_value");
  return [passes, extrapolation](const KernelArgs& k) {
    // One axis at a time, from the input through intermediate buffers into the output.
    const float* src = k.in[0]->as<float>();
    float* dst = k.out[0]->as<float>();
    if (passes->empty()) {
      std::memcpy(dst, src, (size_t)k.out[0]->count() * sizeof(float));
      return;
    }
    std::vector<float> a, b;
    for (size_t i = 0; i < passes->size(); ++i) {
      const ResizePass& pass = (*passes)[i];
      float* to = dst;
      if (i + 1 < passes->size()) {
        b.resize((size_t)pass.out_count());
        to = b.data();
      }
      pass.run(src, to, extrapolation, k.ctx);
      a.swap(b);
      src = a.data();
    }
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
