// Direct integer convolution driver: per tile of output positions, where each position's
// window starts (in the image, or in a copy of the window padded with the zero point at the
// borders), then the kernel over every block of output channels. Units of (tile, channel
// block) are shared out over the pool. Also the segment layout, the filters' order and the
// portable kernel.
#include "kernels/conv_int8.hpp"

#include <algorithm>
#include <cstring>

#include "kernels/gemm_int8.hpp"
#include "kernels/gemm_threads.hpp"
#include "kernels/isa.hpp"

namespace aiov {
namespace conv_int8_detail {
namespace {

constexpr int kPanelCols = gemm_detail::kInt8PanelCols;
constexpr int kMaxPanels = 4;

int rows_portable(int) { return 4; }

const uint8_t* segment_start(const ConvTile& t, int64_t s, int r) {
  return t.first[r] + ((t.copied >> r) & 1 ? s * t.quads * 4 : t.offsets[s]);
}

// The reference the VNNI kernel is tested against, and the path on CPUs without it. Sums
// wrap modulo 2^32, as the VNNI accumulators do.
void tile_portable(const ConvTile& t) {
  uint32_t acc[kMaxRows][kMaxPanels * kPanelCols] = {};
  for (int64_t s = 0; s < t.segments; ++s)
    for (int64_t q = 0; q < t.quads; ++q)
      for (int r = 0; r < t.rows; ++r) {
        const uint8_t* a = segment_start(t, s, r) + 4 * q;
        for (int j = 0; j < t.cols; ++j) {
          const int8_t* w =
              t.b + (j / kPanelCols) * t.b_panel_stride + (s * t.quads + q) * 4 * kPanelCols + (j % kPanelCols) * 4;
          for (int i = 0; i < 4; ++i) acc[r][j] += (uint32_t)((int32_t)a[i] * (int32_t)w[i]);
        }
      }
  float y[kMaxPanels * kPanelCols];
  const Int8Output& o = t.out;
  for (int r = 0; r < t.rows; ++r) {
    for (int j = 0; j < t.cols; ++j) {
      const int32_t v = (int32_t)(acc[r][j] + (uint32_t)t.col_add[j]);
      if (o.c_i32) {
        o.c_i32[r * o.ldc + j] = v;
        continue;
      }
      y[j] = (float)v * o.scale[j];
      if (o.bias) y[j] += o.bias[j];
      if (o.relu) y[j] = std::max(y[j], 0.0f);
      if (o.c_f32) o.c_f32[r * o.ldc + j] = y[j];
    }
    if (o.c_u8) quantize_u8(y, t.cols, o.out_scale, o.out_zero, o.c_u8 + r * o.ldc);
  }
}

const ConvInt8Kernels kPortable{"scalar", &rows_portable, &tile_portable, 0, nullptr};

// Null on AMX CPUs: their tiles multiply the GEMM's patch rows faster than VNNI reads pixels.
const ConvInt8Kernels* chosen_kernels() {
  static const ConvInt8Kernels* chosen = []() -> const ConvInt8Kernels* {  // once; thread-safe static init
    const Int8Isa isa = selected_int8_isa();
    if (isa == Int8Isa::amx && gemm_detail::amx_int8_kernels()) return nullptr;
    if (isa >= Int8Isa::avx512_vnni)
      if (const ConvInt8Kernels* k = vnni_conv_int8_kernels()) return k;
    return &kPortable;
  }();
  return chosen;
}

// What every tile of one convolution shares when placing its windows: each segment's distance
// from its window's first pixel, and the output positions whose windows lie wholly inside the
// image (and whose last quad reads no byte past its end).
struct WindowPlan {
  std::vector<int64_t> offsets;
  int64_t oy_first = 0, oy_last = -1, ox_first = 0, ox_last = -1;
  int64_t last_start = -1;  // the latest window start (bytes into the image) read in place
  bool pointwise = false;   // a 1x1 window moving by 1 over unpadded data: position m reads pixel m
};

// Output indices o in [first, last] have 0 <= o * stride - pad and o * stride - pad + span < size.
void inside_range(int64_t size, int64_t stride, int64_t pad, int64_t span, int64_t out, int64_t& first, int64_t& last) {
  first = (pad + stride - 1) / stride;
  last = size - 1 - span + pad < 0 ? -1 : std::min(out - 1, (size - 1 - span + pad) / stride);
}

WindowPlan window_plan(const ConvInt8& p) {
  const ConvInt8Segments& s = p.segments;
  WindowPlan plan;
  plan.offsets.resize((size_t)s.count);
  for (int64_t seg = 0; seg < s.count; ++seg) {
    const int64_t ky = s.window_rows ? seg : seg / p.kernel_w, kx = s.window_rows ? 0 : seg % p.kernel_w;
    plan.offsets[(size_t)seg] = (ky * p.dilation_h * p.in_w + kx * p.dilation_w) * p.channels;
  }
  inside_range(p.in_h, p.stride_h, p.pad_top, (p.kernel_h - 1) * p.dilation_h, p.out_h, plan.oy_first, plan.oy_last);
  inside_range(p.in_w, p.stride_w, p.pad_left, (p.kernel_w - 1) * p.dilation_w, p.out_w, plan.ox_first, plan.ox_last);
  plan.last_start = p.image_bytes - plan.offsets.back() - s.quads * 4;
  plan.pointwise = s.count == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
                   p.pad_left == 0 && p.out_w == p.in_w;
  return plan;
}

// The window of output position (oy, ox) copied to `copy`, its segments quads * 4 bytes apart,
// with the pad byte in place of the pixels outside the image (a window crossing the border,
// or one whose last quad would read past the image's end).
void copy_window(const ConvInt8& p, int64_t oy, int64_t ox, uint8_t* copy) {
  const ConvInt8Segments& s = p.segments;
  const int64_t C = p.channels, bytes = s.quads * 4;
  const int64_t y0 = oy * p.stride_h - p.pad_top, x0 = ox * p.stride_w - p.pad_left;
  std::memset(copy, p.pad, (size_t)(s.count * bytes));
  for (int64_t seg = 0; seg < s.count; ++seg, copy += bytes) {
    const int64_t ky = s.window_rows ? seg : seg / p.kernel_w, kx = s.window_rows ? 0 : seg % p.kernel_w;
    const int64_t y = y0 + ky * p.dilation_h, x = x0 + kx * p.dilation_w;
    if (y < 0 || y >= p.in_h) continue;
    // Pixels [first, last) of the segment lie inside the image.
    const int64_t first = std::max<int64_t>(0, -x), last = std::min(s.window_rows ? p.kernel_w : 1, p.in_w - x);
    if (last > first)
      std::memcpy(copy + first * C, p.image + (y * p.in_w + x + first) * C, (size_t)((last - first) * C));
  }
}

// Where the windows of positions [m0, m0 + rows) start: row r's in the image, or (bit r of
// the result) copied to scratch + r * segments * quads * 4.
unsigned window_starts(const ConvInt8& p, const WindowPlan& plan, int64_t m0, int rows, const uint8_t** first,
                       uint8_t* scratch) {
  const int64_t C = p.channels, out_w = p.out_w;
  const uint8_t* const image = p.image;
  if (plan.pointwise && (m0 + rows - 1) * C <= plan.last_start) {
    for (int r = 0; r < rows; ++r) first[r] = image + (m0 + r) * C;
    return 0;
  }
  // Kept in locals: the copies' byte stores could otherwise change p's and plan's fields, for
  // all the compiler knows, and each row would load them again.
  const int64_t step = p.stride_w * C, last_start = plan.last_start, ox_first = plan.ox_first, ox_last = plan.ox_last;
  const auto row_start = [&](int64_t oy) { return (oy * p.stride_h - p.pad_top) * p.in_w * C - p.pad_left * C; };
  int64_t oy = m0 / out_w, ox = m0 % out_w, at = row_start(oy) + ox * step;
  bool row_inside = oy >= plan.oy_first && oy <= plan.oy_last;
  // Most tiles: every window inside the image, in one output row.
  if (row_inside && ox >= ox_first && ox + rows - 1 <= ox_last && at + (rows - 1) * step <= last_start) {
    for (int r = 0; r < rows; ++r) first[r] = image + at + r * step;
    return 0;
  }
  unsigned copied = 0;
  for (int r = 0; r < rows; ++r) {
    if (row_inside && ox >= ox_first && ox <= ox_last && at <= last_start) {
      first[r] = image + at;
    } else {
      uint8_t* copy = scratch + r * p.segments.count * p.segments.quads * 4;
      copy_window(p, oy, ox, copy);
      first[r] = copy;
      copied |= 1u << r;
    }
    // the next position: the next column, or the first of the next row
    if (++ox < out_w) {
      at += step;
    } else {
      ox = 0;
      ++oy;
      at = row_start(oy);
      row_inside = oy >= plan.oy_first && oy <= plan.oy_last;
    }
  }
  return copied;
}

const ConvInt8Kernels& kernels_or_portable() {
  const ConvInt8Kernels* k = chosen_kernels();
  return k ? *k : kPortable;
}

}  // namespace
}  // namespace conv_int8_detail

using namespace conv_int8_detail;

ConvInt8Segments conv_int8_segments(int64_t channels, int64_t kernel_h, int64_t kernel_w, int64_t dilation_w) {
  ConvInt8Segments s;
  s.window_rows = dilation_w == 1;
  s.count = s.window_rows ? kernel_h : kernel_h * kernel_w;
  s.length = s.window_rows ? kernel_w * channels : channels;
  s.quads = (s.length + 3) / 4;
  return s;
}

std::vector<uint8_t> conv_int8_reorder(const uint8_t* filters, int64_t outputs, int64_t channels, int64_t kernel_h,
                                       int64_t kernel_w, const ConvInt8Segments& s, uint8_t filler) {
  const int64_t K = s.depth(), taps = kernel_h * kernel_w, seg_bytes = s.quads * 4;
  std::vector<uint8_t> out((size_t)(outputs * K), filler);
  for (int64_t o = 0; o < outputs; ++o)
    for (int64_t ky = 0; ky < kernel_h; ++ky)
      for (int64_t kx = 0; kx < kernel_w; ++kx) {
        // Where tap (ky, kx)'s channels start in output channel o's row.
        uint8_t* dst =
            out.data() + o * K + (s.window_rows ? ky * seg_bytes + kx * channels : (ky * kernel_w + kx) * seg_bytes);
        const uint8_t* src = filters + o * channels * taps + ky * kernel_w + kx;
        for (int64_t c = 0; c < channels; ++c) dst[c] = src[c * taps];
      }
  return out;
}

const char* conv_int8_isa() {
  const ConvInt8Kernels* k = chosen_kernels();
  return k ? k->name : nullptr;
}

void conv_int8_run(const ConvInt8& p, ThreadPool* pool, int max_threads) {
  using namespace gemm_detail;
  const ConvInt8Kernels& ks = kernels_or_portable();
  const PackedInt8B& B = *p.weights;
  const int64_t N = B.N(), M = p.out_h * p.out_w;
  if (M <= 0 || N <= 0) return;
  const int64_t panels = (N + kPanelCols - 1) / kPanelCols, panel_stride = B.kp() * kPanelCols;
  // Blocks of up to 4 panels, as even as they go (6 panels: 3 + 3, each 8 rows x 3 panels,
  // rather than 4 + 2 with the second block's 6 x 2 tiles half as productive).
  const int64_t block_count = (panels + kMaxPanels - 1) / kMaxPanels;
  const int nv = (int)((panels + block_count - 1) / block_count), mr = ks.rows_for(nv);
  // Tiles as even as they go too: 49 positions (a 7x7 layer) as 4 x 6 + 5 x 5 rows, not 8 x 6
  // and one row that streams every weight again for itself.
  const int64_t tiles = (M + mr - 1) / mr, blocks = (panels + nv - 1) / nv;
  const auto tile_start = [&](int64_t tile) { return tile * M / tiles; };
  const ConvInt8Segments& s = p.segments;
  const int64_t K = s.depth();
  const double b_bytes = (double)panels * panel_stride;
  // Products run about four times the f32 rate (as the integer GEMM estimates them).
  const int threads =
      est_ns(0.25 * (double)M * N * K, b_bytes) < min_parallel_ns(pool) ? 1 : usable_threads(pool, max_threads);
  // Weights past L2 stream in once, a block of channels against every tile; else each tile's
  // segments stay in L1 against every block.
  const bool blocks_outer = b_bytes > (768 << 10);
  const WindowPlan plan = window_plan(p);
  // (the merge's per-column constants, folded once for every tile)
  std::vector<float> folded;
  if (ks.fold && p.out.c_u8 && p.out.scale && p.out.bias) {
    folded.resize((size_t)(ks.folded_tables * N));
    ks.fold(p.out, N, folded.data(), N);
  }
  // Block-major, each tile meets every block of the chunk: its windows are placed (the border
  // ones copied) once and kept, when all tiles' copies fit in kKeptWindowBytes.
  const int64_t row_bytes = s.count * s.quads * 4;
  constexpr int64_t kKeptWindowBytes = int64_t{1} << 20;
  const bool keep_windows = blocks_outer && tiles * kMaxRows * row_bytes <= kKeptWindowBytes;
  run_split(pool, threads, tiles * blocks, 1, [&](int64_t u0, int64_t u1) {
    thread_local std::vector<uint8_t> scratch;
    thread_local std::vector<const uint8_t*> kept_first;
    thread_local std::vector<unsigned> kept_copied;
    thread_local std::vector<uint8_t> placed;
    // Grown, never shrunk: growing a vector that another convolution shrank fills the new
    // part again (half a megabyte of zeros per call for ResNet-50's 14 -> 7 3x3 in a model).
    const auto at_least = [](auto& v, int64_t n) {
      if ((int64_t)v.size() < n) v.resize((size_t)n);
    };
    at_least(scratch, (keep_windows ? tiles : 1) * kMaxRows * row_bytes);
    if (keep_windows) {
      at_least(kept_first, tiles * kMaxRows);
      at_least(kept_copied, tiles);
      placed.assign((size_t)tiles, 0);
    }
    const auto run = [&](int64_t t0, int64_t t1, int64_t b0, int64_t b1) {
      const uint8_t* first[kMaxRows];
      ConvTile t;
      t.first = first;
      t.offsets = plan.offsets.data();
      t.segments = s.count;
      t.quads = s.quads;
      t.b_panel_stride = panel_stride;
      t.out = p.out;
      for (int64_t tile = t0; tile < t1; ++tile) {
        const int64_t m0 = tile_start(tile);
        t.rows = (int)(tile_start(tile + 1) - m0);
        if (!keep_windows) {
          t.copied = window_starts(p, plan, m0, t.rows, first, scratch.data());
        } else {
          const uint8_t** kept = kept_first.data() + tile * kMaxRows;
          if (!placed[(size_t)tile]) {
            kept_copied[(size_t)tile] =
                window_starts(p, plan, m0, t.rows, kept, scratch.data() + tile * kMaxRows * row_bytes);
            placed[(size_t)tile] = 1;
          }
          t.first = kept;
          t.copied = kept_copied[(size_t)tile];
        }
        for (int64_t block = b0; block < b1; ++block) {
          const int64_t panel = block * nv, col = panel * kPanelCols;
          t.panels = (int)std::min<int64_t>(nv, panels - panel);
          t.cols = (int)std::min<int64_t>(t.panels * kPanelCols, N - col);
          t.b = B.panels() + panel * panel_stride;
          t.col_add = p.col_add + col;
          const int64_t at = m0 * p.out.ldc + col;
          t.out.c_i32 = p.out.c_i32 ? p.out.c_i32 + at : nullptr;
          t.out.c_f32 = p.out.c_f32 ? p.out.c_f32 + at : nullptr;
          t.out.c_u8 = p.out.c_u8 ? p.out.c_u8 + at : nullptr;
          t.out.scale = p.out.scale ? p.out.scale + col : nullptr;
          t.out.bias = p.out.bias ? p.out.bias + col : nullptr;
          t.folded = folded.empty() ? nullptr : folded.data() + col;
          t.folded_stride = N;
          ks.tile(t);
          if (p.out.c_u8 && p.out.residual)  // (the kernels have no sum of their own)
            add_residual_u8(p.out, t.out.c_u8, p.out.ldc, p.out.residual + m0 * p.out.ld_residual + col, t.rows,
                            t.cols);
        }
      }
    };
    if (blocks_outer)
      panel_major_pieces(u0, u1, tiles, run);
    else
      tile_major_pieces(u0, u1, blocks, run);
  });
}

}  // namespace aiov
