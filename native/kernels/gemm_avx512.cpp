// AVX-512 f32 GEMM micro-kernels: the vector traits and tile shapes for
// gemm_microkernels.inc, and the 16 x 16 transpose for packing. This file is compiled with
// AVX-512 flags and only reached after the dispatcher saw AVX-512 in CPUID/XCR0. Everything
// here stays in an anonymous namespace and uses no inline library templates, so the linker
// can never hand an AVX-512 copy of a shared inline function to portable code.
#include "kernels/gemm_kernels.hpp"

#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace gemm_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__FMA__)
namespace {

// Fully unrolled up to the 28 rows of the narrow tiles: a partly unrolled row loop leaves
// the accumulators on the stack (a load and a store around every FMA).
#define AIOV_UNROLL _Pragma("GCC unroll 32")
constexpr int kUnrolledRows = 32;

#define AIOV_VEC_OP [[gnu::always_inline]] static

// Vector traits for gemm_microkernels.inc. Masked moves cost the same as plain ones here,
// so the edge moves are always masked.
struct Avx512 {
  using Vec = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;
  static constexpr int kRegisters = 32;
  static constexpr bool kPrefetchWholeTile = true;
  static constexpr bool kPrefetchNextRuns = true;

  AIOV_VEC_OP Mask head_mask(int n) { return n >= 16 ? (Mask)0xFFFF : (Mask)((1u << (n < 0 ? 0 : n)) - 1u); }
  AIOV_VEC_OP Vec zero() { return _mm512_setzero_ps(); }
  AIOV_VEC_OP Vec set1(float x) { return _mm512_set1_ps(x); }
  AIOV_VEC_OP Vec broadcast(const float* p) { return _mm512_set1_ps(*p); }
  AIOV_VEC_OP Vec load(const float* p) { return _mm512_loadu_ps(p); }
  AIOV_VEC_OP Vec load_masked(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  AIOV_VEC_OP Vec load_edge(const float* p, Mask m, bool) { return _mm512_maskz_loadu_ps(m, p); }
  AIOV_VEC_OP void store_edge(float* p, Mask m, bool, Vec v) { _mm512_mask_storeu_ps(p, m, v); }
  AIOV_VEC_OP Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  AIOV_VEC_OP Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  AIOV_VEC_OP Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  AIOV_VEC_OP Vec min(Vec a, Vec b) { return _mm512_min_ps(a, b); }
  AIOV_VEC_OP Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
  AIOV_VEC_OP float hsum(Vec v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

#include "kernels/gemm_microkernels.inc"

// In-register 16x16 transpose: r[i][k] -> r[k][i].
inline void transpose16x16(__m512 (&r)[16]) {
  __m512 t[16];
  AIOV_UNROLL for (int i = 0; i < 8; ++i) {  // interleave row pairs: (a0 b0 a1 b1) per 128-bit lane
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  AIOV_UNROLL for (int g = 0; g < 4; ++g) {  // 64-bit interleave: lane L of u[4g+c] = rows 4g..4g+3 of k = 4L+c
    const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    r[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  AIOV_UNROLL for (int c = 0; c < 4; ++c) {  // 4x4 transpose of 128-bit lanes across the row groups
    const __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
    const __m512 v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
    t[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    t[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    t[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
  AIOV_UNROLL for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// dst[k * ds + r] = alpha * src[r * ld + k], r < rows <= 16: 16 k at a time through registers.
void transpose(int rows, int64_t kc, const float* src, int64_t ld, float alpha, float* dst, int64_t ds) {
  const __mmask16 row_mask = Avx512::head_mask(rows);
  const __m512 alpha_v = _mm512_set1_ps(alpha);
  for (int64_t k0 = 0; k0 < kc; k0 += 16) {
    const int kn = kc - k0 < 16 ? (int)(kc - k0) : 16;
    const __mmask16 k_mask = Avx512::head_mask(kn);
    __m512 r[16];
    AIOV_UNROLL for (int i = 0; i < 16; ++i) {
      r[i] = i < rows ? _mm512_maskz_loadu_ps(k_mask, src + i * ld + k0) : _mm512_setzero_ps();
      if (alpha != 1.0f) r[i] = _mm512_mul_ps(r[i], alpha_v);
    }
    transpose16x16(r);
    AIOV_UNROLL for (int k = 0; k < 16; ++k) if (k < kn) _mm512_mask_storeu_ps(dst + (k0 + k) * ds, row_mask, r[k]);
  }
}

// Wide tiles, 6 rows x 4 zmm (64 columns): 24 accumulators fed by 4 B loads and 6 broadcasts
// per k step, where 14 x 32 needs 16 loads for 28 FMAs. Measured 6-10% faster for a tall A
// against 64-128 columns (convolutions: 3136 x 288 x 64), slower for a short A against
// many columns, whose B panels it reads from L2 twice as often per FLOP.
// K slices of 512 amortise the C-tile merge; mc rows of A (168 x 512 x 4 B = 336 KiB)
// stay in the 1 MiB L2 while B panels stream past them. No narrow tiles in the wide set.
constexpr KernelSet kAvx512Wide = kernel_set<Avx512, 6, 4, 0>("avx512", 512, 168, 4096, &transpose);
// The default tiles, 14 rows x 2 zmm (32 columns): 28 zmm accumulators + 2 for the B row + 1
// spare for the A broadcast fill the 32-register file. Each k step issues 28 FMAs against 2 B
// loads and 14 broadcasts, keeping the FMA pipes (not the load ports) the limit. Narrow tiles
// (at most 16 columns, A rows read in place): 28 rows x 1 zmm, so a 16-wide product does not
// spend half its FMAs on padding.
// K in slices of up to 1024 (A block 672 KiB, B panel 128 KiB: both still in L2): a K of
// 784-1536 in one slice rather than two saves a merge of every C tile, measured 1-2% on MLP
// and BERT MatMuls (64 x 784 x 1024: 470 -> 460 us) and level on square GEMMs and 1x1
// convolutions.
constexpr KernelSet kAvx512 = kernel_set<Avx512, 14, 2, 28>("avx512", 1024, 168, 4096, &transpose, &kAvx512Wide);

}  // namespace

const KernelSet* avx512_kernels() { return &kAvx512; }
#elif defined(AIOV_X86)
const KernelSet* avx512_kernels() { return nullptr; }
#endif

}  // namespace gemm_detail
}  // namespace aiov
