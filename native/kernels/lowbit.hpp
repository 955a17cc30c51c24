// Element types narrower than the engine computes in (8- and 4-bit floats, 1/2/4-bit integers):
// element codes, their values, and the sub-byte packing. Only conversions read and write them.
#pragma once
#include <cstdint>

#include "core/types.hpp"

namespace aiov {

// Types Convert decodes and encodes element by element (the 8-bit floats and every packed type).
bool is_lowbit(ElementType t);

// How a value too large for an 8-bit float becomes one: saturate to the largest finite value
// (ONNX's default) or become infinity (NaN where the type has no infinity).
enum class LowbitRounding : int { up, down, nearest };  // f8e8m0 only: ONNX Cast's round_mode

// The code (low bits of the result) of `v` in type t; integer types wrap, as ONNX's Cast does.
uint8_t lowbit_encode(ElementType t, double v, bool saturate, LowbitRounding e8m0_rounding);
uint8_t lowbit_encode_int(ElementType t, int64_t v);  // exact for integer sources
// The value of a code.
double lowbit_decode(ElementType t, uint8_t code);

// Code i of packed or byte-wide data: sub-byte elements fill each byte from its low bits (ONNX's
// and OpenVINO's order), except u1, which OpenVINO stores from the high bit down.
inline uint8_t lowbit_get(const uint8_t* p, ElementType t, int64_t i) {
  switch (bit_width(t)) {
    case 8:
      return p[i];
    case 4:
      return (p[i >> 1] >> ((i & 1) * 4)) & 0xf;
    case 2:
      return (p[i >> 2] >> ((i & 3) * 2)) & 0x3;
    default:
      return (p[i >> 3] >> (7 - (i & 7))) & 1;
  }
}
inline void lowbit_put(uint8_t* p, ElementType t, int64_t i, uint8_t code) {
  switch (bit_width(t)) {
    case 8:
      p[i] = code;
      return;
    case 4: {
      int shift = (i & 1) * 4;
      p[i >> 1] = (uint8_t)((p[i >> 1] & ~(0xf << shift)) | ((code & 0xf) << shift));
      return;
    }
    case 2: {
      int shift = (i & 3) * 2;
      p[i >> 2] = (uint8_t)((p[i >> 2] & ~(0x3 << shift)) | ((code & 0x3) << shift));
      return;
    }
    default: {
      int shift = 7 - (i & 7);
      p[i >> 3] = (uint8_t)((p[i >> 3] & ~(1 << shift)) | ((code & 1) << shift));
    }
  }
}

}  // namespace aiov
