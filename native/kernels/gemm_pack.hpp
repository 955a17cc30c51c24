// GEMM packing: the layouts the micro-kernels stream (BLIS-style), the routines that copy
// A and B into them, and the per-thread scratch memory they are packed into.
//   A panel: mr rows of op(A), stored k-major: panel[k * mr + r] (alpha folded in).
//   B panel: nr columns of op(B), stored k-major: panel[k * nr + j], zero-padded.
// PackedB (gemm.hpp) keeps B packed this way once for every product with the same weights.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/gemm_kernels.hpp"

namespace aiov {
namespace gemm_detail {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Up to this many output columns, dot products along K (a pass over A per 4 columns, no
// packing of A) beat B panels that would be largely zero padding and an A packing cost not
// amortised over many columns (measured ~90 vs 40-75 GFLOP/s for N = 8..24). PackedB keeps
// such weights as rows.
constexpr int64_t kDotMaxN = 24;
// Up to this many rows of op(A) against a transposed B, dot products beat packing B.
constexpr int64_t kDotMaxM = 4;
// With KernelSet::long_k_dots, few columns (N <= kDotMaxN) against a K of at least
// kDotMinLongK stay dot-product rows for up to kDotMaxLongKRows rows of A.
constexpr int64_t kDotMinLongK = 512;
constexpr int64_t kDotMaxLongKRows = 1024;

// Scratch memory: grow-only, 64-byte aligned, one buffer per slot and thread, so the hot
// path does not allocate once shapes have been seen. Separate slots so a caller's shared
// buffer (whole packed A, gathered rows) is never reused by a task that runs on the same
// thread (block-sized A/B packs).
enum ScratchSlot { kSharedA, kSharedRows, kReduce, kBlockA, kBlockB, kSourceRows, kBf16Staging, kSlotCount };
float* scratch(ScratchSlot slot, size_t n);

// dst[k * ds + r] = alpha * src[r * ld + k] for r < rows, k < kc.
void transpose_pack(const KernelSet& ks, int rows, int64_t kc, const float* src, int64_t ld, float alpha, float* dst,
                    int64_t ds);

// Rows [m0, m0 + rows) x k [k0, k0 + kc) of op(A) -> panels of `rs` rows (rs <= mr),
// panel p at dst + p * panel_stride, element (k, r) at [k * mr + r].
void pack_a(const KernelSet& ks, bool ta, const float* A, int64_t lda, int64_t m0, int64_t rows, int64_t k0, int64_t kc,
            float alpha, float* dst, int64_t panel_stride, int rs, int mr);

// k [k0, k0 + kc) x columns [n0, n0 + nc) of op(B) -> panels of nr columns,
// panel p at dst + p * panel_stride, element (k, j) at [k * nr + j], zero-padded.
void pack_b(const KernelSet& ks, bool tb, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
            int nr, float* dst, int64_t panel_stride);

// op(X) rows [r0, r0 + rows) -> dense rows x k (alpha folded in), for the dot-product paths.
void gather_rows(bool trans, const float* X, int64_t ldx, int64_t r0, int64_t rows, int64_t k, float alpha, float* dst);

}  // namespace gemm_detail
}  // namespace aiov
