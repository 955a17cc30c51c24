// f32 GEMM: packed, register-blocked kernels (AVX-512 / AVX2+FMA / portable),
// chosen once at run time from CPUID. Used by MatMul (and later Conv/Gemm).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/epilogue.hpp"

namespace aiov {

class ThreadPool;

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// (beta == 0: C is not read and may hold garbage/NaN; alpha == 0: A and B are not read).
// op(X) = X or X^T per flag; lda/ldb/ldc are row strides, in elements, of the stored matrices.
// pool == nullptr runs on the calling thread; max_threads caps the threads used (0 = all).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
           float* C, int64_t ldc, ThreadPool* pool, int max_threads = 0);

// B packed once (weights known at compile time) in the layout the selected
// micro-kernel streams, then reused by every sgemm_packed call.
class PackedB {
 public:
  // rows_hint: the M the weights will be multiplied with, when known (-1: unknown). Few
  // columns are kept as dot-product rows only for few rows of A; tall A wants panels.
  PackedB(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb, int64_t rows_hint = -1);
  // A rows_hint for weights whose product needs panels however few rows A has (grids).
  static constexpr int64_t kTallA = int64_t{1} << 40;
  // Everything besides B's values that decides what the constructor makes from the same
  // arguments: two calls with equal text and equal B bytes pack identical data.
  static std::string layout(bool trans_b, int64_t K, int64_t N, int64_t ldb, int64_t rows_hint = -1);
  int64_t K() const { return K_; }
  int64_t N() const { return N_; }
  // Columns per panel: the micro-kernel width of the ISA picked when packing.
  int panel_width() const { return panel_width_; }
  // True when N is so small that B is kept as N rows of K (dot-product layout)
  // instead of panels: a panel would be mostly zero padding.
  bool row_layout() const { return row_layout_; }
  // Panel layout: ceil(N / panel_width) panels, each K x panel_width row-major,
  // zero-padded past N. Row layout: N x K row-major (op(B)^T).
  const float* data() const { return data_.get(); }
  size_t size_bytes() const { return size_ * sizeof(float); }

 private:
  struct AlignedFree {
    size_t count;  // floats allocated
    void operator()(float* p) const;
  };
  int64_t K_, N_;
  int panel_width_;
  bool row_layout_;
  size_t size_;
  std::unique_ptr<float[], AlignedFree> data_;
};

// C[M,N] = epilogue(op(A) * B): bias[N] per row, then a residual, then an activation.
// C is write-only (never read, except as the residual when e.residual aliases it).
void sgemm_packed(bool trans_a, int64_t M, const float* A, int64_t lda, const PackedB& B, const Epilogue& e,
                  float* C, int64_t ldc, ThreadPool* pool, int max_threads = 0);

// Rows of A made on demand (implicit im2col): the GEMM asks for small blocks that stay in
// cache instead of reading a materialized [M, K] matrix.
class RowSource {
 public:
  virtual ~RowSource() = default;
  // Writes A[m0 : m0 + rows, k0 : k0 + kc] row-major, rows ld >= kc floats apart, to dst.
  virtual void rows(int64_t m0, int64_t rows, int64_t k0, int64_t kc, float* dst, int64_t ld) const = 0;
};

void sgemm_packed(int64_t M, const RowSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads = 0);

// Rows of A found where they already lie (indirect GEMM): row m of A is segments() runs of
// K / segments() floats, each starting wherever the source says. A convolution reads its
// input this way, one run per kernel tap (a pixel's channels), padding pointing at zeros,
// with nothing copied.
class RunSource {
 public:
  virtual ~RunSource() = default;
  // The most runs a row is cut into.
  virtual int segments() const = 0;
  // Rows m0 .. m0 + rows - 1 as n runs each (n divides segments(); fewer, longer runs where
  // the rows allow): ptrs[s * ld + r] is the start of run s of row m0 + r. Returns n.
  virtual int runs(int64_t m0, int rows, const float** ptrs, int64_t ld) const = 0;
};

// C[M,N] = epilogue(A * B) for A given as runs; B.K() must be a multiple of A.segments() and
// B in panels (not row_layout()).
void sgemm_packed(int64_t M, const RunSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads = 0);

// Rows of A that are evenly spaced reads of one pattern (a convolution on channel-planar
// input, a model's NCHW image): element (r, k) of rows m .. m + n - 1 read in place is
// base[offsets()[k] + r * step()], so a tile needs one base and no copy.
class GridSource {
 public:
  virtual ~GridSource() = default;
  // Where column k of a row lies, in floats from the row's base; K entries.
  virtual const int64_t* offsets() const = 0;
  // Floats between the bases of neighbouring rows read in place (1 .. kMaxGridStep).
  virtual int step() const = 0;
  // Rows m .. m + rows - 1 that are alike. base set: they are read in place, and their
  // columns outside [k0, k1) are zero (a window over the top or bottom padding skips those
  // kernel rows). base null: they are packed.
  struct Span {
    int64_t rows;
    const float* base;
    int64_t k0, k1;
  };
  // The span starting at row m, at most `limit` rows long (limit >= 1).
  virtual Span span(int64_t m, int64_t limit) const = 0;
  // Rows m .. m + n - 1 of one span written as a packed panel: dst[k * ld + r], all K columns.
  virtual void pack(int64_t m, int64_t n, float* dst, int64_t ld) const = 0;
};

// Row steps the micro-kernels read in place; a GridSource with a larger step packs every row.
constexpr int kMaxGridStep = 2;

// C[M,N] = epilogue(A * B) for A given as a grid; B in panels (not row_layout()).
void sgemm_packed(int64_t M, const GridSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads = 0);

// dst[c * ldd + r] = src[r * ld + c] for r < rows, c < cols: a 2-D transpose through the
// selected ISA's in-register 16 x 16 blocks (layout changes such as NHWC -> NCHW).
void transpose_f32(int64_t rows, int64_t cols, const float* src, int64_t ld, float* dst, int64_t ldd);

// Which instruction set the GEMM dispatcher picked: "avx512", "avx2" or "scalar".
const char* gemm_isa();

// ---------------------------------------------------------------------------
// Internal contract between gemm.cpp (drivers, packing, dispatch) and the
// ISA-specific translation units. Not for use outside native/kernels/gemm*.cpp.
namespace gemm_detail {

// How a micro-tile is merged into C once its dot products are done, in this order:
// x = acc (+ beta * C when load_c) (+ bias) (+ residual), then clamped to [lo, hi].
struct TileFlags {
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
  // runs of kc floats, run s starting at a_ptrs[s * a_ptr_stride + r]; the a argument is
  // unused, B runs on across the runs (segments * kc rows of it), and panels is 1.
  const float* const* a_ptrs = nullptr;
  int segments = 1;
  int64_t a_ptr_stride = 0;
  // Grid A (see GridSource): element (r, k) of the tile is a[a_offsets[k] + r * a_step], the
  // a argument being the tile's base; kc covers all of K, and panels is 1.
  const int64_t* a_offsets = nullptr;
  int a_step = 1;
};

// C[rows, cols] (+)= A * Bpanel over kc steps, then merged as TileFlags says.
// a: the A block, alpha applied. a_rowmajor: rows a_stride floats apart, each kc contiguous
// values (A as it lies, or rows made on demand); otherwise a packed panel: kc groups of
// rows values, a_stride floats apart. b: kc rows of the tile width, b_stride floats apart.
// b_direct: B is the unpacked matrix itself, so only `cols` values of each row exist and
// may be read (never together with a_rowmajor). rows <= mr, cols <= nr of the kernel set;
// rows <= mr_narrow when a_rowmajor and cols <= nr / 2.
using TileFn = void (*)(int rows, int cols, int64_t kc, const float* a, int64_t a_stride, bool a_rowmajor,
                        const float* b, int64_t b_stride, bool b_direct, float* c, int64_t ldc,
                        const float* bias, const TileFlags& flags);

// out(r, j) = dot(x[r, 0:k], y[j, 0:k]) (+ beta * out(r, j) when beta != 0), for
// r < rows (<= 4) and j < cols; out(r, j) lives at c[r * c_rs + j * c_cs].
using DotFn = void (*)(int rows, int64_t cols, int64_t k, const float* x, int64_t ldx,
                       const float* y, int64_t ldy, float* c, int64_t c_rs, int64_t c_cs,
                       float beta);

// c[r, 0:n] = sum_k a[r * lda + k] * b[k * ldb + 0:n] (+ beta * c when beta != 0), r < rows (<= 4), k >= 1,
// for a few rows against unpacked row-major B: B rows are streamed front to back
// (prefetch-friendly) while a short C segment stays in L1.
using StreamFn = void (*)(int rows, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                          int64_t ldb, float* c, int64_t ldc, float beta);

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
};

// Null when the translation unit was built without the ISA (non-x86 builds).
const KernelSet* avx512_kernels();
const KernelSet* avx2_kernels();

}  // namespace gemm_detail
}  // namespace aiov
