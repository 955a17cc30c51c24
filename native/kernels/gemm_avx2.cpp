// AVX2+FMA f32 GEMM micro-kernels: the vector traits and tile shapes for
// gemm_microkernels.inc, and the 8 x 8 transpose for packing. Compiled with -mavx2 -mfma,
// reached only after the dispatcher checked CPUID/XCR0. Anonymous namespace and no inline
// library templates, for the same reason as gemm_avx512.cpp.
#include "kernels/gemm_kernels.hpp"

#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace gemm_detail {
#if defined(AIOV_X86) && defined(__AVX2__) && defined(__FMA__)
namespace {

#define AIOV_UNROLL _Pragma("GCC unroll 16")
constexpr int kUnrolledRows = 16;

alignas(64) const int32_t kLaneMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

#define AIOV_VEC_OP [[gnu::always_inline]] static

// Vector traits for gemm_microkernels.inc. Masked moves (vmaskmov) are slower than plain
// ones, so the edge moves use plain ones when all lanes are valid.
struct Avx2 {
  using Vec = __m256;
  using Mask = __m256i;
  static constexpr int kLanes = 8;
  static constexpr int kRegisters = 16;
  static constexpr bool kPrefetchWholeTile = false;
  static constexpr bool kPrefetchNextRuns = false;
  static constexpr bool kQuadTiles = false;  // (8 lanes: the narrow tiles waste less)

  AIOV_VEC_OP Mask head_mask(int n) {
    n = n < 0 ? 0 : (n > 8 ? 8 : n);
    return _mm256_loadu_si256((const __m256i*)(kLaneMaskTable + 8 - n));
  }
  AIOV_VEC_OP Vec zero() { return _mm256_setzero_ps(); }
  AIOV_VEC_OP Vec set1(float x) { return _mm256_set1_ps(x); }
  AIOV_VEC_OP Vec broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  AIOV_VEC_OP Vec load(const float* p) { return _mm256_loadu_ps(p); }
  AIOV_VEC_OP Vec load_masked(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  AIOV_VEC_OP Vec load_edge(const float* p, Mask m, bool whole) {
    return whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
  }
  AIOV_VEC_OP void store_edge(float* p, Mask m, bool whole, Vec v) {
    if (whole)
      _mm256_storeu_ps(p, v);
    else
      _mm256_maskstore_ps(p, m, v);
  }
  AIOV_VEC_OP Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  AIOV_VEC_OP Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  AIOV_VEC_OP Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  AIOV_VEC_OP Vec min(Vec a, Vec b) { return _mm256_min_ps(a, b); }
  AIOV_VEC_OP Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
  AIOV_VEC_OP float hsum(Vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

#include "kernels/gemm_microkernels.inc"

// dst[k * ds + r] = alpha * src[r * ld + k], r < rows <= 8: 8 k at a time through registers.
void transpose(int rows, int64_t kc, const float* src, int64_t ld, float alpha, float* dst, int64_t ds) {
  const __m256i row_mask = Avx2::head_mask(rows);
  const __m256 alpha_v = _mm256_set1_ps(alpha);
  for (int64_t k0 = 0; k0 < kc; k0 += 8) {
    const int kn = kc - k0 < 8 ? (int)(kc - k0) : 8;
    const __m256i k_mask = Avx2::head_mask(kn);
    __m256 r[8];
    AIOV_UNROLL for (int i = 0; i < 8; ++i) {
      r[i] = i < rows ? (kn == 8 ? _mm256_loadu_ps(src + i * ld + k0) : _mm256_maskload_ps(src + i * ld + k0, k_mask))
                      : _mm256_setzero_ps();
      if (alpha != 1.0f) r[i] = _mm256_mul_ps(r[i], alpha_v);
    }
    __m256 t[8], u[8];
    AIOV_UNROLL for (int i = 0; i < 4; ++i) {  // interleave row pairs
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    AIOV_UNROLL for (int g = 0; g < 2; ++g) {  // lane L of u[4g+c]: rows 4g..4g+3 of k = 4L+c
      u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
      u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    AIOV_UNROLL for (int c = 0; c < 4; ++c) {
      r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
      r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
    AIOV_UNROLL for (int k = 0; k < 8; ++k) if (k < kn) _mm256_maskstore_ps(dst + (k0 + k) * ds, row_mask, r[k]);
  }
}

// 6 rows x 2 ymm (16 columns): 12 ymm accumulators + 2 for the B row + 1 broadcast, within
// the 16 ymm registers. Narrow tiles (at most 8 columns, A rows read in place): 12 rows x 1 ymm.
constexpr KernelSet kAvx2 = kernel_set<Avx2, 6, 2, 12>("avx2", 256, 120, 4096, &transpose);

}  // namespace

const KernelSet* avx2_kernels() { return &kAvx2; }
#elif defined(AIOV_X86)
const KernelSet* avx2_kernels() { return nullptr; }
#endif

}  // namespace gemm_detail
}  // namespace aiov
