// AVX-512 kernels of quantized_bytes.hpp. The sum: 16 bytes of each operand widened to f32
// lanes, the separate ops' steps (this file is built with -ffp-contract=off, so no FMA), and
// the requantization of requantize_x86.hpp: the portable path's bytes. The lookup: the
// 256-byte table in four registers, two VPERMI2B (each picks among 128 entries by the index's
// low 7 bits) and a blend by its top bit give 64 bytes. The pooling: a running VPMAXUB over
// each window's taps, 64 channels of one pixel a step (masked at the channel tail), with the
// taps in bounds found once per pixel instead of a test per tap. The image quantized to NHWC:
// 16 pixels of each of up to 4 planes requantized, packed to bytes (a 128-bit lane then holds 4
// pixels of every plane), put in pixel order within each lane by one byte shuffle, and the
// lanes' C dwords joined by one dword permute (AVX512BW: no VBMI needed).
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

// aiov.Quantize's bytes of NV vectors as s32 lanes, at most 255 and negative for 0 (for the
// unsigned-saturating packs), as requantized_u8 gives them but with the zero point added
// before rounding: t = y * (1 / scale) + zero in one FMA lies within |y / scale| 2^-24 + 2^-15
// of y / scale + zero while |t| < 512, under 2^-12 where the byte is not saturated either way
// (|y / scale| <= 256), so t rounds as that exact value unless within 2^-10 of a half-integer:
// then the vectors divide, as requantized_u8 does. The conversion rounds t itself and VREDUCEPS
// gives its fraction: six operations a vector, where requantized_u8 and a cap for the packs take nine.
template <int NV>
[[gnu::always_inline]] inline void quantized_lanes(const __m512 (&y)[NV], const Requantizer& r, __m512i (&out)[NV]) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __m512 t[NV];
  bool divide = !r.by_inverse;
  if (r.by_inverse) {
    __mmask16 near = 0;
    for (int v = 0; v < NV; ++v) {
      t[v] = _mm512_fmadd_ps(y[v], r.inverse, r.zero);
      // t less t rounded to an integer (an infinite or NaN t gives 0 or a NaN, which no
      // compare flags; it saturates below)
      const __m512 off = _mm512_abs_ps(_mm512_reduce_ps(t[v], kNearest));
      near |= _mm512_cmp_ps_mask(off, _mm512_set1_ps(0.5f - 1.0f / 1024.0f), _CMP_GE_OQ);
    }
    divide = near != 0;
  }
  if (divide)
    for (int v = 0; v < NV; ++v)
      t[v] = _mm512_add_ps(_mm512_roundscale_ps(_mm512_div_ps(y[v], r.scale), kNearest), r.zero);
  // Capped at 255 (min returns its second operand, a NaN, for a NaN), rounded half to even by
  // the conversion; what is left below 0 (a NaN or -inf converts to 0x80000000) is negative,
  // which the packs after saturate to 0.
  for (int v = 0; v < NV; ++v) out[v] = _mm512_cvt_roundps_epi32(_mm512_min_ps(_mm512_set1_ps(255.0f), t[v]), kNearest);
}

// Planes [C <= 4][pixels] (plane floats apart) to pixels [pixels][C], 16 pixels a step.
template <int C, bool FLIP>
void planes_to_pixels_few(const float* x, int64_t plane, int64_t pixels, const Requantizer& rq, uint8_t* y) {
  // The packs leave pixel 4 L + i of plane c at byte 4 c + i of 128-bit lane L; it goes to
  // byte C i + c of the lane (C dwords of pixels, the rest zeros), then dword j of lane L to
  // dword C L + j of the result.
  alignas(64) int8_t shuffle[64];
  alignas(64) int32_t lanes[16];
  for (int k = 0; k < 64; ++k) shuffle[k] = k % 16 < 4 * C ? (int8_t)((k % 16) % C * 4 + (k % 16) / C) : (int8_t)-1;
  for (int d = 0; d < 16; ++d) lanes[d] = d < 4 * C ? 4 * (d / C) + d % C : 0;
  const __m512i in_lane = _mm512_load_si512(shuffle), across = _mm512_load_si512(lanes);
  const auto step = [&](int64_t p, __mmask16 load, __mmask64 store) {
    __m512 v[C];
    for (int c = 0; c < C; ++c) v[c] = _mm512_maskz_loadu_ps(load, x + c * plane + p);
    __m512i q[C], w[4];
    quantized_lanes<C>(v, rq, q);
    for (int c = 0; c < 4; ++c) w[c] = c < C ? q[c] : _mm512_setzero_si512();
    const __m512i packed = _mm512_packus_epi16(_mm512_packus_epi32(w[0], w[1]), _mm512_packus_epi32(w[2], w[3]));
    __m512i out = _mm512_shuffle_epi8(packed, in_lane);
    if (C < 4) out = _mm512_permutexvar_epi32(across, out);
    if (FLIP) out = _mm512_xor_si512(out, _mm512_set1_epi8((char)0x80));
    _mm512_mask_storeu_epi8(y + p * C, store, out);
  };
  int64_t p = 0;
  for (; p + 16 <= pixels; p += 16) step(p, 0xFFFF, mask64(16 * C));
  if (p < pixels) step(p, mask16(pixels - p), mask64((pixels - p) * C));
}

template <int C>
void planes_to_pixels_few(const float* x, int64_t plane, int64_t pixels, const Requantizer& rq, uint8_t flip,
                          uint8_t* y) {
  flip ? planes_to_pixels_few<C, true>(x, plane, pixels, rq, y)
       : planes_to_pixels_few<C, false>(x, plane, pixels, rq, y);
}

void planes_to_pixels_avx512(const float* x, int64_t plane, int64_t C, int64_t pixels, float scale, int32_t zero,
                             uint8_t flip, uint8_t* y) {
  const Requantizer rq = requantizer(scale, zero);
  switch (C) {
    case 1:
      return planes_to_pixels_few<1>(x, plane, pixels, rq, flip, y);
    case 2:
      return planes_to_pixels_few<2>(x, plane, pixels, rq, flip, y);
    case 3:
      return planes_to_pixels_few<3>(x, plane, pixels, rq, flip, y);
    case 4:
      return planes_to_pixels_few<4>(x, plane, pixels, rq, flip, y);
    default:
      return planes_to_pixels_by_planes(x, plane, C, pixels, scale, zero, flip, y);
  }
}

const QuantizedBytesKernels kAvx512{"avx512", &sum_avx512,           &lookup_portable,
                                    0.6,      &max_pool_rows_avx512, &planes_to_pixels_avx512};
const QuantizedBytesKernels kAvx512Vbmi{"avx512_vbmi", &sum_avx512,           &lookup_vbmi,
                                        0.03,          &max_pool_rows_avx512, &planes_to_pixels_avx512};

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
