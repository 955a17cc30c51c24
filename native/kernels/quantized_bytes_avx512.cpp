// AVX-512 kernels of quantized_bytes.hpp. The sum: 16 bytes of each operand widened to f32
// lanes, the separate ops' steps (this file is built with -ffp-contract=off, so no FMA), and
// the requantization of requantize_x86.hpp: the portable path's bytes. The lookup: the
// 256-byte table in four registers, two VPERMI2B (each picks among 128 entries by the index's
// low 7 bits) and a blend by its top bit give 64 bytes. The pooling: a running VPMAXUB over
// each window's taps, 64 channels of one pixel a step (masked at the channel tail), with the
// taps in bounds found once per pixel instead of a test per tap.
#include "kernels/quantized_bytes.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <algorithm>

#include "kernels/x86_intrinsics.hpp"
// (after the intrinsics)
#include "kernels/requantize_x86.hpp"

namespace aiov {
namespace quantized_bytes_detail {
namespace {

inline __mmask16 mask16(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u); }
inline __mmask64 mask64(int64_t left) { return left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1); }

[[gnu::always_inline]] inline __m512 widened(const uint8_t* x, __mmask16 m) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, x)));
}

void sum_avx512(const uint8_t* a, const uint8_t* b, int64_t n, const QuantizedSum& s, uint8_t* y) {
  const Requantizer rq = requantizer(s.y_scale, s.y_zero);
  const __m512 za = _mm512_set1_ps(s.a_zero), sa = _mm512_set1_ps(s.a_scale);
  const __m512 zb = _mm512_set1_ps(s.b_zero), sb = _mm512_set1_ps(s.b_scale);
  const auto bytes = [&](int64_t i, __mmask16 m) {  // 16 results as s32 lanes in [0, 255]
    const __m512 da = _mm512_mul_ps(_mm512_sub_ps(widened(a + i, m), za), sa);
    const __m512 db = _mm512_mul_ps(_mm512_sub_ps(widened(b + i, m), zb), sb);
    return requantized_u8(_mm512_add_ps(da, db), rq);
  };
  int64_t i = 0;
  // 64 results narrowed in registers and stored at once: a narrowing store per 16 (VPMOVUSDB
  // to memory) is slow on some cores (Zen 4).
  for (; i + 64 <= n; i += 64) {
    const __m512i lo = _mm512_packus_epi32(bytes(i, 0xFFFF), bytes(i + 16, 0xFFFF));  // s16, lanes interleaved
    const __m512i hi = _mm512_packus_epi32(bytes(i + 32, 0xFFFF), bytes(i + 48, 0xFFFF));
    const __m512i packed = _mm512_packus_epi16(lo, hi);  // per 128-bit lane: 4 bytes of each of the 4
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    _mm512_storeu_si512(y + i, _mm512_permutexvar_epi32(order, packed));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    _mm512_mask_cvtusepi32_storeu_epi8(y + i, m, bytes(i, m));
  }
}

// table[v] for 64 bytes, the table in t0..t3.
__attribute__((target("avx512vbmi"), always_inline)) inline __m512i looked_up(__m512i v, __m512i t0, __m512i t1,
                                                                              __m512i t2, __m512i t3) {
  const __m512i low = _mm512_permutex2var_epi8(t0, v, t1);   // entries 0..127
  const __m512i high = _mm512_permutex2var_epi8(t2, v, t3);  // entries 128..255
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low, high);
}

__attribute__((target("avx512vbmi"))) void lookup_vbmi(const uint8_t* x, int64_t rows, int64_t row,
                                                       const uint8_t* table, uint8_t* y, int64_t ld_y) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  if (rows > 1 && (row == 16 || row == 32) && ld_y != row) {
    // Short rows apart (a Concat's slice of 16 or 32 channels): 64 / row rows a vector,
    // looked up at once and stored row by row, each store masked to its row's lanes.
    const int64_t per = 64 / row;
    for (int64_t r = 0; r < rows; r += per, x += per * row) {
      const int64_t here = std::min(per, rows - r);
      const __m512i v = looked_up(_mm512_maskz_loadu_epi8(mask64(here * row), x), t0, t1, t2, t3);
      for (int64_t i = 0; i < here; ++i)  // (y + (r + i) * ld_y - i * row >= y: ld_y > row)
        _mm512_mask_storeu_epi8(y + (r + i) * ld_y - i * row, mask64(row) << (i * row), v);
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r, x += row, y += ld_y)
    for (int64_t i = 0; i < row; i += 64) {
      const __mmask64 m = mask64(row - i);
      _mm512_mask_storeu_epi8(y + i, m, looked_up(_mm512_maskz_loadu_epi8(m, x + i), t0, t1, t2, t3));
    }
}

void max_pool_rows_avx512(const Window2d& g, const uint8_t* x, uint8_t* y, int64_t r0, int64_t r1) {
  const uint8_t* rows[64];  // the window's input rows in bounds (kh is small; more go in passes)
  // Columns [x_lo, x_hi) have every tap inside the image's width.
  const int64_t reach = (g.kw - 1) * g.dw;
  const int64_t x_lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t x_hi = std::max(x_lo, std::min(g.OW, g.W - reach + g.pw > 0 ? (g.W - reach + g.pw - 1) / g.sw + 1 : 0));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.OH, oy = r % g.OH;
    uint8_t* out = y + r * g.OW * g.C;
    for (int64_t ky0 = 0; ky0 < g.kh; ky0 += 64) {
      int64_t taps_y = 0;
      for (int64_t ky = ky0; ky < std::min(g.kh, ky0 + 64); ++ky) {
        const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
        if (iy >= 0 && iy < g.H) rows[taps_y++] = x + (n * g.H + iy) * g.W * g.C;
      }
      for (int64_t ox = 0; ox < g.OW; ++ox) {
        // Taps in bounds: kx in [kx0, kx1); all of them in [x_lo, x_hi) (no division there:
        // two per pixel cost more than its maxima).
        const int64_t left = ox * g.sw - g.pw;
        const bool inside = ox >= x_lo && ox < x_hi;
        const int64_t kx0 = inside || left >= 0 ? 0 : (-left + g.dw - 1) / g.dw;
        const int64_t kx1 = inside ? g.kw : left >= g.W ? 0 : std::min(g.kw, (g.W - 1 - left) / g.dw + 1);
        uint8_t* o = out + ox * g.C;
        if (inside && taps_y == 3 && g.kw == 3 && g.C <= 64 && ky0 == 0) {
          // The usual 3x3 window inside the image, few channels (SqueezeNet's, at 16-64):
          // nine loads and maxima straight, where the general loops' bookkeeping per pixel
          // cost more than the maxima.
          const __mmask64 m = mask64(g.C);
          const int64_t at = left * g.C, step = g.dw * g.C;
          __m512i acc = _mm512_maskz_loadu_epi8(m, rows[0] + at);
          for (int t = 0; t < 3; ++t) {
            const uint8_t* p = rows[t] + at;
            if (t) acc = _mm512_max_epu8(acc, _mm512_maskz_loadu_epi8(m, p));
            acc = _mm512_max_epu8(acc, _mm512_maskz_loadu_epi8(m, p + step));
            acc = _mm512_max_epu8(acc, _mm512_maskz_loadu_epi8(m, p + 2 * step));
          }
          _mm512_mask_storeu_epi8(o, m, acc);
          continue;
        }
        for (int64_t c = 0; c < g.C; c += 64) {
          const __mmask64 m = mask64(g.C - c);
          // A later pass of a kernel taller than 64 rows goes on from what the first wrote.
          __m512i acc = ky0 == 0 ? _mm512_setzero_si512() : _mm512_maskz_loadu_epi8(m, o + c);
          for (int64_t t = 0; t < taps_y; ++t)
            for (int64_t kx = kx0; kx < kx1; ++kx)
              acc = _mm512_max_epu8(acc, _mm512_maskz_loadu_epi8(m, rows[t] + (left + kx * g.dw) * g.C + c));
          _mm512_mask_storeu_epi8(o + c, m, acc);
        }
      }
    }
  }
}

const QuantizedBytesKernels kAvx512{"avx512", &sum_avx512, &lookup_portable, 0.6, &max_pool_rows_avx512};
const QuantizedBytesKernels kAvx512Vbmi{"avx512_vbmi", &sum_avx512, &lookup_vbmi, 0.03, &max_pool_rows_avx512};

}  // namespace

const QuantizedBytesKernels* avx512_quantized_bytes_kernels() {
  return __builtin_cpu_supports("avx512vbmi") ? &kAvx512Vbmi : &kAvx512;
}

}  // namespace quantized_bytes_detail
}  // namespace aiov
#else
namespace aiov::quantized_bytes_detail {
const QuantizedBytesKernels* avx512_quantized_bytes_kernels() { return nullptr; }
}  // namespace aiov::quantized_bytes_detail
#endif
