// Portable blocked GEMM: row-times-panel updates whose inner loop over N vectorizes
// (AVX-512 / AVX2 clones chosen at load time).
#include "kernels/gemm.hpp"

#include <algorithm>
#include <cstring>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"

namespace aiov {
namespace {

constexpr int64_t kBlockN = 512;   // C row segment kept in L1
constexpr int64_t kBlockK = 256;   // B panel rows per pass

// c[0:n] += sum_k a[k*as] * b[k*ldb + 0:n]
AIOV_MULTIVERSION void row_panel(const float* __restrict a, int64_t as, const float* __restrict b, int64_t ldb,
                                 float* __restrict c, int64_t n, int64_t k) {
  for (int64_t kk = 0; kk < k; ++kk) {
    float x = a[kk * as];
    const float* br = b + kk * ldb;
    for (int64_t j = 0; j < n; ++j) c[j] += x * br[j];
  }
}

// Rows [m0,m1) x cols [n0,n1) of C = op(A) * Bn, Bn is K x N row-major with stride ldb.
void block(bool ta, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, float* C, int64_t ldc) {
  for (int64_t nb = n0; nb < n1; nb += kBlockN) {
    int64_t nn = std::min(kBlockN, n1 - nb);
    for (int64_t m = m0; m < m1; ++m) std::memset(C + m * ldc + nb, 0, nn * sizeof(float));
    for (int64_t kb = 0; kb < K; kb += kBlockK) {
      int64_t kk = std::min(kBlockK, K - kb);
      for (int64_t m = m0; m < m1; ++m) {
        const float* a = ta ? A + kb * lda + m : A + m * lda + kb;
        row_panel(a, ta ? lda : 1, B + kb * ldb + nb, ldb, C + m * ldc + nb, nn, kk);
      }
    }
  }
}

void run(bool ta, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
         float* C, int64_t ldc, ThreadPool* pool, int max_threads) {
  double flops = 2.0 * M * N * K;
  if (!pool || flops < 2e6) {
    block(ta, 0, M, 0, N, K, A, lda, B, ldb, C, ldc);
    return;
  }
  if (M >= 8) {
    pool->parallel_for(M, std::max<int64_t>(1, M / 16), [&](int64_t s, int64_t e) {
      block(ta, s, e, 0, N, K, A, lda, B, ldb, C, ldc);
    }, max_threads);
  } else {
    int64_t cols = (N + 63) / 64;
    pool->parallel_for(cols, 1, [&](int64_t s, int64_t e) {
      block(ta, 0, M, s * 64, std::min(N, e * 64), K, A, lda, B, ldb, C, ldc);
    }, max_threads);
  }
}

AIOV_MULTIVERSION void epilogue(float* __restrict c, int64_t n, const float* __restrict bias, bool relu) {
  if (bias) for (int64_t j = 0; j < n; ++j) c[j] += bias[j];
  if (relu) for (int64_t j = 0; j < n; ++j) c[j] = c[j] > 0 ? c[j] : 0.0f;
}

}  // namespace

PackedB::PackedB(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb) : K_(K), N_(N), data_(K * N) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) data_[k * N + n] = trans_b ? B[n * ldb + k] : B[k * ldb + n];
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads) {
  if (M <= 0 || N <= 0) return;
  std::vector<float> tmp_b, tmp_c;
  const float* Bn = B;
  int64_t ldbn = ldb;
  if (tb) {
    tmp_b.resize(K * N);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) tmp_b[k * N + n] = B[n * ldb + k];
    Bn = tmp_b.data();
    ldbn = N;
  }
  if (beta == 0.0f && alpha == 1.0f) {
    run(ta, M, N, K, A, lda, Bn, ldbn, C, ldc, pool, max_threads);
    return;
  }
  tmp_c.resize(M * N);
  run(ta, M, N, K, A, lda, Bn, ldbn, tmp_c.data(), N, pool, max_threads);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float v = alpha * tmp_c[m * N + n];
      C[m * ldc + n] = beta == 0.0f ? v : v + beta * C[m * ldc + n];
    }
}

void sgemm_packed(bool ta, int64_t M, const float* A, int64_t lda, const PackedB& B, const float* bias, bool relu,
                  float* C, int64_t ldc, ThreadPool* pool, int max_threads) {
  run(ta, M, B.N(), B.K(), A, lda, B.data(), B.N(), C, ldc, pool, max_threads);
  if (bias || relu)
    for (int64_t m = 0; m < M; ++m) epilogue(C + m * ldc, B.N(), bias, relu);
}

const char* gemm_isa() { return "portable"; }

}  // namespace aiov
