// Resize (ONNX semantics): nearest and linear interpolation, separable over axes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<double> read_floats(const TensorView& t) {
  std::vector<double> out((size_t)t.count());
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = t.type == ElementType::f64 ? t.as<double>()[i] : (double)t.as<float>()[i];
  return out;
}

// Output dims and per-axis scales from the scales (input 1) or sizes (input 2) operand.
void resize_target(const Node& n, const Dims& in, const TensorView* scales, const TensorView* sizes, Dims* out,
                   std::vector<double>* scale) {
  size_t r = in.size();
  out->assign(in.begin(), in.end());
  scale->assign(r, 1.0);
  if (sizes && sizes->count() > 0) {
    auto s = read_int_tensor(n, *sizes, "sizes");
    if (s.size() != r) throw InputError(n.describe() + ": sizes need " + std::to_string(r) + " entries");
    for (size_t i = 0; i < r; ++i) {
      (*out)[i] = s[i];
      (*scale)[i] = in[i] ? (double)s[i] / (double)in[i] : 1.0;
    }
    return;
  }
  if (!scales || scales->count() == 0) throw InputError(n.describe() + ": either scales or sizes is required");
  auto sc = read_floats(*scales);
  if (sc.size() != r) throw InputError(n.describe() + ": scales need " + std::to_string(r) + " entries");
  for (size_t i = 0; i < r; ++i) {
    if (sc[i] <= 0) throw InputError(n.describe() + ": scales must be positive");
    (*scale)[i] = sc[i];
    (*out)[i] = (int64_t)std::floor((double)in[i] * sc[i]);
  }
}

std::vector<PortInfo> infer_resize(const InferContext& c) {
  const PortInfo& x = c.in[0];
  std::string mode = c.node.attr_str("mode");
  if (mode != "nearest" && mode != "linear") throw NotSupported(c.node.describe() + ": mode '" + mode + "'");
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  if (!c.in_value[1] || !c.in_value[2]) return {PortInfo{x.type, PartialShape(Dims(x.shape.dims.size(), kDynamic))}};
  // Dynamic input dims stay dynamic (as 0 here, then marked) unless sizes pin them.
  Dims in = x.shape.dims;
  for (auto& d : in) d = std::max<int64_t>(d, 0);
  Dims out;
  std::vector<double> scale;
  resize_target(c.node, in, c.in_value[1], c.in_value[2], &out, &scale);
  bool by_sizes = c.in_value[2]->count() > 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (x.shape.dims[i] < 0 && !by_sizes) out[i] = kDynamic;
  return {PortInfo{x.type, PartialShape(out)}};
}

// Source coordinate of output index `o` along an axis.
double source_coord(const std::string& mode, int64_t o, int64_t in_len, int64_t out_len, double scale) {
  if (mode == "asymmetric") return o / scale;
  // ONNX measures the resized length as in_len * scale (unfloored) here.
  double resized = in_len * scale;
  if (mode == "align_corners") return out_len == 1 ? 0.0 : (double)o * (in_len - 1) / (resized - 1.0);
  if (mode == "pytorch_half_pixel") return out_len > 1 ? (o + 0.5) / scale - 0.5 : 0.0;
  return (o + 0.5) / scale - 0.5;  // half_pixel
}

int64_t nearest_index(const std::string& mode, double x, int64_t in_len) {
  double f = std::floor(x);
  int64_t i;
  if (mode == "floor")
    i = (int64_t)f;
  else if (mode == "ceil")
    i = (int64_t)std::ceil(x);
  else if (x - f == 0.5)
    i = mode == "round_prefer_ceil" ? (int64_t)f + 1 : (int64_t)f;
  else
    i = (int64_t)std::llround(x);
  return std::clamp<int64_t>(i, 0, in_len - 1);
}

struct AxisPlan {
  int64_t axis, in_len, out_len;
  std::vector<int64_t> i0, i1;
  std::vector<float> w;  // weight of i1 (linear); nearest uses i0 only
};

KernelFn prepare_resize(const PrepareContext& ctx) {
  if (ctx.in[0].type != ElementType::f32) throw NotSupported(ctx.node.describe() + ": only f32 data");
  for (int i = 1; i < 3; ++i)
    if (!ctx.in[i].data) throw NotSupported(ctx.node.describe() + ": scales and sizes must be known when planning");
  const Dims& in = ctx.in[0].shape;
  Dims out;
  std::vector<double> scale;
  resize_target(ctx.node, in, &ctx.in[1], &ctx.in[2], &out, &scale);
  bool linear = ctx.node.attr_str("mode") == "linear";
  std::string coord = ctx.node.attr_str("coordinate_transformation_mode");
  std::string nearest = ctx.node.attr_str("nearest_mode");
  if (coord != "half_pixel" && coord != "asymmetric" && coord != "align_corners" && coord != "pytorch_half_pixel")
    throw NotSupported(ctx.node.describe() + ": coordinate_transformation_mode '" + coord + "'");
  std::vector<AxisPlan> axes;
  for (size_t a = 0; a < in.size(); ++a) {
    if (out[a] == in[a] && scale[a] == 1.0) continue;
    AxisPlan p{(int64_t)a, in[a], out[a], {}, {}, {}};
    for (int64_t o = 0; o < out[a]; ++o) {
      double x = source_coord(coord, o, in[a], out[a], scale[a]);
      if (linear) {
        x = std::clamp(x, 0.0, (double)(in[a] - 1));
        int64_t lo = (int64_t)std::floor(x);
        p.i0.push_back(lo);
        p.i1.push_back(std::min(lo + 1, in[a] - 1));
        p.w.push_back((float)(x - lo));
      } else {
        p.i0.push_back(nearest_index(nearest, x, in[a]));
      }
    }
    axes.push_back(std::move(p));
  }
  return [in, out, axes, linear](const KernelArgs& k) {
    // One axis at a time: the shape goes from `in` to `out` through intermediate buffers.
    std::vector<float> a(k.in[0]->as<float>(), k.in[0]->as<float>() + numel(in)), b;
    Dims cur = in;
    for (const AxisPlan& p : axes) {
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < p.axis; ++d) outer *= cur[d];
      for (size_t d = p.axis + 1; d < cur.size(); ++d) inner *= cur[d];
      b.assign((size_t)(outer * p.out_len * inner), 0.0f);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < p.out_len; ++j) {
          const float* s0 = a.data() + (o * p.in_len + p.i0[j]) * inner;
          float* d = b.data() + (o * p.out_len + j) * inner;
          if (!linear) {
            std::memcpy(d, s0, inner * sizeof(float));
          } else {
            const float* s1 = a.data() + (o * p.in_len + p.i1[j]) * inner;
            float w = p.w[j];
            for (int64_t i = 0; i < inner; ++i) d[i] = s0[i] + (s1[i] - s0[i]) * w;
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
  r.add(with_value_inputs(OpDef{"Resize", 3, 3, infer_resize, widened<prepare_resize>}.with_attrs(
                              {str_attr("mode", "nearest"), str_attr("coordinate_transformation_mode", "half_pixel"),
                               str_attr("nearest_mode", "round_prefer_floor")}),
                          {1, 2}));
}

}  // namespace aiov
