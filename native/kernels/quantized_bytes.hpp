// The u8 activations of QDQ models between the integer products: the byte-to-byte ops the
// QDQ passes leave there (a residual sum requantized, an activation looked up in a 256-byte
// table, NHWC max pooling), each one pass over the bytes, and the quantization of a model's
// NCHW image straight into the NHWC bytes its first convolution reads. AVX-512 kernels where the CPU has
// them (the table lookup needs AVX512_VBMI's byte permutes), portable loops everywhere.
// Every path gives the same bytes: the sum takes the separate ops' f32 steps (no FMA) and
// requantizes as aiov.Quantize does.
#pragma once
#include <cstdint>

#include "kernels/nhwc_window.hpp"

namespace aiov {

// y = quantize((a - a_zero) * a_scale + (b - b_zero) * b_scale) over n bytes.
struct QuantizedSum {
  float a_scale, a_zero, b_scale, b_zero, y_scale;
  int32_t y_zero;
};
void quantized_sum_u8(const uint8_t* a, const uint8_t* b, int64_t n, const QuantizedSum& s, uint8_t* y);

// y[i] = table[x[i]] over n bytes (table: 256 bytes).
void lookup_u8(const uint8_t* x, int64_t n, const uint8_t* table, uint8_t* y);
// The same over `rows` rows of `row` bytes, dense in x and ld_y apart in y (a Concat's slice):
// the table is loaded once for all of them.
void lookup_u8_rows(const uint8_t* x, int64_t rows, int64_t row, const uint8_t* table, uint8_t* y, int64_t ld_y);
// One core's time per byte of lookup_u8 on the kernels that run (for sharing it out).
double lookup_ns_per_byte();

// NHWC max pooling of u8 bytes, output rows [r0, r1) of the N * OH: padding never wins and a
// window with no tap in bounds gives 0, u8's lowest, as the planar form does.
void max_pool_nhwc_u8_rows(const Window2d& g, const uint8_t* x, uint8_t* y, int64_t r0, int64_t r1);

// aiov.Quantize of one NCHW image written channels-last: channel c's value of pixel p,
// x[c * plane + p], becomes y[p * C + c] = saturate(round_half_even(x / scale) + zero) ^ flip
// for pixels [0, pixels) (flip 0x80 makes s8 of bytes quantized against its zero point + 128).
// The bytes quantize_u8 gives each value (the transposed ones).
void quantize_planes_to_pixels(const float* x, int64_t plane, int64_t C, int64_t pixels, float scale, int32_t zero,
                               uint8_t flip, uint8_t* y);

// The kernels these run on: "avx512_vbmi" (all vectorized), "avx512" (the lookup portable),
// or "scalar". AIOV_INT8_ISA=scalar (or AIOV_GEMM_ISA below avx512) lowers it to scalar.
const char* quantized_bytes_isa();

namespace quantized_bytes_detail {

struct QuantizedBytesKernels {
  const char* name;
  void (*sum)(const uint8_t* a, const uint8_t* b, int64_t n, const QuantizedSum& s, uint8_t* y);
  void (*lookup)(const uint8_t* x, int64_t rows, int64_t row, const uint8_t* table, uint8_t* y, int64_t ld_y);
  double lookup_ns_per_byte;
  void (*max_pool_rows)(const Window2d& g, const uint8_t* x, uint8_t* y, int64_t r0, int64_t r1);
  void (*planes_to_pixels)(const float* x, int64_t plane, int64_t C, int64_t pixels, float scale, int32_t zero,
                           uint8_t flip, uint8_t* y);
};

// quantize_planes_to_pixels by quantize_u8 per plane, then the bytes interleaved: the
// portable path, and the AVX-512 one's for more than 4 channels.
void planes_to_pixels_by_planes(const float* x, int64_t plane, int64_t C, int64_t pixels, float scale, int32_t zero,
                                uint8_t flip, uint8_t* y);

void lookup_portable(const uint8_t* x, int64_t rows, int64_t row, const uint8_t* table, uint8_t* y, int64_t ld_y);

// The AVX-512 set (with the VBMI lookup where the CPU has AVX512_VBMI), or null where the
// build has no AVX-512 kernels. Call only where selected_isa() is avx512.
const QuantizedBytesKernels* avx512_quantized_bytes_kernels();

}  // namespace quantized_bytes_detail
}  // namespace aiov
