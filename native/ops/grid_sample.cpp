// GridSample (ONNX opsets 16 and 20, OpenVINO GridSample-9): samples data [N, C, D1..Dk] at the
// normalized points of grid [N, O1..Om, k], for any number k of spatial dims. The grid is
// run-time data: NaN, infinite and huge coordinates give defined values, never wild reads.
#include <algorithm>
#include <cmath>
#include <limits>

#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<PortInfo> infer_grid_sample(const InferContext& c) {
  const Node& n = c.node;
  const PortInfo &x = c.in[0], &g = c.in[1];
  if (x.type != ElementType::f32 && x.type != ElementType::dynamic)
    throw NotSupported(n.describe() + ": data must be f32, got " + type_name(x.type));
  if (g.type != ElementType::f32 && g.type != ElementType::dynamic)
    throw NotSupported(n.describe() + ": grid must be f32, got " + type_name(g.type));
  if (!x.shape.rank_known || !g.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  const int64_t k = x.shape.rank() - 2;
  if (k < 1 || g.shape.rank() != k + 2)
    throw InputError(n.describe() + ": data [N, C, spatial...] and grid [N, spatial..., " +
                     std::to_string(std::max<int64_t>(k, 1)) + "] do not fit: " + x.shape.str() + ", " + g.shape.str());
  const int64_t last = g.shape.dims.back();
  if (last >= 0 && last != k)
    throw InputError(n.describe() + ": grid's last dimension must be " + std::to_string(k) + ", got " + g.shape.str());
  const int64_t xn = x.shape.dims[0], gn = g.shape.dims[0];
  if (xn >= 0 && gn >= 0 && xn != gn)
    throw InputError(n.describe() + ": data and grid batch sizes differ: " + x.shape.str() + ", " + g.shape.str());
  Dims out{xn >= 0 ? xn : gn, x.shape.dims[1]};
  out.insert(out.end(), g.shape.dims.begin() + 1, g.shape.dims.end() - 1);
  return {PortInfo{x.type, PartialShape(out)}};
}

enum class Padding { zeros, border, reflection };
enum class Interp { nearest, linear, cubic };

// Reflects x into [lo, hi] by the nearer border until inside (ONNX's rule).
double reflect(double x, double lo, double hi) {
  const double range = hi - lo;
  if (range <= 0) return lo;
  if (x >= lo && x <= hi) return x;
  const bool below = x < lo;
  const double dx = below ? lo - x : x - hi;
  const double flips = std::floor(dx / range), rest = dx - flips * range;
  const bool even = std::fmod(flips, 2.0) == 0.0;
  return below == even ? lo + rest : hi - rest;
}

void cubic_coeffs(double t, double* w) {
  const double a = -0.75;
  auto far = [a](double d) { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; };  // 1 <= d <= 2
  auto near = [a](double d) { return ((a + 2) * d - (a + 3)) * d * d + 1; };       // 0 <= d <= 1
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}

struct Axis {
  int64_t len;
  double lo, hi;  // the border reflection works in
};

// Index i along an axis after padding, or -1 for a zero (padding zeros, or out of range).
int64_t padded_index(int64_t i, const Axis& a, Padding p) {
  if (i >= 0 && i < a.len) return i;
  if (p == Padding::zeros) return -1;
  if (p == Padding::border) return i < 0 ? 0 : a.len - 1;
  const int64_t r = (int64_t)reflect((double)i, a.lo, a.hi);
  return std::clamp<int64_t>(r, 0, a.len - 1);
}

KernelFn prepare_grid_sample(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  const Dims x = ctx.in[0].shape, g = ctx.in[1].shape;
  const size_t k = x.size() - 2;
  const bool align = n.attr_int("align_corners") != 0;
  const std::string mode = n.attr_str("mode"), pad = n.attr_str("padding_mode");
  const Interp interp = mode == "nearest" ? Interp::nearest : mode == "bicubic" ? Interp::cubic : Interp::linear;
  const Padding padding = pad == "zeros" ? Padding::zeros : pad == "border" ? Padding::border : Padding::reflection;
  std::vector<Axis> axes(k);
  for (size_t d = 0; d < k; ++d) {
    const double len = (double)x[2 + d];
    axes[d] = Axis{x[2 + d], align ? 0.0 : -0.5, align ? len - 1 : len - 0.5};
  }
  int64_t points = 1, plane = 1;
  for (size_t d = 1; d + 1 < g.size(); ++d) points *= g[d];
  for (size_t d = 0; d < k; ++d) plane *= x[2 + d];
  const int64_t N = x[0], C = x[1];
  const int taps = interp == Interp::nearest ? 1 : interp == Interp::linear ? 2 : 4;
  int64_t combos = 1;
  for (size_t d = 0; d < k; ++d) combos *= taps;
  const std::vector<int64_t> strides = row_strides(Dims(x.begin() + 2, x.end()));
  return [=](const KernelArgs& a) {
    const float* data = a.in[0]->as<float>();
    const float* grid = a.in[1]->as<float>();
    float* out = a.out[0]->as<float>();
    if (plane == 0) {  // nothing to sample: every padding mode gives zeros
      std::fill(out, out + a.out[0]->count(), 0.0f);
      return;
    }
    std::vector<int64_t> index(k * 4);
    std::vector<double> weight(k * 4);
    for (int64_t b = 0; b < N; ++b)
      for (int64_t p = 0; p < points; ++p) {
        const float* gp = grid + (b * points + p) * (int64_t)k;
        bool nan = false;
        for (size_t d = 0; d < k; ++d) {
          // The grid lists x (the last data axis) first.
          const Axis& ax = axes[d];
          double v = gp[k - 1 - d];
          if (std::isnan(v)) {
            nan = true;
            break;
          }
          double c = align ? (v + 1) / 2 * (double)(ax.len - 1) : ((v + 1) * (double)ax.len - 1) / 2;
          // Far outside is as good as just outside (reflection folds back from far away, so it
          // only bounds infinities): the index arithmetic below stays exact.
          const double reach = padding == Padding::reflection ? 1e15 : (double)ax.len + 8.0;
          c = std::clamp(c, -reach, (double)ax.len + reach);
          if (interp == Interp::nearest) c = std::nearbyint(c);
          if (c < ax.lo || c > ax.hi) {
            if (padding == Padding::border) c = std::clamp(c, 0.0, (double)(ax.len - 1));
            if (padding == Padding::reflection) c = reflect(c, ax.lo, ax.hi);
          }
          int64_t* id = &index[d * 4];
          double* w = &weight[d * 4];
          if (interp == Interp::nearest) {
            id[0] = padded_index((int64_t)c, ax, padding);
            w[0] = 1;
            continue;
          }
          const double f = std::floor(c);
          const int64_t first = (int64_t)f - (interp == Interp::cubic ? 1 : 0);
          if (interp == Interp::linear) {
            w[0] = 1 - (c - f);
            w[1] = c - f;
          } else {
            cubic_coeffs(c - f, w);
          }
          for (int t = 0; t < taps; ++t) id[t] = padded_index(first + t, ax, padding);
        }
        for (int64_t ch = 0; ch < C; ++ch) {
          float& o = out[(b * C + ch) * points + p];
          if (nan) {
            o = std::numeric_limits<float>::quiet_NaN();
            continue;
          }
          const float* src = data + (b * C + ch) * plane;
          double acc = 0;
          for (int64_t combo = 0; combo < combos; ++combo) {
            int64_t rest = combo, off = 0;
            double w = 1;
            for (size_t d = k; d-- > 0;) {
              const int t = (int)(rest % taps);
              rest /= taps;
              const int64_t i = index[d * 4 + t];
              if (i < 0) {
                off = -1;
                break;
              }
              off += i * strides[d];
              w *= weight[d * 4 + t];
            }
            if (off >= 0) acc += w * src[off];
          }
          o = (float)acc;
        }
      }
  };
}

}  // namespace

void register_grid_sample_ops(OpRegistry& r) {
  // ONNX opset 20 spells the modes linear/cubic; its converter maps them (frontends/onnx.py).
  r.add(OpDef{"GridSample", 2, 2, infer_grid_sample, prepare_grid_sample}
            .with_attrs({bool_attr("align_corners", false),
                         str_attr("mode", "bilinear", {"bilinear", "bicubic", "nearest"}),
                         str_attr("padding_mode", "zeros", {"zeros", "border", "reflection"})})
            .ir({"GridSample"}, "opset9")
            .opset_builder("grid_sample"));
}

}  // namespace aiov
