// DeformConv (ONNX opset 19): a 2-D convolution whose every kernel tap reads the input at its
// own learned offset (bilinear, zero outside the image), optionally scaled by a mask. The
// taps are gathered into columns, then one GEMM per group multiplies them by the filters.
// Offsets and masks are run-time data: NaN and far-away offsets give defined values.
#include <cmath>
#include <limits>

#include "executor/executor.hpp"
#include "kernels/gemm.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// The geometry of one DeformConv node for concrete or partial shapes (kDynamic where unknown).
struct DeformGeometry {
  int64_t kernel[2], stride[2], dilation[2], pad_begin[2], pad_end[2];
  int64_t group, offset_group;
};

DeformGeometry deform_geometry(const Node& n, const PartialShape& w) {
  DeformGeometry g{};
  const std::vector<int64_t> kernel = n.attr_ints("kernel_shape"), stride = spatial_ints(n, "strides", 2),
                             dilation = spatial_ints(n, "dilations", 2), pads = n.attr_ints("pads");
  if (!kernel.empty() && kernel.size() != 2)
    throw InputError(n.describe() + ": kernel_shape must hold 2 values, got " + dims_str(kernel));
  if (!pads.empty() && pads.size() != 4)
    throw InputError(n.describe() + ": pads must hold 4 values, got " + dims_str(pads));
  for (int d = 0; d < 2; ++d) {
    g.kernel[d] = !kernel.empty() ? kernel[(size_t)d] : w.rank_known ? w.dims[(size_t)d + 2] : kDynamic;
    g.stride[d] = stride[(size_t)d];
    g.dilation[d] = dilation[(size_t)d];
    g.pad_begin[d] = pads.empty() ? 0 : pads[(size_t)d];
    g.pad_end[d] = pads.empty() ? 0 : pads[(size_t)d + 2];
  }
  g.group = n.attr_int("group");
  g.offset_group = n.attr_int("offset_group");
  return g;
}

// The output's spatial size along dim d, or kDynamic.
int64_t deform_out_dim(const Node& n, const DeformGeometry& g, int d, int64_t in) {
  if (in < 0 || g.kernel[d] < 0) return kDynamic;
  const int64_t span = g.dilation[d] * (g.kernel[d] - 1) + 1;
  const int64_t room = in + g.pad_begin[d] + g.pad_end[d] - span;
  if (room < 0)
    throw InputError(n.describe() + ": a kernel spanning " + std::to_string(span) +
                     " does not fit in the padded input of " + std::to_string(in + g.pad_begin[d] + g.pad_end[d]));
  return room / g.stride[d] + 1;
}

// Whether known dims a and b disagree.
bool differ(int64_t a, int64_t b) { return a >= 0 && b >= 0 && a != b; }

std::vector<PortInfo> infer_deform_conv(const InferContext& c) {
  const Node& n = c.node;
  const PortInfo &x = c.in[0], &w = c.in[1];
  for (size_t i = 0; i < c.in.size(); ++i)
    if (c.in[i].type != x.type && c.in[i].type != ElementType::dynamic)
      throw InputError(n.describe() + ": every input must have X's type " + type_name(x.type) + ", input " +
                       std::to_string(i) + " is " + type_name(c.in[i].type));
  if (!is_float(x.type) && x.type != ElementType::dynamic)
    throw InputError(n.describe() + ": expected a float X, got " + type_name(x.type));
  const char* shapes[] = {"X [N, C, H, W]", "W [oC, C / group, kH, kW]",
                          "offset [N, offset_group * 2 * kH * kW, oH, oW]", "B [oC] (or [0]: none)",
                          "mask [N, offset_group * kH * kW, oH, oW]"};
  for (size_t i = 0; i < c.in.size(); ++i) {
    const PartialShape& s = c.in[i].shape;
    const int64_t want = i == 3 ? 1 : 4;
    if (s.rank_known && s.rank() != want)
      throw NotSupported(n.describe() + ": expected " + shapes[i] + " (aiov runs 2-D DeformConv), got " + s.str());
  }
  const DeformGeometry g = deform_geometry(n, w.shape);
  if (!x.shape.rank_known || !w.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  const Dims &xs = x.shape.dims, &ws = w.shape.dims;
  const int64_t channels = xs[1], oc = ws[0];
  if (channels >= 0 && (channels % g.group || channels % g.offset_group || differ(ws[1], channels / g.group)))
    throw InputError(n.describe() + ": X's " + std::to_string(channels) + " channels must split into group " +
                     std::to_string(g.group) + " and offset_group " + std::to_string(g.offset_group) +
                     " and give W's dim 1, got W " + w.shape.str());
  if (oc >= 0 && oc % g.group)
    throw InputError(n.describe() + ": W's " + std::to_string(oc) + " output channels do not split into group " +
                     std::to_string(g.group));
  for (int d = 0; d < 2; ++d)
    if (differ(ws[(size_t)d + 2], g.kernel[d]))
      throw InputError(n.describe() + ": kernel_shape does not match W " + w.shape.str());
  const Dims out{xs[0], oc, deform_out_dim(n, g, 0, xs[2]), deform_out_dim(n, g, 1, xs[3])};
  const int64_t taps = g.kernel[0] < 0 || g.kernel[1] < 0 ? kDynamic : g.kernel[0] * g.kernel[1];
  auto expect = [&](size_t i, int64_t per_tap) {
    if (i >= c.in.size() || !c.in[i].shape.rank_known) return;
    const Dims& s = c.in[i].shape.dims;
    const int64_t want_c = taps < 0 ? kDynamic : g.offset_group * per_tap * taps;
    if (differ(s[0], out[0]) || differ(s[1], want_c) || differ(s[2], out[2]) || differ(s[3], out[3]))
      throw InputError(n.describe() + ": expected " + shapes[i] + " = " +
                       PartialShape(Dims{out[0], want_c, out[2], out[3]}).str() + ", got " + c.in[i].shape.str());
  };
  expect(2, 2);
  expect(4, 1);
  // An empty B stands for none (the ONNX reader's, when B is omitted before a mask).
  if (c.in.size() > 3 && c.in[3].shape.rank_known && differ(c.in[3].shape.dims[0], oc) && c.in[3].shape.dims[0] != 0)
    throw InputError(n.describe() + ": expected B [" + std::to_string(oc) + "] or [0], got " + c.in[3].shape.str());
  return {PortInfo{x.type, PartialShape(out)}};
}

// The image `img` [H, W] read at (h, w) in pixels, bilinear, zero outside.
inline float bilinear_or_zero(const float* img, int64_t H, int64_t W, float h, float w) {
  if (std::isnan(h) || std::isnan(w)) return std::numeric_limits<float>::quiet_NaN();
  if (!(h > -1.0f && h < (float)H && w > -1.0f && w < (float)W)) return 0.0f;  // no corner inside
  const float fh = std::floor(h), fw = std::floor(w);
  const int64_t h0 = (int64_t)fh, w0 = (int64_t)fw;
  const float dh = h - fh, dw = w - fw;
  float v = 0.0f;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      const int64_t y = h0 + a, x = w0 + b;
      if (y < 0 || y >= H || x < 0 || x >= W) continue;
      v += (a ? dh : 1 - dh) * (b ? dw : 1 - dw) * img[y * W + x];
    }
  return v;
}

KernelFn prepare_deform_conv(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  if (ctx.in[0].type != ElementType::f32) throw NotSupported(n.describe() + ": only float DeformConv");
  const DeformGeometry g = deform_geometry(n, PartialShape(ctx.in[1].shape));
  const Dims &xs = ctx.in[0].shape, &ys = ctx.out[0].shape;
  const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], O = ys[1], OH = ys[2], OW = ys[3];
  const int64_t taps = g.kernel[0] * g.kernel[1], P = OH * OW, Cg = C / g.group, Og = O / g.group;
  const int64_t per_offset_group = C / g.offset_group, K = Cg * taps;
  const bool has_bias = ctx.in.size() > 3 && ctx.in[3].count() > 0, has_mask = ctx.in.size() > 4;
  return [=](const KernelArgs& a) {
    const float* x = a.in[0]->as<float>();
    const float* filters = a.in[1]->as<float>();
    const float* offset = a.in[2]->as<float>();
    const float* bias = has_bias ? a.in[3]->as<float>() : nullptr;
    const float* mask = has_mask ? a.in[4]->as<float>() : nullptr;
    float* y = a.out[0]->as<float>();
    std::vector<float> cols((size_t)(C * taps * P));
    for (int64_t b = 0; b < N; ++b) {
      // Row (c, tap) of the columns: channel c read at that tap's shifted point, per output pixel.
      auto gather = [&](int64_t r0, int64_t r1) {
        for (int64_t row = r0; row < r1; ++row) {
          const int64_t ch = row / taps, tap = row % taps, ky = tap / g.kernel[1], kx = tap % g.kernel[1];
          const int64_t og = ch / per_offset_group;
          const float* img = x + (b * C + ch) * H * W;
          const float* dy = offset + ((b * g.offset_group + og) * taps * 2 + tap * 2) * P;
          const float* dx = dy + P;
          const float* m = has_mask ? mask + ((b * g.offset_group + og) * taps + tap) * P : nullptr;
          float* out = cols.data() + row * P;
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox) {
              const int64_t p = oy * OW + ox;
              const float h = (float)(oy * g.stride[0] - g.pad_begin[0] + ky * g.dilation[0]) + dy[p];
              const float w = (float)(ox * g.stride[1] - g.pad_begin[1] + kx * g.dilation[1]) + dx[p];
              const float v = bilinear_or_zero(img, H, W, h, w);
              out[p] = m ? v * m[p] : v;
            }
        }
      };
      // A row costs about 10 ns per output pixel: a bilinear sample of four loads and weights.
      if (a.ctx->pool)
        a.ctx->pool->parallel_for_units(C * taps, 10.0 * (double)P, gather, a.ctx->max_threads);
      else
        gather(0, C * taps);
      for (int64_t gi = 0; gi < g.group; ++gi)
        sgemm(false, false, Og, P, K, 1.0f, filters + gi * Og * K, K, cols.data() + gi * K * P, P, 0.0f,
              y + (b * O + gi * Og) * P, P, a.ctx->pool, a.ctx->max_threads);
      if (bias)
        for (int64_t o = 0; o < O; ++o)
          for (float *q = y + (b * O + o) * P, *e = q + P; q < e; ++q) *q += bias[o];
    }
  };
}

}  // namespace

void register_deform_conv_ops(OpRegistry& r) {
  r.add(OpDef{"aiov.DeformConv", 3, 5, infer_deform_conv, widened<prepare_deform_conv>}
            .with_attrs({spatial_attr("dilations", 1).at_least(1), int_attr("group", 1).at_least(1),
                         ints_attr("kernel_shape").at_least(1), int_attr("offset_group", 1).at_least(1),
                         ints_attr("pads").at_least(0), spatial_attr("strides", 1).at_least(1)})
            .ir({"aiov.DeformConv"}, "aiov1")
            .onnx_op("DeformConv", 19)
            .opset_builder("deform_conv"));
}

}  // namespace aiov
