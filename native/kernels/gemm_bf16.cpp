// bf16 GEMM driver (INFERENCE_PRECISION_HINT bf16): every source of A (a matrix, rows made
// on demand, runs, grids) is read as f32 and rounded to bf16 a block of rows at a time,
// then multiplied over the whole K against bf16 panels packed once; results are merged into
// C in f32. Also the portable kernel set and the bf16 packing of B. f16 products
// (gemm_f16.hpp) run through the same driver with their own kernels and panels.
#include "kernels/gemm_bf16.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/gemm_driver.hpp"
#include "kernels/gemm_f16.hpp"
#include "kernels/isa.hpp"

namespace aiov {
namespace gemm_detail {
namespace {

// Round to nearest even; a NaN keeps its sign and becomes a quiet NaN (its low mantissa
// bits could otherwise round it into an infinity).
uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x40u);
  return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

float from_bf16(uint16_t v) {
  const uint32_t bits = (uint32_t)v << 16;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

void convert_portable(const float* src, int64_t n, float scale, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = to_bf16(scale == 1.0f ? src[i] : scale * src[i]);
}

constexpr int kPortableMR = 4;

// Widens bf16 to f32 and multiplies: the reference the ISA kernels are tested against, and
// the path on CPUs without bf16 instructions.
void tile_portable(const Bf16Tile& t) {
  const Tile& o = t.out;
  float acc[kPortableMR][kBf16TileCols] = {};
  for (int64_t k = 0; k < t.kp; ++k) {
    const int64_t pair = (k / 2) * (2 * kBf16PanelCols) + (k & 1);
    for (int r = 0; r < o.rows; ++r) {
      const float av = from_bf16(t.a[r * t.lda + k]);
      for (int j = 0; j < o.cols; ++j) {
        const uint16_t* panel = t.b + (j / kBf16PanelCols) * t.b_panel_stride;
        acc[r][j] += av * from_bf16(panel[pair + (j % kBf16PanelCols) * 2]);
      }
    }
  }
  for (int r = 0; r < o.rows; ++r)
    for (int j = 0; j < o.cols; ++j) merge_value(o, r, j, acc[r][j]);
}

const Bf16KernelSet kPortableBf16{"scalar", kPortableMR, &tile_portable, &convert_portable, nullptr, nullptr, false};

const Bf16KernelSet* choose_bf16_kernels() {
  const Bf16Isa isa = selected_bf16_isa();
  if (isa == Bf16Isa::amx)
    if (const Bf16KernelSet* k = amx_bf16_kernels()) return k;
  if (isa >= Bf16Isa::avx512_bf16)
    if (const Bf16KernelSet* k = avx512_bf16_kernels()) return k;
  return &kPortableBf16;
}

// Elements between rows of converted A: K padded, and not a multiple of 256 (512 bytes), so
// the 16 rows of an AMX tile load (or a kernel's broadcasts) do not share few L1 sets.
int64_t bf16_row_stride(int64_t kp) { return kp % 256 == 0 ? kp + kBf16KStep : kp; }

// Writes rows m0 .. m0 + rows - 1 of A (K values each, f32) as bf16 rows `ld` apart,
// through `convert`.
struct RowFill {
  virtual ~RowFill() = default;
  // Once per product, on the calling thread before the work is split: what the fills share.
  virtual void prepare(const Bf16KernelSet&, ThreadPool*, int) const {}
  virtual void fill(const Bf16KernelSet& ks, int64_t m0, int64_t rows, int64_t K, uint16_t* dst, int64_t ld) const = 0;
};

// One product: A rows from `fill`, B in bf16 panels. C16 set: C is written in bf16 there
// (ldc apart) instead of f32 to C: each tile is merged in f32 into a small buffer of the
// thread's and rounded once while it is in L1.
void run_bf16(int64_t M, const RowFill& A, const PackedB& B, Epilogue e, float beta, float* C, int64_t ldc,
              ThreadPool* pool, int max_threads, uint16_t* C16 = nullptr) {
  const int64_t N = B.N(), K = B.K();
  if (M <= 0 || N <= 0) return;
  if (!B.half()) throw std::logic_error("gemm_bf16: B is not packed in bf16 or f16");
  if (C16 && (beta != 0.0f || B.precision() != GemmPrecision::bf16))
    throw std::logic_error("gemm_bf16: a bf16 C is written, never accumulated into, by bf16 products");
  if (!C16 && residual_is_c(e, C, ldc)) beta = 1.0f;
  if (K == 0 && C16) {
    std::vector<float> row((size_t)N);
    for (int64_t m = 0; m < M; ++m) {
      std::fill(row.begin(), row.end(), 0.0f);
      apply_epilogue(row.data(), N, 1, N, m, 0, e);
      bf16_kernels().convert(row.data(), N, 1.0f, C16 + m * ldc);
    }
    return;
  }
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
    apply_epilogue(C, ldc, M, N, 0, 0, e);
    return;
  }
  const Bf16KernelSet& ks = B.precision() == GemmPrecision::f16 ? f16_kernels() : bf16_kernels();
  const int mr = ks.mr;
  const int64_t kp = bf16_padded_k(K), lda = bf16_row_stride(kp);
  // A block of rows converted once for every panel it meets: about 256 KiB of bf16 (with
  // the panel pair, 64 * kp bytes, it stays in L2), 1 to 8 tiles tall.
  const int64_t tiles = std::max<int64_t>(1, std::min<int64_t>(8, (int64_t{256} << 10) / (mr * lda * 2)));
  const int64_t mb = tiles * mr;
  const int64_t blocks = ceil_div(M, mb), np = ceil_div(N, kBf16TileCols);
  // Products below the f32 threshold's quarter stay on one thread: bf16 runs them faster.
  const int threads = product_threads(pool, max_threads, 0.5 * M * N * K);
  A.prepare(ks, pool, threads);
  // Gelu merged by the tiles themselves where the set can; other activations as a pass.
  const bool gelu_in_tiles = ks.merges_gelu_erf && e.act.kind == ActKind::gelu_erf;
  const bool post = needs_post(e) && !gelu_in_tiles;
  const uint16_t* panels = B.half_data();
  const int64_t panel_stride = kp * kBf16PanelCols;
  // What every tile shares, made once: building a tile from nothing (two structs zeroed by
  // `rep stos`) cost as much as the products of a 64-channel 1x1 convolution's tile.
  Bf16Tile shared;
  shared.out = tile_at(e, beta, true, true, 0, 0);
  shared.out.ldc = ldc;
  shared.kp = kp;
  shared.lda = lda;
  shared.b_panel_stride = panel_stride;
  shared.gelu_erf = gelu_in_tiles;
  // Rows m0 .. m0 + rows - 1 of A, converted at `a` (padded to whole tiles), against column
  // pairs [p0, p1).
  auto multiply = [&](const uint16_t* a, int64_t m0, int64_t rows, int64_t p0, int64_t p1) {
    Bf16Tile t = shared;
    // Under C16 the tiles of one column pair land here (rows x 32 floats) before rounding.
    float* staged = C16 ? scratch(kBf16Staging, (size_t)(rows * kBf16TileCols)) : nullptr;
    if (C16) t.out.ldc = kBf16TileCols;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t col = p * kBf16TileCols;
      t.out.cols = (int)std::min<int64_t>(kBf16TileCols, N - col);
      t.out.bias = e.bias ? e.bias + col : nullptr;
      t.b = panels + (col / kBf16PanelCols) * panel_stride;
      float* c = C16 ? staged : C + m0 * ldc + col;
      const int64_t ldt = C16 ? kBf16TileCols : ldc;
      for (int64_t r0 = 0; r0 < rows; r0 += mr) {
        t.out.rows = (int)std::min<int64_t>(mr, rows - r0);
        t.out.c = c + r0 * ldt;
        if (e.residual) t.out.residual = e.residual + (m0 + r0) * e.ld_residual + col;
        t.a = a + r0 * lda;
        ks.tile(t);
      }
      if (post) apply_epilogue(c, ldt, rows, t.out.cols, m0, col, post_part(e));
      if (C16)
        for (int64_t r = 0; r < rows; ++r) ks.convert(c + r * ldt, t.out.cols, 1.0f, C16 + (m0 + r) * ldc + col);
    }
  };
  // Rows m0 .. m0 + rows - 1 of A converted at `a`: K padded with zeros, and the rows up to a
  // whole tile.
  auto convert = [&](int64_t m0, int64_t rows, uint16_t* a) {
    const int64_t padded_rows = ceil_div(rows, mr) * mr;
    A.fill(ks, m0, rows, K, a, lda);
    for (int64_t r = 0; r < rows; ++r) std::fill(a + r * lda + K, a + r * lda + lda, uint16_t{0});
    std::fill(a + rows * lda, a + padded_rows * lda, uint16_t{0});
  };
  auto block_rows = [&](int64_t blk) { return std::min(mb, M - blk * mb); };
  auto buffer = [&](ScratchSlot slot, int64_t rows) {
    return reinterpret_cast<uint16_t*>(scratch(slot, (size_t)(rows * lda + 1) / 2 + 1));
  };
  const int64_t row_tiles = ceil_div(M, (int64_t)mr);
  if (threads <= 1 || blocks >= 2 * threads) {
    // Row tiles shared out evenly, each thread's converted once a block at a time and swept
    // against every column pair. Sharing whole blocks left a thread up to a block behind (BERT's
    // 1024 rows are 10.7 blocks of 96: 6 against 4.7 on two threads).
    run_split(pool, threads, row_tiles, tiles, [&](int64_t t0, int64_t t1) {
      if (ks.begin) ks.begin();
      // Blocks of equal size: a chunk of 11 tiles is 6 + 5, not 8 + 3.
      const int64_t count = ceil_div(t1 - t0, tiles);
      uint16_t* a = buffer(kBlockA, mb);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t m0 = (t0 + (t1 - t0) * i / count) * mr;
        const int64_t m1 = std::min(M, (t0 + (t1 - t0) * (i + 1) / count) * mr);
        convert(m0, m1 - m0, a);
        multiply(a, m0, m1 - m0, 0, np);
      }
      if (ks.end) ks.end();
    });
    return;
  }
  if (row_tiles >= 4 * threads) {
    // Few blocks but several tiles for each thread (a 128-token sequence on 12-row tiles): the
    // rows split evenly, each thread rounding its own part and sweeping it against every column
    // pair, in one parallel step. Shared out as (block, column pair) units (below), the rounding
    // was a step of its own, and a thread read the rows the other one rounded from that core's
    // cache; split along whole tiles, 11 tiles were 6 against 5.
    run_split(pool, threads, threads, 1, [&](int64_t i0, int64_t i1) {
      if (ks.begin) ks.begin();
      uint16_t* a = buffer(kBlockA, mb);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t part_end = M * (i + 1) / threads;
        for (int64_t m0 = M * i / threads; m0 < part_end; m0 += mb) {
          const int64_t rows = std::min(mb, part_end - m0);
          convert(m0, rows, a);
          multiply(a, m0, rows, 0, np);
        }
      }
      if (ks.end) ks.end();
    });
    return;
  }
  // Few rows (deep layers, few rows against many columns): all of A converted once up front,
  // then (block, column pair) units shared out, so every thread has work.
  uint16_t* all = buffer(kSharedA, blocks * mb);
  run_split(pool, threads, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) convert(blk * mb, block_rows(blk), all + blk * mb * lda);
  });
  run_split(pool, threads, blocks * np, 1, [&](int64_t u0, int64_t u1) {
    if (ks.begin) ks.begin();
    tile_major_pieces(u0, u1, np, [&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
      for (int64_t blk = t0; blk < t1; ++blk) multiply(all + blk * mb * lda, blk * mb, block_rows(blk), p0, p1);
    });
    if (ks.end) ks.end();
  });
}

struct MatrixFill final : RowFill {
  bool ta;
  const float* A;
  int64_t lda;
  float alpha;
  MatrixFill(bool ta_, const float* A_, int64_t lda_, float alpha_) : ta(ta_), A(A_), lda(lda_), alpha(alpha_) {}
  void fill(const Bf16KernelSet& ks, int64_t m0, int64_t rows, int64_t K, uint16_t* dst, int64_t ld) const override {
    if (!ta) {
      for (int64_t r = 0; r < rows; ++r) ks.convert(A + (m0 + r) * lda, K, alpha, dst + r * ld);
      return;
    }
    float* tmp = scratch(kSourceRows, (size_t)(rows * K));
    gather_rows(true, A, lda, m0, rows, K, alpha, tmp);
    for (int64_t r = 0; r < rows; ++r) ks.convert(tmp + r * K, K, 1.0f, dst + r * ld);
  }
};

// Rows made on demand, a few at a time so the f32 copy stays small.
constexpr int64_t kFillRows = 16;

struct SourceRowsFill final : RowFill {
  const RowSource& src;
  explicit SourceRowsFill(const RowSource& s) : src(s) {}
  void fill(const Bf16KernelSet& ks, int64_t m0, int64_t rows, int64_t K, uint16_t* dst, int64_t ld) const override {
    float* tmp = scratch(kSourceRows, (size_t)(kFillRows * K));
    for (int64_t r0 = 0; r0 < rows; r0 += kFillRows) {
      const int64_t n = std::min(kFillRows, rows - r0);
      src.rows(m0 + r0, n, 0, K, tmp, K);
      for (int64_t r = 0; r < n; ++r) ks.convert(tmp + r * K, K, 1.0f, dst + (r0 + r) * ld);
    }
  }
};

// Values copied per chunk by copy_run: one 64-byte line.
constexpr int64_t kRunChunk = 32;

// n bf16 values from src to dst, in whole chunks when `room` (values writable from dst, those
// past n being written again later) allows: a kernel row of a few-channel image (21 values
// for 7x7 on 3 channels) is then one fixed-size copy, where a memcpy call per run cost more
// than the stem's tile products. src must be readable a chunk past n.
inline void copy_run(const uint16_t* src, int64_t n, uint16_t* dst, int64_t room) {
  const int64_t chunks = ceil_div(n, kRunChunk);
  if (chunks * kRunChunk > room) {
    std::memcpy(dst, src, (size_t)n * sizeof(uint16_t));
    return;
  }
  for (int64_t i = 0; i < chunks; ++i)
    std::memcpy(dst + i * kRunChunk, src + i * kRunChunk, kRunChunk * sizeof(uint16_t));
}

struct RunsFill final : RowFill {
  const RunSource& src;
  const RunSource::Extent extent;
  // The extent rounded to bf16 once (prepare), or null: each run is rounded as it is read.
  mutable const uint16_t* image = nullptr;
  explicit RunsFill(const RunSource& s) : src(s), extent(s.extent()) {}

  void prepare(const Bf16KernelSet& ks, ThreadPool* pool, int threads) const override {
    if (extent.count <= 0 || !extent.base) return;
    // A chunk more than the image: copy_run reads whole chunks.
    uint16_t* img = reinterpret_cast<uint16_t*>(scratch(kSharedRows, (size_t)(extent.count + kRunChunk) / 2 + 1));
    constexpr int64_t kChunk = 1 << 16;
    run_split(pool, threads, ceil_div(extent.count, kChunk), 1, [&](int64_t c0, int64_t c1) {
      const int64_t i0 = c0 * kChunk, i1 = std::min(extent.count, c1 * kChunk);
      ks.convert(extent.base + i0, i1 - i0, 1.0f, img + i0);
    });
    image = img;
  }

  void fill(const Bf16KernelSet& ks, int64_t m0, int64_t rows, int64_t K, uint16_t* dst, int64_t ld) const override {
    thread_local std::vector<const float*> table;
    const int segments = src.segments();
    table.resize((size_t)(segments * kFillRows));
    // Read through a local pointer: the thread-local vector's address was looked up
    // (__tls_get_addr) for every run.
    const float** ptrs = table.data();
    for (int64_t r0 = 0; r0 < rows; r0 += kFillRows) {
      const int n = (int)std::min(kFillRows, rows - r0);
      const int cuts = src.runs(m0 + r0, n, ptrs, kFillRows);
      if (cuts <= 0 || segments % cuts != 0) throw std::logic_error("RunSource: bad run count");
      const int64_t run = K / cuts;
      for (int s = 0; s < cuts; ++s)
        for (int r = 0; r < n; ++r) {
          const float* p = ptrs[s * kFillRows + r];
          uint16_t* d = dst + (r0 + r) * ld + s * run;
          if (!image) {
            ks.convert(p, run, 1.0f, d);
          } else if (p >= extent.base && p < extent.base + extent.count) {
            // Runs of a row are copied in order, and the row's padding is zeroed after: a chunk
            // may spill into the rest of its row.
            copy_run(image + (p - extent.base), run, d, ld - s * run);
          } else {  // the padding's zeros
            std::fill(d, d + run, uint16_t{0});
          }
        }
    }
  }
};

struct GridFill final : RowFill {
  const GridSource& src;
  explicit GridFill(const GridSource& s) : src(s) {}
  void fill(const Bf16KernelSet& ks, int64_t m0, int64_t rows, int64_t K, uint16_t* dst, int64_t ld) const override {
    float* tmp = scratch(kSourceRows, (size_t)(kFillRows * K));
    const int64_t* offsets = src.offsets();
    const int step = src.step();
    for (int64_t m = m0; m < m0 + rows;) {
      GridSource::Span s = src.span(m, std::min(kFillRows, m0 + rows - m));
      if (s.rows <= 0 || s.rows > m0 + rows - m || (s.base && (s.k0 < 0 || s.k0 > s.k1 || s.k1 > K)))
        throw std::logic_error("GridSource: bad span");
      if (step < 1 || step > kMaxGridStep) s.base = nullptr;
      if (s.base) {
        for (int64_t r = 0; r < s.rows; ++r) {
          float* row = tmp + r * K;
          std::fill(row, row + s.k0, 0.0f);
          for (int64_t k = s.k0; k < s.k1; ++k) row[k] = s.base[offsets[k] + r * step];
          std::fill(row + s.k1, row + K, 0.0f);
        }
      } else {
        // pack() writes a panel (dst[k * rows + r]): turned back into rows here.
        float* panel = scratch(kBlockB, (size_t)(s.rows * K));
        src.pack(m, s.rows, panel, s.rows);
        for (int64_t r = 0; r < s.rows; ++r)
          for (int64_t k = 0; k < K; ++k) tmp[r * K + k] = panel[k * s.rows + r];
      }
      for (int64_t r = 0; r < s.rows; ++r) ks.convert(tmp + r * K, K, 1.0f, dst + (m - m0 + r) * ld);
      m += s.rows;
    }
  }
};

// A already in bf16: its rows copied as they lie.
struct Bf16MatrixFill final : RowFill {
  const uint16_t* A;
  int64_t lda;
  Bf16MatrixFill(const uint16_t* A_, int64_t lda_) : A(A_), lda(lda_) {}
  void fill(const Bf16KernelSet&, int64_t m0, int64_t rows, int64_t K, uint16_t* dst, int64_t ld) const override {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * ld, A + (m0 + r) * lda, (size_t)K * sizeof(uint16_t));
  }
};

// Runs of bf16 values copied as they lie (padding runs point at zeros).
struct Bf16RunsFill final : RowFill {
  const Bf16RunSource& src;
  explicit Bf16RunsFill(const Bf16RunSource& s) : src(s) {}
  void fill(const Bf16KernelSet&, int64_t m0, int64_t rows, int64_t K, uint16_t* dst, int64_t ld) const override {
    thread_local std::vector<const uint16_t*> table;
    table.resize((size_t)(src.segments() * kFillRows));
    const uint16_t** ptrs = table.data();
    for (int64_t r0 = 0; r0 < rows; r0 += kFillRows) {
      const int n = (int)std::min(kFillRows, rows - r0);
      const int cuts = src.runs(m0 + r0, n, ptrs, kFillRows);
      if (cuts <= 0 || src.segments() % cuts != 0) throw std::logic_error("Bf16RunSource: bad run count");
      const size_t run = (size_t)(K / cuts);
      for (int s = 0; s < cuts; ++s)
        for (int r = 0; r < n; ++r) std::memcpy(dst + (r0 + r) * ld + s * run, ptrs[s * kFillRows + r], run * 2);
    }
  }
};

}  // namespace

const Bf16KernelSet& portable_bf16_kernels() { return kPortableBf16; }

const Bf16KernelSet& bf16_kernels() {
  static const Bf16KernelSet* chosen = choose_bf16_kernels();  // once; thread-safe static init
  return *chosen;
}

int64_t bf16_padded_k(int64_t K) { return ceil_div(K, kBf16KStep) * kBf16KStep; }

void pack_b_bf16(bool trans_b, const float* B, int64_t ldb, int64_t K, int64_t N, int64_t kp, uint16_t* dst) {
  const int64_t panels = ceil_div(N, kBf16PanelCols);
  std::fill(dst, dst + panels * kp * kBf16PanelCols, uint16_t{0});
  for (int64_t p = 0; p < panels; ++p) {
    uint16_t* panel = dst + p * kp * kBf16PanelCols;
    const int64_t n0 = p * kBf16PanelCols;
    const int cols = (int)std::min<int64_t>(kBf16PanelCols, N - n0);
    if (trans_b) {  // column n of op(B) is row n of B: read each along K
      for (int j = 0; j < cols; ++j) {
        const float* src = B + (n0 + j) * ldb;
        for (int64_t k = 0; k < K; ++k) panel[(k >> 1) * (2 * kBf16PanelCols) + j * 2 + (k & 1)] = to_bf16(src[k]);
      }
    } else {  // rows of B read along the panel's columns
      for (int64_t k = 0; k < K; ++k) {
        const float* src = B + k * ldb + n0;
        uint16_t* d = panel + (k >> 1) * (2 * kBf16PanelCols) + (k & 1);
        for (int j = 0; j < cols; ++j) d[j * 2] = to_bf16(src[j]);
      }
    }
  }
}

void gemm_bf16(bool trans_a, int64_t M, const float* A, int64_t lda, float alpha, const PackedB& B, const Epilogue& e,
               float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads) {
  run_bf16(M, MatrixFill(trans_a, A, lda, alpha), B, e, beta, C, ldc, pool, max_threads);
}

void gemm_bf16(int64_t M, const RowSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
               ThreadPool* pool, int max_threads) {
  run_bf16(M, SourceRowsFill(A), B, e, 0.0f, C, ldc, pool, max_threads);
}

void gemm_bf16(int64_t M, const RunSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
               ThreadPool* pool, int max_threads) {
  if (A.segments() <= 0 || B.K() % A.segments() != 0)
    throw std::logic_error("sgemm_packed: runs need K a multiple of the segment count");
  run_bf16(M, RunsFill(A), B, e, 0.0f, C, ldc, pool, max_threads);
}

void gemm_bf16(int64_t M, const GridSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
               ThreadPool* pool, int max_threads) {
  run_bf16(M, GridFill(A), B, e, 0.0f, C, ldc, pool, max_threads);
}

}  // namespace gemm_detail

using namespace gemm_detail;

namespace {
void need_bf16_panels(const PackedB& B) {
  if (B.precision() != GemmPrecision::bf16) throw std::logic_error("gemm_packed_bf16: B is not packed in bf16");
}
void need_runs_divide_k(int segments, const PackedB& B) {
  if (segments <= 0 || B.K() % segments != 0)
    throw std::logic_error("gemm_packed_bf16: runs need K a multiple of the segment count");
}
}  // namespace

void gemm_packed_bf16(int64_t M, const float* A, int64_t lda, const PackedB& B, const Epilogue& e, uint16_t* C,
                      int64_t ldc, ThreadPool* pool, int max_threads) {
  need_bf16_panels(B);
  run_bf16(M, MatrixFill(false, A, lda, 1.0f), B, e, 0.0f, nullptr, ldc, pool, max_threads, C);
}

void gemm_packed_bf16(int64_t M, const RowSource& A, const PackedB& B, const Epilogue& e, uint16_t* C, int64_t ldc,
                      ThreadPool* pool, int max_threads) {
  need_bf16_panels(B);
  run_bf16(M, SourceRowsFill(A), B, e, 0.0f, nullptr, ldc, pool, max_threads, C);
}

void gemm_packed_bf16(int64_t M, const RunSource& A, const PackedB& B, const Epilogue& e, uint16_t* C, int64_t ldc,
                      ThreadPool* pool, int max_threads) {
  need_bf16_panels(B);
  need_runs_divide_k(A.segments(), B);
  run_bf16(M, RunsFill(A), B, e, 0.0f, nullptr, ldc, pool, max_threads, C);
}

void gemm_packed_bf16(int64_t M, const uint16_t* A, int64_t lda, const PackedB& B, const Epilogue& e, float* C,
                      uint16_t* C16, int64_t ldc, ThreadPool* pool, int max_threads) {
  need_bf16_panels(B);
  run_bf16(M, Bf16MatrixFill(A, lda), B, e, 0.0f, C16 ? nullptr : C, ldc, pool, max_threads, C16);
}

void gemm_packed_bf16(int64_t M, const Bf16RunSource& A, const PackedB& B, const Epilogue& e, float* C, uint16_t* C16,
                      int64_t ldc, ThreadPool* pool, int max_threads) {
  need_bf16_panels(B);
  need_runs_divide_k(A.segments(), B);
  run_bf16(M, Bf16RunsFill(A), B, e, 0.0f, C16 ? nullptr : C, ldc, pool, max_threads, C16);
}

namespace {
// sgemm with B packed in a 16-bit precision on each call (the products of two activations).
void sgemm_half(GemmPrecision precision, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                ThreadPool* pool, int max_threads) {
  // Nothing to multiply (C empty, or only scaled by beta): the f32 GEMM does that.
  if (M <= 0 || N <= 0 || K <= 0 || alpha == 0.0f)
    return sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool, max_threads);
  const PackedB packed(trans_b, K, N, B, ldb, -1, precision);
  gemm_bf16(trans_a, M, A, lda, alpha, packed, Epilogue{}, beta, C, ldc, pool, max_threads);
}
}  // namespace

void sgemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads) {
  sgemm_half(GemmPrecision::bf16, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool, max_threads);
}

void sgemm_f16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads) {
  sgemm_half(GemmPrecision::f16, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool, max_threads);
}

void gemm(GemmPrecision precision, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool,
          int max_threads) {
  if (precision == GemmPrecision::bf16)
    sgemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool, max_threads);
  else if (precision == GemmPrecision::f16)
    sgemm_f16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool, max_threads);
  else
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool, max_threads);
}

GemmPrecision gemm_precision(ElementType inference_precision) {
  if (inference_precision == ElementType::bf16) return GemmPrecision::bf16;
  return inference_precision == ElementType::f16 ? GemmPrecision::f16 : GemmPrecision::f32;
}

const char* gemm_bf16_isa() { return bf16_kernels().name; }

}  // namespace aiov
