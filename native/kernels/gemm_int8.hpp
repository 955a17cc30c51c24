// Integer GEMM for quantized models: u8 activations times s8 weights accumulated in s32
// (AMX TDPBUSD tiles, AVX512-VNNI VPDPBUSD, or portable loops, chosen by CPUID once), with
// the zero points taken out exactly and the result written as s32 or dequantized to f32.
// Signed activations and unsigned weights are shifted by 128 into those ranges (the zero
// points with them), so every ONNX integer-matmul type combination of 8-bit operands runs here.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace aiov {

class ThreadPool;
class ByteWriter;
class ByteReader;

// B [K, N] (or [N, K] with trans_b) of 8-bit integers, packed once as the kernels read it.
class PackedInt8B {
 public:
  // b_unsigned: B holds u8 (stored as b - 128; callers shift its zero point the same way).
  PackedInt8B(const void* B, bool b_unsigned, bool trans_b, int64_t K, int64_t N, int64_t ldb);
  PackedInt8B(const PackedInt8B&) = delete;  // (a copy's panels could start elsewhere in its vector)
  PackedInt8B& operator=(const PackedInt8B&) = delete;
  int64_t K() const { return K_; }
  int64_t N() const { return N_; }
  // K padded to what the kernels chosen at packing read per step: whole 64-byte groups for
  // AMX (one tile's depth), whole 4-byte quads for VNNI and the portable loops.
  int64_t kp() const { return kp_; }
  bool b_unsigned() const { return unsigned_; }
  // From panels_'s first 64-byte boundary (a vector's data is only 16-byte aligned), so each
  // 64-byte row of a B tile lies in one cache line.
  const int8_t* panels() const;
  // Per column n: the sum over k of the stored (s8) values, for the activation zero point.
  const int32_t* column_sums() const { return sums_.data(); }
  // A description of the packing for the shared-weights cache (same bytes, same layout).
  static std::string layout(bool b_unsigned, bool trans_b, int64_t K, int64_t N, int64_t ldb);

  // The packing as bytes (a compiled-model blob keeps it: plan/packed_weights.hpp), and back;
  // load takes the dimensions and values from the stream and checks that they agree
  // (InputError otherwise); panels padded for other kernels are re-padded for this CPU's.
  void save(ByteWriter& w) const;
  static std::unique_ptr<PackedInt8B> load(ByteReader& r);
  bool fits(int64_t K, int64_t N, bool b_unsigned) const { return K_ == K && N_ == N && unsigned_ == b_unsigned; }

 private:
  PackedInt8B() = default;
  int64_t K_, N_, kp_;
  bool unsigned_;
  std::vector<int8_t> panels_;  // 63 bytes more than the panels, to start them on a cache line
  std::vector<int32_t> sums_;
};

// What becomes of each s32 result v[m, n] = sum_k (A[m, k] - a_zero) * (B[k, n] - b_zero[n]).
struct Int8Output {
  int32_t* c_i32 = nullptr;  // v as it is, or
  float* c_f32 = nullptr;    // float(v) * scale[n] (+ bias[n]) (then max(0, .) with relu), or
  uint8_t* c_u8 = nullptr;   // that f32 requantized: saturate(round_half_even(y / out_scale) + out_zero)
  int64_t ldc = 0;
  const float* scale = nullptr;  // N values (f32 and u8 output)
  const float* bias = nullptr;   // N values or null
  bool relu = false;
  float out_scale = 1.0f;  // u8 output only, as aiov.Quantize takes them (one value each)
  int32_t out_zero = 0;
  // u8 output only, when set: those bytes c summed with a residual u8 tensor (a QDQ model's
  // residual connection) as aiov.QuantizedAdd sums them, c_u8 then holding
  // quantize((c - out_zero) * out_scale + (residual - residual_zero) * residual_scale) by
  // sum_scale and sum_zero. residual's rows lie ld_residual apart, row m beside C's row m.
  const uint8_t* residual = nullptr;
  int64_t ld_residual = 0;
  float residual_scale = 1.0f, sum_scale = 1.0f;
  int32_t residual_zero = 0, sum_zero = 0;
};

// The residual sum of `out` over rows x cols of bytes already requantized at c (ldc apart),
// the residual's rows from `residual` (out.ld_residual apart), in place: the merges with no
// sum of their own run it on each tile they wrote, while it is in cache.
void add_residual_u8(const Int8Output& out, uint8_t* c, int64_t ldc, const uint8_t* residual, int64_t rows,
                     int64_t cols);

// A [M, K] row-major (lda elements apart) of u8, or s8 with a_signed; a_zero in A's own type;
// b_zero: 1 value (per tensor) or N (per column), in B's own type.
void gemm_u8s8(int64_t M, const void* A, bool a_signed, int64_t lda, int32_t a_zero, const PackedInt8B& B,
               const int32_t* b_zero, int64_t b_zero_count, const Int8Output& out, ThreadPool* pool, int max_threads);

// The same product with A already in the kernels' row form, so a convolution writes its
// patches (or hands over its NHWC data) once: M rows of u8, ld bytes apart, each holding K
// values then zeros up to B.kp() (ld >= B.kp()); a_zero is A's zero point as u8. Only rows
// [0, M) are read: the last tile's rows are copied when the kernel would read past them.
void gemm_u8_rows(int64_t M, const uint8_t* rows, int64_t ld, int32_t a_zero, const PackedInt8B& B,
                  const int32_t* b_zero, int64_t b_zero_count, const Int8Output& out, ThreadPool* pool,
                  int max_threads);

// The same product with A made a block of rows at a time, just before the kernels read it
// (a convolution's patches never leave the cache): fill(m0, m1, rows, ld) writes rows
// [m0, m1) of A, row m at rows + (m - m0) * ld, each K u8 values then zeros up to B.kp(). It
// runs on the pool's threads, several blocks at once.
using Int8RowFill = std::function<void(int64_t m0, int64_t m1, uint8_t* rows, int64_t ld)>;
void gemm_u8_filled(int64_t M, const Int8RowFill& fill, int32_t a_zero, const PackedInt8B& B, const int32_t* b_zero,
                    int64_t b_zero_count, const Int8Output& out, ThreadPool* pool, int max_threads);

// The row stride gemm_u8_rows reads best for a K: at least K padded as PackedInt8B pads it,
// and off multiples of 256 bytes so a tile's rows spread over the cache sets.
int64_t int8_row_stride(int64_t K);

// The kernels integer products run on: "amx", "avx512_vnni" or "scalar".
const char* gemm_int8_isa();

// Dynamic quantization of activations to u8 (ONNX DynamicQuantizeLinear): the range of x [n]
// widened to include 0 (NaNs ignored), and y = saturate(round_half_even(x / scale) + zero)
// (NaN: 0), vectorized where the integer kernels are.
void range_with_zero(const float* x, int64_t n, float& min, float& max);
void quantize_u8(const float* x, int64_t n, float scale, int32_t zero, uint8_t* y);

namespace gemm_detail {

// B panels: 16 columns (one zmm of s32, one AMX tile row), K in groups of 4 bytes as
// VPDPBUSD and TDPBUSD read them: element (k, j) at panel[(k / 4) * 64 + j * 4 + k % 4].
constexpr int kInt8PanelCols = 16;
constexpr int kInt8Quad = 4;
constexpr int kInt8AmxKStep = 64;  // one A tile row, one B tile's 16 quads
constexpr int kInt8TileCols = 2 * kInt8PanelCols;

// One kernel call: rows x cols (<= 32) of results over the whole padded K, merged into C.
struct Int8Tile {
  int64_t kp = 0;
  // Rows of A in u8, lda bytes apart; the AMX kernel reads whole 16-row tiles.
  const uint8_t* a = nullptr;
  int64_t lda = 0;
  const int8_t* b = nullptr;  // first panel; the second b_panel_stride bytes further
  int64_t b_panel_stride = 0;
  int rows = 0, cols = 0;
  // v = acc + col_add[j] (+ row_sum[r] * col_mul[j] when row_sum is set), in s32 (wrapping).
  const int32_t* col_add = nullptr;
  const int32_t* col_mul = nullptr;
  const int32_t* row_sum = nullptr;
  // Where v goes: c_i32, or c_f32 as float(v) * scale[j] (+ bias[j]) (relu), or c_u8 as
  // that value requantized by out_scale and out_zero (Int8Output's meanings).
  int32_t* c_i32 = nullptr;
  float* c_f32 = nullptr;
  uint8_t* c_u8 = nullptr;
  int64_t ldc = 0;
  const float* scale = nullptr;
  const float* bias = nullptr;
  bool relu = false;
  float out_scale = 1.0f;
  int32_t out_zero = 0;
};

using Int8TileFn = void (*)(const Int8Tile& tile);

// One column block (up to u8_strip_panels panels) of u8 results over many rows: the unit of
// products that requantize to u8 with B free of zero points (QDQ convolutions), run rows-first
// so the per-column constants are made once per strip, and merged from the accumulators in
// the folded form (v * scale / out_scale + bias / out_scale + out_zero, one multiply-add per
// 16 outputs) where it gives aiov.Quantize's bytes, else by the exact steps.
struct Int8U8Strip {
  int64_t kp = 0;
  const uint8_t* a = nullptr;  // rows u8, lda bytes apart; exactly `rows` of them are read
  int64_t lda = 0;
  int64_t rows = 0;
  const int8_t* b = nullptr;  // first panel of the block
  int64_t b_panel_stride = 0;
  int cols = 0;                      // <= 16 * u8_strip_panels
  const int32_t* col_add = nullptr;  // the zero point's term, per column
  const float* scale = nullptr;
  const float* bias = nullptr;  // or null
  bool relu = false;
  float out_scale = 1.0f;
  int32_t out_zero = 0;
  uint8_t* c_u8 = nullptr;
  int64_t ldc = 0;
  // Int8Output's residual sum (from the strip's first row and column), or null.
  const uint8_t* residual = nullptr;
  int64_t ld_residual = 0;
  float residual_scale = 1.0f, sum_scale = 1.0f;
  int32_t residual_zero = 0, sum_zero = 0;
};

struct Int8KernelSet {
  const char* name;  // int8_isa_name of its ISA
  int mr;            // rows per tile call
  int k_step;        // K is padded to a multiple of this for them (bytes of K per step)
  Int8TileFn tile;
  void (*range)(const float* x, int64_t n, float& min, float& max);
  void (*quantize)(const float* x, int64_t n, float scale, int32_t zero, uint8_t* y);
  void (*begin)();  // around every run of tile calls on a thread (AMX: the tile config)
  void (*end)();
  void (*u8_strip)(const Int8U8Strip& strip);  // null where the kernels have none
  int u8_strip_panels;
};

// Null when the file was built without the instructions.
const Int8KernelSet* amx_int8_kernels();
const Int8KernelSet* vnni_int8_kernels();

}  // namespace gemm_detail
}  // namespace aiov
