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
};

using Bf16ConvTileFn = void (*)(const Bf16ConvTile& tile);

// Null when the ISA file was built without AVX512_BF16.
Bf16ConvTileFn avx512_bf16_conv_tile();

}  // namespace gemm_detail
}  // namespace aiov
