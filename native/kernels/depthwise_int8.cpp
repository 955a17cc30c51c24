// Depthwise int8 driver: per output row, each pixel's tap pointers (a row of padding bytes
// where a tap falls outside the image), the pixel's sums from the chosen kernel, then the
// row written out through the epilogue. Also the portable kernel.
#include "kernels/depthwise_int8.hpp"

#include <algorithm>
#include <vector>

#include "kernels/gemm_int8.hpp"
#include "kernels/isa.hpp"

namespace aiov {
namespace depthwise_detail {
namespace {

// The reference the VNNI kernel is tested against, and the path on CPUs without it.
void pixel_portable(const DepthwiseInt8& p, const uint8_t* const* taps, int32_t* acc) {
  const int64_t C = p.channels, count = p.kernel_h * p.kernel_w;
  for (int64_t c = 0; c < C; ++c) acc[c] = p.channel_add[c];
  for (int64_t t = 0; t < count; ++t) {
    const uint8_t* x = taps[t];
    const int32_t* w = p.weights + t * C;
    for (int64_t c = 0; c < C; ++c) acc[c] += (int32_t)x[c] * w[c];
  }
}

PixelFn choose_pixel() {
  if (selected_int8_isa() >= Int8Isa::avx512_vnni)
    if (PixelFn f = vnni_depthwise_pixel()) return f;
  return &pixel_portable;
}

PixelFn pixel_kernel() {
  static const PixelFn chosen = choose_pixel();  // once; thread-safe static init
  return chosen;
}

}  // namespace
}  // namespace depthwise_detail

using namespace depthwise_detail;

void depthwise_int8_rows(const DepthwiseInt8& p, int64_t oy0, int64_t oy1) {
  const int64_t C = p.channels, count = p.kernel_h * p.kernel_w;
  const PixelFn pixel = pixel_kernel();
  thread_local std::vector<uint8_t> pad_row;
  thread_local std::vector<const uint8_t*> taps;
  thread_local std::vector<int32_t> sums;
  thread_local std::vector<float> values;
  pad_row.assign((size_t)C, p.pad);
  taps.resize((size_t)count);
  sums.resize((size_t)(p.out_w * C));
  values.resize((size_t)std::max(p.out_w, C));
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    for (int64_t ox = 0; ox < p.out_w; ++ox) {
      for (int64_t ky = 0, t = 0; ky < p.kernel_h; ++ky)
        for (int64_t kx = 0; kx < p.kernel_w; ++kx, ++t) {
          const int64_t y = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
          const int64_t x = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
          const bool inside = y >= 0 && y < p.in_h && x >= 0 && x < p.in_w;
          taps[(size_t)t] = inside ? p.image + (y * p.in_w + x) * C : pad_row.data();
        }
      pixel(p, taps.data(), sums.data() + ox * C);
    }
    // The row's [out_w, C] sums to the output in contiguous runs: a pixel's channels where
    // channels are contiguous (NHWC), else a channel's pixels (NCHW).
    const int32_t* const row = sums.data();
    const bool by_pixel = p.channel_stride == 1;
    const int64_t outer = by_pixel ? p.out_w : C, inner = by_pixel ? C : p.out_w;
    const int64_t step = by_pixel ? 1 : C;  // from one inner sum to the next in `row`
    for (int64_t i = 0; i < outer; ++i) {
      const int32_t* s = row + (by_pixel ? i * C : i);
      const int64_t at = oy * p.out_w * p.pixel_stride + (by_pixel ? i * p.pixel_stride : i * p.channel_stride);
      if (p.out_i32) {
        for (int64_t j = 0; j < inner; ++j) p.out_i32[at + j] = s[j * step];
        continue;
      }
      float* y = p.out_f32 ? p.out_f32 + at : values.data();
      for (int64_t j = 0; j < inner; ++j) {
        const int64_t c = by_pixel ? j : i;
        float v = (float)s[j * step] * p.scale[c];
        if (p.bias) v += p.bias[c];
        y[j] = p.relu ? std::max(v, 0.0f) : v;
      }
      if (p.out_u8) quantize_u8(y, inner, p.out_scale, p.out_zero, p.out_u8 + at);
    }
  }
}

const char* depthwise_int8_isa() { return pixel_kernel() == &pixel_portable ? "scalar" : "avx512_vnni"; }

}  // namespace aiov
