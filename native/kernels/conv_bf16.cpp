// Drivers of the direct bf16 convolution (conv_bf16.hpp): pointer tables to the pixels each
// tap reads, the split of output pixels and column blocks over threads, the padded bf16 copy
// of a planar stem; and of depthwise convolutions reading or writing bf16. The kernels are in
// conv_bf16_x86.cpp.
#include "kernels/conv_bf16.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/conv_bf16_tile.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/gemm_bf16.hpp"
#include "kernels/gemm_driver.hpp"

namespace aiov {

using namespace gemm_detail;

namespace {

// Output pixels per block (whole tiles): a block's pointer table is made once and its
// pixels swept against every column block.
constexpr int64_t kBlockPixels = 48;
constexpr int64_t kMaxTilesPerBlock = 8;
static_assert(kBlockPixels / kBf16ConvRows[3] <= kMaxTilesPerBlock, "a block's tile starts fit its array");

const uint16_t* padding_zeros() {
  alignas(64) static const uint16_t kZeros[kBf16DirectMaxRun] = {};
  return kZeros;
}

// Where each tap reads from its window's first input point, in values.
std::vector<int64_t> tap_offsets(const Window2d& g) {
  std::vector<int64_t> offsets;
  for (int64_t ky = 0; ky < g.kh; ++ky)
    for (int64_t kx = 0; kx < g.kw; ++kx) offsets.push_back((ky * g.dh * g.W + kx * g.dw) * g.C);
  return offsets;
}

// ptrs[t * ld + r] = base + offsets[t] + r * step for r < count: the pointers of pixels
// whose windows lie inside the image, a tap at a time (plain strided stores; a loop per
// pixel over its taps cost an eighth of a 3x3 stem's time).
AIOV_MULTIVERSION void strided_pointers(const uint16_t* base, const int64_t* offsets, int64_t taps, int64_t step,
                                        int64_t count, const uint16_t** ptrs, int64_t ld) {
  for (int64_t t = 0; t < taps; ++t) {
    const uint16_t* p = base + offsets[t];
    const uint16_t** d = ptrs + t * ld;
    for (int64_t r = 0; r < count; ++r) d[r] = p + r * step;
  }
}

// ptrs[t * ld + r] for output pixels m0 .. m0 + rows - 1 and every tap t: where in x16 the
// tap reads the pixel's channels, or the zeros. A span of one output row takes the windows
// inside the image as strided pointers; only those over the padding test each tap.
void tap_pointers(const Window2d& g, const uint16_t* x16, const int64_t* offsets, int64_t m0, int64_t rows,
                  const uint16_t** ptrs, int64_t ld) {
  const int64_t ohw = g.OH * g.OW, taps = g.kh * g.kw, step = g.sw * g.C;
  const int64_t y_span = (g.kh - 1) * g.dh, x_span = (g.kw - 1) * g.dw;
  // Output columns [lo, hi) whose windows lie inside the image across.
  const int64_t lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t hi = g.W + g.pw > x_span ? std::clamp((g.W + g.pw - 1 - x_span) / g.sw + 1, lo, g.OW) : lo;
  const uint16_t* zeros = padding_zeros();
  for (int64_t m = m0, r = 0, end = m0 + rows; m < end;) {
    const int64_t n = m / ohw, oy = m % ohw / g.OW, ox0 = m % g.OW, ox1 = std::min(g.OW, ox0 + (end - m));
    const int64_t iy0 = oy * g.sh - g.ph;
    const bool rows_inside = iy0 >= 0 && iy0 + y_span < g.H;
    // The window of column ox starts at row + ox * step (an offset, maybe outside the image).
    const int64_t row = ((n * g.H + iy0) * g.W - g.pw) * g.C;
    // Columns [in_lo, in_hi) of this span have their windows inside the image.
    const int64_t in_lo = rows_inside ? std::clamp(lo, ox0, ox1) : ox1,
                  in_hi = rows_inside ? std::clamp(hi, in_lo, ox1) : ox1;
    if (in_hi > in_lo)
      strided_pointers(x16 + row + in_lo * step, offsets, taps, step, in_hi - in_lo, ptrs + r + (in_lo - ox0), ld);
    for (int64_t ox = ox0; ox < ox1; ++ox) {
      if (ox == in_lo) ox = in_hi;
      if (ox >= ox1) break;
      const int64_t window = row + ox * step, ix0 = ox * g.sw - g.pw;
      for (int64_t ky = 0, t = 0; ky < g.kh; ++ky) {
        const int64_t iy = iy0 + ky * g.dh;
        for (int64_t kx = 0; kx < g.kw; ++kx, ++t) {
          const int64_t ix = ix0 + kx * g.dw;
          ptrs[t * ld + r + (ox - ox0)] =
              iy >= 0 && iy < g.H && ix >= 0 && ix < g.W ? x16 + (window + offsets[t]) : zeros;
        }
      }
    }
    r += ox1 - ox0;
    m += ox1 - ox0;
  }
}

// Pixels [0, W) of C planes (`plane` floats apart) interleaved into NHWC order.
AIOV_MULTIVERSION void interleave_row(const float* __restrict src, int64_t plane, int64_t C, int64_t W,
                                      float* __restrict dst) {
  if (C == 3) {  // an RGB image: fixed strides the compiler can vectorize
    for (int64_t x = 0; x < W; ++x) {
      dst[3 * x] = src[x];
      dst[3 * x + 1] = src[plane + x];
      dst[3 * x + 2] = src[2 * plane + x];
    }
    return;
  }
  for (int64_t x = 0; x < W; ++x)
    for (int64_t c = 0; c < C; ++c) dst[x * C + c] = src[c * plane + x];
}

// For a 1x1 window over f32 x: output pixels m0 .. m0 + rows - 1's input pixels rounded to
// bf16 at dst (C values each), ptrs[r] pointing at them (or at the zeros for the padding).
void round_pixels(const Window2d& g, const float* x, int64_t m0, int64_t rows, Bf16ConvertFn convert, uint16_t* dst,
                  const uint16_t** ptrs) {
  if (g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.OH == g.H && g.OW == g.W) {
    convert(x + m0 * g.C, rows * g.C, 1.0f, dst);  // the pixels lie in a row
    for (int64_t r = 0; r < rows; ++r) ptrs[r] = dst + r * g.C;
    return;
  }
  const int64_t ohw = g.OH * g.OW;
  int64_t n = m0 / ohw, oy = m0 % ohw / g.OW, ox = m0 % g.OW;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t iy = oy * g.sh - g.ph, ix = ox * g.sw - g.pw;
    if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) {
      convert(x + ((n * g.H + iy) * g.W + ix) * g.C, g.C, 1.0f, dst + r * g.C);
      ptrs[r] = dst + r * g.C;
    } else {
      ptrs[r] = padding_zeros();
    }
    if (++ox == g.OW) {
      ox = 0;
      if (++oy == g.OH) oy = 0, ++n;
    }
  }
}

// Output widths up to which tiles follow the padding (padding_class_tiles): past them the
// border columns' share of the work is too small to pay for the smaller tiles (one thread:
// 28x28x128 3x3 even, 56x56x64 6% slower).
constexpr int64_t kClassTilesMaxWidth = 16;

// A tile of pixels sharing the taps that fall on the padding: `rows` output pixels from pixel
// m0 on, `step` pixels apart (1: along an output row; OW: down an output column), whose
// pointers sit at position `at` of the pointer table.
struct ClassTile {
  int64_t m0, rows, step, at;
};

// The output pixels cut into tiles of at most mr whose windows reach the same padding, so
// that each tile skips every tap on it (Bf16ConvTile::zeros): per output row whose windows
// reach above or below, each border column's pixel alone and the columns between as one
// tile; per run of the other rows, each border column as a column tile and the columns
// between as a tile per row. A 3x3 window over 7x7 pixels: corners skip 5 of 9 taps, edges 3,
// where tiles of whole rows skipped only the top and bottom rows' 3 (399 tap-pixels computed
// of 441, now 361).
std::vector<ClassTile> padding_class_tiles(const Window2d& g, int64_t mr) {
  const int64_t x_span = (g.kw - 1) * g.dw, y_span = (g.kh - 1) * g.dh;
  const int64_t lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t hi = g.W + g.pw > x_span ? std::clamp((g.W + g.pw - 1 - x_span) / g.sw + 1, lo, g.OW) : lo;
  auto rows_inside = [&](int64_t oy) {
    const int64_t iy0 = oy * g.sh - g.ph;
    return iy0 >= 0 && iy0 + y_span < g.H;
  };
  std::vector<ClassTile> tiles;
  int64_t at = 0;
  // A run of `rows` pixels in tiles of even height (12: 6, 6; 13: 5, 4, 4).
  auto add = [&](int64_t m0, int64_t rows, int64_t step) {
    const int64_t count = ceil_div(rows, mr);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t r0 = i * rows / count, n = (i + 1) * rows / count - r0;
      tiles.push_back({m0 + r0 * step, n, step, at});
      at += n;
    }
  };
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oy = 0; oy < g.OH;) {
      const int64_t row = (n * g.OH + oy) * g.OW;
      if (!rows_inside(oy)) {
        for (int64_t ox = 0; ox < lo; ++ox) add(row + ox, 1, 1);
        if (hi > lo) add(row + lo, hi - lo, 1);
        for (int64_t ox = hi; ox < g.OW; ++ox) add(row + ox, 1, 1);
        ++oy;
        continue;
      }
      int64_t end = oy;  // the run of rows whose windows lie inside the image down
      while (end < g.OH && rows_inside(end)) ++end;
      for (int64_t ox = 0; ox < lo; ++ox) add(row + ox, end - oy, g.OW);
      for (int64_t y = oy; y < end && hi > lo; ++y) add((n * g.OH + y) * g.OW + lo, hi - lo, 1);
      for (int64_t ox = hi; ox < g.OW; ++ox) add(row + ox, end - oy, g.OW);
      oy = end;
    }
  return tiles;
}

// zmm of output channels per tile (1 to 4): all of O when it fits, else 4 (6 pixels x 64
// channels: per channel pair 4 panel loads and 6 broadcasts feed 24 dot products, where
// 12 x 32 needs 2 and 12; 3-4% faster on 3x3 and 1x1 layers of 64 to 256 channels), or 3
// when that covers O in whole tiles (96, 144 channels) and 4 does not, or when an output row
// of row_pixels (0: none asked for) fits 3 x 16 channels' tile and not 4's: ResNet's last
// 3x3 layers (7 x 7 x 512), whose tiles of whole rows skip the padding's taps, 2% faster.
int64_t bf16_conv_vectors(int64_t O, int64_t row_pixels) {
  const int64_t vecs = ceil_div(O, kBf16PanelCols);
  if (vecs <= 4) return vecs;
  if (row_pixels > kBf16ConvRows[3] && row_pixels <= kBf16ConvRows[2]) return 3;
  return vecs % 4 != 0 && vecs % 3 == 0 ? 3 : 4;
}

// The activation the direct kernel applies in its registers (Bf16TileAct), none for those it
// does not (ReLU and clamp are its clamp; the others a pass after each block).
Bf16TileAct tile_activation(const Activation& act) {
  switch (act.kind) {
    case ActKind::hswish:
      return Bf16TileAct::hswish;
    case ActKind::sigmoid:
      return Bf16TileAct::sigmoid;
    case ActKind::swish:
      return Bf16TileAct::swish;
    default:
      return Bf16TileAct::none;
  }
}

// What is left for a pass over each finished block of the direct kernel's output.
bool needs_post_pass(const Epilogue& e) { return needs_post(e) && tile_activation(e.act) == Bf16TileAct::none; }

}  // namespace

bool bf16_direct_conv_available() {
  static const bool available =
      avx512_bf16_conv_tile() != nullptr && std::strcmp(bf16_kernels().name, "avx512_bf16") == 0;
  return available;
}

bool bf16_direct_conv_merges(const Activation& act) {
  Epilogue e;
  e.act = act;
  return !needs_post_pass(e);
}

bool bf16_direct_conv_fits(const Window2d& g, int64_t group) {
  if (group <= 0 || g.C % group != 0) return false;
  const int64_t Cg = g.C / group;
  return Cg > 0 && Cg % 2 == 0 && Cg <= kBf16DirectMaxRun;
}

const uint16_t* bf16_rounded_copy(const float* x, int64_t count, ThreadPool* pool, int max_threads) {
  thread_local std::vector<uint16_t> buffer;
  buffer.resize((size_t)count);
  uint16_t* dst = buffer.data();
  const Bf16KernelSet& ks = bf16_kernels();
  constexpr int64_t kChunk = 1 << 16;
  const int threads = count >= 2 * kChunk ? usable_threads(pool, max_threads) : 1;
  run_split(pool, threads, ceil_div(count, kChunk), 1, [&](int64_t c0, int64_t c1) {
    const int64_t i0 = c0 * kChunk, i1 = std::min(count, c1 * kChunk);
    ks.convert(x + i0, i1 - i0, 1.0f, dst + i0);
  });
  return dst;
}

void conv_bf16_direct(const Window2d& g, int64_t run, int64_t c0, const float* x, const uint16_t* x16, const PackedB& B,
                      const Epilogue& e_in, const uint16_t* residual16, float* y, uint16_t* y16, int64_t ldy,
                      ThreadPool* pool, int max_threads) {
  const Bf16ConvTileFn kernel = avx512_bf16_conv_tile();
  const int64_t taps = g.kh * g.kw, pairs = (run + 1) / 2, K = taps * 2 * pairs, O = B.N();
  if (!kernel || run <= 0 || run > kBf16DirectMaxRun || B.precision() != GemmPrecision::bf16 || B.K() != K || c0 < 0 ||
      (c0 > 0 && c0 + run > g.C) || ldy < O || (residual16 && (e_in.residual || e_in.ld_residual < O)))
    throw std::logic_error(
        "conv_bf16_direct: needs the avx512_bf16 kernel, runs of 1 to 4096 values (a group's within "
        "the pixel), bf16 weights of K = taps x even run, output pixels of at least O values and "
        "one residual, f32 or bf16");
  const int64_t M = g.N * g.OH * g.OW;
  if (M <= 0 || O <= 0) return;
  const Bf16KernelSet& ks = bf16_kernels();
  const int threads = product_threads(pool, max_threads, 0.5 * (double)M * O * K);
  // Whether some output rows' windows reach over the padding above or below the image.
  const bool padded_rows = g.kh > 1 && (g.ph > 0 || (g.OH - 1) * g.sh - g.ph + (g.kh - 1) * g.dh >= g.H);
  const int64_t vecs = bf16_conv_vectors(O, padded_rows ? g.OW : 0), width = vecs * kBf16PanelCols,
                mr = kBf16ConvRows[vecs - 1];
  const int64_t per_block = kBlockPixels / mr;
  // Tiles of even height (49 pixels: 10, 10, 10, 10, 9, not 12, 12, 12, 12, 1), or one per
  // output row when a row fills more than half of one and some rows' windows reach over the
  // padding: a tile of a top or bottom row skips the taps there (Bf16ConvTile::zeros), where
  // a tile across two rows skips none.
  const bool row_tiles = padded_rows && g.OW <= mr && 4 * g.OW >= 3 * mr;
  const int64_t tiles = row_tiles ? g.N * g.OH : ceil_div(M, mr), blocks = ceil_div(tiles, per_block);
  // Whole blocks per task when they share out evenly: a multiple of the threads, or so many
  // that one more is noise (17 blocks of a 28x28 layer on 2 threads left one idle a seventeenth
  // of the time), or when a table of every pointer would be large.
  // Row tiles that also reach over the padding left or right (ResNet's 7x7 layers): the tiles
  // follow the windows' padding instead (see class_tiles), when the tile merges in registers.
  const bool padded_columns = g.kw > 1 && (g.pw > 0 || (g.OW - 1) * g.sw - g.pw + (g.kw - 1) * g.dw >= g.W);
  const bool by_class = padded_rows && padded_columns && g.OW <= kClassTilesMaxWidth && pairs >= 8 &&
                        !needs_post_pass(e_in) && taps * M <= (1 << 16);
  const bool whole_blocks = !by_class && (threads <= 1 || (blocks >= 2 * threads && blocks % threads == 0) ||
                                          blocks >= 32 * threads || taps * M > (int64_t{1} << 20));
  // An f32 input to a 1x1 window is rounded a block of pixels at a time, just before its
  // products, while it is in cache: rounding all of it first cost a pass through memory (a
  // third of a 112x112 32->16 layer's time), where a larger window reads each pixel 9 or more
  // times and rounds it once.
  const bool round_per_block = !x16 && taps == 1 && whole_blocks && c0 == 0;
  if (!x16 && !round_per_block) {
    // Rounded once for every tap that reads it.
    const int64_t count = g.N * g.H * g.W * g.C;
    uint16_t* img = reinterpret_cast<uint16_t*>(scratch(kSharedRows, (size_t)count / 2 + 1));
    constexpr int64_t kChunk = 1 << 16;
    run_split(pool, threads, ceil_div(count, kChunk), 1, [&](int64_t c0, int64_t c1) {
      const int64_t i0 = c0 * kChunk, i1 = std::min(count, c1 * kChunk);
      ks.convert(x + i0, i1 - i0, 1.0f, img + i0);
    });
    x16 = img;
  }
  Epilogue e = e_in;
  float beta = 0.0f;
  if (!y16 && residual_is_c(e, y, ldy)) beta = 1.0f;
  const bool post = needs_post_pass(e);
  const int64_t np = ceil_div(O, width), panel_stride = bf16_padded_k(K) * kBf16PanelCols;
  auto tile_start = [&](int64_t i) { return row_tiles ? i * g.OW : i * M / tiles; };
  auto block_start = [&](int64_t blk) { return tile_start(std::min(tiles, blk * per_block)); };

  const std::vector<int64_t> offsets = tap_offsets(g);

  Bf16ConvTile shared;
  shared.out = tile_at(e, beta, true, true, 0, 0);
  shared.taps = (int)taps;
  shared.pairs = pairs;
  shared.odd = run % 2 != 0;
  // Taps on the padding are looked for only where a tap is long enough to repay the tests
  // (a 3x3 over 4 channels lost more to them than it saved) and windows reach the padding.
  const bool padded = g.ph > 0 || g.pw > 0 || (g.OH - 1) * g.sh - g.ph + (g.kh - 1) * g.dh >= g.H ||
                      (g.OW - 1) * g.sw - g.pw + (g.kw - 1) * g.dw >= g.W;
  shared.zeros = padded && pairs >= 8 ? padding_zeros() : nullptr;
  shared.b_panel_stride = panel_stride;
  shared.ld_residual16 = e.ld_residual;
  shared.act = tile_activation(e.act);
  const uint16_t* panels = B.half_data();
  // Tiles [t0, t1) (at most kMaxTilesPerBlock) against column blocks [p0, p1); ptrs holds
  // the pointers of the first tile's first pixel on, ld apart per tap.
  auto multiply = [&](int64_t t0, int64_t t1, const uint16_t* const* ptrs, int64_t ld, int64_t p0, int64_t p1) {
    int64_t starts[kMaxTilesPerBlock + 1];  // of the tiles
    for (int64_t i = t0; i <= t1; ++i) starts[i - t0] = tile_start(i);
    const int64_t m0 = starts[0], rows = starts[t1 - t0] - m0;
    Bf16ConvTile t = shared;
    t.rows_ld = ld;
    // A bf16 output with an activation the kernel cannot apply goes through an f32 tile.
    const bool staging = y16 && post;
    float* staged = staging ? scratch(kBf16Staging, (size_t)(rows * width)) : nullptr;
    const int64_t ldt = staging ? width : ldy;
    t.out.ldc = ldt;
    t.ldc16 = ldy;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t col = p * width;
      t.out.cols = (int)std::min<int64_t>(width, O - col);
      t.out.bias = e.bias ? e.bias + col : nullptr;
      t.b = panels + (col / kBf16PanelCols) * panel_stride;
      float* c = staging ? staged : y16 ? nullptr : y + m0 * ldy + col;
      for (int64_t i = 0; i < t1 - t0; ++i) {
        const int64_t r0 = starts[i] - m0;
        t.out.rows = (int)(starts[i + 1] - starts[i]);
        if (c)
          t.out.c = c + r0 * ldt;
        else
          t.c16 = y16 + (m0 + r0) * ldy + col;
        if (e.residual) t.out.residual = e.residual + (m0 + r0) * e.ld_residual + col;
        if (residual16) t.residual16 = residual16 + (m0 + r0) * e.ld_residual + col;
        t.rows = ptrs + r0;
        kernel(t);
      }
      if (post) apply_epilogue(c, ldt, rows, t.out.cols, m0, col, post_part(e));
      if (staging)
        for (int64_t r = 0; r < rows; ++r) ks.convert(c + r * ldt, t.out.cols, 1.0f, y16 + (m0 + r) * ldy + col);
    }
  };
  auto pointer_table = [&](ScratchSlot slot, size_t count) {
    return reinterpret_cast<const uint16_t**>(scratch(slot, count * sizeof(void*) / sizeof(float)));
  };
  if (by_class) {
    const std::vector<ClassTile> class_tiles = padding_class_tiles(g, mr);
    const int64_t count = (int64_t)class_tiles.size();
    // Every pointer made up front in the tiles' order of pixels, then (tile, column block)
    // units shared out column block by column block, as below.
    const uint16_t** all = pointer_table(kSharedA, (size_t)(taps * M));
    for (const ClassTile& ct : class_tiles)
      for (int64_t r = 0; r < ct.rows; ++r)
        tap_pointers(g, x16 + c0, offsets.data(), ct.m0 + r * ct.step, 1, all + ct.at + r, M);
    run_split(pool, threads, count * np, 1, [&](int64_t u0, int64_t u1) {
      panel_major_pieces(u0, u1, count, [&](int64_t i0, int64_t i1, int64_t p, int64_t) {
        Bf16ConvTile t = shared;
        t.rows_ld = M;
        const int64_t col = p * width;
        t.out.cols = (int)std::min<int64_t>(width, O - col);
        t.out.bias = e.bias ? e.bias + col : nullptr;
        t.b = panels + (col / kBf16PanelCols) * panel_stride;
        for (int64_t i = i0; i < i1; ++i) {
          const ClassTile& ct = class_tiles[(size_t)i];
          t.out.rows = (int)ct.rows;
          t.rows = all + ct.at;
          // A column tile's pixels lie a row of the image apart: every stride scales with step.
          if (y16) {
            t.c16 = y16 + ct.m0 * ldy + col;
            t.ldc16 = ct.step * ldy;
          } else {
            t.out.c = y + ct.m0 * ldy + col;
            t.out.ldc = ct.step * ldy;
          }
          if (e.residual) {
            t.out.residual = e.residual + ct.m0 * e.ld_residual + col;
            t.out.ld_residual = ct.step * e.ld_residual;
          }
          if (residual16) {
            t.residual16 = residual16 + ct.m0 * e.ld_residual + col;
            t.ld_residual16 = ct.step * e.ld_residual;
          }
          kernel(t);
        }
      });
    });
    return;
  }
  // Whole blocks per task when they share out evenly: a multiple of the threads, or so many
  // that one more is noise (17 blocks of a 28x28 layer on 2 threads left one idle a seventeenth
  // of the time), or when a table of every pointer would be large.
  if (whole_blocks) {
    // Pointers made once per block, then swept against every column block.
    run_split(pool, threads, blocks, 1, [&](int64_t b0, int64_t b1) {
      const int64_t ld = per_block * mr;
      const uint16_t** ptrs = pointer_table(kSourceRows, (size_t)(taps * ld));
      uint16_t* rounded =
          round_per_block ? reinterpret_cast<uint16_t*>(scratch(kBlockA, (size_t)(ld * g.C) / 2 + 1)) : nullptr;
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t m0 = block_start(blk);
        if (round_per_block)
          round_pixels(g, x, m0, block_start(blk + 1) - m0, ks.convert, rounded, ptrs);
        else
          tap_pointers(g, x16 + c0, offsets.data(), m0, block_start(blk + 1) - m0, ptrs, ld);
        multiply(blk * per_block, std::min(tiles, (blk + 1) * per_block), ptrs, ld, 0, np);
      }
    });
    return;
  }
  // Otherwise (deep layers: 49 pixels against 512 channels; 5 blocks on 2 threads): every
  // pointer made up front, then (tile, column block) units shared out column block by column
  // block, so every thread has work and each block of weights (past L2 in all: 4.5 MiB at
  // 3x3x512x512) is read once per run of tiles, not once per tile.
  const uint16_t** all = pointer_table(kSharedA, (size_t)(taps * M));
  tap_pointers(g, x16 + c0, offsets.data(), 0, M, all, M);
  run_split(pool, threads, tiles * np, 1, [&](int64_t u0, int64_t u1) {
    panel_major_pieces(u0, u1, tiles, [&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
      for (int64_t i = t0; i < t1; i += kMaxTilesPerBlock) {
        const int64_t i1 = std::min(t1, i + kMaxTilesPerBlock);
        multiply(i, i1, all + tile_start(i), M, p0, p1);
      }
    });
  });
}

namespace {

// A bf16 NHWC image with zero borders (g.ph rows above and `bottom` below, g.pw pixels left
// and `right` right) in a buffer of the calling thread's, each image row's W x C values
// written by fill_row(n, iy, dst).
template <class FillRow>
const uint16_t* padded_bf16_image(const Window2d& g, int64_t bottom, int64_t right, FillRow fill_row, ThreadPool* pool,
                                  int max_threads) {
  thread_local std::vector<uint16_t> buffer;
  const int64_t Hp = g.ph + g.H + bottom, Wp = g.pw + g.W + right, row = Wp * g.C;
  buffer.resize((size_t)(g.N * Hp * row));
  uint16_t* dst = buffer.data();
  for (int64_t n = 0; n < g.N; ++n) {  // the rows of padding above and below
    std::fill_n(dst + n * Hp * row, g.ph * row, uint16_t{0});
    std::fill_n(dst + (n * Hp + g.ph + g.H) * row, bottom * row, uint16_t{0});
  }
  auto rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / g.H, iy = r % g.H;
      uint16_t* line = dst + (n * Hp + g.ph + iy) * row;
      std::fill_n(line, g.pw * g.C, uint16_t{0});
      fill_row(n, iy, line + g.pw * g.C);
      std::fill_n(line + (g.pw + g.W) * g.C, right * g.C, uint16_t{0});
    }
  };
  const int threads = g.N * g.H * g.W * g.C >= (int64_t{1} << 16) ? usable_threads(pool, max_threads) : 1;
  run_split(pool, threads, g.N * g.H, 8, rows);
  return dst;
}

}  // namespace

const uint16_t* padded_channels_last_bf16(const Window2d& g, int64_t bottom, int64_t right, const float* x,
                                          ThreadPool* pool, int max_threads) {
  const Bf16KernelSet& ks = bf16_kernels();
  const int64_t plane = g.H * g.W;
  // Each image row interleaved into f32 pixels in a small buffer, then rounded into its place.
  auto fill_row = [&](int64_t n, int64_t iy, uint16_t* dst) {
    float* pixels = scratch(kSourceRows, (size_t)(g.W * g.C));
    interleave_row(x + n * g.C * plane + iy * g.W, plane, g.C, g.W, pixels);
    ks.convert(pixels, g.W * g.C, 1.0f, dst);
  };
  return padded_bf16_image(g, bottom, right, fill_row, pool, max_threads);
}

const uint16_t* padded_nhwc_bf16(const Window2d& g, int64_t bottom, int64_t right, const float* x, const uint16_t* x16,
                                 ThreadPool* pool, int max_threads) {
  const Bf16KernelSet& ks = bf16_kernels();
  const int64_t line = g.W * g.C;
  auto fill_row = [&](int64_t n, int64_t iy, uint16_t* dst) {
    const int64_t at = (n * g.H + iy) * line;
    if (x16)
      std::memcpy(dst, x16 + at, (size_t)line * sizeof(uint16_t));
    else
      ks.convert(x + at, line, 1.0f, dst);
  };
  return padded_bf16_image(g, bottom, right, fill_row, pool, max_threads);
}

void round_to_bf16(const float* x, int64_t count, uint16_t* y) { bf16_kernels().convert(x, count, 1.0f, y); }

bool bf16_depthwise_merges(const Activation& act) {
  return act.kind == ActKind::none || act.kind == ActKind::relu || act.kind == ActKind::clamp;
}

namespace {

// The AVX-512 depthwise kernel runs where the bf16 set is not the portable one.
bool bf16_depthwise_kernel_available() {
  static const bool available =
      avx512_bf16_depthwise_rows() != nullptr && std::strcmp(bf16_kernels().name, "scalar") != 0;
  return available;
}

}  // namespace

bool bf16_depthwise_pairs(int64_t kh, int64_t kw, int64_t sw, int64_t dh, int64_t dw) {
  return bf16_depthwise_kernel_available() && kh == 3 && kw == 3 && dh == 1 && dw == 1 && (sw == 1 || sw == 2);
}

void depthwise_conv_bf16(const Window2d& g, const float* x, const uint16_t* x16, const float* w, const Epilogue& e,
                         float* y, uint16_t* y16, ThreadPool* pool, int max_threads) {
  const bool merges = bf16_depthwise_merges(e.act);
  if ((x == nullptr) == (x16 == nullptr) || (y == nullptr) == (y16 == nullptr) || (y16 && !merges))
    throw std::logic_error("depthwise_conv_bf16: one input, one output, and a bf16 one only with a merged activation");
  const int64_t M = g.N * g.OH * g.OW, count = M * g.C;
  if (count <= 0) return;
  if (bf16_depthwise_kernel_available()) {
    const Bf16DepthwiseFn kernel = avx512_bf16_depthwise_rows();
    Bf16DepthwiseJob j{g.N, g.H, g.W, g.C, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ph, g.pw};
    j.x16 = x16;
    j.x = x;
    j.w = w;
    j.bias = e.bias;
    j.residual = e.residual;
    j.ld_residual = e.ld_residual;
    j.y16 = y16;
    j.y = y;
    if (e.act.kind == ActKind::relu) {
      j.clamp = true;
      j.lo = 0.0f;
      j.hi = std::numeric_limits<float>::infinity();
    } else if (e.act.kind == ActKind::clamp) {
      j.clamp = true;
      j.lo = e.act.alpha;
      j.hi = e.act.beta;
    }
    const int threads = product_threads(pool, max_threads, 2.0 * (double)count * g.kh * g.kw);
    run_split(pool, threads, g.N * g.OH, 1, [&](int64_t r0, int64_t r1) {
      kernel(j, r0, r1);
      // An f32 output's other activations: a pass over the rows just written.
      if (!merges) apply_epilogue(y + r0 * g.OW * g.C, g.C, (r1 - r0) * g.OW, g.C, r0 * g.OW, 0, post_part(e));
    });
    return;
  }
  // Portable: the f32 kernel between copies.
  thread_local std::vector<float> wide_in, wide_out;
  if (x16) {
    const int64_t in = g.N * g.H * g.W * g.C;
    wide_in.resize((size_t)in);
    for (int64_t i = 0; i < in; ++i) {
      const uint32_t bits = (uint32_t)x16[i] << 16;
      std::memcpy(&wide_in[(size_t)i], &bits, sizeof bits);
    }
    x = wide_in.data();
  }
  if (y16) {
    wide_out.resize((size_t)count);
    y = wide_out.data();
  }
  depthwise_conv_nhwc(g, x, w, e, y, pool, max_threads);
  if (y16) bf16_kernels().convert(y, count, 1.0f, y16);
}

}  // namespace aiov
