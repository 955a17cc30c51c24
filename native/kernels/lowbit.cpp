#include "kernels/lowbit.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace aiov {

namespace {

// A small binary float: sign, `exp_bits` exponent bits biased by `bias`, `man_bits` mantissa
// bits; subnormals when the exponent field is 0.
struct MiniFloat {
  int exp_bits, man_bits, bias;
  bool has_inf;      // e5m2: exponent all ones with mantissa 0 is infinity
  bool fnuz;         // 0x80 is the only NaN, there is no -0
  bool has_nan;      // f4e2m1 has none
  uint8_t max_code;  // the largest finite value (sign clear)
};

const MiniFloat* format_of(ElementType t) {
  static const MiniFloat e4m3{4, 3, 7, false, false, true, 0x7e};
  static const MiniFloat e5m2{5, 2, 15, true, false, true, 0x7b};
  static const MiniFloat e4m3fnuz{4, 3, 8, false, true, true, 0x7f};
  static const MiniFloat e5m2fnuz{5, 2, 16, false, true, true, 0x7f};
  static const MiniFloat e2m1{2, 1, 1, false, false, false, 0x7};
  switch (t) {
    case ElementType::f8e4m3:
      return &e4m3;
    case ElementType::f8e5m2:
      return &e5m2;
    case ElementType::f8e4m3fnuz:
      return &e4m3fnuz;
    case ElementType::f8e5m2fnuz:
      return &e5m2fnuz;
    case ElementType::f4e2m1:
      return &e2m1;
    default:
      return nullptr;
  }
}

int sign_shift(const MiniFloat& f) { return f.exp_bits + f.man_bits; }

double decode_mini(const MiniFloat& f, uint8_t code) {
  const int s = sign_shift(f);
  const bool negative = (code >> s) & 1;
  const uint8_t magnitude = code & ((1u << s) - 1);
  const int exp_field = magnitude >> f.man_bits, man = magnitude & ((1 << f.man_bits) - 1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (f.fnuz && negative && magnitude == 0) return nan;
  if (f.has_nan && !f.fnuz) {
    const int exp_max = (1 << f.exp_bits) - 1;
    if (f.has_inf && exp_field == exp_max) return man ? nan : (negative ? -INFINITY : INFINITY);
    if (!f.has_inf && magnitude == (1u << s) - 1) return nan;  // e4m3: S.1111.111
  }
  double v = exp_field == 0 ? std::ldexp((double)man, 1 - f.bias - f.man_bits)
                            : std::ldexp((double)((1 << f.man_bits) | man), exp_field - f.bias - f.man_bits);
  return negative ? -v : v;
}

// The nearest value (ties to even) of the format, as a code; overflow per `saturate`.
uint8_t encode_mini(const MiniFloat& f, double v, bool saturate) {
  const int s = sign_shift(f);
  const uint8_t sign = std::signbit(v) ? (uint8_t)(1u << s) : 0;
  // NaN codes as ml_dtypes (ONNX's reference) makes them: e5m2's quiet NaN is S.11111.10;
  // f4e2m1 has no NaN and gives a zero of the opposite sign.
  const uint8_t exp_ones = (uint8_t)(((1u << f.exp_bits) - 1) << f.man_bits);
  const uint8_t nan_code = f.fnuz      ? (uint8_t)0x80
                           : f.has_inf ? (uint8_t)(exp_ones | (1u << (f.man_bits - 1)) | sign)
                                       : (uint8_t)((1u << s) - 1) | sign;
  if (std::isnan(v)) return f.has_nan ? nan_code : (uint8_t)(sign ^ (1u << s));
  const uint8_t overflow = saturate || !f.has_nan ? (uint8_t)(f.max_code | sign)
                           : f.has_inf            ? (uint8_t)(exp_ones | sign)
                                                  : nan_code;
  double a = std::fabs(v);
  if (std::isinf(a)) return overflow;
  const int min_exp = 1 - f.bias;  // of the smallest normal
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  e -= 1;             // a in [2^e, 2^(e+1))
  if (e < min_exp) e = min_exp;
  const double quantum = std::ldexp(1.0, e - f.man_bits);
  const double steps = std::nearbyint(a / quantum);  // ties to even (the default rounding mode)
  const double max_value = decode_mini(f, f.max_code);
  if (steps * quantum > max_value) return overflow;
  uint64_t q = (uint64_t)steps;
  if (q == 0) return f.fnuz ? 0 : sign;
  // q counts quanta of 2^(e - man_bits): normal when it reaches 2^man_bits at e >= min_exp.
  int exp_field = 0;
  if (q >= (1u << f.man_bits)) {
    exp_field = e - min_exp + 1;
    if (q >= (2u << f.man_bits)) {  // rounded up into the next binade
      q >>= 1;
      ++exp_field;
    }
    q -= 1u << f.man_bits;
  }
  return (uint8_t)(sign | (exp_field << f.man_bits) | q);
}

// ONNX's float8e8m0 (numpy_helper.to_float8e8m0): the f32 exponent, rounded per mode.
uint8_t encode_e8m0(double v, bool saturate, LowbitRounding rounding) {
  float x = (float)v;
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  uint32_t exponent = (bits >> 23) & 0xff;
  if (exponent == 0xff) return 0xff;
  bool round_up = false;
  if (rounding == LowbitRounding::up) {
    round_up = (bits & 0x7fffff) != 0;
  } else if (rounding == LowbitRounding::nearest) {
    bool g = bits & 0x400000, r = bits & 0x200000, st = bits & 0x1fffff, lsb = exponent > 0;
    round_up = g && (r || st || lsb);
  }
  if (round_up && !(saturate && exponent == 0xfe)) ++exponent;
  return (uint8_t)exponent;
}

int64_t wrap_int(ElementType t, int64_t v) {
  const int bits = (int)bit_width(t);
  return v & ((int64_t(1) << bits) - 1);
}

}  // namespace

bool is_lowbit(ElementType t) { return is_packed(t) || format_of(t) || t == ElementType::f8e8m0; }

uint8_t lowbit_encode_int(ElementType t, int64_t v) {
  if (t == ElementType::u1) return v != 0;
  if (t == ElementType::i2 || t == ElementType::u2 || t == ElementType::i4 || t == ElementType::u4)
    return (uint8_t)wrap_int(t, v);
  return lowbit_encode(t, (double)v, true, LowbitRounding::up);
}

uint8_t lowbit_encode(ElementType t, double v, bool saturate, LowbitRounding e8m0_rounding) {
  if (const MiniFloat* f = format_of(t)) return encode_mini(*f, v, saturate);
  if (t == ElementType::f8e8m0) return encode_e8m0(v, saturate, e8m0_rounding);
  if (t == ElementType::u1) return v != 0;
  // Integers: truncate toward zero and wrap (NaN and infinities give 0), as ml_dtypes does.
  if (!std::isfinite(v)) return 0;
  double truncated = std::trunc(v);
  const double limit = 9.2e18;  // inside int64: wrapping keeps only the low bits anyway
  if (truncated > limit || truncated < -limit) truncated = std::fmod(truncated, 65536.0);
  return lowbit_encode_int(t, (int64_t)truncated);
}

double lowbit_decode(ElementType t, uint8_t code) {
  if (const MiniFloat* f = format_of(t)) return decode_mini(*f, code);
  switch (t) {
    case ElementType::f8e8m0:
      return code == 0xff ? std::numeric_limits<double>::quiet_NaN() : std::ldexp(1.0, (int)code - 127);
    case ElementType::i2:
      return code > 1 ? (double)code - 4 : (double)code;
    case ElementType::i4:
      return code > 7 ? (double)code - 16 : (double)code;
    default:  // u1, u2, u4
      return (double)code;
  }
}

}  // namespace aiov
