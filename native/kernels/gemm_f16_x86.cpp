// f16 GEMM kernels for AVX512-FP16: up to 12 rows x 32 columns in zmm f32 accumulators. B's
// f16 panels are widened with VCVTPH2PSX as they are read; A's f16 rows are widened a chunk of
// K at a time into an L1 buffer, so the inner loop is f32 FMAs against broadcasts from it.
// Compiled with AVX-512 and AVX512-FP16 flags; only reached after the dispatcher saw
// AVX512-FP16 in CPUID/XCR0. Everything here stays in an anonymous namespace (see
// gemm_avx512.cpp).
#include "kernels/gemm_f16.hpp"

#include <algorithm>

#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace gemm_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512FP16__)
namespace {

#define AIOV_UNROLL _Pragma("GCC unroll 16")

#include "kernels/gemm_merge_avx512.inc"

// Round to nearest even whatever MXCSR says (VCVTPS2PH with an explicit rounding mode);
// beyond f16's range becomes an infinity, NaN stays NaN.
void convert(const float* src, int64_t n, float scale, uint16_t* dst) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(src + i);
    if (scale != 1.0f) x = _mm512_mul_ps(x, s);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtps_ph(x, kRound));
  }
  if (i < n) {
    const __mmask16 m = head_mask((int)(n - i));
    __m512 x = _mm512_maskz_loadu_ps(m, src + i);
    if (scale != 1.0f) x = _mm512_mul_ps(x, s);
    _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtps_ph(x, kRound));
  }
}

[[gnu::always_inline]] inline __m512 widen(const uint16_t* p) {
  return _mm512_cvtxph_ps(_mm256_castsi256_ph(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
}

constexpr int kMR = 12;
// K per widened chunk of A: 12 rows x 256 f32 = 12 KiB, in L1 next to the panels' stream.
constexpr int64_t kChunk = 256;

template <int R, int NV>
void fma_rows(const Bf16Tile& t) {
  __m512 acc[R][NV];
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  alignas(64) float a32[R][kChunk];
  const uint16_t* b0 = t.b;
  const uint16_t* b1 = t.b + t.b_panel_stride;
  for (int64_t k0 = 0; k0 < t.kp; k0 += kChunk) {
    const int64_t kn = std::min(kChunk, t.kp - k0);  // a multiple of 16 (kp is of 32)
    for (int r = 0; r < R; ++r)
      for (int64_t k = 0; k < kn; k += 16) _mm512_store_ps(&a32[r][k], widen(t.a + r * t.lda + k0 + k));
    for (int64_t k = 0; k < kn; ++k) {
      __m512 bv[NV];
      bv[0] = widen(b0 + (k0 + k) * kBf16PanelCols);
      if (NV > 1) bv[NV - 1] = widen(b1 + (k0 + k) * kBf16PanelCols);
      AIOV_UNROLL for (int r = 0; r < R; ++r) {
        const __m512 av = _mm512_set1_ps(a32[r][k]);
        AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      }
    }
  }
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) merge_vec(acc[r][v], t.out, r, v);
}

template <int NV>
void fma_tile_cols(const Bf16Tile& t) {
  switch (t.out.rows) {
#define AIOV_FMA_ROWS(R) \
  case R:                \
    return fma_rows<R, NV>(t);
    AIOV_FMA_ROWS(1)
    AIOV_FMA_ROWS(2)
    AIOV_FMA_ROWS(3)
    AIOV_FMA_ROWS(4)
    AIOV_FMA_ROWS(5)
    AIOV_FMA_ROWS(6)
    AIOV_FMA_ROWS(7)
    AIOV_FMA_ROWS(8)
    AIOV_FMA_ROWS(9)
    AIOV_FMA_ROWS(10)
    AIOV_FMA_ROWS(11)
#undef AIOV_FMA_ROWS
    default:
      return fma_rows<kMR, NV>(t);
  }
}

void fma_tile(const Bf16Tile& t) {
  if (t.out.cols > kBf16PanelCols)
    fma_tile_cols<2>(t);
  else
    fma_tile_cols<1>(t);
}

const Bf16KernelSet kAvx512Fp16{"avx512_fp16", kMR, &fma_tile, &convert, nullptr, nullptr};

}  // namespace

const Bf16KernelSet* avx512_fp16_kernels() { return &kAvx512Fp16; }
#else
const Bf16KernelSet* avx512_fp16_kernels() { return nullptr; }
#endif

}  // namespace gemm_detail
}  // namespace aiov
