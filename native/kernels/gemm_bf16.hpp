// The contract between the bf16 GEMM driver (gemm_bf16.cpp) and its kernels (AMX and
// AVX512_BF16 in gemm_bf16_x86.cpp, portable loops in gemm_bf16.cpp): bf16 operands, f32
// accumulation, the merge into C (bias, residual, clamp) in f32.
// Not for use outside native/kernels/gemm*. Like gemm_kernels.hpp, it defines no inline
// function the ISA file could call.
#pragma once
#include <cstdint>

#include "kernels/gemm.hpp"
#include "kernels/gemm_kernels.hpp"

namespace aiov {
namespace gemm_detail {

// bf16 B panels: 16 columns (one AMX tile row of pairs, one zmm), K padded with zeros to a
// multiple of 32 (one AMX tile's depth), pairs of K interleaved as TDPBF16PS and VDPBF16PS
// read them: element (k, j) at panel[(k / 2) * 32 + j * 2 + k % 2].
constexpr int kBf16PanelCols = 16;
constexpr int kBf16KStep = 32;
// Columns of C per kernel call: two panels.
constexpr int kBf16TileCols = 2 * kBf16PanelCols;

// One kernel call: C[rows, cols] = merge(A * B) over the whole padded K.
struct Bf16Tile {
  int64_t kp = 0;  // K padded to kBf16KStep; A and B hold zeros past K
  // Rows of A in bf16, lda elements apart. The AMX kernel reads 16-row tiles: rows up to the
  // next multiple of 16 must be readable (their results are dropped).
  const uint16_t* a = nullptr;
  int64_t lda = 0;
  // The first panel; the second, read when cols > 16, b_panel_stride elements further.
  const uint16_t* b = nullptr;
  int64_t b_panel_stride = 0;
  // Where and how the result is merged: rows (<= the set's mr) and cols (<= 32), c and ldc,
  // beta/load_c, bias, residual and clamp as for the f32 tiles (the A/B fields are unused).
  Tile out;
  // Gelu (erf form) applied in the merge after the bias and residual; set only for kernel sets
  // that merge_gelu_erf, instead of a pass over each finished block.
  bool gelu_erf = false;
};

using Bf16TileFn = void (*)(const Bf16Tile& tile);
// dst[i] = bf16(scale * src[i]), rounded to nearest even (NaN stays NaN), i < n.
using Bf16ConvertFn = void (*)(const float* src, int64_t n, float scale, uint16_t* dst);

struct Bf16KernelSet {
  const char* name;  // bf16_isa_name of its ISA
  int mr;            // rows per tile call
  Bf16TileFn tile;
  Bf16ConvertFn convert;
  // Around every run of tile calls on a thread (AMX: load and release the tile
  // configuration); null: nothing to do.
  void (*begin)();
  void (*end)();
  // The tiles apply Bf16Tile::gelu_erf.
  bool merges_gelu_erf = false;
};

// Null when the CPU file was built without the instructions (non-x86 builds, compilers
// without -mamx-tile / -mavx512bf16).
const Bf16KernelSet* amx_bf16_kernels();
const Bf16KernelSet* avx512_bf16_kernels();
const Bf16KernelSet& portable_bf16_kernels();

// The bf16 attention's per-head steps (attention_bf16.cpp) in AVX-512: its portable code
// does each with scalar loops, the softmax row by row and the rounding as a pass of its own.
struct Bf16AttentionKernels {
  // K^T as B panels (the layout above, kp deep): column n is row n of K [sk, d] (rows ldk
  // floats apart), its pairs of d kept together. Writes every panel value, padding as zeros;
  // `scratch` holds 16 * kp values.
  void (*pack_keys)(const float* k, int64_t ldk, int64_t sk, int64_t d, int64_t kp, uint16_t* panels,
                    uint16_t* scratch);
  // V [sk, dv] (rows ldv apart) as B panels (kp deep): rows 2i and 2i + 1 interleaved.
  // Writes pairs below ceil(sk / 2) (zeros past sk and dv); the pairs after stay as they were.
  void (*pack_values)(const float* v, int64_t ldv, int64_t sk, int64_t dv, int64_t kp, uint16_t* panels);
  // For each of `rows` rows of n scores (ld apart, used as scratch): plus the bias (row r's
  // at bias + r * bias_step, one value per score, or one for the whole row when !per_score;
  // none when null), then exp(score - the row's max) (0 below `low`, softmax_row.hpp)
  // rounded to bf16 into dst rows ldd apart, and 1 / the sum of those exponentials into
  // inverse_sums[r]: the softmax is what they give times that.
  void (*probabilities)(float* scores, int64_t ld, int64_t rows, int64_t n, const float* bias, int64_t bias_step,
                        bool per_score, float low, uint16_t* dst, int64_t ldd, float* inverse_sums);
};
// Null when gemm_bf16_x86.cpp was built without AVX512_BF16.
const Bf16AttentionKernels* avx512_bf16_attention_kernels();

// The set for selected_bf16_isa() (the best one built when its file lacks it); chosen once.
const Bf16KernelSet& bf16_kernels();

// K rounded up to kBf16KStep.
int64_t bf16_padded_k(int64_t K);

// op(B) [K, N] as bf16 panels (layout above) at dst: ceil(N / 16) panels of kp * 16 values.
void pack_b_bf16(bool trans_b, const float* B, int64_t ldb, int64_t K, int64_t N, int64_t kp, uint16_t* dst);

// The 16-bit products behind sgemm_packed when B.half(): C = epilogue(alpha * op(A) * B + beta * C),
// on the bf16 kernels or, for B packed in f16, the f16 ones (gemm_f16.hpp).
void gemm_bf16(bool trans_a, int64_t M, const float* A, int64_t lda, float alpha, const PackedB& B, const Epilogue& e,
               float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads);
void gemm_bf16(int64_t M, const RowSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
               ThreadPool* pool, int max_threads);
void gemm_bf16(int64_t M, const RunSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
               ThreadPool* pool, int max_threads);
void gemm_bf16(int64_t M, const GridSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
               ThreadPool* pool, int max_threads);

}  // namespace gemm_detail
}  // namespace aiov
