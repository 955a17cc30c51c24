// Portable u8 kernels of quantized_bytes.hpp and the choice of kernel set. Built with
// -ffp-contract=off: an FMA in the sum would round differently from the separate ops.
#include "kernels/quantized_bytes.hpp"

#include <algorithm>

#include "kernels/gemm_int8.hpp"
#include "kernels/isa.hpp"

namespace aiov {
namespace quantized_bytes_detail {

void lookup_portable(const uint8_t* x, int64_t rows, int64_t row, const uint8_t* table, uint8_t* y, int64_t ld_y) {
  for (int64_t r = 0; r < rows; ++r, x += row, y += ld_y)
    for (int64_t i = 0; i < row; ++i) y[i] = table[x[i]];
}

void planes_to_pixels_by_planes(const float* x, int64_t plane, int64_t C, int64_t pixels, float scale, int32_t zero,
                                uint8_t flip, uint8_t* y) {
  constexpr int64_t kBlock = 256;  // pixels quantized per plane, then scattered while in L1
  uint8_t bytes[kBlock];
  for (int64_t p = 0; p < pixels; p += kBlock) {
    const int64_t m = std::min(kBlock, pixels - p);
    for (int64_t c = 0; c < C; ++c) {
      quantize_u8(x + c * plane + p, m, scale, zero, bytes);
      uint8_t* out = y + p * C + c;
      for (int64_t i = 0; i < m; ++i) out[i * C] = bytes[i] ^ flip;
    }
  }
}

namespace {

void sum_portable(const uint8_t* a, const uint8_t* b, int64_t n, const QuantizedSum& s, uint8_t* y) {
  constexpr int64_t kBlock = 512;  // f32 sums of a block, then requantized while in L1
  float sum[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = std::min(kBlock, n - i);
    for (int64_t j = 0; j < m; ++j)
      sum[j] = ((float)a[i + j] - s.a_zero) * s.a_scale + ((float)b[i + j] - s.b_zero) * s.b_scale;
    quantize_u8(sum, m, s.y_scale, s.y_zero, y + i);
  }
}

void max_pool_rows_portable(const Window2d& g, const uint8_t* x, uint8_t* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.OH, oy = r % g.OH;
    uint8_t* out = y + r * g.OW * g.C;
    std::fill_n(out, g.OW * g.C, uint8_t{0});
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.H) continue;
      const uint8_t* row = x + (n * g.H + iy) * g.W * g.C;
      for (int64_t ox = 0; ox < g.OW; ++ox)
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
          if (ix < 0 || ix >= g.W) continue;
          uint8_t* o = out + ox * g.C;
          const uint8_t* v = row + ix * g.C;
          for (int64_t c = 0; c < g.C; ++c) o[c] = std::max(o[c], v[c]);
        }
    }
  }
}

const QuantizedBytesKernels kPortable{"scalar", &sum_portable,           &lookup_portable,
                                      0.6,      &max_pool_rows_portable, &planes_to_pixels_by_planes};

const QuantizedBytesKernels& kernels() {
  static const QuantizedBytesKernels* chosen = [] {  // once; thread-safe static init
    // The int8 cap: these kernels run between the integer products and are tested with them.
    if (selected_int8_isa() >= Int8Isa::avx512_vnni)
      if (const QuantizedBytesKernels* k = avx512_quantized_bytes_kernels()) return k;
    return &kPortable;
  }();
  return *chosen;
}

}  // namespace
}  // namespace quantized_bytes_detail

using namespace quantized_bytes_detail;

void quantized_sum_u8(const uint8_t* a, const uint8_t* b, int64_t n, const QuantizedSum& s, uint8_t* y) {
  kernels().sum(a, b, n, s, y);
}

void lookup_u8(const uint8_t* x, int64_t n, const uint8_t* table, uint8_t* y) {
  kernels().lookup(x, 1, n, table, y, n);
}

void lookup_u8_rows(const uint8_t* x, int64_t rows, int64_t row, const uint8_t* table, uint8_t* y, int64_t ld_y) {
  kernels().lookup(x, rows, row, table, y, ld_y);
}

void max_pool_nhwc_u8_rows(const Window2d& g, const uint8_t* x, uint8_t* y, int64_t r0, int64_t r1) {
  kernels().max_pool_rows(g, x, y, r0, r1);
}

void quantize_planes_to_pixels(const float* x, int64_t plane, int64_t C, int64_t pixels, float scale, int32_t zero,
                               uint8_t flip, uint8_t* y) {
  kernels().planes_to_pixels(x, plane, C, pixels, scale, zero, flip, y);
}

double lookup_ns_per_byte() { return kernels().lookup_ns_per_byte; }

const char* quantized_bytes_isa() { return kernels().name; }

}  // namespace aiov
