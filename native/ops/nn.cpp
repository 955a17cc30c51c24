// Neural-network layers: Convolution (with groups), MaxPool, AvgPool, BatchNormInference.
// NCHW layout (and NCW for 1-D); convolution lowers to im2col + the packed GEMM.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/gemm.hpp"
#include "kernels/nhwc_window.hpp"
#include "kernels/pool_bf16.hpp"
#include "kernels/quantized_bytes.hpp"
#include "ops/window.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// ---- Convolution ---------------------------------------------------------------------------

std::vector<PortInfo> infer_conv(const InferContext& c) {
  expect_type_match(c.node, c.in[0], c.in[1]);
  return {PortInfo{c.in[0].type, conv_output_shape(c.node, c.in[0].shape, c.in[1].shape)}};
}

// Columns for one image and one group: [Cg*kd*kh*kw, OD*OH*OW].
void im2col(const float* x, int64_t Cg, const Window& w, float* col) {
  const int64_t D = w.in[0], H = w.in[1], W = w.in[2], OD = w.out[0], OH = w.out[1], OW = w.out[2];
  const int64_t outs = OD * OH * OW;
  float* row = col;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t kz = 0; kz < w.kernel[0]; ++kz)
      for (int64_t ky = 0; ky < w.kernel[1]; ++ky)
        for (int64_t kx = 0; kx < w.kernel[2]; ++kx, row += outs) {
          const float* vol = x + c * D * H * W;
          float* dst = row;
          for (int64_t oz = 0; oz < OD; ++oz) {
            int64_t z = oz * w.stride[0] - w.pad_begin[0] + kz * w.dilation[0];
            for (int64_t oy = 0; oy < OH; ++oy, dst += OW) {
              int64_t y = oy * w.stride[1] - w.pad_begin[1] + ky * w.dilation[1];
              if (z < 0 || z >= D || y < 0 || y >= H) {
                std::fill(dst, dst + OW, 0.0f);
                continue;
              }
              const float* src = vol + (z * H + y) * W;
              for (int64_t ox = 0; ox < OW; ++ox) {
                int64_t xx = ox * w.stride[2] - w.pad_begin[2] + kx * w.dilation[2];
                dst[ox] = (xx >= 0 && xx < W) ? src[xx] : 0.0f;
              }
            }
          }
        }
}

KernelFn prepare_conv(const PrepareContext& ctx) {
  if (ctx.in[0].type != ElementType::f32) throw NotSupported(ctx.node.describe() + ": only f32 convolution");
  const Dims& xs = ctx.in[0].shape;
  const Dims& fs = ctx.in[1].shape;
  int64_t group = ctx.node.attr_int("group");
  std::vector<int64_t> in(xs.begin() + 2, xs.end()), k(fs.begin() + 2, fs.end());
  Window w = to_3d(make_window(ctx.node, in, k));
  int64_t N = xs[0], C = xs[1], O = fs[0], Cg = fs[1], Og = O / group;
  int64_t spatial = w.in[0] * w.in[1] * w.in[2], outs = w.out[0] * w.out[1] * w.out[2];
  int64_t K = Cg * w.kernel[0] * w.kernel[1] * w.kernel[2];
  bool pointwise = K == Cg;
  for (int i = 0; i < 3; ++i) pointwise = pointwise && w.stride[i] == 1 && w.pad_begin[i] == 0 && w.pad_end[i] == 0;
  bool depthwise = Cg == 1 && Og == 1;
  ctx.note_kernel(depthwise   ? std::string("NCHW depthwise loops")
                  : pointwise ? "NCHW 1x1 conv as GEMM " + std::string(gemm_isa())
                              : "NCHW im2col + GEMM " + std::string(gemm_isa()));
  return [=](const KernelArgs& a) {
    const float* x = a.in[0]->as<float>();
    const float* f = a.in[1]->as<float>();
    float* y = a.out[0]->as<float>();
    if (depthwise) {
      // One small filter per channel: direct loops, parallel over images x channels.
      const int64_t taps = w.kernel[0] * w.kernel[1] * w.kernel[2];
      auto run = [&](int64_t s, int64_t e) {
        for (int64_t nc = s; nc < e; ++nc) {
          const float* vol = x + nc * spatial;
          const float* filt = f + (nc % C) * taps;
          float* out = y + nc * outs;
          for (int64_t oz = 0; oz < w.out[0]; ++oz)
            for (int64_t oy = 0; oy < w.out[1]; ++oy)
              for (int64_t ox = 0; ox < w.out[2]; ++ox) {
                float acc = 0;
                for (int64_t kz = 0; kz < w.kernel[0]; ++kz) {
                  int64_t z = oz * w.stride[0] - w.pad_begin[0] + kz * w.dilation[0];
                  if (z < 0 || z >= w.in[0]) continue;
                  for (int64_t ky = 0; ky < w.kernel[1]; ++ky) {
                    int64_t yy = oy * w.stride[1] - w.pad_begin[1] + ky * w.dilation[1];
                    if (yy < 0 || yy >= w.in[1]) continue;
                    for (int64_t kx = 0; kx < w.kernel[2]; ++kx) {
                      int64_t xx = ox * w.stride[2] - w.pad_begin[2] + kx * w.dilation[2];
                      if (xx >= 0 && xx < w.in[2])
                        acc +=
                            vol[(z * w.in[1] + yy) * w.in[2] + xx] * filt[(kz * w.kernel[1] + ky) * w.kernel[2] + kx];
                    }
                  }
                }
                out[(oz * w.out[1] + oy) * w.out[2] + ox] = acc;
              }
        }
      };
      // A plane costs about 1 ns per (output, tap): a scalar multiply-add behind bounds checks.
      if (a.ctx->pool)
        a.ctx->pool->parallel_for_units(N * C, (double)(outs * taps), run, a.ctx->max_threads);
      else
        run(0, N * C);
      return;
    }
    std::vector<float> col(pointwise ? 0 : (size_t)(K * outs));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < group; ++g) {
        const float* xg = x + (n * C + g * Cg) * spatial;
        const float* b = xg;
        if (!pointwise) {
          im2col(xg, Cg, w, col.data());
          b = col.data();
        }
        sgemm(false, false, Og, outs, K, 1.0f, f + g * Og * K, K, b, outs, 0.0f, y + (n * O + g * Og) * outs, outs,
              a.ctx->pool, a.ctx->max_threads);
      }
  };
}

// ---- Pooling -------------------------------------------------------------------------------

std::vector<PortInfo> infer_pool(const InferContext& c) {
  const PartialShape out = pool_output_shape(c.node, c.in[0].shape);
  if (c.node.op != "MaxPool" || !c.node.attr_int("with_indices")) return {PortInfo{c.in[0].type, out}};
  const ElementType index = type_from_name(c.node.attr_str("index_element_type"));
  if (index != ElementType::i32 && index != ElementType::i64)
    throw InputError(c.node.describe() + ": index_element_type must be i32 or i64, got " + type_name(index));
  if (c.in[0].shape.rank_known) {
    const int64_t axis = normalize_axis(c.node, c.node.attr_int("axis"), c.in[0].shape.rank());
    if (axis > 2) throw InputError(c.node.describe() + ": axis must be 0, 1 or 2, got " + std::to_string(axis));
  }
  return {PortInfo{c.in[0].type, out}, PortInfo{index, out}};
}

// Where MaxPool's indices count from: each is the maximum's offset in the input flattened
// from dimension `axis` on (0: the whole tensor; 2: within its image).
template <class I>
void store_index(void* indices, int64_t at, int64_t value) {
  static_cast<I*>(indices)[at] = (I)value;
}

// Pools planes [s, e) of x (NC planes of `spatial` elements, 3-D windows w) into y; MaxPool
// of any element type, AvgPool of f32 (its sums and counts are float).
template <class T, bool Max>
void pool_planes(const Window& w, bool exclude_pad, int64_t C, int64_t axis, bool column_major,
                 void (*store)(void*, int64_t, int64_t), const T* x, T* y, void* index_out, int64_t s, int64_t e) {
  const int64_t spatial = w.in[0] * w.in[1] * w.in[2], outs = w.out[0] * w.out[1] * w.out[2];
  const T lowest =
      std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
  for (int64_t p = s; p < e; ++p) {
    const T* vol = x + p * spatial;
    T* out = y + p * outs;
    // The offset of this image in the flattened input, from `axis` on.
    const int64_t base = axis == 0 ? p * spatial : axis == 1 ? (p % C) * spatial : 0;
    for (int64_t oz = 0; oz < w.out[0]; ++oz)
      for (int64_t oy = 0; oy < w.out[1]; ++oy)
        for (int64_t ox = 0; ox < w.out[2]; ++ox) {
          T acc = Max ? lowest : T(0);
          int64_t count = 0, padded = 0, best = 0;
          for (int64_t kz = 0; kz < w.kernel[0]; ++kz) {
            int64_t z = oz * w.stride[0] - w.pad_begin[0] + kz * w.dilation[0];
            for (int64_t ky = 0; ky < w.kernel[1]; ++ky) {
              int64_t yy = oy * w.stride[1] - w.pad_begin[1] + ky * w.dilation[1];
              for (int64_t kx = 0; kx < w.kernel[2]; ++kx) {
                int64_t xx = ox * w.stride[2] - w.pad_begin[2] + kx * w.dilation[2];
                // Average pooling's padded count stops at the padded input's end.
                if (z < w.in[0] + w.pad_end[0] && yy < w.in[1] + w.pad_end[1] && xx < w.in[2] + w.pad_end[2]) ++padded;
                if (z < 0 || z >= w.in[0] || yy < 0 || yy >= w.in[1] || xx < 0 || xx >= w.in[2]) continue;
                const int64_t at = (z * w.in[1] + yy) * w.in[2] + xx;
                T v = vol[at];
                if (Max) {
                  if (count == 0 || v > acc || (v != v && acc == acc)) {  // the first NaN wins
                    acc = v;
                    best = at;
                  }
                } else {
                  acc += v;
                }
                ++count;
              }
            }
          }
          if constexpr (!Max) {
            int64_t div = exclude_pad ? count : padded;
            acc = div ? acc / (T)div : T(0);
          }
          const int64_t o = (oz * w.out[1] + oy) * w.out[2] + ox;
          out[o] = acc;
          if (index_out) {
            // Column-major (ONNX storage_order 1): the first spatial dim varies fastest.
            if (column_major)
              best = ((best % w.in[2]) * w.in[1] + (best / w.in[2]) % w.in[1]) * w.in[0] + best / (w.in[1] * w.in[2]);
            store(index_out, p * outs + o, base + best);
          }
        }
  }
}

// NHWC MaxPool of u8 bytes (a QDQ model's pooling between quantized convolutions), by output
// rows over the pool (kernels/quantized_bytes).
void max_pool_nhwc_u8(const Window2d& g, const uint8_t* x, uint8_t* y, ThreadPool* pool, int max_threads) {
  const auto rows = [&](int64_t r0, int64_t r1) { max_pool_nhwc_u8_rows(g, x, y, r0, r1); };
  const int64_t R = g.N * g.OH;
  if (pool && R > 1)
    // About a third of a ns per pixel, tap and 64 channels (one VPMAXUB), plus the pixel's store.
    pool->parallel_for_units(R, (double)g.OW * ((double)((g.C + 63) / 64) * (double)(g.kh * g.kw) * 0.3 + 1.0), rows,
                             max_threads);
  else
    rows(0, R);
}

// out[ox] = max(out[ox], row[ox * step]) (the first NaN wins, as in pool_planes) or
// out[ox] += row[ox * step], for ox in [lo, hi): one tap of a row of NCHW windows, a loop the
// AVX clones vectorize.
AIOV_MULTIVERSION void max_tap(float* __restrict out, const float* __restrict row, int64_t step, int64_t lo,
                               int64_t hi) {
  for (int64_t ox = lo; ox < hi; ++ox) {
    const float v = row[ox * step], acc = out[ox];
    out[ox] = (v > acc || (v != v && acc == acc)) ? v : acc;
  }
}
AIOV_MULTIVERSION void add_tap(float* __restrict out, const float* __restrict row, int64_t step, int64_t lo,
                               int64_t hi) {
  for (int64_t ox = lo; ox < hi; ++ox) out[ox] += row[ox * step];
}

// f32 2-D pooling of NCHW planes [p0, p1) (w: to_3d of a 2-D window) without indices, a
// whole output row at a time: each tap is one pass along the row over the columns whose
// window holds it in bounds, instead of a bounds test per output and tap (an NCHW MaxPool 3x3/2
// of [8,16,32,32] took 1.3 ms, onnxruntime 45 us). Taps run in pool_planes' order for every
// output, so the results are the same.
template <bool Max>
void pool_rows_nchw(const Window& w, bool exclude_pad, const float* x, float* y, int64_t p0, int64_t p1) {
  const int64_t H = w.in[1], W = w.in[2], OH = w.out[1], OW = w.out[2];
  const int64_t kh = w.kernel[1], kw = w.kernel[2], sh = w.stride[1], sw = w.stride[2];
  const int64_t dh = w.dilation[1], dw = w.dilation[2], ph = w.pad_begin[1], pw = w.pad_begin[2];
  // Per kernel column, the output columns that read it in bounds; per output column, how
  // many kernel columns are in bounds, and how many count with the padding (average).
  std::vector<int64_t> lo(kw), hi(kw);
  std::vector<float> cols_in(OW, 0.0f), cols_padded(OW, 0.0f);
  for (int64_t kx = 0; kx < kw; ++kx) {
    const int64_t off = kx * dw - pw;  // ix = ox * sw + off
    lo[kx] = std::min(OW, off >= 0 ? 0 : (-off + sw - 1) / sw);
    hi[kx] = std::max(lo[kx], W - 1 - off < 0 ? 0 : std::min(OW, (W - 1 - off) / sw + 1));
    for (int64_t ox = 0; ox < OW; ++ox) {
      const int64_t ix = ox * sw + off;
      cols_in[ox] += ix >= 0 && ix < W;
      cols_padded[ox] += ix < W + w.pad_end[2];
    }
  }
  for (int64_t p = p0; p < p1; ++p) {
    const float* plane = x + p * H * W;
    for (int64_t oy = 0; oy < OH; ++oy) {
      float* out = y + (p * OH + oy) * OW;
      std::fill_n(out, OW, Max ? -std::numeric_limits<float>::infinity() : 0.0f);
      int64_t rows_in = 0, rows_padded = 0;
      for (int64_t ky = 0; ky < kh; ++ky) {
        const int64_t iy = oy * sh - ph + ky * dh;
        rows_padded += iy < H + w.pad_end[1];
        if (iy < 0 || iy >= H) continue;
        ++rows_in;
        for (int64_t kx = 0; kx < kw; ++kx) {
          const float* row = plane + iy * W + kx * dw - pw;
          if (Max)
            max_tap(out, row, sw, lo[kx], hi[kx]);
          else
            add_tap(out, row, sw, lo[kx], hi[kx]);
        }
      }
      if (!Max)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const float div = exclude_pad ? (float)rows_in * cols_in[ox] : (float)rows_padded * cols_padded[ox];
          out[ox] = div != 0.0f ? out[ox] / div : 0.0f;
        }
    }
  }
}

template <bool Max>
KernelFn prepare_pool(const PrepareContext& ctx) {
  const ElementType type = ctx.in[0].type;
  if (!Max && type != ElementType::f32) throw NotSupported(ctx.node.describe() + ": only f32 average pooling");
  if (type == ElementType::boolean) throw NotSupported(ctx.node.describe() + ": boolean pooling");
  const Dims& xs = ctx.in[0].shape;
  const bool exclude_pad = !Max && ctx.node.attr_int("exclude_pad") != 0;
  const Rounding rounding = pool_rounding(ctx.node);
  if (layout_of(ctx.node) == Layout::nhwc) {
    const bool bytes = Max && type == ElementType::u8;
    if (xs.size() != 4 || ctx.out.size() > 1 || (type != ElementType::f32 && !bytes))
      throw NotSupported(ctx.node.describe() + ": nhwc pooling is f32 (MaxPool also u8) and 2-D only, without indices");
    Window v = make_window(ctx.node, {xs[1], xs[2]}, ctx.node.attr_ints("kernel"), rounding);
    Window2d g{xs[0],       xs[1],       xs[2],       xs[3],         v.out[0],      v.out[1],       v.kernel[0],
               v.kernel[1], v.stride[0], v.stride[1], v.dilation[0], v.dilation[1], v.pad_begin[0], v.pad_begin[1]};
    if (bytes)
      return [g](const KernelArgs& a) {
        max_pool_nhwc_u8(g, a.in[0]->as<uint8_t>(), a.out[0]->as<uint8_t>(), a.ctx->pool, a.ctx->max_threads);
      };
    return [g, exclude_pad](const KernelArgs& a) {
      if (Max)
        max_pool_nhwc(g, a.in[0]->as<float>(), a.out[0]->as<float>(), a.ctx->pool, a.ctx->max_threads);
      else
        avg_pool_nhwc(g, !exclude_pad, a.in[0]->as<float>(), a.out[0]->as<float>(), a.ctx->pool, a.ctx->max_threads);
    };
  }
  std::vector<int64_t> in(xs.begin() + 2, xs.end());
  const Window w = to_3d(make_window(ctx.node, in, ctx.node.attr_ints("kernel"), rounding));
  const int64_t NC = xs[0] * xs[1];
  // A plane costs about 1 ns per (output, window tap): a compare or add behind bounds checks.
  const double plane_ns = (double)(w.out[0] * w.out[1] * w.out[2] * w.kernel[0] * w.kernel[1] * w.kernel[2]);
  const bool indices = Max && ctx.out.size() > 1;
  const int64_t axis = indices ? normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)xs.size()) : 2;
  const bool column_major = indices && ctx.node.attr_int("column_major_indices") != 0;
  const int64_t C = xs[1];
  auto store = indices && ctx.out[1].type == ElementType::i32 ? store_index<int32_t> : store_index<int64_t>;
  if (type == ElementType::f32 && !indices && xs.size() == 4)
    return [w, exclude_pad, NC, plane_ns](const KernelArgs& a) {
      const float* x = a.in[0]->as<float>();
      float* y = a.out[0]->as<float>();
      // About a quarter of pool_planes' time per (output, tap).
      auto run = [&](int64_t s, int64_t e) { pool_rows_nchw<Max>(w, exclude_pad, x, y, s, e); };
      if (a.ctx->pool)
        a.ctx->pool->parallel_for_units(NC, plane_ns / 4, run, a.ctx->max_threads);
      else
        run(0, NC);
    };
  return dispatch_type(type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_same<T, bool>::value || std::is_same<T, f16_t>::value || std::is_same<T, bf16_t>::value) {
      throw NotSupported(ctx.node.describe() + ": pooling of " + type_name(type));  // widened before this
    } else if constexpr (!Max && !std::is_same<T, float>::value) {
      throw NotSupported(ctx.node.describe() + ": only f32 average pooling");
    } else {
      return [=](const KernelArgs& a) {
        const T* x = a.in[0]->as<T>();
        T* y = a.out[0]->as<T>();
        void* index_out = indices ? a.out[1]->data : nullptr;
        auto run = [&](int64_t s, int64_t e) {
          pool_planes<T, Max>(w, exclude_pad, C, axis, column_major, store, x, y, index_out, s, e);
        };
        if (a.ctx->pool)
          a.ctx->pool->parallel_for_units(NC, plane_ns, run, a.ctx->max_threads);
        else
          run(0, NC);
      };
    }
  });
}

// MaxPool: a bf16 NHWC tensor (a region carrying bf16 through the pool, carry_bf16) pooled as
// it lies; everything else through prepare_pool (f16 and bf16 widened around it).
KernelFn prepare_max_pool(const PrepareContext& ctx) {
  const Dims& xs = ctx.in[0].shape;
  if (ctx.in[0].type != ElementType::bf16 || ctx.out.size() != 1 || ctx.out[0].type != ElementType::bf16 ||
      layout_of(ctx.node) != Layout::nhwc || xs.size() != 4)
    return widened<prepare_pool<true>>(ctx);
  const Window v = make_window(ctx.node, {xs[1], xs[2]}, ctx.node.attr_ints("kernel"), pool_rounding(ctx.node));
  const Window2d g{xs[0],       xs[1],       xs[2],       xs[3],         v.out[0],      v.out[1],       v.kernel[0],
                   v.kernel[1], v.stride[0], v.stride[1], v.dilation[0], v.dilation[1], v.pad_begin[0], v.pad_begin[1]};
  ctx.note_kernel("NHWC, bf16 in and out");
  return [g](const KernelArgs& a) {
    max_pool_nhwc_bf16(g, a.in[0]->as<uint16_t>(), a.out[0]->as<uint16_t>(), a.ctx->pool, a.ctx->max_threads);
  };
}

// ---- BatchNormInference(data, gamma, beta, mean, variance) ---------------------------------

std::vector<PortInfo> infer_batch_norm(const InferContext& c) {
  const PartialShape& x = c.in[0].shape;
  if (x.rank_known && x.rank() < 2) throw InputError(c.node.describe() + ": data must have a channel axis");
  for (int i = 1; i < 5; ++i) {
    const PartialShape& p = c.in[i].shape;
    if (p.rank_known && p.rank() != 1)
      throw InputError(c.node.describe() + ": gamma, beta, mean and variance must be 1-D, got " + p.str());
    if (p.rank_known && x.rank_known && p.dims[0] >= 0 && x.dims[1] >= 0 && p.dims[0] != x.dims[1])
      throw InputError(c.node.describe() + ": " + std::to_string(x.dims[1]) + " channels but a parameter of " +
                       std::to_string(p.dims[0]));
  }
  return {c.in[0]};
}

AIOV_MULTIVERSION void scale_shift(const float* __restrict x, float* __restrict y, int64_t n, float scale,
                                   float shift) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale + shift;
}

// Only where the optimizer is off or the parameters are not constants: otherwise a convolution
// takes the BatchNorm in, or it runs as a per-channel Multiply and Add in an elementwise chain.
KernelFn prepare_batch_norm(const PrepareContext& ctx) {
  if (ctx.in[0].type != ElementType::f32) throw NotSupported(ctx.node.describe() + ": only f32");
  const Dims& s = ctx.in[0].shape;
  int64_t N = s[0], C = s[1], inner = 1;
  for (size_t d = 2; d < s.size(); ++d) inner *= s[d];
  double eps = ctx.node.attr_float("epsilon");
  return [N, C, inner, eps](const KernelArgs& a) {
    const float* x = a.in[0]->as<float>();
    const float *g = a.in[1]->as<float>(), *b = a.in[2]->as<float>(), *m = a.in[3]->as<float>(),
                *v = a.in[4]->as<float>();
    float* y = a.out[0]->as<float>();
    for_rows(*a.ctx, N * C, inner, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c = r % C;
        const float scale = (float)(g[c] / std::sqrt((double)v[c] + eps));
        scale_shift(x + r * inner, y + r * inner, inner, scale, b[c] - m[c] * scale);
      }
    });
  };
}

// ---- ConvTranspose (ONNX semantics) --------------------------------------------------------

// Pads and output padding along each spatial axis. Explicit pads come from the attributes;
// with auto_pad same_upper/same_lower or an output_shape they follow from the input size,
// so they are only meaningful along axes whose input and kernel sizes are known.
struct TransposedPads {
  std::vector<int64_t> begin, end, output_padding;
  std::vector<int64_t> target;  // the requested spatial output size, when output_shape is given
};

TransposedPads transposed_pads(const Node& n, const Dims& in, const Dims& k) {
  size_t r = in.size();
  auto strides = spatial_ints(n, "strides", r);
  auto dil = spatial_ints(n, "dilations", r);
  TransposedPads p{spatial_ints(n, "pads_begin", r), spatial_ints(n, "pads_end", r),
                   spatial_ints(n, "output_padding", r)};
  std::string auto_pad = n.attr_str("auto_pad");
  bool same = auto_pad == "same_upper" || auto_pad == "same_lower";
  auto target = n.attr_ints("output_shape");
  if (!target.empty() && target.size() < r)
    throw InputError(n.describe() + ": output_shape needs " + std::to_string(r) + " spatial sizes");
  if (!target.empty()) p.target.assign(target.end() - r, target.end());
  if (target.empty() && !same) return p;
  for (size_t i = 0; i < r; ++i) {
    if (in[i] < 0 || k[i] < 0) continue;
    int64_t want = target.empty() ? in[i] * strides[i] : p.target[i];
    int64_t total = strides[i] * (in[i] - 1) + p.output_padding[i] + (k[i] - 1) * dil[i] + 1 - want;
    if (total < 0) {  // a larger output than the kernel reaches: extra zeros at the end
      p.output_padding[i] -= total;
      total = 0;
    }
    // ONNX: only same_upper puts the odd pad at the end; same_lower and output_shape at the start.
    int64_t first = auto_pad == "same_upper" ? total / 2 : total - total / 2;
    p.begin[i] = first;
    p.end[i] = total - first;
  }
  return p;
}

std::vector<PortInfo> infer_conv_transpose(const InferContext& c) {
  expect_type_match(c.node, c.in[0], c.in[1]);
  const PartialShape& x = c.in[0].shape;
  const PartialShape& f = c.in[1].shape;
  if (!x.rank_known || !f.rank_known) return {PortInfo{c.in[0].type, PartialShape::dynamic_rank()}};
  if (x.rank() != f.rank() || x.rank() < 3 || x.rank() > 5)
    throw InputError(c.node.describe() +
                     ": expected N,C,spatial data and C,M,kernel filters of the same rank (1-3 "
                     "spatial dims), got " +
                     x.str() + " and " + f.str());
  int64_t group = c.node.attr_int("group");
  if (x.dims[1] >= 0 && f.dims[0] >= 0 && x.dims[1] != f.dims[0])
    throw InputError(c.node.describe() + ": data has " + std::to_string(x.dims[1]) + " channels, filters " + f.str());
  size_t r = x.dims.size() - 2;
  Dims in(x.dims.begin() + 2, x.dims.end()), k(f.dims.begin() + 2, f.dims.end());
  auto strides = spatial_ints(c.node, "strides", r);
  auto dil = spatial_ints(c.node, "dilations", r);
  TransposedPads p = transposed_pads(c.node, in, k);
  Dims out{x.dims[0], f.dims[1] < 0 ? kDynamic : f.dims[1] * group};
  for (size_t i = 0; i < r; ++i) {
    if (in[i] < 0 || k[i] < 0) {  // known only when output_shape asks for it
      out.push_back(p.target.empty() ? kDynamic : p.target[i]);
      continue;
    }
    out.push_back(strides[i] * (in[i] - 1) + p.output_padding[i] + (k[i] - 1) * dil[i] + 1 - p.begin[i] - p.end[i]);
    if (out.back() < 0)
      throw InputError(c.node.describe() + ": the pads leave a negative output size for input " + x.str());
  }
  return {PortInfo{c.in[0].type, PartialShape(out)}};
}

KernelFn prepare_conv_transpose(const PrepareContext& ctx) {
  if (ctx.in[0].type != ElementType::f32) throw NotSupported(ctx.node.describe() + ": only f32");
  Dims xs = ctx.in[0].shape, fs = ctx.in[1].shape, ys = ctx.out[0].shape;
  size_t r = xs.size() - 2;
  auto pad3 = [&](std::vector<int64_t> v, int64_t fill) {
    while (v.size() < 3) v.insert(v.begin(), fill);
    return v;
  };
  auto strides = pad3(spatial_ints(ctx.node, "strides", r), 1);
  auto dil = pad3(spatial_ints(ctx.node, "dilations", r), 1);
  auto pb = pad3(transposed_pads(ctx.node, Dims(xs.begin() + 2, xs.end()), Dims(fs.begin() + 2, fs.end())).begin, 0);
  auto in = pad3(Dims(xs.begin() + 2, xs.end()), 1), k = pad3(Dims(fs.begin() + 2, fs.end()), 1),
       out = pad3(Dims(ys.begin() + 2, ys.end()), 1);
  int64_t group = ctx.node.attr_int("group");
  int64_t N = xs[0], C = xs[1], Cg = C / group, Mg = fs[1], M = Mg * group;
  int64_t spatial = in[0] * in[1] * in[2], outs = out[0] * out[1] * out[2], taps = k[0] * k[1] * k[2];
  return [=](const KernelArgs& a) {
    const float* x = a.in[0]->as<float>();
    const float* f = a.in[1]->as<float>();
    float* y = a.out[0]->as<float>();
    std::fill(y, y + N * M * outs, 0.0f);
    std::vector<float> col((size_t)(Mg * taps * spatial));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < group; ++g) {
        // col[Mg*taps, spatial] = filters_g^T [Mg*taps, Cg] x data_g [Cg, spatial], then scatter-add.
        sgemm(true, false, Mg * taps, spatial, Cg, 1.0f, f + g * Cg * Mg * taps, Mg * taps,
              x + (n * C + g * Cg) * spatial, spatial, 0.0f, col.data(), spatial, a.ctx->pool, a.ctx->max_threads);
        for (int64_t m = 0; m < Mg; ++m) {
          float* vol = y + (n * M + g * Mg + m) * outs;
          for (int64_t t = 0; t < taps; ++t) {
            int64_t kz = t / (k[1] * k[2]), ky = (t / k[2]) % k[1], kx = t % k[2];
            const float* row = col.data() + (m * taps + t) * spatial;
            for (int64_t iz = 0; iz < in[0]; ++iz) {
              int64_t oz = iz * strides[0] - pb[0] + kz * dil[0];
              if (oz < 0 || oz >= out[0]) continue;
              for (int64_t iy = 0; iy < in[1]; ++iy) {
                int64_t oy = iy * strides[1] - pb[1] + ky * dil[1];
                if (oy < 0 || oy >= out[1]) continue;
                for (int64_t ix = 0; ix < in[2]; ++ix) {
                  int64_t ox = ix * strides[2] - pb[2] + kx * dil[2];
                  if (ox >= 0 && ox < out[2])
                    vol[(oz * out[1] + oy) * out[2] + ox] += row[(iz * in[1] + iy) * in[2] + ix];
                }
              }
            }
          }
        }
      }
  };
}

// ---- LRN across channels: x / (bias + alpha / size * sum of squares)^beta ------------------------

std::vector<PortInfo> infer_lrn(const InferContext& c) {
  if (c.in[0].shape.rank_known && c.in[0].shape.rank() < 3)
    throw InputError(c.node.describe() + ": expected N,C,... data, got " + c.in[0].shape.str());
  if (c.node.attr_int("size") < 1) throw InputError(c.node.describe() + ": size must be >= 1");
  return {c.in[0]};
}

// The window's sum of squares is taken afresh for every channel (a few adds for the usual
// sizes): a running sum would carry the rounding of large squares into the windows after them.
struct LrnParams {
  int64_t C, inner, before, after;  // inner: pixels per image in NCHW, 1 in NHWC
  float bias, scale, beta;          // scale: alpha / size
};

// y = x * (bias + scale * t)^-beta, with x^-0.75 as rsqrt(t) * sqrt(rsqrt(t)) and the other
// usual betas without pow.
AIOV_MULTIVERSION void lrn_apply(const LrnParams& p, const float* __restrict x, const float* __restrict t,
                                 float* __restrict y, int64_t len) {
  const float bias = p.bias, scale = p.scale, beta = p.beta;
  if (beta == 0.75f) {
    for (int64_t i = 0; i < len; ++i) {
      const float r = 1.0f / std::sqrt(bias + scale * t[i]);
      y[i] = x[i] * r * std::sqrt(r);
    }
  } else if (beta == 0.5f) {
    for (int64_t i = 0; i < len; ++i) y[i] = x[i] / std::sqrt(bias + scale * t[i]);
  } else if (beta == 1.0f) {
    for (int64_t i = 0; i < len; ++i) y[i] = x[i] / (bias + scale * t[i]);
  } else {
    for (int64_t i = 0; i < len; ++i) y[i] = x[i] * std::pow(bias + scale * t[i], -beta);
  }
}

// NCHW: a block of `len` pixels of one image, whose pixels are contiguous in each channel;
// channel c's window sum is a vector loop over the block, reading rows still in L1.
constexpr int64_t kLrnBlock = 256;

AIOV_MULTIVERSION void lrn_window_sum(const LrnParams& p, const float* __restrict x, float* __restrict t, int64_t c,
                                      int64_t len) {
  const int64_t lo = std::max<int64_t>(0, c - p.before), hi = std::min(p.C - 1, c + p.after);
  for (int64_t i = 0; i < len; ++i) t[i] = 0.0f;
  for (int64_t cc = lo; cc <= hi; ++cc) {
    const float* __restrict row = x + cc * p.inner;
    for (int64_t i = 0; i < len; ++i) t[i] += row[i] * row[i];
  }
}

// NHWC: one pixel's C contiguous channels. sq holds their squares between zeros (before and
// after the channels), so each window offset is a vector add over all channels.
AIOV_MULTIVERSION void lrn_pixel_sum(const LrnParams& p, const float* __restrict x, float* __restrict sq,
                                     float* __restrict t) {
  const int64_t C = p.C, size = p.before + p.after + 1;
  for (int64_t c = 0; c < C; ++c) sq[p.before + c] = x[c] * x[c];
  for (int64_t c = 0; c < C; ++c) t[c] = sq[c];
  for (int64_t k = 1; k < size; ++k)
    for (int64_t c = 0; c < C; ++c) t[c] += sq[c + k];
}

KernelFn prepare_lrn(const PrepareContext& ctx) {
  if (ctx.in[0].type != ElementType::f32) throw NotSupported(ctx.node.describe() + ": only f32");
  const Dims& s = ctx.in[0].shape;
  const bool nhwc = layout_of(ctx.node) == Layout::nhwc;
  LrnParams p{};
  p.C = nhwc ? s.back() : s[1];
  const int64_t N = nhwc ? (p.C ? numel(s) / p.C : 0) : s[0];  // NHWC: every pixel is an "image"
  p.inner = 1;
  for (size_t d = 2; !nhwc && d < s.size(); ++d) p.inner *= s[d];
  const int64_t size = ctx.node.attr_int("size");
  p.before = (size - 1) / 2;
  p.after = size - 1 - p.before;
  p.bias = (float)ctx.node.attr_float("bias");
  p.scale = (float)(ctx.node.attr_float("alpha") / (double)size);
  p.beta = (float)ctx.node.attr_float("beta");
  if (nhwc)
    return [p, N](const KernelArgs& a) {
      if (N == 0 || p.C == 0) return;
      const float* x = a.in[0]->as<float>();
      float* y = a.out[0]->as<float>();
      for_rows(*a.ctx, N, p.C, [&](int64_t r0, int64_t r1) {
        std::vector<float> sq(p.C + p.before + p.after, 0.0f), t(p.C);
        for (int64_t r = r0; r < r1; ++r) {
          lrn_pixel_sum(p, x + r * p.C, sq.data(), t.data());
          lrn_apply(p, x + r * p.C, t.data(), y + r * p.C, p.C);
        }
      });
    };
  // Small images get narrower blocks, so that a single one still spreads over the threads.
  const int64_t block = std::min(kLrnBlock, std::max<int64_t>(16, (p.inner / 4 + 15) / 16 * 16));
  const int64_t blocks = (p.inner + block - 1) / block;
  return [p, N, block, blocks](const KernelArgs& a) {
    if (N == 0 || p.C == 0 || p.inner == 0) return;
    const float* x = a.in[0]->as<float>();
    float* y = a.out[0]->as<float>();
    for_rows(*a.ctx, N * blocks, p.C * block, [&](int64_t r0, int64_t r1) {
      alignas(64) float t[kLrnBlock];
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / blocks, i0 = (r % blocks) * block;
        const int64_t at = n * p.C * p.inner + i0;
        const int64_t len = std::min(block, p.inner - i0);
        for (int64_t c = 0; c < p.C; ++c) {
          lrn_window_sum(p, x + at, t, c, len);
          lrn_apply(p, x + at + c * p.inner, t, y + at + c * p.inner, len);
        }
      }
    });
  };
}

}  // namespace

void register_nn_ops(OpRegistry& r) {
  r.add(OpDef{"LRN", 1, 1, infer_lrn, widened<prepare_lrn>}.with_attrs(
      {int_attr("size", 0).must_be_given().at_least(1), float_attr("alpha", 1e-4), float_attr("beta", 0.75),
       float_attr("bias", 1.0),
       // NHWC: chosen by the optimizer inside convolution regions.
       str_attr("layout", "nchw", {"nchw", "nhwc"}).ir_name("-").onnx_name("-")}));
  r.add(OpDef{"ConvTranspose", 2, 2, infer_conv_transpose, widened<prepare_conv_transpose>}
            .with_attrs({spatial_attr("strides", 1).at_least(1), spatial_attr("dilations", 1).at_least(1),
                         spatial_attr("pads_begin", 0).at_least(0), spatial_attr("pads_end", 0).at_least(0),
                         spatial_attr("output_padding", 0).at_least(0), group_attr().ir_name("-"),
                         str_attr("auto_pad", "explicit", {"explicit", "valid", "same_upper", "same_lower"}),
                         ints_attr("output_shape").ir_name("-")})
            // OpenVINO's grouped form (5-D filters) is read and written by aiov/frontends/ir.py.
            .ir({"ConvolutionBackpropData"}, "opset1"));
  std::vector<AttrSpec> conv = window_attrs();
  conv.push_back(group_attr().ir_name("-"));
  r.add(OpDef{"Convolution", 2, 2, infer_conv, widened<prepare_conv>}.with_attrs(conv).ir({"Convolution"}, "opset1"));
  std::vector<AttrSpec> pool = window_attrs();
  pool.push_back(spatial_attr("kernel", 1).must_be_given().at_least(1));
  pool.push_back(str_attr("rounding_type", "floor", {"floor", "ceil", "ceil_torch"}));
  // OpenVINO's MaxPool-8 also gives the maximum's index; models that do not read it keep one
  // output (and their NHWC pooling kernel).
  std::vector<AttrSpec> max_pool = pool;
  max_pool.push_back(bool_attr("with_indices", false).ir_name("-").onnx_name("-"));
  max_pool.push_back(str_attr("index_element_type", "i64", {"i32", "i64"}).onnx_name("-"));
  max_pool.push_back(int_attr("axis", 0).onnx_name("-"));
  // ONNX's storage_order 1: indices count with the first spatial dim fastest (not in IR).
  max_pool.push_back(bool_attr("column_major_indices", false).ir_name("-").onnx_name("-"));
  r.add(OpDef{"MaxPool", 1, 1, infer_pool, prepare_max_pool}.with_attrs(max_pool).ir({"MaxPool"}, "opset1"));
  pool.push_back(bool_attr("exclude_pad", true).ir_name("exclude-pad"));
  r.add(OpDef{"AvgPool", 1, 1, infer_pool, widened<prepare_pool<false>>}.with_attrs(pool).ir({"AvgPool"}, "opset1"));
  r.add(OpDef{"BatchNormInference", 5, 5, infer_batch_norm, widened<prepare_batch_norm>}
            .with_attrs({float_attr("epsilon", 1e-5).at_least(0)})
            .ir({"BatchNormInference"}, "opset5"));
}

}  // namespace aiov
