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

// Quad tiles: at most 4 columns of C from A rows read in place (a 1x1 convolution into a few
// channels: SqueezeNet's squeeze layers), where a narrow tile would use 4 of an FMA's 16
// lanes. A vector holds 4 rows x 4 consecutive k of A (four 128-bit loads); per column n it
// meets [b(k, n) .. b(k + 3, n)] four times over (B regrouped so once per call), so every
// lane is a useful product, and each row's 4 partial sums per column are added at the end.
constexpr int kQuadCols = 4;
constexpr int64_t kQuadMaxKc = 512;  // the regrouped B (kc x 4 x 4 floats) lives on the stack

// QN quads (4 rows each; `rows` of them real, the others re-read row 0 and are not stored) of
// one tile over t.kc steps, merged into C as tile_once merges (C is not read: no load_c).
template <int QN>
[[gnu::always_inline]] inline void quad_rows(const Tile& t, const float* a, float* c, const float* residual, int rows,
                                             const float* bq) {
  const int64_t as = t.a_stride, kc = t.kc, groups = kc / 4, rem = kc % 4;
  const float* row[4 * QN];
  for (int i = 0; i < 4 * QN; ++i) row[i] = a + (i < rows ? i : 0) * as;
  __m512 acc[QN][kQuadCols];
  for (int q = 0; q < QN; ++q)
    for (int n = 0; n < kQuadCols; ++n) acc[q][n] = _mm512_setzero_ps();
  const auto group = [&](int64_t g, __mmask8 m) __attribute__((always_inline)) {
    const float* b = bq + g * 4 * 16;
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    const __m512 b2 = _mm512_loadu_ps(b + 32), b3 = _mm512_loadu_ps(b + 48);
    for (int q = 0; q < QN; ++q) {
      const float* const* r = row + 4 * q;
      __m512 x = _mm512_castps128_ps512(_mm_maskz_loadu_ps(m, r[0] + 4 * g));
      x = _mm512_insertf32x4(x, _mm_maskz_loadu_ps(m, r[1] + 4 * g), 1);
      x = _mm512_insertf32x4(x, _mm_maskz_loadu_ps(m, r[2] + 4 * g), 2);
      x = _mm512_insertf32x4(x, _mm_maskz_loadu_ps(m, r[3] + 4 * g), 3);
      acc[q][0] = _mm512_fmadd_ps(x, b0, acc[q][0]);
      acc[q][1] = _mm512_fmadd_ps(x, b1, acc[q][1]);
      acc[q][2] = _mm512_fmadd_ps(x, b2, acc[q][2]);
      acc[q][3] = _mm512_fmadd_ps(x, b3, acc[q][3]);
    }
  };
  for (int64_t g = 0; g < groups; ++g) group(g, 0xF);
  if (rem) group(groups, (__mmask8)((1u << rem) - 1u));
  const __mmask8 cols = (__mmask8)((1u << t.cols) - 1u);
  const __m512 lo = _mm512_set1_ps(t.lo), hi = _mm512_set1_ps(t.hi);
  const __m512 bias = t.bias ? _mm512_broadcast_f32x4(_mm_maskz_loadu_ps(cols, t.bias)) : _mm512_setzero_ps();
  // `here` rows of the residual from p, ld apart, row i in 128-bit lane i (cols values
  // each); lanes past them re-read the first row, which exists.
  const auto gather = [&](const float* p, int64_t ld, int here) __attribute__((always_inline)) {
    __m512 v = _mm512_castps128_ps512(_mm_maskz_loadu_ps(cols, p));
    v = _mm512_insertf32x4(v, _mm_maskz_loadu_ps(cols, p + (here > 1 ? ld : 0)), 1);
    v = _mm512_insertf32x4(v, _mm_maskz_loadu_ps(cols, p + (here > 2 ? 2 * ld : 0)), 2);
    return _mm512_insertf32x4(v, _mm_maskz_loadu_ps(cols, p + (here > 3 ? 3 * ld : 0)), 3);
  };
  for (int q = 0; q < QN; ++q) {
    // Lane 4i + j of acc[q][n]: row i's products at k = j (mod 4). Sum over j, columns
    // side by side: lane 4i + n of x is row i, column n.
    const __m512 s01 =
        _mm512_add_ps(_mm512_unpacklo_ps(acc[q][0], acc[q][1]), _mm512_unpackhi_ps(acc[q][0], acc[q][1]));
    const __m512 s23 =
        _mm512_add_ps(_mm512_unpacklo_ps(acc[q][2], acc[q][3]), _mm512_unpackhi_ps(acc[q][2], acc[q][3]));
    __m512 x = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
    const int first = 4 * q, here = rows - first < 4 ? rows - first : 4;
    if (here <= 0) break;
    float* cq = c + first * t.ldc;
    if (t.bias) x = _mm512_add_ps(x, bias);
    if (residual) x = _mm512_add_ps(x, gather(residual + first * t.ld_residual, t.ld_residual, here));
    // max/min return their second operand when one is NaN: x goes second to keep NaN.
    if (t.clamp) x = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
    _mm_mask_storeu_ps(cq, cols, _mm512_castps512_ps128(x));
    if (here > 1) _mm_mask_storeu_ps(cq + t.ldc, cols, _mm512_extractf32x4_ps(x, 1));
    if (here > 2) _mm_mask_storeu_ps(cq + 2 * t.ldc, cols, _mm512_extractf32x4_ps(x, 2));
    if (here > 3) _mm_mask_storeu_ps(cq + 3 * t.ldc, cols, _mm512_extractf32x4_ps(x, 3));
  }
}

__attribute__((noinline)) void quad_tile(const Tile& t) {
  // B regrouped: per group of 4 steps and column n, 16 floats [b(4g .. 4g + 3, n)] x 4, zero
  // past kc and t.cols.
  alignas(64) float bq[kQuadMaxKc * kQuadCols * 4];
  const int64_t kc = t.kc, groups = (kc + 3) / 4;
  for (int64_t g = 0; g < groups; ++g)
    for (int n = 0; n < kQuadCols; ++n) {
      float* v = bq + (g * kQuadCols + n) * 16;
      for (int j = 0; j < 4; ++j) {
        const int64_t k = 4 * g + j;
        const float b = k < kc && n < t.cols ? t.b[k * t.b_stride + n] : 0.0f;
        v[j] = v[4 + j] = v[8 + j] = v[12 + j] = b;
      }
    }
  const float* a = t.a;
  float* c = t.c;
  const float* residual = t.residual;
  for (int p = 0; p < t.panels; ++p) {
    // Up to 16 rows a pass: 16 accumulators, 4 B vectors and the A vector fit the registers.
    for (int r = 0; r < t.rows; r += 16) {
      const int rows = t.rows - r < 16 ? t.rows - r : 16;
      const float* res = residual ? residual + r * t.ld_residual : nullptr;
      switch ((rows + 3) / 4) {
        case 1:
          quad_rows<1>(t, a + r * t.a_stride, c + r * t.ldc, res, rows, bq);
          break;
        case 2:
          quad_rows<2>(t, a + r * t.a_stride, c + r * t.ldc, res, rows, bq);
          break;
        case 3:
          quad_rows<3>(t, a + r * t.a_stride, c + r * t.ldc, res, rows, bq);
          break;
        default:
          quad_rows<4>(t, a + r * t.a_stride, c + r * t.ldc, res, rows, bq);
      }
    }
    a += t.a_next;
    c += t.rows * t.ldc;
    if (residual) residual += t.rows * t.ld_residual;
  }
}

// Vector traits for gemm_microkernels.inc. Masked moves cost the same as plain ones here,
// so the edge moves are always masked.
struct Avx512 {
  using Vec = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;
  static constexpr int kRegisters = 32;
  static constexpr bool kPrefetchWholeTile = true;
  static constexpr bool kPrefetchNextRuns = true;
  static constexpr bool kQuadTiles = true;
  static bool quad_tile(const Tile& t) {  // false: not a quad tile's shape
    // (A C to add to, a product of several K slices, keeps the narrow tiles.)
    if (t.cols > kQuadCols || t.kc > kQuadMaxKc || t.load_c) return false;
    gemm_detail::quad_tile(t);
    return true;
  }

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
