// The contract between the GEMM drivers and the micro-kernels: what one kernel call
// computes, and the kernel set each instruction set provides (gemm_portable.cpp,
// gemm_avx2.cpp, gemm_avx512.cpp), chosen once in gemm_kernels.cpp.
// Not for use outside native/kernels/gemm*. The ISA files include this header, so it
// defines no inline function they could call: one compiled there could hand AVX-512 code
// to portable callers, except in the anonymous namespace (each file its own copy).
#pragma once
#include <cstdint>

#include "kernels/gemm.hpp"

namespace aiov {
namespace gemm_detail {

// One micro-kernel call: C[rows, cols] (+)= A * Bpanel over kc steps, then merged into C.
struct Tile {
  // rows <= mr, cols <= nr of the kernel set; rows <= mr_narrow when a_rows and cols <= nr / 2.
  int rows = 0, cols = 0;
  int64_t kc = 0;
  // The A block, alpha applied. a_rows: rows a_stride floats apart, each kc contiguous values
  // (A as it lies, or rows made on demand); otherwise a packed panel: kc groups of `rows`
  // values, a_stride floats apart.
  const float* a = nullptr;
  int64_t a_stride = 0;
  bool a_rows = false;
  // kc rows of the tile width, b_stride floats apart. b_direct: B is the unpacked matrix
  // itself, so only `cols` values of each row exist and may be read (never with a_rows).
  const float* b = nullptr;
  int64_t b_stride = 0;
  bool b_direct = false;
  float* c = nullptr;
  int64_t ldc = 0;

  // The merge, in this order: x = acc (+ beta * C when load_c) (+ bias) (+ residual), then
  // clamped to [lo, hi].
  const float* bias = nullptr;      // this tile's cols values, or null
  float beta = 0.0f;                // C = acc + beta * C when load_c
  bool load_c = false;              // false: C is overwritten without being read
  const float* residual = nullptr;  // this tile's block of the residual, ld_residual apart
  int64_t ld_residual = 0;
  bool clamp = false;  // ReLU is lo = 0, hi = +inf
  float lo = 0.0f, hi = 0.0f;

  // One call runs `panels` tiles down a column of C against the same B: A panel p starts
  // a_next floats after panel p - 1, and C and the residual move down `rows` rows each time.
  // Small K makes a tile short, and a call per tile cost ~10% of MobileNet's 1x1 convolutions.
  int panels = 1;
  int64_t a_next = 0;
  // Indirect A (a convolution read where its input lies): A row r of the tile is `segments`
  // runs of kc floats, run s starting at a_ptrs[s * a_ptr_stride + r]; `a` is unused, B runs
  // on across the runs (segments * kc rows of it), and panels is 1.
  const float* const* a_ptrs = nullptr;
  int segments = 1;
  int64_t a_ptr_stride = 0;
  // Grid A (see GridSource): element (r, k) of the tile is a[a_offsets[k] + r * a_step], `a`
  // being the tile's base; kc covers all of K, and panels is 1.
  const int64_t* a_offsets = nullptr;
  int a_step = 1;
};

namespace {
// The merge above for one accumulated value x at row r, column j of the tile, in plain code
// for the portable kernels.
inline void merge_value(const Tile& t, int r, int j, float x) {
  float* out = t.c + r * t.ldc + j;
  if (t.load_c) x += t.beta * *out;
  if (t.bias) x += t.bias[j];
  if (t.residual) x += t.residual[r * t.ld_residual + j];
  if (t.clamp) {  // min(max(x, lo), hi), NaN kept
    x = x < t.lo ? t.lo : x;
    x = x > t.hi ? t.hi : x;
  }
  *out = x;
}
}  // namespace

using TileFn = void (*)(const Tile& tile);

// out(r, j) = dot(x[r, 0:k], y[j, 0:k]) (+ beta * out(r, j) when beta != 0), for
// r < rows (<= 4) and j < cols; out(r, j) lives at c[r * c_rs + j * c_cs].
using DotFn = void (*)(int rows, int64_t cols, int64_t k, const float* x, int64_t ldx, const float* y, int64_t ldy,
                       float* c, int64_t c_rs, int64_t c_cs, float beta);

// c[r, 0:n] = sum_k a[r * lda + k] * b[k * ldb + 0:n] (+ beta * c when beta != 0), r < rows (<= 4), k >= 1,
// for a few rows against unpacked row-major B: B rows are streamed front to back
// (prefetch-friendly) while a short C segment stays in L1.
using StreamFn = void (*)(int rows, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                          float* c, int64_t ldc, float beta);

// Transposing copy used by packing: dst[k * dst_stride + r] = alpha * src[r * ld + k]
// for r < rows (<= KernelSet::transpose_rows), k < kc. Packs non-transposed A
// into A panels and transposed B into B panels.
using TransposeFn = void (*)(int rows, int64_t kc, const float* src, int64_t ld, float alpha, float* dst,
                             int64_t dst_stride);

struct KernelSet {
  const char* name;
  int mr, nr;          // micro-tile rows x columns
  int mr_narrow;       // rows of a tile when A rows are read in place and cols <= nr / 2
  int64_t kc, mc, nc;  // cache blocking: K slice, rows of A per L2 block, columns per B block
  TileFn tile;
  DotFn dot;
  StreamFn stream;
  TransposeFn transpose;  // null: portable loops
  int transpose_rows;     // rows per transpose call
  // Shorter, wider tiles for weights packed for a tall A against few columns (null: none).
  const KernelSet* wide = nullptr;
  // Few columns against a long K (gemm_pack.hpp: kDotMinLongK) multiply faster as dot
  // products than in narrow panel tiles, which spend a broadcast per FMA, fill 10 of 16 lanes
  // for N = 10 and, for a K a multiple of 512, copy A first (rows 2 KiB apart alias in L1).
  // Measured on AVX-512, single-threaded, MatMul + bias (us, panels -> rows): 64 x 1024 x 10
  // (an MLP's classifier) 30 -> 19, 128 x 2048 x 16 220-230 -> 134-157, 256 x 1024 x 16
  // 191-224 -> 123-156, 256 x 512 x 24 83-85 -> 68-69, 1024 x 1024 x 10 863-880 -> 829-830;
  // at K = 128-256 panels stay ahead (256 x 128 x 24: 17 against 23). AVX2's 16 registers
  // hold too few dot accumulators: there rows lost (256 x 512 x 24: 95 against 104-116).
  bool long_k_dots = false;
};

// Null when the translation unit was built without the ISA (non-x86 builds).
const KernelSet* avx512_kernels();
const KernelSet* avx2_kernels();
const KernelSet& portable_kernels();

// The set for selected_isa() (the best one built when the ISA file lacks it); chosen once.
const KernelSet& kernels();
// The set whose panels PackedB uses for weights of N columns meeting about rows_hint rows
// of A (-1: unknown): the wide tiles, when the ISA has them, for a tall A against few
// columns, where they beat the default tiles.
const KernelSet& kernels_for_weights(int64_t N, int64_t rows_hint);
// The set that reads panels `width` columns wide; throws when no set of this ISA does.
const KernelSet& kernels_for_panels(int width);

}  // namespace gemm_detail
}  // namespace aiov
