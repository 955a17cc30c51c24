// The contract between the direct bf16 convolution's driver (conv_bf16.cpp) and its
// AVX512_BF16 kernel (conv_bf16_x86.cpp): bf16 pixels read where they lie, bf16 weight
// panels, f32 accumulation and merge. Like gemm_bf16.hpp, it defines no inline function the
// ISA file could call.
#pragma once
#include <cstdint>

#include "kernels/gemm_kernels.hpp"

namespace aiov {
namespace gemm_detail {

// Output pixels per kernel call at most, by the zmm of output channels it spans (1 to 4):
// 24 accumulators at most, with the panel vectors and a broadcast in the other registers.
constexpr int kBf16ConvRows[4] = {12, 12, 8, 6};

// An activation the kernel applies in registers after the merge's clamp (out.clamp: ReLU and
// clamp), where a pass over an f32 tile per block of pixels cost more than the products of a
// narrow convolution (EfficientNet's SiLU, MobileNetV3's HardSwish). The same formulas as the
// epilogue's functors (kernels/activations.hpp).
enum class Bf16TileAct : uint8_t { none, hswish, sigmoid, swish };

// One kernel call: up to kBf16ConvRows output pixels x up to 64 output channels, summed over
// every tap of the window and every channel pair of each tap.
struct Bf16ConvTile {
  // rows[t * rows_ld + r]: the 2 * pairs (2 * pairs - 1 when odd) bf16 values tap t reads for
  // output pixel r (an input pixel's channels in place, a kernel row of pixels of a padded
  // image, or zeros where the tap falls on the padding).
  const uint16_t* const* rows = nullptr;
  int64_t rows_ld = 0;
  int taps = 0;
  int64_t pairs = 0;
  // Each tap reads an odd number of values: its last pair holds one (the weights' second is
  // zero), read alone, so nothing past the tap's values is ever read.
  bool odd = false;
  // The zeros a tap on the padding reads: a tap every row of the tile reads there is skipped
  // (a 3x3 over a 7x7 image has a fifth of its taps on the padding). Null: none looked for.
  const uint16_t* zeros = nullptr;
  // bf16 weight panels as PackedB keeps them (16 columns, pairs of K interleaved): with K
  // ordered (tap, value) and each tap's values padded to whole pairs, tap t's pair p is pair
  // t * pairs + p of the panel, 32 values. Panel v (columns 16v ..) lies v * b_panel_stride
  // values further.
  const uint16_t* b = nullptr;
  int64_t b_panel_stride = 0;
  // Where and how the result is merged (rows, cols <= 64, c, ldc, beta, bias, residual,
  // clamp), as for the GEMM tiles; its A and B fields are unused.
  Tile out;
  // Set: the merged values are rounded to bf16 and stored here (ldc16 apart) instead of to
  // out.c, in registers, with no f32 copy of the tile.
  uint16_t* c16 = nullptr;
  int64_t ldc16 = 0;
  // Set: the residual in bf16 (a region carrying bf16 through a residual block), ld_residual16
  // values apart per pixel, added where out.residual would be (which is then null). May be
  // c16 itself: each value is read before it is written.
  const uint16_t* residual16 = nullptr;
  int64_t ld_residual16 = 0;
  Bf16TileAct act = Bf16TileAct::none;
};

using Bf16ConvTileFn = void (*)(const Bf16ConvTile& tile);

// Null when the ISA file was built without AVX512_BF16.
Bf16ConvTileFn avx512_bf16_conv_tile();

// A depthwise convolution (one channel per group) over NHWC data, in bf16 or f32, into bf16 or
// f32: the geometry of a Window2d, and the merge (bias, residual, ReLU/clamp; nothing else).
struct Bf16DepthwiseJob {
  int64_t N = 0, H = 0, W = 0, C = 0, OH = 0, OW = 0, kh = 0, kw = 0, sh = 0, sw = 0, dh = 0, dw = 0, ph = 0, pw = 0;
  const uint16_t* x16 = nullptr;  // the input in bf16, or
  const float* x = nullptr;       // in f32
  const float* w = nullptr;       // [kh * kw, C]: tap t's weight for channel c at w[t * C + c]
  const float* bias = nullptr;    // [C] or null
  const float* residual = nullptr;
  int64_t ld_residual = 0;
  bool clamp = false;  // ReLU is lo = 0, hi = +inf
  float lo = 0.0f, hi = 0.0f;
  uint16_t* y16 = nullptr;  // the output in bf16, or
  float* y = nullptr;       // in f32; C values per pixel either way
};

// Output rows [row0, row1) (row = n * OH + oy) of a depthwise job.
using Bf16DepthwiseFn = void (*)(const Bf16DepthwiseJob& job, int64_t row0, int64_t row1);

// Null when the ISA file was built without AVX-512.
Bf16DepthwiseFn avx512_bf16_depthwise_rows();

}  // namespace gemm_detail
}  // namespace aiov
