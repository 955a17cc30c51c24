// Direct 8-bit integer convolution (group 1) on a channels-last u8 image: the products read the
// image's pixels in place (no patch rows), as an implicit GEMM: for a tile of output positions
// and up to 64 output channels, the sums run over segments (one window row of kernel width x C
// contiguous bytes when the window moves over whole pixels, else one tap's C bytes) and the
// segment's channel quads, each quad of each position broadcast against the packed weights
// (AVX512-VNNI VPDPBUSD, or portable loops). Positions whose window crosses the border read
// a copy of the whole window padded with the data's zero point. The result goes out as
// s32, f32 or requantized u8, [positions, outputs], as the integer GEMM's merge writes it.
// The weights are a PackedInt8B of K = segments x (segment length rounded up to 4): the bytes
// past a segment's length weigh nothing, so a quad may read a neighbour pixel's channels.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/gemm_int8.hpp"

namespace aiov {

// How a window is cut into the segments the kernels sum over.
struct ConvInt8Segments {
  int64_t count = 0;   // kernel_h (whole window rows) or kernel_h x kernel_w (one tap each)
  int64_t length = 0;  // bytes of data per segment: kernel_w x C or C
  int64_t quads = 0;   // length rounded up to 4 bytes, in quads
  bool window_rows = false;
  int64_t depth() const { return count * quads * 4; }  // the packed weights' K
};
// Whole window rows when the taps of a row are adjacent pixels (dilation 1 along the width).
ConvInt8Segments conv_int8_segments(int64_t channels, int64_t kernel_h, int64_t kernel_w, int64_t dilation_w);

// Filters [O, C, kernel_h, kernel_w] of 8-bit values as [O, depth()] in segment order, the
// bytes past each segment's length `filler` (the weights' zero, 0 for s8 and 128 for u8, which
// the packing turns into 0), to be packed as PackedInt8B(reordered, b_unsigned, true, K, O, K).
std::vector<uint8_t> conv_int8_reorder(const uint8_t* filters, int64_t outputs, int64_t channels, int64_t kernel_h,
                                       int64_t kernel_w, const ConvInt8Segments& s, uint8_t filler);

struct ConvInt8 {
  const uint8_t* image = nullptr;  // [in_h, in_w, channels] u8
  int64_t image_bytes = 0;         // readable bytes from image (a quad never reads past them)
  int64_t channels = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  uint8_t pad = 0;  // the data's zero point: padding contributes nothing
  ConvInt8Segments segments;
  const PackedInt8B* weights = nullptr;  // s8 (or u8 shifted by the packing), with no zero point
  // Added to every sum of output channel n: -data_zero * (sum of its stored weights).
  const int32_t* col_add = nullptr;
  // Output (position, n) at [position * out.ldc + n], as the integer GEMM writes it.
  Int8Output out;
};

// The convolution of one image, shared out over the pool.
void conv_int8_run(const ConvInt8& p, ThreadPool* pool, int max_threads);

// The kernels direct integer convolutions run on: "avx512_vnni" or "scalar"; null where the
// CPU multiplies on AMX tiles (those convolutions go through the integer GEMM's patch rows).
const char* conv_int8_isa();

namespace conv_int8_detail {

constexpr int kMaxRows = 12;

// One kernel call: `rows` positions x up to 4 panels of 16 output channels.
struct ConvTile {
  // Row r's segment s starts at first[r] + offsets[s] (its window in the image), or at
  // first[r] + s * quads * 4 when bit r of `copied` is set (a window crossing the border,
  // copied with the pad byte in place of the pixels outside); the weights of segment s, quad
  // q, panel v at b + v * b_panel_stride + (s * quads + q) * 64.
  const uint8_t* const* first = nullptr;
  const int64_t* offsets = nullptr;
  unsigned copied = 0;
  int64_t segments = 0, quads = 0;
  const int8_t* b = nullptr;
  int64_t b_panel_stride = 0;
  int rows = 0, cols = 0;            // cols <= 16 x panels
  int panels = 0;                    // 1..4
  const int32_t* col_add = nullptr;  // from the tile's first column
  // The convolution's output seen from the tile: its pointers at the tile's first element
  // (rows ldc apart), scale and bias from its first column.
  Int8Output out;
  // What the kernels' fold made of the output's constants once per convolution, from the
  // tile's first column (null without a fold).
  const float* folded = nullptr;
  int64_t folded_stride = 0;  // from one table of folded values to the next
};

struct ConvInt8Kernels {
  const char* name;
  // Rows per call with that many panels (the accumulators of rows x panels fit the registers).
  int (*rows_for)(int panels);
  void (*tile)(const ConvTile& t);
  // Null, or what the merge derives from the output's per-column constants, computed once per
  // convolution rather than once per tile: folded_tables tables of n floats, folded_stride apart.
  int folded_tables;
  void (*fold)(const Int8Output& out, int64_t n, float* folded, int64_t folded_stride);
};

// Null when the file was built without the instructions.
const ConvInt8Kernels* vnni_conv_int8_kernels();

}  // namespace conv_int8_detail
}  // namespace aiov
