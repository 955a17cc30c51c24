// Portable GEMM micro-kernels: plain loops the compiler vectorizes for the baseline ISA.
// The set used off x86-64 and under AIOV_GEMM_ISA=scalar.
#include <algorithm>

#include "kernels/gemm_kernels.hpp"

namespace aiov {
namespace gemm_detail {
namespace {

constexpr int kScalarMR = 4;
constexpr int kScalarNR = 8;

template <int ROWS>
void tile_rows(const Tile& t) {
  const int cols = t.cols;
  const int64_t kc = t.kc;
  const float* a = t.a;
  const float* b = t.b;
  float acc[ROWS][kScalarNR] = {};
  const int width = t.b_direct ? cols : kScalarNR;  // unpacked B: the row ends after `cols` values
  const int64_t a_rs = t.a_rows ? t.a_stride : 1, a_ks = t.a_rows ? 1 : t.a_stride;
  for (int seg = 0; seg < (t.a_ptrs ? t.segments : 1); ++seg)
    for (int64_t k = 0; k < kc; ++k, b += t.b_stride)
      for (int r = 0; r < ROWS; ++r) {
        const float av = t.a_ptrs      ? t.a_ptrs[seg * t.a_ptr_stride + r][k]
                         : t.a_offsets ? a[t.a_offsets[k] + r * t.a_step]
                                       : a[r * a_rs + k * a_ks];
        for (int j = 0; j < width; ++j) acc[r][j] += av * b[j];
      }
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < cols; ++j) merge_value(t, r, j, acc[r][j]);
}

void tile(const Tile& t) {
  Tile one = t;  // one panel at a time
  for (int p = 0; p < t.panels; ++p) {
    switch (t.rows) {
      case 1:
        tile_rows<1>(one);
        break;
      case 2:
        tile_rows<2>(one);
        break;
      case 3:
        tile_rows<3>(one);
        break;
      default:
        tile_rows<4>(one);
        break;
    }
    one.a += t.a_next;
    one.c += t.rows * t.ldc;
    if (one.residual) one.residual += t.rows * t.ld_residual;
  }
}

void dot(int rows, int64_t cols, int64_t k, const float* x, int64_t ldx, const float* y, int64_t ldy, float* c,
         int64_t c_rs, int64_t c_cs, float beta) {
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const float* xr = x + r * ldx;
      const float* yj = y + j * ldy;
      // Several partial sums: shorter dependency chains and smaller rounding error.
      float part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= k; i += 8)
        for (int l = 0; l < 8; ++l) part[l] += xr[i + l] * yj[i + l];
      for (; i < k; ++i) part[0] += xr[i] * yj[i];
      float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      float* out = c + r * c_rs + j * c_cs;
      *out = beta == 0.0f ? s : s + beta * *out;
    }
}

void stream(int rows, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
            int64_t ldc, float beta) {
  constexpr int64_t kSegment = 1024;  // C segment kept in L1 while B rows stream by
  for (int64_t j0 = 0; j0 < n; j0 += kSegment) {
    const int64_t nj = std::min(kSegment, n - j0);
    for (int r = 0; r < rows; ++r) {
      float* cr = c + r * ldc + j0;
      for (int64_t j = 0; j < nj; ++j) cr[j] = beta == 0.0f ? 0.0f : beta * cr[j];
    }
    for (int64_t kk = 0; kk < k; ++kk) {
      const float* br = b + kk * ldb + j0;
      for (int r = 0; r < rows; ++r) {
        const float av = a[r * lda + kk];
        float* cr = c + r * ldc + j0;
        for (int64_t j = 0; j < nj; ++j) cr[j] += av * br[j];
      }
    }
  }
}

const KernelSet kPortable{"scalar", kScalarMR, kScalarNR, kScalarMR, 256, 64, 4096, &tile, &dot, &stream, nullptr, 0};

}  // namespace

const KernelSet& portable_kernels() { return kPortable; }

}  // namespace gemm_detail
}  // namespace aiov
