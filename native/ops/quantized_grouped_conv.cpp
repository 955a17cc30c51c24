// aiov.QuantizedConv with group > 1 (ops/quantized_conv.cpp hands it here): the same inputs
// and outputs, NCHW, constant filters [O, C / group, k...].
// - Depthwise (group = C = O, 1-D or 2-D; MobileNet's 3x3 stride 1 and 2): the image in
//   channels-last u8 once, then every output pixel's taps summed over all channels at once
//   (kernels/depthwise_int8.hpp), the epilogue writing NCHW.
// - Other groupings (ResNeXt, RegNet): one integer GEMM per group (kernels/gemm_int8.hpp) over
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

// One image [C, plane] to [plane, C], the top bit flipped by `flip` (s8 as u8 + 128), in
// 32 x 32 blocks shared out over the pool.
template <class T>
void to_channels_last(const T* src, int64_t C, int64_t plane, T* dst, T flip, const ExecContext& ctx) {
  constexpr int64_t kBlock = 32;
  const auto band = [&](int64_t b0, int64_t b1) {
    for (int64_t p0 = b0 * kBlock; p0 < std::min(plane, b1 * kBlock); p0 += kBlock)
      for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
        const int64_t p1 = std::min(plane, p0 + kBlock), c1 = std::min(C, c0 + kBlock);
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t c = c0; c < c1; ++c) dst[p * C + c] = src[c * plane + p] ^ flip;
      }
  };
  const int64_t bands = (plane + kBlock - 1) / kBlock;
  if (ctx.pool && C * plane * (int64_t)sizeof(T) >= (int64_t{1} << 16))
    ctx.pool->parallel_for(bands, 1, band, ctx.max_threads);
  else
    band(0, bands);
}

int32_t int8_at(const TensorView& t, int64_t i) {
  return t.type == ElementType::u8 ? (int32_t)t.as<uint8_t>()[i] : (int32_t)t.as<int8_t>()[i];
}

// A zero point, factor or bias: N values from one or N.
template <class T, class Get>
std::vector<T> per_channel(const TensorView& t, int64_t N, Get get) {
  std::vector<T> v((size_t)N);
  const bool each = numel(t.shape) == N;
  for (int64_t i = 0; i < N; ++i) v[(size_t)i] = get(t, each ? i : 0);
  return v;
}

KernelFn prepare_depthwise(const PrepareContext& ctx, const Window& w) {
  const int64_t batch = ctx.in[0].shape[0], C = ctx.in[0].shape[1];
  const int64_t taps = w.kernel[1] * w.kernel[2], plane = w.in[1] * w.in[2], positions = w.out[1] * w.out[2];
  const bool x_signed = ctx.in[0].type == ElementType::i8, w_unsigned = ctx.in[1].type == ElementType::u8;
  const bool dequantize = ctx.in.size() > 4, has_bias = ctx.in.size() > 5;
  ctx.note_kernel(std::string("depthwise integer ") + depthwise_int8_isa() + " over channels-last pixels");
  return [=](const KernelArgs& k) {
    const uint8_t* f = static_cast<const uint8_t*>(k.in[1]->data);
    const std::vector<int32_t> w_zero = per_channel<int32_t>(*k.in[3], C, int8_at);
    const int32_t x_zero = int8_at(*k.in[2], 0) + (x_signed ? 128 : 0);  // in the u8 domain
    // Weights [taps, C] less their zero points; the data's zero point taken out of each sum
    // as x_zero * the channel's weights, so padding (x_zero) adds nothing.
    std::vector<int32_t> weights((size_t)(taps * C)), channel_add((size_t)C);
    for (int64_t c = 0; c < C; ++c) {
      int32_t total = 0;
      for (int64_t t = 0; t < taps; ++t) {
        const int32_t v =
            (w_unsigned ? (int32_t)f[c * taps + t] : (int32_t)(int8_t)f[c * taps + t]) - w_zero[(size_t)c];
        weights[(size_t)(t * C + c)] = v;
        total += v;
      }
      channel_add[(size_t)c] = -x_zero * total;
    }
    std::vector<float> scale, bias;
    if (dequantize)
      scale = per_channel<float>(*k.in[4], C, [](const TensorView& t, int64_t i) { return t.as<float>()[i]; });
    if (has_bias) bias.assign(k.in[5]->as<float>(), k.in[5]->as<float>() + C);
    thread_local std::vector<uint8_t> channels_last;
    channels_last.resize((size_t)(plane * C));
    DepthwiseInt8 p;
    p.channels = C;
    p.in_h = w.in[1], p.in_w = w.in[2], p.out_h = w.out[1], p.out_w = w.out[2];
    p.kernel_h = w.kernel[1], p.kernel_w = w.kernel[2], p.stride_h = w.stride[1], p.stride_w = w.stride[2];
    p.dilation_h = w.dilation[1], p.dilation_w = w.dilation[2], p.pad_top = w.pad_begin[1], p.pad_left = w.pad_begin[2];
    p.image = channels_last.data();
    p.pad = (uint8_t)x_zero;
    p.weights = weights.data();
    p.channel_add = channel_add.data();
    p.channel_stride = positions;
    p.pixel_stride = 1;
    p.scale = dequantize ? scale.data() : nullptr;
    p.bias = has_bias ? bias.data() : nullptr;
    const uint8_t flip = x_signed ? 0x80 : 0;
    for (int64_t b = 0; b < batch; ++b) {
      to_channels_last(static_cast<const uint8_t*>(k.in[0]->data) + b * C * plane, C, plane, channels_last.data(), flip,
                       *k.ctx);
      if (dequantize)
        p.out_f32 = k.out[0]->as<float>() + b * C * positions;
      else
        p.out_i32 = k.out[0]->as<int32_t>() + b * C * positions;
      const auto rows = [&](int64_t y0, int64_t y1) { depthwise_int8_rows(p, y0, y1); };
      if (k.ctx->pool && positions * C * taps >= (int64_t{1} << 15))
        k.ctx->pool->parallel_for(p.out_h, 1, rows, k.ctx->max_threads);
      else
        rows(0, p.out_h);
    }
  };
}

// Each group's filters [O / group, taps * Cg] (tap-major, as its patch rows), packed.
struct GroupedInt8Filters {
  std::vector<PackedInt8B> groups;
};

KernelFn prepare_grouped(const PrepareContext& ctx, const Window& w, int64_t group) {
  const Dims &xs = ctx.in[0].shape, &fs = ctx.in[1].shape;
  const int64_t batch = xs[0], C = xs[1], O = fs[0], Cg = C / group, Og = O / group;
  const int64_t taps = w.kernel[0] * w.kernel[1] * w.kernel[2], Kg = taps * Cg;
  const int64_t positions = w.out[0] * w.out[1] * w.out[2], plane = w.in[0] * w.in[1] * w.in[2];
  const bool a_signed = ctx.in[0].type == ElementType::i8, b_unsigned = ctx.in[1].type == ElementType::u8;
  const bool dequantize = ctx.in.size() > 4, has_bias = ctx.in.size() > 5;
  auto filters = ctx.derived<GroupedInt8Filters>(
      1, "GroupedInt8Filters " + std::to_string(group) + " " + PackedInt8B::layout(b_unsigned, true, Kg, O, Kg), [&] {
        const uint8_t* f = static_cast<const uint8_t*>(ctx.in[1].data);
        auto packed = std::make_shared<GroupedInt8Filters>();
        std::vector<uint8_t> reordered((size_t)(Og * Kg));
        for (int64_t g = 0; g < group; ++g) {
          for (int64_t o = 0; o < Og; ++o)
            for (int64_t c = 0; c < Cg; ++c)
              for (int64_t t = 0; t < taps; ++t)
                reordered[(size_t)(o * Kg + t * Cg + c)] = f[((g * Og + o) * Cg + c) * taps + t];
          packed->groups.emplace_back(reordered.data(), b_unsigned, true, Kg, Og, Kg);
        }
        return packed;
      });
  ctx.note_kernel(std::string("integer GEMM ") + gemm_int8_isa() + " per group over channels-last patches");
  return [=](const KernelArgs& k) {
    const TensorView& bz = *k.in[3];
    const bool zero_each = numel(bz.shape) == O;
    const std::vector<int32_t> b_zero = per_channel<int32_t>(bz, O, int8_at);
    const uint8_t pad = *k.in[2]->as<uint8_t>();  // the zero point's byte, in the data's type
    const int32_t a_zero = int8_at(*k.in[2], 0);
    std::vector<float> factor;
    if (dequantize)
      factor = per_channel<float>(*k.in[4], O, [](const TensorView& t, int64_t i) { return t.as<float>()[i]; });
    thread_local std::vector<uint8_t> channels_last, patches;
    thread_local std::vector<uint32_t> result;
    channels_last.resize((size_t)(plane * C));
    patches.resize((size_t)(group * positions * Kg));
    result.resize((size_t)(positions * O));
    uint8_t* const image_cl = channels_last.data();
    uint8_t* const patch_rows = patches.data();
    const uint8_t* x = static_cast<const uint8_t*>(k.in[0]->data);
    for (int64_t b = 0; b < batch; ++b) {
      to_channels_last<uint8_t>(x + b * C * plane, C, plane, image_cl, 0, *k.ctx);
      // Group g's row for position p at patch_rows[(g * positions + p) * Kg]: its Cg channels
      // under each tap (or the pad byte).
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
                const uint8_t* src = image_cl + ((z * w.in[1] + y) * w.in[2] + xx) * C;
                for (int64_t g = 0; g < group; ++g) {
                  uint8_t* dst = patch_rows + (g * positions + p) * Kg + t * Cg;
                  if (inside)
                    std::memcpy(dst, src + g * Cg, (size_t)Cg);
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
      for (int64_t g = 0; g < group; ++g) {
        Int8Output out;
        out.ldc = O;
        if (dequantize) {
          out.c_f32 = reinterpret_cast<float*>(result.data()) + g * Og;
          out.scale = factor.data() + g * Og;
          out.bias = has_bias ? k.in[5]->as<float>() + g * Og : nullptr;
        } else {
          out.c_i32 = reinterpret_cast<int32_t*>(result.data()) + g * Og;
        }
        gemm_u8s8(positions, patch_rows + g * positions * Kg, a_signed, Kg, a_zero, filters->groups[(size_t)g],
                  b_zero.data() + (zero_each ? g * Og : 0), zero_each ? Og : 1, out, k.ctx->pool, k.ctx->max_threads);
      }
      // [positions, O] to the NCHW output's [O, positions] (4-byte values either way).
      uint32_t* y = static_cast<uint32_t*>(k.out[0]->data) + b * O * positions;
      for (int64_t o = 0; o < O; ++o)
        for (int64_t p = 0; p < positions; ++p) y[o * positions + p] = result[(size_t)(p * O + o)];
    }
  };
}

}  // namespace

KernelFn prepare_quantized_grouped_conv(const PrepareContext& ctx) {
  const Dims &xs = ctx.in[0].shape, &fs = ctx.in[1].shape;
  const int64_t group = ctx.node.attr_int("group"), C = xs[1], O = fs[0];
  std::vector<int64_t> in(xs.begin() + 2, xs.end()), kernel(fs.begin() + 2, fs.end());
  const Window w = to_3d(make_window(ctx.node, in, kernel));
  if (group == C && O == C && w.kernel[0] == 1 && w.in[0] == 1) return prepare_depthwise(ctx, w);
  return prepare_grouped(ctx, w, group);
}

}  // namespace aiov
