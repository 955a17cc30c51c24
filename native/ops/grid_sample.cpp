// GridSample (ONNX opsets 16 and 20, OpenVINO GridSample-9): samples data [N, C, D1..Dk] at the
// normalized points of grid [N, O1..Om, k], for any number k of spatial dims. The grid is
// run-time data: NaN, infinite and huge coordinates give defined values, never wild reads.
// AffineGrid (ONNX opset 20) makes such a grid from affine matrices.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/dispatch.hpp"
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

// ---- AffineGrid(theta [N, k, k + 1], size [N, C, D1..Dk]) -> grid [N, D1..Dk, k] ----------

// The spatial dims of `size` (its values after N and C), checked.
Dims affine_grid_extent(const Node& n, const TensorView& size) {
  const Dims s = read_int_tensor(n, size, "size");
  if (s.size() != 4 && s.size() != 5)
    throw InputError(n.describe() + ": size must be [N, C, H, W] or [N, C, D, H, W], got " + dims_str(s));
  for (int64_t d : s)
    if (d < 0) throw InputError(n.describe() + ": size must not be negative, got " + dims_str(s));
  return Dims(s.begin() + 2, s.end());
}

std::vector<PortInfo> infer_affine_grid(const InferContext& c) {
  const Node& n = c.node;
  const PortInfo &theta = c.in[0], &size = c.in[1];
  if (!is_float(theta.type) && theta.type != ElementType::dynamic)
    throw InputError(n.describe() + ": theta must be a float tensor, got " + type_name(theta.type));
  if (size.type != ElementType::i64 && size.type != ElementType::dynamic)
    throw InputError(n.describe() + ": size must be i64, got " + type_name(size.type));
  if (theta.shape.rank_known && theta.shape.rank() != 3)
    throw InputError(n.describe() + ": theta must be [N, 2, 3] or [N, 3, 4], got " + theta.shape.str());
  const int64_t batch = theta.shape.rank_known ? theta.shape.dims[0] : kDynamic;
  int64_t k = kDynamic;  // spatial dims: 2 or 3
  Dims extent;
  if (c.in_value[1]) {
    extent = affine_grid_extent(n, *c.in_value[1]);
    k = (int64_t)extent.size();
  } else if (size.shape.rank_known && size.shape.rank() == 1 && size.shape.dims[0] >= 0) {
    k = size.shape.dims[0] - 2;
    if (k != 2 && k != 3) throw InputError(n.describe() + ": size must hold 4 or 5 values, got " + size.shape.str());
    extent.assign((size_t)k, kDynamic);
  }
  if (theta.shape.rank_known) {
    const int64_t rows = theta.shape.dims[1], cols = theta.shape.dims[2];
    if ((rows >= 0 && rows != 2 && rows != 3) || (rows >= 0 && cols >= 0 && cols != rows + 1) ||
        (k >= 0 && ((rows >= 0 && rows != k) || (cols >= 0 && cols != k + 1))))
      throw InputError(n.describe() + ": theta must be [N, 2, 3] for a 2-D size or [N, 3, 4] for a 3-D size, got " +
                       theta.shape.str() + (k >= 0 ? " for " + std::to_string(k) + "-D" : ""));
    if (k < 0 && rows >= 0) k = rows;
  }
  if (k < 0) return {PortInfo{theta.type, PartialShape::dynamic_rank()}};
  if (extent.empty()) extent.assign((size_t)k, kDynamic);
  Dims out{batch};
  out.insert(out.end(), extent.begin(), extent.end());
  out.push_back(k);
  return {PortInfo{theta.type, PartialShape(out)}};
}

KernelFn prepare_affine_grid(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  const Dims extent = affine_grid_extent(n, ctx.in[1]);
  const int64_t k = (int64_t)extent.size(), batch = ctx.in[0].shape[0];
  const bool align = n.attr_int("align_corners") != 0;
  // The base coordinate of index i along a dim of `len`: the pixel's centre in [-1, 1], or
  // its corner when align_corners (a single pixel then sits at -1, as in ONNX's reference).
  std::vector<std::vector<double>> axis((size_t)k);
  for (int64_t d = 0; d < k; ++d) {
    const int64_t len = extent[(size_t)d];
    for (int64_t i = 0; i < len; ++i)
      axis[(size_t)d].push_back(align ? (len > 1 ? -1.0 + 2.0 * (double)i / (double)(len - 1) : -1.0)
                                      : -1.0 + (2.0 * (double)i + 1.0) / (double)len);
  }
  const int64_t points = numel(extent);
  return dispatch_float_type(ctx.in[0].type, n.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [=](const KernelArgs& a) {
      const T* theta = a.in[0]->as<T>();
      T* grid = a.out[0]->as<T>();
      std::vector<double> m((size_t)(k * (k + 1)));
      std::vector<double> base((size_t)k + 1, 1.0);  // (x, y[, z], 1): x is the last dim
      for (int64_t b = 0; b < batch; ++b) {
        for (size_t i = 0; i < m.size(); ++i) m[i] = (double)load(theta[b * (int64_t)m.size() + (int64_t)i]);
        for (int64_t p = 0; p < points; ++p) {
          for (int64_t rest = p, d = k - 1; d >= 0; --d) {
            const int64_t len = extent[(size_t)d];
            base[(size_t)(k - 1 - d)] = axis[(size_t)d][(size_t)(rest % len)];
            rest /= len;
          }
          T* out = grid + (b * points + p) * k;
          for (int64_t r = 0; r < k; ++r) {
            double v = 0;
            for (int64_t c = 0; c <= k; ++c) v += m[(size_t)(r * (k + 1) + c)] * base[(size_t)c];
            out[r] = store<T>((typename ComputeOf<T>::type)v);
          }
        }
      }
    };
  });
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
  r.add(with_value_inputs(OpDef{"aiov.AffineGrid", 2, 2, infer_affine_grid, prepare_affine_grid}
                              .with_attrs({bool_attr("align_corners", false)})
                              .ir({"aiov.AffineGrid"}, "aiov1")
                              .onnx_op("AffineGrid", 20)
                              .opset_builder("affine_grid"),
                          {1}));
}

}  // namespace aiov
