// Integer GEMM driver: A copied once into zero-padded u8 rows (with its row sums when B has
// zero points; u8 rows that need none of that are read in place), then (row tile, column
// pair) units shared out over the pool, each merged into C by the kernel that computed it (or,
// requantizing to u8 without B zero points where the kernels have them, rows-first strips of a
// column block). Also the packing of B and the portable kernels.
#include "kernels/gemm_int8.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/byte_stream.hpp"
#include "kernels/gemm_threads.hpp"
#include "kernels/isa.hpp"
#include "kernels/quantized_bytes.hpp"

namespace aiov {
namespace gemm_detail {
namespace {

constexpr int kPortableMR = 4;

void quantize_portable(const float* x, int64_t n, float scale, int32_t zero, uint8_t* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] / scale) + (float)zero;
    y[i] = !(v >= 0.0f) ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
  }
}

// The reference the ISA kernels are tested against, and the path on CPUs without them.
// Sums wrap modulo 2^32 (unsigned: a signed overflow would be UB) as the VNNI and AMX
// accumulators do, so a K past 65793 gives the same s32 on every path.
void tile_portable(const Int8Tile& t) {
  uint32_t acc[kPortableMR][kInt8TileCols] = {};
  for (int64_t k = 0; k < t.kp; ++k) {
    const int64_t quad = (k / 4) * (4 * kInt8PanelCols) + (k & 3);
    for (int r = 0; r < t.rows; ++r) {
      const int32_t av = t.a[r * t.lda + k];
      for (int j = 0; j < t.cols; ++j) {
        const int8_t* panel = t.b + (j / kInt8PanelCols) * t.b_panel_stride;
        acc[r][j] += (uint32_t)(av * panel[quad + (j % kInt8PanelCols) * 4]);
      }
    }
  }
  for (int r = 0; r < t.rows; ++r)
    for (int j = 0; j < t.cols; ++j) {
      uint32_t v = acc[r][j] + (uint32_t)t.col_add[j];
      if (t.row_sum) v += (uint32_t)t.row_sum[r] * (uint32_t)t.col_mul[j];
      if (t.c_i32) {
        t.c_i32[r * t.ldc + j] = (int32_t)v;
        continue;
      }
      float y = (float)(int32_t)v * t.scale[j];
      if (t.bias) y += t.bias[j];
      if (t.relu) y = std::max(y, 0.0f);
      if (t.c_u8)
        quantize_portable(&y, 1, t.out_scale, t.out_zero, t.c_u8 + r * t.ldc + j);
      else
        t.c_f32[r * t.ldc + j] = y;
    }
}

void range_portable(const float* x, int64_t n, float& min, float& max) {
  min = max = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    min = x[i] < min ? x[i] : min;
    max = x[i] > max ? x[i] : max;
  }
}

const Int8KernelSet kPortable{"scalar",           kPortableMR, kInt8Quad, &tile_portable, &range_portable,
                              &quantize_portable, nullptr,     nullptr,   nullptr,        0};

const Int8KernelSet* choose_kernels() {
  const Int8Isa isa = selected_int8_isa();
  if (isa == Int8Isa::amx)
    if (const Int8KernelSet* k = amx_int8_kernels()) return k;
  if (isa >= Int8Isa::avx512_vnni)
    if (const Int8KernelSet* k = vnni_int8_kernels()) return k;
  return &kPortable;
}

const Int8KernelSet& int8_kernels() {
  static const Int8KernelSet* chosen = choose_kernels();  // once; thread-safe static init
  return *chosen;
}

// AMX multiplies whole 16-row tiles: one row (a classifier's one image, a decoder's token)
// padded to a tile still loads every B tile, where VNNI's row kernel loads each B vector
// once for it (1 x 1280 x 1000 on one core: ~18 us against ~23). From two rows on, AMX is
// as fast or faster. Below this many rows the VNNI kernels run instead.
constexpr int64_t kAmxMinRows = 2;

const Int8KernelSet& int8_kernels_for(int64_t M) {
  const Int8KernelSet& ks = int8_kernels();
  if (M < kAmxMinRows && &ks == amx_int8_kernels())
    if (const Int8KernelSet* vnni = vnni_int8_kernels()) return *vnni;
  return ks;
}

int64_t ceil_to(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// K as the kernels this process runs read it (VNNI: whole quads; a K of 16, MobileNet's
// 1x1 convolutions, padded to AMX's 64 did four times the products).
int64_t padded_k(int64_t K) { return ceil_to(K, int8_kernels().k_step); }

// Vectors' data is only 16-byte aligned: the kernels' rows and panels start at the first
// 64-byte boundary in theirs (kAlignSlack bytes more), so each 64-byte row a tile load or a
// quad stream reads lies in one cache line instead of straddling two.
constexpr size_t kAlignSlack = 63;

template <class T>
T* cache_line_start(T* p) {
  return p + (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64;
}

// A buffer of rows for the kernels, resized to hold `bytes` from a 64-byte boundary.
uint8_t* cache_aligned_rows(std::vector<uint8_t>& buffer, size_t bytes) {
  buffer.resize(bytes + kAlignSlack);
  return cache_line_start(buffer.data());
}

}  // namespace
}  // namespace gemm_detail

using namespace gemm_detail;

PackedInt8B::PackedInt8B(const void* B, bool b_unsigned, bool trans_b, int64_t K, int64_t N, int64_t ldb)
    : K_(K), N_(N), kp_(padded_k(K)), unsigned_(b_unsigned) {
  const int64_t panels = (N + kInt8PanelCols - 1) / kInt8PanelCols;
  panels_.assign((size_t)(panels * kp_ * kInt8PanelCols) + kAlignSlack, 0);
  int8_t* const start = cache_line_start(panels_.data());
  sums_.assign((size_t)N, 0);
  const uint8_t* src = static_cast<const uint8_t*>(B);
  // Unsigned weights flip their top bit: u8 b becomes s8 b - 128.
  const uint8_t flip = b_unsigned ? 0x80 : 0;
  for (int64_t n = 0; n < N; ++n) {
    int8_t* panel = start + (n / kInt8PanelCols) * kp_ * kInt8PanelCols;
    const int64_t j = n % kInt8PanelCols;
    uint32_t sum = 0;  // wraps, as the products' sums do
    for (int64_t k = 0; k < K; ++k) {
      const int8_t v = (int8_t)(src[trans_b ? n * ldb + k : k * ldb + n] ^ flip);
      panel[(k / 4) * (4 * kInt8PanelCols) + j * 4 + (k & 3)] = v;
      sum += (uint32_t)v;
    }
    sums_[(size_t)n] = (int32_t)sum;
  }
}

void PackedInt8B::save(ByteWriter& w) const {
  w.pod(K_);
  w.pod(N_);
  w.pod((uint8_t)unsigned_);
  w.pod(kp_);
  w.bytes(panels(), panels_.size() - kAlignSlack);
  w.bytes(sums_.data(), sums_.size() * sizeof(int32_t));
}

std::unique_ptr<PackedInt8B> PackedInt8B::load(ByteReader& r) {
  constexpr int64_t kMaxDim = int64_t{1} << 40;
  std::unique_ptr<PackedInt8B> b(new PackedInt8B());
  b->K_ = r.dim("an integer matrix's K", kMaxDim);
  b->N_ = r.dim("an integer matrix's N", kMaxDim);
  b->unsigned_ = r.pod<uint8_t>("an integer matrix's signedness") != 0;
  // The padding of the kernels that packed it (another CPU's blob may pad K otherwise).
  const int64_t stored_kp = r.dim("an integer matrix's padded K", kMaxDim);
  if (stored_kp < b->K_ || stored_kp % kInt8Quad || stored_kp - b->K_ >= kInt8AmxKStep)
    r.fail("an integer matrix's K " + std::to_string(b->K_) + " padded to " + std::to_string(stored_kp));
  const int64_t panels = (b->N_ + kInt8PanelCols - 1) / kInt8PanelCols;
  if (stored_kp && panels > (int64_t)(r.left() / (size_t)stored_kp))
    r.fail("an integer matrix of " + std::to_string(b->K_) + "x" + std::to_string(b->N_) +
           " does not fit what is left");
  const size_t stored_bytes = (size_t)(panels * stored_kp * kInt8PanelCols);
  r.expect_bytes(stored_bytes, "an integer matrix's panels");
  b->kp_ = padded_k(b->K_);
  b->panels_.assign((size_t)(panels * b->kp_ * kInt8PanelCols) + kAlignSlack, 0);
  int8_t* const start = cache_line_start(b->panels_.data());
  if (stored_kp == b->kp_) {
    r.take(start, stored_bytes, "an integer matrix's panels");
  } else {
    // Each panel's quads up to K are the same in both paddings; the rest is zeros.
    std::vector<int8_t> stored(stored_bytes);
    r.take(stored.data(), stored_bytes, "an integer matrix's panels");
    const size_t used = (size_t)(ceil_to(b->K_, kInt8Quad) * kInt8PanelCols);
    for (int64_t p = 0; p < panels; ++p)
      std::memcpy(start + p * b->kp_ * kInt8PanelCols, stored.data() + p * stored_kp * kInt8PanelCols, used);
  }
  r.expect_bytes((size_t)b->N_ * sizeof(int32_t), "an integer matrix's column sums");
  b->sums_.resize((size_t)b->N_);
  r.take(b->sums_.data(), b->sums_.size() * sizeof(int32_t), "an integer matrix's column sums");
  return b;
}

const int8_t* PackedInt8B::panels() const { return cache_line_start(panels_.data()); }

std::string PackedInt8B::layout(bool b_unsigned, bool trans_b, int64_t K, int64_t N, int64_t ldb) {
  return std::string(b_unsigned ? "u8" : "s8") + (trans_b ? " T " : " ") + std::to_string(K) + "x" + std::to_string(N) +
         " ld " + std::to_string(ldb);
}

namespace {

// What every product shares once its A is in row form: the zero-point corrections, and
// (row tile, column pair) units shared out over the pool, each merged into C by its kernel.
struct Int8Product {
  const Int8KernelSet& ks;
  const PackedInt8B& B;
  int64_t M;
  const uint8_t* rows;  // u8 rows ld bytes apart, zeros from K to kp
  int64_t ld;
  bool rows_padded;   // whether the rows past M up to whole tiles can be read (else copied)
  int32_t* row_sums;  // per row when B has zero points (else null)
  const int32_t* col_add;
  const int32_t* col_mul;
  int threads;
};

// col_add and col_mul for a (u8) zero point za of A; whether any column's zero point is not 0.
bool zero_point_terms(const PackedInt8B& B, uint32_t za, const int32_t* b_zero, int64_t b_zero_count,
                      std::vector<int32_t>& col_add, std::vector<int32_t>& col_mul) {
  const int64_t N = B.N(), K = B.K();
  if (b_zero_count != 1 && b_zero_count != N) throw std::logic_error("gemm_u8s8: b_zero needs 1 or N values");
  // In the stored domain (A as u8, B as s8) with za, zb[n] the shifted zero points:
  // sum (a - za)(b - zb) = sum ab - za * colsum[n] - zb[n] * rowsum[m] + K * za * zb[n].
  col_add.resize((size_t)N);
  col_mul.resize((size_t)N);
  // (Once per call over N: written so that it vectorizes, a tenth of a one-row product.)
  const int32_t shift = B.b_unsigned() ? 128 : 0;
  const int32_t* sums = B.column_sums();
  int32_t* add = col_add.data();
  int32_t* mul = col_mul.data();
  const bool per_column = b_zero_count != 1;
  uint32_t any = 0;
  for (int64_t n = 0; n < N; ++n) {
    const uint32_t zb = (uint32_t)((per_column ? b_zero[n] : b_zero[0]) - shift);
    any |= zb;
    add[n] = (int32_t)((uint32_t)K * za * zb - za * (uint32_t)sums[n]);
    mul[n] = (int32_t)(0u - zb);
  }
  return any != 0;
}

// Products run about four times the f32 rate; B's bytes stream in once (for few rows,
// a 1280 x 1000 classifier's, they are most of the time: its columns split over threads).
int int8_threads(ThreadPool* pool, int max_threads, int64_t M, const PackedInt8B& B) {
  const double b_bytes = (double)B.N() * B.kp();
  return est_ns(0.25 * (double)M * B.N() * B.K(), b_bytes) < min_parallel_ns(pool) ? 1
                                                                                   : usable_threads(pool, max_threads);
}

// Rows ld bytes apart, off multiples of 256 (by a cache line) so a tile's rows spread over
// the cache sets.
int64_t row_stride(int64_t kp) { return kp % 256 == 0 ? kp + 64 : kp; }

// One kernel call: the tile of rows [m0, m0 + mr) (read at a, lda bytes apart, with their
// row sums at sums) against the column pair `pair`, merged into C.
void product_tile(const Int8Product& p, const Int8Output& out, int64_t m0, const uint8_t* a, int64_t lda,
                  const int32_t* sums, int64_t pair) {
  const PackedInt8B& B = p.B;
  const int64_t col = pair * kInt8TileCols, panel_stride = B.kp() * kInt8PanelCols;
  Int8Tile t;
  t.kp = B.kp();
  t.a = a;
  t.lda = lda;
  t.b = B.panels() + (col / kInt8PanelCols) * panel_stride;
  t.b_panel_stride = panel_stride;
  t.rows = (int)std::min<int64_t>(p.ks.mr, p.M - m0);
  t.cols = (int)std::min<int64_t>(kInt8TileCols, B.N() - col);
  t.col_add = p.col_add + col;
  t.col_mul = p.col_mul + col;
  t.row_sum = sums;
  t.ldc = out.ldc;
  if (out.c_i32) {
    t.c_i32 = out.c_i32 + m0 * out.ldc + col;
  } else {
    if (out.c_u8)
      t.c_u8 = out.c_u8 + m0 * out.ldc + col;
    else
      t.c_f32 = out.c_f32 + m0 * out.ldc + col;
    t.scale = out.scale + col;
    t.bias = out.bias ? out.bias + col : nullptr;
    t.relu = out.relu;
    t.out_scale = out.out_scale;
    t.out_zero = out.out_zero;
  }
  p.ks.tile(t);
  if (out.c_u8 && out.residual)
    add_residual_u8(out, t.c_u8, t.ldc, out.residual + m0 * out.ld_residual + col, t.rows, t.cols);
}

int64_t column_pairs(const PackedInt8B& B) { return (B.N() + kInt8TileCols - 1) / kInt8TileCols; }

// Tile-major reads all of B once per row tile, pair-major all of A once per column pair:
// the same bytes, but only re-reads of what fits in L2 are cheap. Weights past it against
// few rows (deep layers: 49 rows against 3x3x512 x 512 = 2.4 MB) go pair-major, so each
// pair of panels streams in once and serves every row tile.
bool pairs_outer(int64_t M, int64_t ld, const PackedInt8B& B) {
  const double a_bytes = (double)M * ld, b_bytes = (double)column_pairs(B) * kInt8TileCols * B.kp();
  return b_bytes > (768 << 10) && a_bytes * 2 < b_bytes;
}

// u8 results in column blocks of the strip kernel's width, split as evenly as they go (4 panels
// as 2 + 2, not 3 + 1): rows-first strips, each a chunk of rows against one block, shared out
// chunk by chunk (a chunk's rows stay in cache against every block).
void run_u8_strips(const Int8Product& p, const Int8Output& out, ThreadPool* pool) {
  const PackedInt8B& B = p.B;
  const int64_t N = B.N(), kp = B.kp(), panels = (N + kInt8PanelCols - 1) / kInt8PanelCols;
  // Two panels a block (12-row calls) when they pair up; an odd count in blocks of up to three
  // (8-row calls) rather than with a one-panel block (9 panels: 3 x 3, not 4 x 2 + 1).
  const int64_t per_block = panels % 2 == 0 ? std::min(2, p.ks.u8_strip_panels) : p.ks.u8_strip_panels;
  const int64_t blocks = (panels + per_block - 1) / per_block;
  // Chunks of rows of about 16 KiB of A (24 to 192 rows), made as even as they go, and at least
  // four units per thread (while chunks keep 24 rows) so the split stays even.
  const int64_t target = std::max<int64_t>(24, std::min<int64_t>(192, (16 << 10) / std::max<int64_t>(p.ld, 1)));
  int64_t chunks = (p.M + target - 1) / target;
  while (chunks * blocks < 4 * p.threads && (chunks + 1) * 24 <= p.M) ++chunks;
  const int64_t panel_stride = kp * kInt8PanelCols;
  auto run = [&](int64_t c0, int64_t c1, int64_t b0, int64_t b1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t blk = b0; blk < b1; ++blk) {
        // Block blk's first panel and width: the first panels % blocks blocks one panel wider.
        const int64_t narrow = panels / blocks, wide = panels % blocks;
        const int64_t first = blk * narrow + std::min(blk, wide), width = narrow + (blk < wide ? 1 : 0);
        const int64_t col = first * kInt8PanelCols, m0 = c * p.M / chunks, m1 = (c + 1) * p.M / chunks;
        Int8U8Strip s;
        s.kp = kp;
        s.a = p.rows + m0 * p.ld;
        s.lda = p.ld;
        s.rows = m1 - m0;
        s.b = B.panels() + first * panel_stride;
        s.b_panel_stride = panel_stride;
        s.cols = (int)std::min(width * kInt8PanelCols, N - col);
        s.col_add = p.col_add + col;
        s.scale = out.scale + col;
        s.bias = out.bias ? out.bias + col : nullptr;
        s.relu = out.relu;
        s.out_scale = out.out_scale;
        s.out_zero = out.out_zero;
        s.c_u8 = out.c_u8 + m0 * out.ldc + col;
        s.ldc = out.ldc;
        if (out.residual) {
          s.residual = out.residual + m0 * out.ld_residual + col;
          s.ld_residual = out.ld_residual;
          s.residual_scale = out.residual_scale;
          s.residual_zero = out.residual_zero;
          s.sum_scale = out.sum_scale;
          s.sum_zero = out.sum_zero;
        }
        p.ks.u8_strip(s);
      }
  };
  // Weights past L2 against few rows (ResNet's 7x7x512 -> 2048: 1 MB against 49 rows) go block
  // by block, so each block's panels stream in once and serve every chunk.
  const bool block_major = pairs_outer(p.M, p.ld, B);
  run_split(pool, p.threads, chunks * blocks, 1, [&](int64_t u0, int64_t u1) {
    if (block_major)
      panel_major_pieces(u0, u1, chunks, run);
    else
      tile_major_pieces(u0, u1, blocks, run);
  });
}

void run_product(const Int8Product& p, const Int8Output& out, ThreadPool* pool) {
  const Int8KernelSet& ks = p.ks;
  if (ks.u8_strip && out.c_u8 && !p.row_sums) return run_u8_strips(p, out, pool);
  const int64_t M = p.M, kp = p.B.kp(), ld = p.ld;
  const int64_t tiles = (M + ks.mr - 1) / ks.mr, np = column_pairs(p.B);
  // The last tile's rows, when the kernel would read past the caller's (AMX reads 16 rows
  // per tile): copied per thread into zero-padded rows of its own.
  const int64_t last = (tiles - 1) * ks.mr;
  const bool copy_last = !p.rows_padded && M - last < ks.mr;
  auto run = [&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
    thread_local std::vector<uint8_t> last_rows;
    for (int64_t tile = t0; tile < t1; ++tile) {
      const int64_t m0 = tile * ks.mr;
      const uint8_t* a = p.rows + m0 * ld;
      int64_t lda = ld;
      if (copy_last && m0 == last) {
        uint8_t* copy = cache_aligned_rows(last_rows, (size_t)(ks.mr * kp));
        std::memset(copy, 0, (size_t)(ks.mr * kp));
        for (int64_t m = m0; m < M; ++m) std::memcpy(copy + (m - m0) * kp, p.rows + m * ld, (size_t)kp);
        a = copy;
        lda = kp;
      }
      for (int64_t pair = p0; pair < p1; ++pair)
        product_tile(p, out, m0, a, lda, p.row_sums ? p.row_sums + m0 : nullptr, pair);
    }
  };
  const bool pair_major = pairs_outer(M, ld, p.B);
  run_split(pool, p.threads, tiles * np, 1, [&](int64_t u0, int64_t u1) {
    if (ks.begin) ks.begin();
    if (pair_major)
      panel_major_pieces(u0, u1, tiles, run);
    else
      tile_major_pieces(u0, u1, np, run);
    if (ks.end) ks.end();
  });
}

}  // namespace

void add_residual_u8(const Int8Output& out, uint8_t* c, int64_t ldc, const uint8_t* residual, int64_t rows,
                     int64_t cols) {
  // C's bytes are the sum's first operand: the order aiov.QuantizedAdd adds in does not
  // matter (a float sum of two values is the same either way round).
  const QuantizedSum sum{out.out_scale, (float)out.out_zero, out.residual_scale, (float)out.residual_zero,
                         out.sum_scale, out.sum_zero};
  for (int64_t r = 0; r < rows; ++r)
    quantized_sum_u8(c + r * ldc, residual + r * out.ld_residual, cols, sum, c + r * ldc);
}

int64_t int8_row_stride(int64_t K) { return row_stride(padded_k(K)); }

void gemm_u8s8(int64_t M, const void* A, bool a_signed, int64_t lda, int32_t a_zero, const PackedInt8B& B,
               const int32_t* b_zero, int64_t b_zero_count, const Int8Output& out, ThreadPool* pool, int max_threads) {
  const int64_t N = B.N(), K = B.K(), kp = B.kp();
  if (M <= 0 || N <= 0) return;
  const Int8KernelSet& ks = int8_kernels_for(M);
  thread_local std::vector<int32_t> col_add, col_mul, row_sum;
  thread_local std::vector<uint8_t> a_rows;
  const uint32_t za = (uint32_t)(a_zero + (a_signed ? 128 : 0));
  const bool b_zeros = zero_point_terms(B, za, b_zero, b_zero_count, col_add, col_mul);
  const int threads = int8_threads(pool, max_threads, M, B);
  const uint8_t* src = static_cast<const uint8_t*>(A);
  // u8 rows needing no padding, flip or row sums (dynamically quantized activations against
  // symmetric weights, K a whole number of steps) are the kernels' row form already, unless
  // their stride is one the copy would change (row_stride: a tile's rows on few cache sets).
  if (!a_signed && !b_zeros && K == kp && lda >= kp && row_stride(lda) == lda) {
    run_product({ks, B, M, src, lda, false, nullptr, col_add.data(), col_mul.data(), threads}, out, pool);
    return;
  }
  // A copied into zero-padded rows (to kp and to whole tiles: the kernels read both).
  const int64_t ld = row_stride(kp);
  const int64_t tiles = (M + ks.mr - 1) / ks.mr;
  // (each row's padding zeroed below; the thread_locals name other buffers on other threads)
  uint8_t* const rows = cache_aligned_rows(a_rows, (size_t)(tiles * ks.mr * ld));
  if (b_zeros) row_sum.assign((size_t)(tiles * ks.mr), 0);
  const uint8_t flip = a_signed ? 0x80 : 0;
  int32_t* const row_sums = b_zeros ? row_sum.data() : nullptr;
  // Convolution patches make A megabytes: the copy is shared out like the products.
  run_split(pool, threads, M, 256, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      uint8_t* dst = rows + m * ld;
      const uint8_t* row = src + m * lda;
      std::memset(dst + K, 0, (size_t)(ld - K));
      if (!flip && !row_sums) {
        std::memcpy(dst, row, (size_t)K);
        continue;
      }
      uint32_t sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        dst[k] = row[k] ^ flip;
        sum += dst[k];
      }
      if (row_sums) row_sums[m] = (int32_t)sum;
    }
  });
  std::memset(rows + M * ld, 0, (size_t)((tiles * ks.mr - M) * ld));
  run_product({ks, B, M, rows, ld, true, row_sums, col_add.data(), col_mul.data(), threads}, out, pool);
}

void gemm_u8_rows(int64_t M, const uint8_t* rows, int64_t ld, int32_t a_zero, const PackedInt8B& B,
                  const int32_t* b_zero, int64_t b_zero_count, const Int8Output& out, ThreadPool* pool,
                  int max_threads) {
  const int64_t N = B.N(), K = B.K();
  if (M <= 0 || N <= 0) return;
  if (ld < B.kp()) throw std::logic_error("gemm_u8_rows: rows shorter than the padded K");
  const Int8KernelSet& ks = int8_kernels_for(M);
  thread_local std::vector<int32_t> col_add, col_mul, row_sum;
  const bool b_zeros = zero_point_terms(B, (uint32_t)a_zero, b_zero, b_zero_count, col_add, col_mul);
  const int threads = int8_threads(pool, max_threads, M, B);
  int32_t* row_sums = nullptr;
  if (b_zeros) {  // (rare in QDQ models: their s8 weights are symmetric)
    const int64_t tiles = (M + ks.mr - 1) / ks.mr;
    row_sum.assign((size_t)(tiles * ks.mr), 0);
    row_sums = row_sum.data();
    run_split(pool, threads, M, 256, [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) {
        uint32_t sum = 0;
        for (int64_t k = 0; k < K; ++k) sum += rows[m * ld + k];
        row_sums[m] = (int32_t)sum;
      }
    });
  }
  run_product({ks, B, M, rows, ld, false, row_sums, col_add.data(), col_mul.data(), threads}, out, pool);
}

void gemm_u8_filled(int64_t M, const Int8RowFill& fill, int32_t a_zero, const PackedInt8B& B, const int32_t* b_zero,
                    int64_t b_zero_count, const Int8Output& out, ThreadPool* pool, int max_threads) {
  const int64_t N = B.N(), K = B.K(), kp = B.kp();
  if (M <= 0 || N <= 0) return;
  const Int8KernelSet& ks = int8_kernels_for(M);
  const int64_t ld = row_stride(kp);
  // Blocks of whole tiles about 48 KiB of rows, so a block is still in L1/L2 when its
  // products read it.
  const int64_t block = std::max<int64_t>(1, (48 << 10) / (ld * ks.mr)) * ks.mr;
  const int64_t blocks = (M + block - 1) / block;
  const int threads = int8_threads(pool, max_threads, M, B);
  // Too few blocks to share out, or weights to stream once: all rows first, then (tile,
  // pair) units.
  if (blocks < 2 * threads || pairs_outer(M, ld, B)) {
    thread_local std::vector<uint8_t> all_rows;
    // (the thread_local names other buffers on other threads)
    uint8_t* const rows = cache_aligned_rows(all_rows, (size_t)(M * ld));
    run_split(pool, threads, (M + ks.mr - 1) / ks.mr, 1,
              [&](int64_t t0, int64_t t1) { fill(t0 * ks.mr, std::min(M, t1 * ks.mr), rows + t0 * ks.mr * ld, ld); });
    gemm_u8_rows(M, rows, ld, a_zero, B, b_zero, b_zero_count, out, pool, max_threads);
    return;
  }
  thread_local std::vector<int32_t> col_add, col_mul;
  const bool b_zeros = zero_point_terms(B, (uint32_t)a_zero, b_zero, b_zero_count, col_add, col_mul);
  const Int8Product p{ks, B, M, nullptr, ld, true, nullptr, col_add.data(), col_mul.data(), threads};
  const int64_t np = column_pairs(B);
  run_split(pool, threads, blocks, 1, [&](int64_t b0, int64_t b1) {
    thread_local std::vector<uint8_t> block_rows;
    thread_local std::vector<int32_t> block_sums;
    uint8_t* const rows = cache_aligned_rows(block_rows, (size_t)(block * ld));
    block_sums.assign((size_t)block, 0);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t m0 = b * block, m1 = std::min(M, m0 + block);
      fill(m0, m1, rows, ld);
      // Rows past M read as zeros (the kernels read whole tiles).
      if (m1 - m0 < block) std::memset(rows + (m1 - m0) * ld, 0, (size_t)((block - (m1 - m0)) * ld));
      if (b_zeros)
        for (int64_t m = m0; m < m1; ++m) {
          uint32_t sum = 0;
          for (int64_t k = 0; k < K; ++k) sum += rows[(m - m0) * ld + k];
          block_sums[(size_t)(m - m0)] = (int32_t)sum;
        }
      if (ks.begin) ks.begin();
      for (int64_t m = m0; m < m1; m += ks.mr)
        for (int64_t pair = 0; pair < np; ++pair)
          product_tile(p, out, m, rows + (m - m0) * ld, ld, b_zeros ? block_sums.data() + (m - m0) : nullptr, pair);
      if (ks.end) ks.end();
    }
  });
}

const char* gemm_int8_isa() { return int8_kernels().name; }

void range_with_zero(const float* x, int64_t n, float& min, float& max) { int8_kernels().range(x, n, min, max); }

void quantize_u8(const float* x, int64_t n, float scale, int32_t zero, uint8_t* y) {
  int8_kernels().quantize(x, n, scale, zero, y);
}

}  // namespace aiov
