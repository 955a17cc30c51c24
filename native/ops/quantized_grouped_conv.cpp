// aiov.QuantizedConv with group > 1 (ops/quantized_conv.cpp hands it here): the same inputs,
// outputs and attributes (NCHW or NHWC, "relu", s32 / f32 / requantized u8 outputs), constant
// filters [O, C / group, k...].
// - Depthwise (group = C = O, 1-D or 2-D; MobileNet's 3x3 stride 1 and 2) and groups of 2, 4,
//   8 or 16 channels in and out: every output pixel's taps summed over all channels at once
//   on channels-last u8 data (kernels/depthwise_int8.hpp), the epilogue writing either layout.
// - Other groupings (wider groups, channel multipliers): one integer GEMM per group (kernels/gemm_int8.hpp) over
//   that group's channels-last patch rows, each writing its columns of the shared result.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/depthwise_int8.hpp"
#include "kernels/gemm_int8.hpp"
#include "ops/window.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// dst[j * rows + i] = src[i * cols + j] ^ flip (flip: s8 read as u8 + 128), in 32 x 32
// blocks so both sides move whole cache lines, bands of source rows shared over the pool.
template <class T>
void transpose(const T* src, int64_t rows, int64_t cols, T* dst, T flip, const ExecContext& ctx) {
  constexpr int64_t kBlock = 32;
  const auto band = [&](int64_t b0, int64_t b1) {
    for (int64_t j0 = b0 * kBlock; j0 < std::min(cols, b1 * kBlock); j0 += kBlock)
      for (int64_t i0 = 0; i0 < rows; i0 += kBlock) {
        const int64_t j1 = std::min(cols, j0 + kBlock), i1 = std::min(rows, i0 + kBlock);
        for (int64_t j = j0; j < j1; ++j)
          for (int64_t i = i0; i < i1; ++i) dst[j * rows + i] = src[i * cols + j] ^ flip;
      }
  };
  const int64_t bands = (cols + kBlock - 1) / kBlock;
  if (ctx.pool && rows * cols * (int64_t)sizeof(T) >= (int64_t{1} << 16))
    ctx.pool->parallel_for(bands, 1, band, ctx.max_threads);
  else
    band(0, bands);
}

int32_t int8_at(const TensorView& t, int64_t i) {
  return t.type == ElementType::u8 ? (int32_t)t.as<uint8_t>()[i] : (int32_t)t.as<int8_t>()[i];
}

float f32_at(const TensorView& t, int64_t i) { return t.as<float>()[i]; }

// A zero point or factor: N values from one or N.
template <class T, class Get>
std::vector<T> per_channel(const TensorView& t, int64_t N, Get get) {
  std::vector<T> v((size_t)N);
  const bool each = numel(t.shape) == N;
  for (int64_t i = 0; i < N; ++i) v[(size_t)i] = get(t, each ? i : 0);
  return v;
}

// What every grouping shares: the geometry in channels-first terms and the output's form.
struct Geometry {
  int64_t batch = 0, C = 0, O = 0, group = 1;
  Window w;
  bool in_nhwc = false, out_nhwc = false;
  bool x_signed = false, w_unsigned = false;
  bool dequantize = false, has_bias = false, requantize = false, relu = false;
  int64_t taps() const { return w.kernel[0] * w.kernel[1] * w.kernel[2]; }
  int64_t plane() const { return w.in[0] * w.in[1] * w.in[2]; }
  int64_t positions() const { return w.out[0] * w.out[1] * w.out[2]; }
};

// What the depthwise kernel takes from the filters, zero points, factors and bias.
struct DepthwiseConstants {
  // [taps, width, C] less the weights' zero points; the data's zero point taken out of each
  // sum as x_zero * the channel's weights, so padding (x_zero) adds nothing.
  std::vector<int32_t> weights, channel_add;
  std::vector<float> scale, bias;
  int32_t x_zero = 0;                 // in the u8 domain
  std::vector<int8_t> row_weights;    // the weights for the row kernel, where it applies
  std::vector<int32_t> quad_weights;  // groups' weights 4 inputs a dword, where they apply
};

// From the op's inputs (filters, zero points, factors and bias with their data).
std::shared_ptr<const DepthwiseConstants> depthwise_constants(const Geometry& g, const TensorView* const* in) {
  auto d = std::make_shared<DepthwiseConstants>();
  const int64_t C = g.C, taps = g.taps(), width = C / g.group;
  const uint8_t* f = static_cast<const uint8_t*>(in[1]->data);
  const std::vector<int32_t> w_zero = per_channel<int32_t>(*in[3], C, int8_at);
  d->x_zero = int8_at(*in[2], 0) + (g.x_signed ? 128 : 0);
  d->weights.resize((size_t)(taps * width * C));
  d->channel_add.resize((size_t)C);
  for (int64_t o = 0; o < C; ++o) {
    int32_t total = 0;
    for (int64_t i = 0; i < width; ++i)
      for (int64_t t = 0; t < taps; ++t) {
        const uint8_t byte = f[(o * width + i) * taps + t];
        const int32_t v = (g.w_unsigned ? (int32_t)byte : (int32_t)(int8_t)byte) - w_zero[(size_t)o];
        d->weights[(size_t)((t * width + i) * C + o)] = v;
        total += v;
      }
    d->channel_add[(size_t)o] = -d->x_zero * total;
  }
  d->row_weights = depthwise_int8_row_weights(d->weights.data(), C, width, g.w.kernel[1], g.w.kernel[2], g.w.stride[2],
                                              g.w.dilation[2]);
  if (width > 1) d->quad_weights = depthwise_int8_quad_weights(d->weights.data(), C, width, taps);
  if (g.dequantize) d->scale = per_channel<float>(*in[4], C, f32_at);
  if (g.has_bias) d->bias.assign(in[5]->as<float>(), in[5]->as<float>() + C);
  return d;
}

KernelFn prepare_depthwise(const PrepareContext& ctx, const Geometry& g) {
  // Built once here when the zero points, factors and bias are known at plan time (QDQ
  // models' constants), else on every call.
  std::vector<const TensorView*> inputs;
  bool known = true;
  for (size_t i = 0; i < ctx.in.size(); ++i) {
    inputs.push_back(&ctx.in[i]);
    known = known && (i == 0 || i >= 6 || ctx.in[i].data);
  }
  std::shared_ptr<const DepthwiseConstants> planned;
  if (known) planned = depthwise_constants(g, inputs.data());
  ctx.note_kernel(std::string(g.group == g.C ? "depthwise" : "narrow-group") + " integer " + depthwise_int8_isa() +
                  (planned && !planned->row_weights.empty() ? " by kernel rows" : "") +
                  (planned && !planned->quad_weights.empty() ? " by input quads" : "") +
                  (g.out_nhwc ? " in NHWC" : " in NCHW") + (g.requantize ? " to u8" : ""));
  return [g, planned](const KernelArgs& k) {
    const int64_t C = g.C, plane = g.plane(), positions = g.positions(), width = C / g.group;
    const std::shared_ptr<const DepthwiseConstants> d = planned ? planned : depthwise_constants(g, k.in);
    const int32_t x_zero = d->x_zero;
    const Window& w = g.w;
    DepthwiseInt8 p;
    p.channels = C;
    p.group_width = width;
    p.in_h = w.in[1], p.in_w = w.in[2], p.out_h = w.out[1], p.out_w = w.out[2];
    p.kernel_h = w.kernel[1], p.kernel_w = w.kernel[2], p.stride_h = w.stride[1], p.stride_w = w.stride[2];
    p.dilation_h = w.dilation[1], p.dilation_w = w.dilation[2], p.pad_top = w.pad_begin[1], p.pad_left = w.pad_begin[2];
    p.pad = (uint8_t)x_zero;
    p.weights = d->weights.data();
    p.channel_add = d->channel_add.data();
    p.row_weights = d->row_weights.empty() ? nullptr : d->row_weights.data();
    p.quad_weights = d->quad_weights.empty() ? nullptr : d->quad_weights.data();
    p.channel_stride = g.out_nhwc ? 1 : positions;
    p.pixel_stride = g.out_nhwc ? C : 1;
    p.scale = g.dequantize ? d->scale.data() : nullptr;
    p.bias = g.has_bias ? d->bias.data() : nullptr;
    p.relu = g.relu;
    if (g.requantize) {
      p.out_scale = *k.in[6]->as<float>();
      p.out_zero = *k.in[7]->as<uint8_t>();
    }
    // Kept per thread between calls: fresh megabytes each call would fault their pages in.
    thread_local std::vector<uint8_t> channels_last;
    const uint8_t flip = g.x_signed ? 0x80 : 0;
    const bool copy = !g.in_nhwc || g.x_signed;
    if (copy) channels_last.resize((size_t)(plane * C));
    const uint8_t* x = static_cast<const uint8_t*>(k.in[0]->data);
    for (int64_t b = 0; b < g.batch; ++b) {
      const uint8_t* image = x + b * C * plane;
      if (copy) {  // (the pointer, not the thread_local, goes to the other threads)
        uint8_t* dst = channels_last.data();
        if (g.in_nhwc)
          for (int64_t i = 0; i < plane * C; ++i) dst[i] = image[i] ^ flip;
        else
          transpose(image, C, plane, dst, flip, *k.ctx);
        image = dst;
      }
      p.image = image;
      const int64_t at = b * C * positions;
      p.out_i32 = !g.dequantize ? k.out[0]->as<int32_t>() + at : nullptr;
      p.out_f32 = g.dequantize && !g.requantize ? k.out[0]->as<float>() + at : nullptr;
      p.out_u8 = g.requantize ? k.out[0]->as<uint8_t>() + at : nullptr;
      const auto units = [&](int64_t u0, int64_t u1) { depthwise_int8_run(p, u0, u1); };
      if (k.ctx->pool && positions * C * g.taps() >= (int64_t{1} << 15))
        k.ctx->pool->parallel_for(depthwise_int8_units(p), 1, units, k.ctx->max_threads);
      else
        units(0, depthwise_int8_units(p));
    }
  };
}

KernelFn prepare_grouped(const PrepareContext& ctx, const Geometry& g) {
  const int64_t Cg = g.C / g.group, Og = g.O / g.group, taps = g.taps(), Kg = taps * Cg;
  // Each group's filters [O / group, taps * Cg] (tap-major, as its patch rows), packed.
  auto filters = ctx.derived<GroupedInt8Panels>(
      1, "GroupedInt8Filters " + std::to_string(g.group) + " " + PackedInt8B::layout(g.w_unsigned, true, Kg, g.O, Kg),
      [&] {
        const uint8_t* f = static_cast<const uint8_t*>(ctx.in[1].data);
        auto packed = std::make_shared<GroupedInt8Panels>();
        std::vector<uint8_t> reordered((size_t)(Og * Kg));
        for (int64_t grp = 0; grp < g.group; ++grp) {
          for (int64_t o = 0; o < Og; ++o)
            for (int64_t c = 0; c < Cg; ++c)
              for (int64_t t = 0; t < taps; ++t)
                reordered[(size_t)(o * Kg + t * Cg + c)] = f[((grp * Og + o) * Cg + c) * taps + t];
          packed->push_back(std::make_unique<PackedInt8B>(reordered.data(), g.w_unsigned, true, Kg, Og, Kg));
        }
        return packed;
      },
      [&](const GroupedInt8Panels& panels) {
        bool fit = (int64_t)panels.size() == g.group;
        for (const auto& p : panels) fit = fit && p->fits(Kg, Og, g.w_unsigned);
        return fit;
      });
  ctx.note_kernel(std::string("integer GEMM ") + gemm_int8_isa() + " per group" +
                  (g.out_nhwc ? " in NHWC" : " in NCHW") + (g.requantize ? " to u8" : ""));
  return [g, filters, Cg, Og, taps, Kg](const KernelArgs& k) {
    const int64_t C = g.C, O = g.O, plane = g.plane(), positions = g.positions();
    const Window& w = g.w;
    const TensorView& bz = *k.in[3];
    const bool zero_each = numel(bz.shape) == O;
    const std::vector<int32_t> b_zero = per_channel<int32_t>(bz, O, int8_at);
    const uint8_t pad = *k.in[2]->as<uint8_t>();  // the zero point's byte, in the data's type
    const int32_t a_zero = int8_at(*k.in[2], 0);
    std::vector<float> factor;
    if (g.dequantize) factor = per_channel<float>(*k.in[4], O, f32_at);
    thread_local std::vector<uint8_t> channels_last, patches, requantized;
    thread_local std::vector<uint32_t> result;
    if (!g.in_nhwc) channels_last.resize((size_t)(plane * C));
    patches.resize((size_t)(g.group * positions * Kg));
    result.resize((size_t)(positions * O));
    if (g.requantize && !g.out_nhwc) requantized.resize((size_t)(positions * O));
    // Pointers, not the thread_locals: the fill below runs on other threads, where those
    // names mean other buffers.
    uint8_t* const patch_rows = patches.data();
    const uint8_t* x = static_cast<const uint8_t*>(k.in[0]->data);
    for (int64_t b = 0; b < g.batch; ++b) {
      const uint8_t* image = x + b * C * plane;
      if (!g.in_nhwc) {
        transpose<uint8_t>(image, C, plane, channels_last.data(), 0, *k.ctx);
        image = channels_last.data();
      }
      // Group grp's row for position p at patch_rows[(grp * positions + p) * Kg]: its Cg
      // channels under each tap (or the pad byte).
      const auto fill = [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t oz = p / (w.out[1] * w.out[2]), oy = p / w.out[2] % w.out[1], ox = p % w.out[2];
          for (int64_t kz = 0, t = 0; kz < w.kernel[0]; ++kz)
            for (int64_t ky = 0; ky < w.kernel[1]; ++ky)
              for (int64_t kx = 0; kx < w.kernel[2]; ++kx, ++t) {
                const int64_t z = oz * w.stride[0] - w.pad_begin[0] + kz * w.dilation[0];
                const int64_t y = oy * w.stride[1] - w.pad_begin[1] + ky * w.dilation[1];
                const int64_t xx = ox * w.stride[2] - w.pad_begin[2] + kx * w.dilation[2];
                const bool inside = z >= 0 && z < w.in[0] && y >= 0 && y < w.in[1] && xx >= 0 && xx < w.in[2];
                const uint8_t* src = image + ((z * w.in[1] + y) * w.in[2] + xx) * C;
                for (int64_t grp = 0; grp < g.group; ++grp) {
                  uint8_t* dst = patch_rows + (grp * positions + p) * Kg + t * Cg;
                  if (inside)
                    std::memcpy(dst, src + grp * Cg, (size_t)Cg);
                  else
                    std::memset(dst, pad, (size_t)Cg);
                }
              }
        }
      };
      if (k.ctx->pool)
        k.ctx->pool->parallel_for(positions, 64, fill, k.ctx->max_threads);
      else
        fill(0, positions);
      // The sums [positions, O]: straight into an NHWC output, else into `result`.
      const int64_t at = b * O * positions;
      const bool direct = g.out_nhwc && !g.requantize;
      uint32_t* sums = direct ? static_cast<uint32_t*>(k.out[0]->data) + at : result.data();
      for (int64_t grp = 0; grp < g.group; ++grp) {
        Int8Output out;
        out.ldc = O;
        if (g.dequantize) {
          out.c_f32 = reinterpret_cast<float*>(sums) + grp * Og;
          out.scale = factor.data() + grp * Og;
          out.bias = g.has_bias ? k.in[5]->as<float>() + grp * Og : nullptr;
          out.relu = g.relu;
        } else {
          out.c_i32 = reinterpret_cast<int32_t*>(sums) + grp * Og;
        }
        gemm_u8s8(positions, patch_rows + grp * positions * Kg, g.x_signed, Kg, a_zero, *(*filters)[(size_t)grp],
                  b_zero.data() + (zero_each ? grp * Og : 0), zero_each ? Og : 1, out, k.ctx->pool, k.ctx->max_threads);
      }
      if (g.requantize) {  // as aiov.Quantize would, then to NCHW if need be
        uint8_t* y = static_cast<uint8_t*>(k.out[0]->data) + at;
        uint8_t* bytes = g.out_nhwc ? y : requantized.data();
        quantize_u8(reinterpret_cast<const float*>(sums), positions * O, *k.in[6]->as<float>(), *k.in[7]->as<uint8_t>(),
                    bytes);
        if (!g.out_nhwc) transpose<uint8_t>(bytes, positions, O, y, 0, *k.ctx);
      } else if (!direct) {  // [positions, O] to NCHW's [O, positions] (4-byte values either way)
        transpose<uint32_t>(sums, positions, O, static_cast<uint32_t*>(k.out[0]->data) + at, 0, *k.ctx);
      }
    }
  };
}

}  // namespace

KernelFn prepare_quantized_grouped_conv(const PrepareContext& ctx) {
  Geometry g;
  const Node& n = ctx.node;
  g.in_nhwc = input_layout_of(n) == Layout::nhwc;
  g.out_nhwc = layout_of(n) == Layout::nhwc;
  const Dims xs = to_channels_first(ctx.in[0].shape, input_layout_of(n)), &fs = ctx.in[1].shape;
  g.batch = xs[0], g.C = xs[1], g.O = fs[0], g.group = n.attr_int("group");
  std::vector<int64_t> in(xs.begin() + 2, xs.end()), kernel(fs.begin() + 2, fs.end());
  g.w = to_3d(make_window(n, in, kernel));
  g.x_signed = ctx.in[0].type == ElementType::i8;
  g.w_unsigned = ctx.in[1].type == ElementType::u8;
  g.dequantize = ctx.in.size() > 4;
  g.has_bias = ctx.in.size() > 5;
  g.requantize = ctx.in.size() > 7;  // a u8 scale and zero point after the bias
  g.relu = n.attr_int("relu", 0) != 0;
  // Groups of 1, 2, 4, 8 or 16 channels in and out (one group per vector lane's reach).
  const int64_t width = g.C / g.group;
  if (g.O == g.C && 16 % width == 0 && g.w.kernel[0] == 1 && g.w.in[0] == 1) return prepare_depthwise(ctx, g);
  return prepare_grouped(ctx, g);
}

}  // namespace aiov
