// Scalar element conversions and math shared by kernels. Everything here is plain
// arithmetic so loops using it auto-vectorize.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/types.hpp"
#include "kernels/erf_coefficients.hpp"
#include "kernels/exp_coefficients.hpp"

namespace aiov {

struct f16_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0) {
    if (man == 0) return bits_to_float(sign);
    float f = (float)man * (1.0f / 16777216.0f);  // subnormal: man * 2^-24
    return sign ? -f : f;
  }
  if (exp == 31) return bits_to_float(sign | 0x7f800000u | (man << 13));
  return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
}

inline uint16_t float_to_half(float f) {
  uint32_t x = float_to_bits(f);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // overflow to inf
  if (absx < 0x38800000u) {                                   // subnormal or zero in f16
    float v = bits_to_float(absx) * 16777216.0f;              // scale by 2^24
    return (uint16_t)(sign | (uint32_t)std::nearbyint(v));
  }
  // Round to nearest even on the 13 dropped mantissa bits.
  uint32_t r = absx + 0xfff + ((absx >> 13) & 1);
  return (uint16_t)(sign | ((r - (112u << 23)) >> 13));
}

inline float bf16_to_float(uint16_t b) { return bits_to_float((uint32_t)b << 16); }
inline uint16_t float_to_bf16(float f) {
  uint32_t x = float_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  // keep NaN a NaN
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

// Storage type -> the type arithmetic is done in.
template <class T>
struct ComputeOf {
  using type = T;
};
template <>
struct ComputeOf<f16_t> {
  using type = float;
};
template <>
struct ComputeOf<bf16_t> {
  using type = float;
};
template <>
struct ComputeOf<bool> {
  using type = uint8_t;
};

template <class T>
inline typename ComputeOf<T>::type load(T v) {
  return v;
}
inline float load(f16_t v) { return half_to_float(v.bits); }
inline float load(bf16_t v) { return bf16_to_float(v.bits); }
inline uint8_t load(bool v) { return v ? 1 : 0; }

template <class T, class C>
inline T store(C v) {
  return (T)v;
}
template <>
inline f16_t store<f16_t, float>(float v) {
  return f16_t{float_to_half(v)};
}
template <>
inline bf16_t store<bf16_t, float>(float v) {
  return bf16_t{float_to_bf16(v)};
}
template <>
inline bool store<bool, uint8_t>(uint8_t v) {
  return v != 0;
}

// Math used inside vectorized loops must be inlined for the loops to vectorize, also into
// target clones (GCC otherwise leaves some calls out of line as "cold").
#if defined(__GNUC__)
#define AIOV_INLINE inline __attribute__((always_inline))
#else
#define AIOV_INLINE inline
#endif

// exp for f32 within a few ulp over the whole range, branch-free so it vectorizes.
AIOV_INLINE float fast_exp(float x) {
  using namespace exp_f32;
  float xc = x < kLowest ? kLowest : (x > kHighest ? kHighest : x);
  // Round to nearest by adding and removing 1.5 * 2^23: plain arithmetic, unlike
  // nearbyint, which some target clones turn into a library call per element.
  float k = (xc * kLog2e + 12582912.0f) - 12582912.0f;
  float r = xc - k * kLn2Hi;
  r = r - k * kLn2Lo;
  float p = kC6;
  p = p * r + kC5;
  p = p * r + kC4;
  p = p * r + kC3;
  p = p * r + kC2;
  p = p * r * r + r + 1.0f;
  // 2^k in two factors so k in [-150, 128] never leaves the exponent range.
  int32_t e = (int32_t)k;
  int32_t e1 = e / 2, e2 = e - e1;
  float v = p * bits_to_float((uint32_t)(e1 + 127) << 23) * bits_to_float((uint32_t)(e2 + 127) << 23);
  return x > kHighest ? INFINITY : v;
}

AIOV_INLINE float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
AIOV_INLINE float fast_tanh(float x) {
  // Small |x|: odd Taylor series (1 - 2/(e^2x+1) would cancel); large: via exp. Written
  // with fabs/copysign and a final select so the loops using it vectorize.
  float ax = std::fabs(x);
  float x2 = x * x;
  float p = 21844.0f / 6081075.0f;
  p = p * x2 - 1382.0f / 155925.0f;
  p = p * x2 + 62.0f / 2835.0f;
  p = p * x2 - 17.0f / 315.0f;
  p = p * x2 + 2.0f / 15.0f;
  p = p * x2 - 1.0f / 3.0f;
  float small = x + x * x2 * p;
  float t = std::copysign(1.0f - 2.0f / (fast_exp(2.0f * ax) + 1.0f), x);
  return ax < 0.4f ? small : t;
}

// erf for Gelu, where an absolute error is what matters (the Erf op keeps std::erf):
// x * P(x^2) / (1 + x^2 Q(x^2)) on |x| <= 4, beyond which erf rounds to +-1 in f32. The
// coefficients are aiov's own weighted least-squares fit; the error in f32 stays below
// 4e-7. About 16 vector operations and one division per vector: half the work of
// 1 - poly(t) * exp(-x^2), which needs an exp and a division.
AIOV_INLINE float fast_erf(float x) {
  using namespace erf_f32;
  const float xc = x < -kBound ? -kBound : (x > kBound ? kBound : x);
  const float s = xc * xc;
  float p = kP[0];
  for (int i = 1; i < 6; ++i) p = p * s + kP[i];
  float q = kQ[0];
  for (int i = 1; i < 5; ++i) q = q * s + kQ[i];
  return xc * p / (1.0f + s * q);
}

}  // namespace aiov
