// Depthwise (and narrow-group) int8 driver: per output row, the pixels whose taps all lie inside the image as
// one run for the kernel (tap pointers advancing by the stride), the border pixels one by
// one with taps outside reading padding bytes, then the row written out through the
// epilogue; where the row kernel applies, whole rows of a block of channels go to it. Also the
// portable kernels and the row kernel's weight packing.
#include "kernels/depthwise_int8.hpp"

#include <algorithm>
#include <vector>

#include "kernels/gemm_int8.hpp"
#include "kernels/isa.hpp"

namespace aiov {
namespace depthwise_detail {
namespace {

// The reference the VNNI kernels are tested against, and the path on CPUs without them.
void pixels_portable(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int32_t* acc) {
  const int64_t C = p.channels, kernel = p.kernel_h * p.kernel_w, width = p.group_width;
  for (int64_t i = 0; i < count; ++i, acc += C) {
    for (int64_t c = 0; c < C; ++c) acc[c] = p.channel_add[c];
    for (int64_t t = 0; t < kernel; ++t) {
      const uint8_t* x = taps[t] + i * step;
      for (int64_t in = 0; in < width; ++in) {
        const int32_t* w = p.weights + (t * width + in) * C;
        for (int64_t c = 0; c < C; ++c) acc[c] += (int32_t)x[c - c % width + in] * w[c];
      }
    }
  }
}

void dequantize_portable(const DepthwiseInt8& p, const int32_t* sums, float* y) {
  for (int64_t c = 0; c < p.channels; ++c) {
    float v = (float)sums[c] * p.scale[c];
    if (p.bias) v += p.bias[c];
    y[c] = p.relu ? std::max(v, 0.0f) : v;
  }
}

const char* vnni_kernel_name() {
  const DepthwiseKernels* k = vnni_depthwise_kernels();
  return k ? k->name : "";
}

const DepthwiseKernels kPortable{"scalar", &pixels_portable, nullptr, &dequantize_portable, nullptr};

const DepthwiseKernels& kernels() {
  static const DepthwiseKernels* chosen = [] {  // once; thread-safe static init
    if (selected_int8_isa() >= Int8Isa::avx512_vnni)
      if (const DepthwiseKernels* k = vnni_depthwise_kernels()) return k;
    return &kPortable;
  }();
  return *chosen;
}

}  // namespace
}  // namespace depthwise_detail

using namespace depthwise_detail;

namespace {

// Channels-last outputs are written by the kernel itself where it has the epilogue.
bool direct_output(const DepthwiseInt8& p) { return p.channel_stride == 1 && kernels().pixels_nhwc; }

// The row kernel writes whole rows itself.
bool by_rows(const DepthwiseInt8& p) { return direct_output(p) && kernels().rows_nhwc && row_kernel_applies(p); }

// Channels per unit when rows are split further (a multiple of 64: the row kernel's blocks).
constexpr int64_t kChannelBlock = 64;

// Blocks of channels per row: more than one only for images of few rows, which alone would
// leave a core idle or unevenly loaded.
int64_t channel_blocks(const DepthwiseInt8& p) {
  if (!direct_output(p) || p.out_h >= 16) return 1;
  return (p.channels + kChannelBlock - 1) / kChannelBlock;
}

// The padding byte, long enough for a run of pixels to walk along it, every tap of the row
// kernel reading a 64-byte vector from its row's first tap on (kept while it fits).
const uint8_t* padding_row(const DepthwiseInt8& p) {
  thread_local std::vector<uint8_t> padding;
  const size_t bytes = (size_t)((p.out_w * p.stride_w + p.kernel_w * p.dilation_w + 1) * p.channels + 64);
  if (padding.size() != bytes || padding[0] != p.pad) padding.assign(bytes, p.pad);
  return padding.data();
}

// Output rows [oy0, oy1), channels [c0, c1) (all of them unless the output is direct).
void depthwise_int8_rows(const DepthwiseInt8& p, int64_t oy0, int64_t oy1, int64_t c0, int64_t c1) {
  const int64_t C = p.channels, count = p.kernel_h * p.kernel_w;
  const DepthwiseKernels& ks = kernels();
  const bool direct = direct_output(p);
  const uint8_t* const padding = padding_row(p);
  thread_local std::vector<const uint8_t*> taps;
  thread_local std::vector<int32_t> sums;
  thread_local std::vector<float> values;
  taps.resize((size_t)count);
  sums.resize((size_t)(p.out_w * C));
  values.resize((size_t)std::max(p.out_w, C));
  // Columns [x_lo, x_hi) have every tap inside the image's width.
  const int64_t reach = (p.kernel_w - 1) * p.dilation_w;
  const int64_t x_lo = std::min(p.out_w, (p.pad_left + p.stride_w - 1) / p.stride_w);
  const int64_t x_hi = std::max(
      x_lo, std::min(p.out_w, p.in_w - reach + p.pad_left > 0 ? (p.in_w - reach + p.pad_left - 1) / p.stride_w + 1
                                                              : int64_t{0}));
  const int64_t step = p.stride_w * C;
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    // Tap t of the pixel at column ox, or padding.
    const auto set_taps = [&](int64_t ox) {
      for (int64_t ky = 0, t = 0; ky < p.kernel_h; ++ky) {
        const int64_t y = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
        for (int64_t kx = 0; kx < p.kernel_w; ++kx, ++t) {
          const int64_t x = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
          const bool inside = y >= 0 && y < p.in_h && x >= 0 && x < p.in_w;
          taps[(size_t)t] = inside ? p.image + (y * p.in_w + x) * C : padding;
        }
      }
    };
    const int64_t at = oy * p.out_w * p.pixel_stride;
    // Pixels [ox, ox + n) of the row (tap pointers `step` bytes apart from pixel to pixel).
    const auto run = [&](int64_t ox, int64_t n, int64_t step_bytes) {
      if (direct)
        ks.pixels_nhwc(p, taps.data(), n, step_bytes, at + ox * p.pixel_stride, c0, c1);
      else
        ks.pixels(p, taps.data(), n, step_bytes, sums.data() + ox * C);
    };
    for (int64_t ox = 0; ox < x_lo; ++ox) {
      set_taps(ox);
      run(ox, 1, 0);
    }
    if (x_hi > x_lo) {  // rows outside the image read along the padding
      set_taps(x_lo);
      run(x_lo, x_hi - x_lo, step);
    }
    for (int64_t ox = x_hi; ox < p.out_w; ++ox) {
      set_taps(ox);
      run(ox, 1, 0);
    }
    if (direct) continue;
    // The row's [out_w, C] sums to the output: a pixel's channels at once where they are
    // contiguous (NHWC), else a channel's pixels (NCHW).
    const int32_t* const row = sums.data();
    if (p.channel_stride == 1) {
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t o = at + ox * p.pixel_stride;
        if (p.out_i32) {
          std::copy(row + ox * C, row + (ox + 1) * C, p.out_i32 + o);
          continue;
        }
        float* y = p.out_f32 ? p.out_f32 + o : values.data();
        ks.dequantize(p, row + ox * C, y);
        if (p.out_u8) quantize_u8(y, C, p.out_scale, p.out_zero, p.out_u8 + o);
      }
      continue;
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t o = at + c * p.channel_stride;
      if (p.out_i32) {
        for (int64_t ox = 0; ox < p.out_w; ++ox) p.out_i32[o + ox] = row[ox * C + c];
        continue;
      }
      float* y = p.out_f32 ? p.out_f32 + o : values.data();
      const float scale = p.scale[c], bias = p.bias ? p.bias[c] : 0.0f;
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        float v = (float)row[ox * C + c] * scale;
        if (p.bias) v += bias;
        y[ox] = p.relu ? std::max(v, 0.0f) : v;
      }
      if (p.out_u8) quantize_u8(y, p.out_w, p.out_scale, p.out_zero, p.out_u8 + o);
    }
  }
}

}  // namespace

int64_t depthwise_int8_units(const DepthwiseInt8& p) { return p.out_h * channel_blocks(p); }

void depthwise_int8_run(const DepthwiseInt8& p, int64_t u0, int64_t u1) {
  const int64_t blocks = channel_blocks(p);
  if (by_rows(p)) {  // units block by block (rows within), each stretch of rows in one call
    for (int64_t u = u0; u < u1;) {
      const int64_t block = u / p.out_h, oy = u % p.out_h, rows = std::min(u1 - u, p.out_h - oy);
      const int64_t c0 = block * kChannelBlock,
                    c1 = blocks == 1 ? p.channels : std::min(p.channels, c0 + kChannelBlock);
      kernels().rows_nhwc(p, oy, oy + rows, c0, c1, padding_row(p));
      u += rows;
    }
    return;
  }
  if (blocks == 1) return depthwise_int8_rows(p, u0, u1, 0, p.channels);
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t c0 = u % blocks * kChannelBlock;
    depthwise_int8_rows(p, u / blocks, u / blocks + 1, c0, std::min(p.channels, c0 + kChannelBlock));
  }
}

const char* depthwise_int8_isa() { return kernels().name; }

std::vector<int32_t> depthwise_int8_quad_weights(const int32_t* weights, int64_t channels, int64_t group_width,
                                                 int64_t taps) {
  const int64_t C = channels, width = group_width;
  if (kernels().name != vnni_kernel_name() || (width != 4 && width != 8 && width != 16) || C % width != 0 || taps < 1)
    return {};
  for (int64_t i = 0; i < taps * width * C; ++i)
    if (weights[i] < -128 || weights[i] > 127) return {};
  const int64_t quads = width / 4;
  std::vector<int32_t> packed((size_t)(taps * quads * C));
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t q = 0; q < quads; ++q)
      for (int64_t o = 0; o < C; ++o) {
        uint32_t dword = 0;
        for (int64_t j = 0; j < 4; ++j)
          dword |= (uint32_t)(uint8_t)(int8_t)weights[(t * width + 4 * q + j) * C + o] << (8 * j);
        packed[(size_t)((t * quads + q) * C + o)] = (int32_t)dword;
      }
  return packed;
}

std::vector<int8_t> depthwise_int8_row_weights(const int32_t* weights, int64_t channels, int64_t group_width,
                                               int64_t kernel_h, int64_t kernel_w, int64_t stride_w,
                                               int64_t dilation_w) {
  const int64_t C = channels, kernel = kernel_h * kernel_w;
  if (kernels().name != vnni_kernel_name() || group_width != 1 || (kernel_w != 3 && kernel_w != 5 && kernel_w != 7) ||
      (stride_w != 1 && stride_w != 2) || dilation_w != 1 || kernel_h < 1 || C < 1)
    return {};
  for (int64_t i = 0; i < kernel * C; ++i)
    if (weights[i] < -128 || weights[i] > 127) return {};
  const int64_t blocks = (C + 63) / 64, row_groups = (kernel_h + 3) / 4;
  std::vector<int8_t> packed((size_t)(blocks * row_groups * kernel_w * 256), 0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t g = 0; g < row_groups; ++g)
      for (int64_t kx = 0; kx < kernel_w; ++kx) {
        int8_t* dst = packed.data() + ((b * row_groups + g) * kernel_w + kx) * 256;
        const int64_t width = row_block_pixels(C, 64 * b) > 1 ? row_block_width(C, 64 * b) : 64;
        for (int64_t k = 0; k < 4; ++k)
          for (int64_t lane = 0; lane < 4; ++lane)
            for (int64_t j = 0; j < 4; ++j) {
              const int64_t q = 16 * lane + 4 * k + j, c = 64 * b + q % width;
              for (int64_t r = 0; r < 4; ++r) {
                const int64_t ky = 4 * g + r;
                if (c < C && ky < kernel_h)
                  dst[k * 64 + (4 * lane + j) * 4 + r] = (int8_t)weights[(ky * kernel_w + kx) * C + c];
              }
            }
      }
  return packed;
}

}  // namespace aiov
