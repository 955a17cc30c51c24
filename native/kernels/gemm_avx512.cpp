// AVX-512 f32 GEMM micro-kernels. This file is compiled with AVX-512 flags and
// only reached after the dispatcher saw AVX-512 in CPUID/XCR0. Everything here
// stays in an anonymous namespace and uses no inline library templates, so the
// linker can never hand an AVX-512 copy of a shared inline function to portable code.
#include "kernels/gemm.hpp"

#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__FMA__)
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

// 14 rows x 32 columns: 28 zmm accumulators + 2 for the B row + 1 spare for the
// A broadcast fills the 32-register file. Each k step issues 28 FMAs against 2 B
// loads and 14 broadcasts, keeping the FMA pipes (not the load ports) the limit.
constexpr int kMR = 14;
constexpr int kNV = 2;  // zmm vectors per tile row
constexpr int kNR = kNV * 16;
// Narrow tiles (at most 16 columns, A rows read in place): 28 rows x 1 zmm, so a 16-wide
// product does not spend half its FMAs on padding.
constexpr int kMRNarrow = 28;

// Fully unrolled up to the 28 rows of the narrow tiles: a partly unrolled row loop leaves
// the accumulators on the stack (a load and a store around every FMA).
#define AIOV_UNROLL _Pragma("GCC unroll 32")
static_assert(kMRNarrow <= 32 && kMR <= 32, "AIOV_UNROLL must cover every row of a tile");

inline __mmask16 head_mask(int n) {  // lowest n lanes, n in [0, 16]
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1u);
}

inline float hsum(__m512 v) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Independent accumulator sets over k for short tiles: an FMA has ~4 cycles of
// latency, so a 1-row tile with 2 chains would run at a quarter of peak.
constexpr int k_splits(int vecs) {  // vecs: accumulators per k step
  return vecs >= 8 ? 1 : (8 + vecs - 1) / vecs > 4 ? 4 : (8 + vecs - 1) / vecs;
}

// NV zmm vectors per row (the narrow tiles, NV = 1, serve at most 16 columns with more rows).
// A_ROWS: A is row-major (row r at a + r * as, k contiguous), read where it lies instead
// of from a packed panel (a[k * as + r]). INDIRECT: rows are runs found through f.a_ptrs.
// GRID > 0: element (r, k) is a[f.a_offsets[k] + r * GRID] (a grid of step GRID).
template <int ROWS, int NV, bool DIRECT, bool A_ROWS, bool INDIRECT = false, int GRID = 0>
inline __attribute__((always_inline)) void tile_once(int cols, int64_t kc, const float* a, int64_t as, const float* b,
                                                     int64_t bs, float* c, int64_t ldc, const float* bias,
                                                     const TileFlags& f, const float* residual) {
  constexpr int KS = k_splits(ROWS * NV);
  __mmask16 bmask[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) bmask[v] = head_mask(cols - 16 * v);

  // Pull the C tile toward L1 (for writing) now; it is only touched after the
  // k loop, and cold stores would otherwise stall the merge.
  for (int r = 0; r < ROWS; ++r) {
    __builtin_prefetch(c + r * ldc, 1, 3);
    __builtin_prefetch(c + r * ldc + (NV * 16) - 1, 1, 3);
  }
  if (residual)  // read only at the merge too, and usually far out of cache
    for (int r = 0; r < ROWS; ++r) {
      __builtin_prefetch(residual + r * f.ld_residual, 0, 3);
      __builtin_prefetch(residual + r * f.ld_residual + (NV * 16) - 1, 0, 3);
    }

  __m512 acc[KS][ROWS][NV];
  AIOV_UNROLL for (int s = 0; s < KS; ++s)
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
      AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[s][r][v] = _mm512_setzero_ps();

  // kc steps of the k loop; at(s, r) is element (s, r) of A relative to the current
  // position, and advance(n) moves that position n steps on.
  auto steps = [&](int64_t kc, auto at, auto advance) __attribute__((always_inline)) {
    int64_t k = 0;
    for (; k + KS <= kc; k += KS) {
      AIOV_UNROLL for (int s = 0; s < KS; ++s) {
        __m512 bv[NV];
        AIOV_UNROLL for (int v = 0; v < NV; ++v)
          bv[v] = DIRECT ? _mm512_maskz_loadu_ps(bmask[v], b + s * bs + 16 * v) : _mm512_loadu_ps(b + s * bs + 16 * v);
        AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
          __m512 av = _mm512_set1_ps(at(s, r));
          AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[s][r][v] = _mm512_fmadd_ps(av, bv[v], acc[s][r][v]);
        }
      }
      advance(KS);
      b += KS * bs;
    }
    for (; k < kc; ++k) {  // leftover steps when KS > 1
      __m512 bv[NV];
      AIOV_UNROLL for (int v = 0; v < NV; ++v)
        bv[v] = DIRECT ? _mm512_maskz_loadu_ps(bmask[v], b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
      AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
        __m512 av = _mm512_set1_ps(at(0, r));
        AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[0][r][v] = _mm512_fmadd_ps(av, bv[v], acc[0][r][v]);
      }
      advance(1);
      b += bs;
    }
  };
  if constexpr (INDIRECT) {
    // Runs jump about the input where no hardware prefetcher follows: each segment pulls
    // in the next one's runs (up to 8 lines each) while its own FMAs run.
    const int64_t lines = kc * (int64_t)sizeof(float) > 512 ? 8 : (kc * (int64_t)sizeof(float) + 63) / 64;
    for (int seg = 0; seg < f.segments; ++seg) {
      const float* row[ROWS];
      AIOV_UNROLL for (int r = 0; r < ROWS; ++r) row[r] = f.a_ptrs[seg * f.a_ptr_stride + r];
      if (seg + 1 < f.segments)
        for (int r = 0; r < ROWS; ++r) {
          const char* next = (const char*)f.a_ptrs[(seg + 1) * f.a_ptr_stride + r];
          for (int64_t l = 0; l < lines; ++l) _mm_prefetch(next + 64 * l, _MM_HINT_T0);
        }
      steps(kc, [&](int s, int r) { return row[r][s]; },
            [&](int n) { AIOV_UNROLL for (int r = 0; r < ROWS; ++r) row[r] += n; });
    }
  } else if constexpr (GRID > 0) {
    // One offset per step; the rows are then fixed displacements from it.
    const int64_t* off = f.a_offsets;
    steps(kc, [&](int s, int r) { return a[off[s] + r * GRID]; }, [&](int n) { off += n; });
  } else {
    const int64_t a_step = A_ROWS ? 1 : as;
    steps(kc, [&](int s, int r) { return A_ROWS ? a[r * as + s] : a[s * as + r]; }, [&](int n) { a += n * a_step; });
  }
  AIOV_UNROLL for (int s = 1; s < KS; ++s)
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
      AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[0][r][v] = _mm512_add_ps(acc[0][r][v], acc[s][r][v]);

  const __m512 beta = _mm512_set1_ps(f.beta);
  const __m512 lo = _mm512_set1_ps(f.lo), hi = _mm512_set1_ps(f.hi);
  __m512 bias_v[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v)
    bias_v[v] = bias ? _mm512_maskz_loadu_ps(bmask[v], bias + 16 * v) : _mm512_setzero_ps();
  AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
    float* cr = c + r * ldc;
    const float* res = residual + r * f.ld_residual;
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      __m512 x = acc[0][r][v];
      if (f.load_c) x = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(bmask[v], cr + 16 * v), x);
      if (bias) x = _mm512_add_ps(x, bias_v[v]);
      if (residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(bmask[v], res + 16 * v));
      // max/min return their second operand when one is NaN: x goes second to keep NaN.
      if (f.clamp) x = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
      _mm512_mask_storeu_ps(cr + 16 * v, bmask[v], x);
    }
  }
}

#include "kernels/gemm_tile_select.inc"

// Dot products along contiguous K: ROWS x rows of x against NB rows of y.
template <int ROWS, int NB>
void dot_block(int64_t k, const float* x, int64_t ldx, const float* y, int64_t ldy, float* c, int64_t c_rs,
               int64_t c_cs, float beta) {
  __m512 acc[ROWS][NB];
  AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
    AIOV_UNROLL for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 yv[NB];
    AIOV_UNROLL for (int j = 0; j < NB; ++j) yv[j] = _mm512_loadu_ps(y + j * ldy + i);
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
      __m512 xv = _mm512_loadu_ps(x + r * ldx + i);
      AIOV_UNROLL for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_fmadd_ps(xv, yv[j], acc[r][j]);
    }
  }
  if (i < k) {
    __mmask16 m = head_mask((int)(k - i));
    __m512 yv[NB];
    AIOV_UNROLL for (int j = 0; j < NB; ++j) yv[j] = _mm512_maskz_loadu_ps(m, y + j * ldy + i);
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r) {
      __m512 xv = _mm512_maskz_loadu_ps(m, x + r * ldx + i);
      AIOV_UNROLL for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_fmadd_ps(xv, yv[j], acc[r][j]);
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
  // One row of x gets 8 y rows per pass so 8 FMA chains stay in flight.
  constexpr int NB = ROWS == 1 ? 8 : 4;
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

// One pass of KB rows of B over a C segment: c[r, 0:n] (=|+=) sum_kk av[r][kk] * brow[kk][0:n].
// first: C is initialised here (from beta * C, or from zero when beta == 0).
template <int ROWS, int KB>
void stream_pass(int64_t n, const __m512 (&av)[ROWS][KB], const float* const (&brow)[KB], float* c, int64_t ldc,
                 bool first, float beta) {
  constexpr int V = ROWS <= 2 ? 4 : 2;  // zmm columns per step; bounded by the register file
  const __m512 betav = _mm512_set1_ps(beta);
  for (int64_t j = 0; j < n; j += 16 * V) {
    __mmask16 m[V];
    AIOV_UNROLL for (int v = 0; v < V; ++v) m[v] = head_mask((int)(n - j - 16 * v));
    __m512 acc[ROWS][V];
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
      AIOV_UNROLL for (int v = 0; v < V; ++v) {
        if (!first) {
          acc[r][v] = _mm512_maskz_loadu_ps(m[v], c + r * ldc + j + 16 * v);
        } else if (beta != 0.0f) {
          acc[r][v] = _mm512_mul_ps(betav, _mm512_maskz_loadu_ps(m[v], c + r * ldc + j + 16 * v));
        } else {
          acc[r][v] = _mm512_setzero_ps();
        }
      }
    AIOV_UNROLL for (int kk = 0; kk < KB; ++kk)
      AIOV_UNROLL for (int v = 0; v < V; ++v) {
        __m512 bv = _mm512_maskz_loadu_ps(m[v], brow[kk] + j + 16 * v);
        AIOV_UNROLL for (int r = 0; r < ROWS; ++r) acc[r][v] = _mm512_fmadd_ps(av[r][kk], bv, acc[r][v]);
      }
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r)
      AIOV_UNROLL for (int v = 0; v < V; ++v) _mm512_mask_storeu_ps(c + r * ldc + j + 16 * v, m[v], acc[r][v]);
  }
}

template <int ROWS, int KB>
void stream_step(int64_t n, int64_t k0, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc, bool first, float beta) {
  __m512 av[ROWS][KB];
  const float* brow[KB];
  AIOV_UNROLL for (int kk = 0; kk < KB; ++kk) {
    brow[kk] = b + (k0 + kk) * ldb;
    AIOV_UNROLL for (int r = 0; r < ROWS; ++r) av[r][kk] = _mm512_set1_ps(a[r * lda + k0 + kk]);
  }
  stream_pass<ROWS, KB>(n, av, brow, c, ldc, first, beta);
}

template <int ROWS>
void stream_rows(int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc, float beta) {
  // C segment of ROWS x seg floats (16 KiB) stays in L1 across all of K.
  constexpr int64_t seg = 4096 / ROWS / 64 * 64;
  for (int64_t j0 = 0; j0 < n; j0 += seg) {
    const int64_t nj = n - j0 < seg ? n - j0 : seg;
    int64_t k0 = 0;
    for (; k0 + 4 <= k; k0 += 4) stream_step<ROWS, 4>(nj, k0, a, lda, b + j0, ldb, c + j0, ldc, k0 == 0, beta);
    for (; k0 < k; ++k0) stream_step<ROWS, 1>(nj, k0, a, lda, b + j0, ldb, c + j0, ldc, k0 == 0, beta);
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
  const __mmask16 row_mask = head_mask(rows);
  const __m512 alpha_v = _mm512_set1_ps(alpha);
  for (int64_t k0 = 0; k0 < kc; k0 += 16) {
    const int kn = kc - k0 < 16 ? (int)(kc - k0) : 16;
    const __mmask16 k_mask = head_mask(kn);
    __m512 r[16];
    AIOV_UNROLL for (int i = 0; i < 16; ++i) {
      r[i] = i < rows ? _mm512_maskz_loadu_ps(k_mask, src + i * ld + k0) : _mm512_setzero_ps();
      if (alpha != 1.0f) r[i] = _mm512_mul_ps(r[i], alpha_v);
    }
    transpose16x16(r);
    AIOV_UNROLL for (int k = 0; k < 16; ++k)
      if (k < kn) _mm512_mask_storeu_ps(dst + (k0 + k) * ds, row_mask, r[k]);
  }
}

// Wide tiles, 6 rows x 64 columns: 24 accumulators fed by 4 B loads and 6 broadcasts per
// k step, where 14 x 32 needs 16 loads for 28 FMAs. Measured 6-10% faster for a tall A
// against 64-128 columns (convolutions: 3136 x 288 x 64), slower for a short A against
// many columns, whose B panels it reads from L2 twice as often per FLOP.
constexpr int kMRWide = 6, kNVWide = 4;

// K slices of 512 amortise the C-tile merge; mc rows of A (168 x 512 x 4 B = 336 KiB)
// stay in the 1 MiB L2 while B panels stream past them. No narrow tiles in the wide set.
const KernelSet kAvx512Wide{"avx512", kMRWide, kNVWide * 16, kMRWide, 512, 168, 4096,
                            &tile_shape<kMRWide, kNVWide, 0>, &dot, &stream, &transpose, 16};
// The default tiles take K in slices of up to 1024 (A block 672 KiB, B panel 128 KiB: both
// still in L2): a K of 784-1536 in one slice rather than two saves a merge of every C tile,
// measured 1-2% on MLP and BERT MatMuls (64 x 784 x 1024: 470 -> 460 us) and level on
// square GEMMs and 1x1 convolutions.
const KernelSet kAvx512{"avx512", kMR, kNR, kMRNarrow, 1024, 168, 4096, &tile_shape<kMR, kNV, kMRNarrow>, &dot,
                        &stream, &transpose, 16, &kAvx512Wide};

}  // namespace

const KernelSet* avx512_kernels() { return &kAvx512; }

}  // namespace gemm_detail
}  // namespace aiov

#elif defined(AIOV_X86)
namespace aiov {
namespace gemm_detail {
const KernelSet* avx512_kernels() { return nullptr; }
}  // namespace gemm_detail
}  // namespace aiov
#endif
