// AVX2+FMA f32 GEMM micro-kernels (compiled with -mavx2 -mfma, reached only after
// the dispatcher checked CPUID/XCR0). Anonymous namespace and no inline library
// templates, for the same reason as gemm_avx512.cpp.
#include "kernels/gemm.hpp"

#if defined(AIOV_X86) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

// GCC 12's intrinsic headers self-initialise "undefined" vectors, which -Wall
// reports at every inlined use (GCC PR 105593); the code is fine.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace aiov {
namespace gemm_detail {
namespace {

// 6 rows x 16 columns: 12 ymm accumulators + 2 for the B row + 1 broadcast,
// within the 16 ymm registers.
constexpr int kMR = 6;
constexpr int kNV = 2;  // ymm vectors per tile row
constexpr int kNR = kNV * 8;
// Narrow tiles (at most 8 columns, A rows read in place): 12 rows x 1 ymm.
constexpr int kMRNarrow = 12;

#define AIOV_UNROLL _Pragma("GCC unroll 16")
static_assert(kMRNarrow <= 16 && kMR <= 16, "AIOV_UNROLL must cover every row of a tile");

alignas(64) const int32_t kLaneMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

inline __m256i head_mask(int n) {  // lowest n lanes, n clamped to [0, 8]
  n = n < 0 ? 0 : (n > 8 ? 8 : n);
  return _mm256_loadu_si256((const __m256i*)(kLaneMaskTable + 8 - n));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Two 256-bit FMA pipes x ~4 cycles latency: short tiles need extra chains over k.
constexpr int k_splits(int vecs) {  // vecs: accumulators per k step
  return vecs >= 8 ? 1 : (8 + vecs - 1) / vecs > 4 ? 4 : (8 + vecs - 1) / vecs;
}

// NV ymm vectors per row (the narrow tiles, NV = 1, serve at most 8 columns with more rows).
// A_ROWS: A is row-major (row r at a + r * as, k contiguous), read where it lies instead
// of from a packed panel (a[k * as + r]). INDIRECT: rows are runs found through f.a_ptrs.
// GRID > 0: element (r, k) is a[f.a_offsets[k] + r * GRID] (a grid of step GRID).
template <int ROWS, int NV, bool DIRECT, bool A_ROWS, bool INDIRECT = false, int GRID = 0>
inline __attribute__((always_inline)) void tile_once(int cols, int64_t kc, const float* a, int64_t as, const float* b,
                                                     int64_t bs, float* c, int64_t ldc, const float* bias,
                                                     const TileFlags& f, const float* residual) {
  constexpr int KS = k_splits(ROWS * NV);
  const bool full = cols >= (NV * 8);
  __m256i lane[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) lane[v] = head_mask(cols - 8 * v);

  if (f.load_c) {
    for (int r = 0; r < ROWS; ++r) _mm_prefetch((const char*)(c + r * ldc), _MM_HINT_T0);
  }
  if (residual)  // read only at the merge, and usually far out of cache
    for (int r = 0; r < ROWS; ++r) _mm_prefetch((const char*)(residual + r * f.ld_residual), _MM_HINT_T0);

  __m256 acc[KS][ROWS][NV];
  AIOV_UNROLL for (int s = 0; s < KS; ++s)
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
      AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[s][r][v] = _mm256_setzero_ps();

  // kc steps of the k loop; at(s, r) points at element (s, r) of A relative to the current
  // position, and advance(n) moves that position n steps on.
  auto steps = [&](int64_t kc, auto at, auto advance) __attribute__((always_inline)) {
    int64_t k = 0;
    for (; k + KS <= kc; k += KS) {
      AIOV_UNROLL for (int s = 0; s < KS; ++s) {
        __m256 bv[NV];
        AIOV_UNROLL for (int v = 0; v < NV; ++v)
          bv[v] = DIRECT ? _mm256_maskload_ps(b + s * bs + 8 * v, lane[v]) : _mm256_loadu_ps(b + s * bs + 8 * v);
        AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
          __m256 av = _mm256_broadcast_ss(at(s, r));
          AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[s][r][v] = _mm256_fmadd_ps(av, bv[v], acc[s][r][v]);
        }
      }
      advance(KS);
      b += KS * bs;
    }
    for (; k < kc; ++k) {
      __m256 bv[NV];
      AIOV_UNROLL for (int v = 0; v < NV; ++v)
        bv[v] = DIRECT ? _mm256_maskload_ps(b + 8 * v, lane[v]) : _mm256_loadu_ps(b + 8 * v);
      AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
        __m256 av = _mm256_broadcast_ss(at(0, r));
        AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[0][r][v] = _mm256_fmadd_ps(av, bv[v], acc[0][r][v]);
      }
      advance(1);
      b += bs;
    }
  };
  if constexpr (INDIRECT) {
    for (int seg = 0; seg < f.segments; ++seg) {
      const float* row[ROWS];
      AIOV_UNROLL for (int r = 0; r < ROWS; ++r) row[r] = f.a_ptrs[seg * f.a_ptr_stride + r];
      steps(kc, [&](int s, int r) { return row[r] + s; },
            [&](int n) { AIOV_UNROLL for (int r = 0; r < ROWS; ++r) row[r] += n; });
    }
  } else if constexpr (GRID > 0) {
    const int64_t* off = f.a_offsets;
    steps(kc, [&](int s, int r) { return a + off[s] + r * GRID; }, [&](int n) { off += n; });
  } else {
    const int64_t a_step = A_ROWS ? 1 : as;
    steps(kc, [&](int s, int r) { return A_ROWS ? a + r * as + s : a + s * as + r; }, [&](int n) { a += n * a_step; });
  }
  AIOV_UNROLL for (int s = 1; s < KS; ++s)
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
      AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[0][r][v] = _mm256_add_ps(acc[0][r][v], acc[s][r][v]);

  const __m256 beta = _mm256_set1_ps(f.beta);
  const __m256 lo = _mm256_set1_ps(f.lo), hi = _mm256_set1_ps(f.hi);
  __m256 bias_v[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v)
    bias_v[v] = bias ? _mm256_maskload_ps(bias + 8 * v, lane[v]) : _mm256_setzero_ps();
  AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
    float* cr = c + r * ldc;
    const float* res = residual + r * f.ld_residual;
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      __m256 x = acc[0][r][v];
      if (f.load_c) {
        __m256 old = full ? _mm256_loadu_ps(cr + 8 * v) : _mm256_maskload_ps(cr + 8 * v, lane[v]);
        x = _mm256_fmadd_ps(beta, old, x);
      }
      if (bias) x = _mm256_add_ps(x, bias_v[v]);
      if (residual)
        x = _mm256_add_ps(x, full ? _mm256_loadu_ps(res + 8 * v) : _mm256_maskload_ps(res + 8 * v, lane[v]));
      // max/min return their second operand when one is NaN: x goes second to keep NaN.
      if (f.clamp) x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
      if (full)
        _mm256_storeu_ps(cr + 8 * v, x);
      else
        _mm256_maskstore_ps(cr + 8 * v, lane[v], x);
    }
  }
}

#include "kernels/gemm_tile_select.inc"

template <int ROWS, int NB>
void dot_block(int64_t k, const float* x, int64_t ldx, const float* y, int64_t ldy, float* c, int64_t c_rs,
               int64_t c_cs, float beta) {
  __m256 acc[ROWS][NB];
  AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
    AIOV_UNROLL for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 yv[NB];
    AIOV_UNROLL for (int j = 0; j < NB; ++j) yv[j] = _mm256_loadu_ps(y + j * ldy + i);
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
      __m256 xv = _mm256_loadu_ps(x + r * ldx + i);
      AIOV_UNROLL for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_fmadd_ps(xv, yv[j], acc[r][j]);
    }
  }
  if (i < k) {
    __m256i m = head_mask((int)(k - i));
    __m256 yv[NB];
    AIOV_UNROLL for (int j = 0; j < NB; ++j) yv[j] = _mm256_maskload_ps(y + j * ldy + i, m);
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
      __m256 xv = _mm256_maskload_ps(x + r * ldx + i, m);
      AIOV_UNROLL for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_fmadd_ps(xv, yv[j], acc[r][j]);
    }
  }
  AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
    AIOV_UNROLL for (int j = 0; j < NB; ++j) {
      float s = hsum(acc[r][j]);
      float* out = c + r * c_rs + j * c_cs;
      *out = beta == 0.0f ? s : s + beta * *out;
    }
}

template <int ROWS>
void dot_rows(int64_t cols, int64_t k, const float* x, int64_t ldx, const float* y, int64_t ldy, float* c,
              int64_t c_rs, int64_t c_cs, float beta) {
  // Keep ~8 accumulators in flight within 16 registers.
  constexpr int NB = ROWS == 1 ? 8 : (ROWS == 2 ? 4 : 2);
  int64_t j = 0;
  for (; j + NB <= cols; j += NB) dot_block<ROWS, NB>(k, x, ldx, y + j * ldy, ldy, c + j * c_cs, c_rs, c_cs, beta);
  for (; j < cols; ++j) dot_block<ROWS, 1>(k, x, ldx, y + j * ldy, ldy, c + j * c_cs, c_rs, c_cs, beta);
}

void dot(int rows, int64_t cols, int64_t k, const float* x, int64_t ldx, const float* y, int64_t ldy, float* c,
         int64_t c_rs, int64_t c_cs, float beta) {
  switch (rows) {
    case 1: return dot_rows<1>(cols, k, x, ldx, y, ldy, c, c_rs, c_cs, beta);
    case 2: return dot_rows<2>(cols, k, x, ldx, y, ldy, c, c_rs, c_cs, beta);
    case 3: return dot_rows<3>(cols, k, x, ldx, y, ldy, c, c_rs, c_cs, beta);
    default: return dot_rows<4>(cols, k, x, ldx, y, ldy, c, c_rs, c_cs, beta);
  }
}

// One pass of KB rows of B over a C segment (see gemm_avx512.cpp).
template <int ROWS, int KB>
void stream_pass(int64_t n, const float* a, int64_t lda, int64_t k0, const float* const (&brow)[KB], float* c,
                 int64_t ldc, bool first, float beta) {
  constexpr int V = ROWS <= 2 ? 2 : 1;  // ymm columns per step; 16 registers in all
  const __m256 betav = _mm256_set1_ps(beta);
  for (int64_t j = 0; j < n; j += 8 * V) {
    const bool full = j + 8 * V <= n;
    __m256i m[V];
    AIOV_UNROLL for (int v = 0; v < V; ++v) m[v] = head_mask((int)(n - j - 8 * v));
    __m256 acc[ROWS][V];
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
      AIOV_UNROLL for (int v = 0; v < V; ++v) {
        float* cp = c + r * ldc + j + 8 * v;
        if (!first || beta != 0.0f) {
          __m256 old = full ? _mm256_loadu_ps(cp) : _mm256_maskload_ps(cp, m[v]);
          acc[r][v] = first ? _mm256_mul_ps(betav, old) : old;
        } else {
          acc[r][v] = _mm256_setzero_ps();
        }
      }
    AIOV_UNROLL for (int kk = 0; kk < KB; ++kk)
      AIOV_UNROLL for (int v = 0; v < V; ++v) {
        const float* bp = brow[kk] + j + 8 * v;
        __m256 bv = full ? _mm256_loadu_ps(bp) : _mm256_maskload_ps(bp, m[v]);
        AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
          acc[r][v] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r * lda + k0 + kk), bv, acc[r][v]);
      }
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
      AIOV_UNROLL for (int v = 0; v < V; ++v) {
        float* cp = c + r * ldc + j + 8 * v;
        if (full)
          _mm256_storeu_ps(cp, acc[r][v]);
        else
          _mm256_maskstore_ps(cp, m[v], acc[r][v]);
      }
  }
}

template <int ROWS>
void stream_rows(int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc, float beta) {
  constexpr int64_t seg = 4096 / ROWS / 64 * 64;  // C segment (16 KiB) stays in L1
  for (int64_t j0 = 0; j0 < n; j0 += seg) {
    const int64_t nj = n - j0 < seg ? n - j0 : seg;
    int64_t k0 = 0;
    for (; k0 + 4 <= k; k0 += 4) {
      const float* brow[4] = {b + k0 * ldb + j0, b + (k0 + 1) * ldb + j0, b + (k0 + 2) * ldb + j0,
                              b + (k0 + 3) * ldb + j0};
      stream_pass<ROWS, 4>(nj, a, lda, k0, brow, c + j0, ldc, k0 == 0, beta);
    }
    for (; k0 < k; ++k0) {
      const float* brow[1] = {b + k0 * ldb + j0};
      stream_pass<ROWS, 1>(nj, a, lda, k0, brow, c + j0, ldc, k0 == 0, beta);
    }
  }
}

void stream(int rows, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
            int64_t ldc, float beta) {
  switch (rows) {
    case 1: return stream_rows<1>(n, k, a, lda, b, ldb, c, ldc, beta);
    case 2: return stream_rows<2>(n, k, a, lda, b, ldb, c, ldc, beta);
    case 3: return stream_rows<3>(n, k, a, lda, b, ldb, c, ldc, beta);
    default: return stream_rows<4>(n, k, a, lda, b, ldb, c, ldc, beta);
  }
}

// dst[k * ds + r] = alpha * src[r * ld + k], r < rows <= 8: 8 k at a time through registers.
void transpose(int rows, int64_t kc, const float* src, int64_t ld, float alpha, float* dst, int64_t ds) {
  const __m256i row_mask = head_mask(rows);
  const __m256 alpha_v = _mm256_set1_ps(alpha);
  for (int64_t k0 = 0; k0 < kc; k0 += 8) {
    const int kn = kc - k0 < 8 ? (int)(kc - k0) : 8;
    const __m256i k_mask = head_mask(kn);
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
    AIOV_UNROLL for (int k = 0; k < 8; ++k)
      if (k < kn) _mm256_maskstore_ps(dst + (k0 + k) * ds, row_mask, r[k]);
  }
}

const KernelSet kAvx2{"avx2", kMR, kNR, kMRNarrow, 256, 120, 4096, &tile_shape<kMR, kNV, kMRNarrow>, &dot,
                      &stream, &transpose, 8};

}  // namespace

const KernelSet* avx2_kernels() { return &kAvx2; }

}  // namespace gemm_detail
}  // namespace aiov

#elif defined(AIOV_X86)
namespace aiov {
namespace gemm_detail {
const KernelSet* avx2_kernels() { return nullptr; }
}  // namespace gemm_detail
}  // namespace aiov
#endif
