// f32 GEMM: packed, register-blocked kernels (AVX-512 / AVX2+FMA / portable), chosen once
// at run time (kernels/isa.hpp); and bf16 products (AMX / AVX512_BF16 / portable) for
// weights packed in bf16. The interface the ops use; docs/kernels.md maps the files
// behind it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/types.hpp"
#include "kernels/epilogue.hpp"

namespace aiov {

class ThreadPool;
class ByteWriter;
class ByteReader;

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// (beta == 0: C is not read and may hold garbage/NaN; alpha == 0: A and B are not read).
// op(X) = X or X^T per flag; lda/ldb/ldc are row strides, in elements, of the stored matrices.
// pool == nullptr runs on the calling thread; max_threads caps the threads used (0 = all).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads = 0);

// What a product's operands are multiplied in. bf16: operands rounded to bf16 (weights once
// when packed, A as the GEMM reads it), products accumulated and the epilogue applied in f32,
// outputs f32 (INFERENCE_PRECISION_HINT bf16; docs/kernels.md). f16: the same with operands
// rounded to f16 (INFERENCE_PRECISION_HINT f16), accumulated in f32 as oneDNN does on
// AVX512-FP16 (gemm_f16.hpp).
enum class GemmPrecision { f32, bf16, f16 };

// The precision of a plan's products (PrepareContext::inference_precision): bf16 for bf16,
// f16 for f16, f32 for anything else.
GemmPrecision gemm_precision(ElementType inference_precision);

// B packed once (weights known at compile time) in the layout the selected
// micro-kernel streams, then reused by every sgemm_packed call.
class PackedB {
 public:
  // rows_hint: the M the weights will be multiplied with, when known (-1: unknown). Few
  // columns are kept as dot-product rows only for few rows of A; tall A wants panels.
  // bf16 weights are always bf16 panels (gemm_bf16.hpp), for every sgemm_packed source.
  PackedB(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb, int64_t rows_hint = -1,
          GemmPrecision precision = GemmPrecision::f32);
  // A rows_hint for weights whose product needs panels however few rows A has (grids).
  static constexpr int64_t kTallA = int64_t{1} << 40;
  // The rows_hint for `rows` rows of A that the product may read where they lie (a
  // convolution's runs): few columns then stay in panels however long K is, where dot-product
  // rows would have all of A gathered first. Equal to `rows` when that changes nothing.
  static int64_t rows_read_in_place(int64_t rows, int64_t N);
  // Everything besides B's values that decides what the constructor makes from the same
  // arguments: two calls with equal text and equal B bytes pack identical data.
  static std::string layout(bool trans_b, int64_t K, int64_t N, int64_t ldb, int64_t rows_hint = -1,
                            GemmPrecision precision = GemmPrecision::f32);
  // Packed in bf16: sgemm_packed then runs the bf16 kernels (data() is then not f32).
  bool bf16() const { return precision_ == GemmPrecision::bf16; }
  // Packed in a 16-bit float (bf16 or f16): sgemm_packed runs the kernels of that precision.
  bool half() const { return precision_ == GemmPrecision::bf16 || precision_ == GemmPrecision::f16; }
  GemmPrecision precision() const { return precision_; }
  const uint16_t* half_data() const { return reinterpret_cast<const uint16_t*>(data_.get()); }
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

  // The packing as bytes (a compiled-model blob keeps it: plan/packed_weights.hpp), and back.
  // load derives the layout from the dimensions as the constructor does, on this machine's
  // kernels, and takes only the values from the stream (InputError for anything else).
  void save(ByteWriter& w) const;
  static std::unique_ptr<PackedB> load(ByteReader& r);
  // Whether this is what the constructor makes of K x N weights for rows_hint rows at this
  // precision (what a user of weights read from a blob checks before trusting them).
  bool fits(int64_t K, int64_t N, int64_t rows_hint, GemmPrecision precision) const {
    return K_ == (K < 0 ? 0 : K) && N_ == (N < 0 ? 0 : N) && rows_hint_ == rows_hint && precision_ == precision;
  }

 private:
  // The layout for these dimensions, without memory yet (allocate()).
  PackedB(int64_t K, int64_t N, int64_t rows_hint, GemmPrecision precision);
  void allocate();
  struct AlignedFree {
    size_t count;  // floats allocated
    void operator()(float* p) const;
  };
  int64_t K_, N_, rows_hint_;
  int panel_width_;
  bool row_layout_;
  GemmPrecision precision_;
  size_t size_;
  std::unique_ptr<float[], AlignedFree> data_;
};

// C[M,N] = epilogue(op(A) * B): bias[N] per row, then a residual, then an activation.
// C is write-only (never read, except as the residual when e.residual aliases it).
void sgemm_packed(bool trans_a, int64_t M, const float* A, int64_t lda, const PackedB& B, const Epilogue& e, float* C,
                  int64_t ldc, ThreadPool* pool, int max_threads = 0);

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
  // The floats every run lies in, [base, base + count), runs outside it reading zeros; count
  // 0 (the default): not known. A bf16 product then rounds this memory once rather than
  // every run of it (each input pixel is a run of several taps).
  struct Extent {
    const float* base = nullptr;
    int64_t count = 0;
  };
  virtual Extent extent() const { return {}; }
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

// ---- bf16 activations: products on B packed in bf16 whose A is bf16 as it lies or whose C
// is written in bf16 (a convolution region carrying bf16 tensors between its convolutions
// under INFERENCE_PRECISION_HINT bf16). The merge (bias, residual, activation) stays in f32;
// a bf16 C is rounded once per tile, while it is in L1.

// A RunSource over bf16 data: the same runs, as pointers to bf16 values.
class Bf16RunSource {
 public:
  virtual ~Bf16RunSource() = default;
  virtual int segments() const = 0;
  virtual int runs(int64_t m0, int rows, const uint16_t** ptrs, int64_t ld) const = 0;
};

// f32 A (a matrix, rows made on demand, runs), C written in bf16, ldc values apart.
void gemm_packed_bf16(int64_t M, const float* A, int64_t lda, const PackedB& B, const Epilogue& e, uint16_t* C,
                      int64_t ldc, ThreadPool* pool, int max_threads = 0);
void gemm_packed_bf16(int64_t M, const RowSource& A, const PackedB& B, const Epilogue& e, uint16_t* C, int64_t ldc,
                      ThreadPool* pool, int max_threads = 0);
void gemm_packed_bf16(int64_t M, const RunSource& A, const PackedB& B, const Epilogue& e, uint16_t* C, int64_t ldc,
                      ThreadPool* pool, int max_threads = 0);
// bf16 A (a matrix, rows lda apart; runs); C written in f32 to C or, when C16 is set, in
// bf16 to C16 (C then unused), ldc apart.
void gemm_packed_bf16(int64_t M, const uint16_t* A, int64_t lda, const PackedB& B, const Epilogue& e, float* C,
                      uint16_t* C16, int64_t ldc, ThreadPool* pool, int max_threads = 0);
void gemm_packed_bf16(int64_t M, const Bf16RunSource& A, const PackedB& B, const Epilogue& e, float* C, uint16_t* C16,
                      int64_t ldc, ThreadPool* pool, int max_threads = 0);

// dst[c * ldd + r] = src[r * ld + c] for r < rows, c < cols: a 2-D transpose through the
// selected ISA's in-register 16 x 16 blocks (layout changes such as NHWC -> NCHW).
void transpose_f32(int64_t rows, int64_t cols, const float* src, int64_t ld, float* dst, int64_t ldd);

// Which instruction set the GEMM dispatcher picked: "avx512", "avx2" or "scalar".
const char* gemm_isa();

// sgemm in bf16 (see GemmPrecision): B converted and packed on each call, for products
// whose operands are both computed (attention, MatMul of two activations).
void sgemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads = 0);

// sgemm in f16 (see GemmPrecision), as sgemm_bf16 is in bf16.
void sgemm_f16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads = 0);

// sgemm, sgemm_bf16 or sgemm_f16 by precision.
void gemm(GemmPrecision precision, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool,
          int max_threads = 0);

// Which kernels bf16 products run on: "amx", "avx512_bf16" or "scalar" (kernels/isa.hpp).
const char* gemm_bf16_isa();

// Which kernels f16 products run on: "avx512_fp16" or "scalar" (kernels/isa.hpp).
const char* gemm_f16_isa();

// "f32 avx512", "bf16 amx": the precision of a product and the kernels it runs on (for logs).
inline std::string gemm_kernels(GemmPrecision precision) {
  if (precision == GemmPrecision::bf16) return std::string("bf16 ") + gemm_bf16_isa();
  if (precision == GemmPrecision::f16) return std::string("f16 ") + gemm_f16_isa();
  return std::string("f32 ") + gemm_isa();
}

}  // namespace aiov
