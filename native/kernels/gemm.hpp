// f32 GEMM entry points used by MatMul (and later Conv/Gemm).
#pragma once
#include <cstdint>
#include <vector>

namespace aiov {

class ThreadPool;

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C (beta == 0: C is not read).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
           float* C, int64_t ldc, ThreadPool* pool, int max_threads = 0);

// B packed once (weights known at compile time) and reused by every call.
class PackedB {
 public:
  PackedB(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb);
  int64_t K() const { return K_; }
  int64_t N() const { return N_; }
  const float* data() const { return data_.data(); }
 private:
  int64_t K_, N_;
  std::vector<float> data_;  // K x N row-major
};

// C[M,N] = op(A) * B (+ bias[N]) (then ReLU if asked).
void sgemm_packed(bool trans_a, int64_t M, const float* A, int64_t lda, const PackedB& B,
                  const float* bias, bool relu, float* C, int64_t ldc, ThreadPool* pool, int max_threads = 0);

// Which instruction set the GEMM dispatcher picked ("avx512", "avx2", "scalar").
const char* gemm_isa();

}  // namespace aiov
