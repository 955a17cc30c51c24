// Attention heads in bf16 (INFERENCE_PRECISION_HINT bf16): softmax(scale * Q K^T + bias) V of
// one (batch, head) at a time, both products on the bf16 kernels the GEMMs use (AMX tiles,
// AVX512_BF16 dot products or the portable loops: gemm_bf16_isa()). Per head, K and V are
// rounded to bf16 and laid out as B panels once, each block of query rows is rounded once
// (scaled on the way), the scores stay f32 for the bias and the softmax, and the
// probabilities are rounded straight into the rows of the second product. Through the generic
// bf16 GEMM each product packed its B on the heap with scalar rounding, per call.
#pragma once
#include <cstdint>
#include <functional>

namespace aiov {

namespace gemm_detail {
struct Bf16KernelSet;
struct Bf16AttentionKernels;
}  // namespace gemm_detail

// One head's operands, in f32: Q [Sq, D], K [Sk, D] and V [Sk, Dv] rows ldq/ldk/ldv floats
// apart (a head inside [batch, seq, heads, size] reads with ld = heads * size), and where its
// result O [Sq, Dv] goes, rows ldo apart.
struct AttentionHead {
  const float* q;
  int64_t ldq;
  const float* k;
  int64_t ldk;
  const float* v;
  int64_t ldv;
  float* out;
  int64_t ldo;
};

// Turns the scores of query rows [row0, row0 + rows) (Sk f32 values each, ld apart, already
// scaled) into probabilities in place: the bias (mask) added, then the softmax.
using AttentionRowsFn = std::function<void(int64_t row0, int64_t rows, float* scores, int64_t ld)>;

// The bias a head's scores get before the softmax (aiov.Attention's mask): row i's is at
// rows + i * row_step, one value per key (per_key) or one for the whole row. rows null: none.
struct AttentionBias {
  const float* rows = nullptr;
  int64_t row_step = 0;
  bool per_key = true;
};

// One thread's run of heads of one shape: its scratch, and for AMX the tile configuration,
// held from construction to destruction. Not shared between threads.
class Bf16Attention {
 public:
  Bf16Attention(int64_t Sq, int64_t Sk, int64_t D, int64_t Dv, float scale);
  ~Bf16Attention();
  Bf16Attention(const Bf16Attention&) = delete;
  Bf16Attention& operator=(const Bf16Attention&) = delete;

  // next: the head this thread runs after this one, if any (its operands are prefetched).
  void head(const AttentionHead& h, const AttentionRowsFn& to_probabilities, const AttentionHead* next = nullptr);
  // The same with the bias added and the softmax taken here: on AVX-512 in one fused pass
  // that also rounds the probabilities.
  void head(const AttentionHead& h, const AttentionBias& bias, const AttentionHead* next = nullptr);

 private:
  // The operands of h packed into k_panels_ and v_panels_; the next head's asked for.
  void pack(const AttentionHead& h, const AttentionHead* next);
  // Rows [row0, row0 + rows): Q rounded and multiplied by K^T into scores_.
  void scores(const AttentionHead& h, int64_t row0, int64_t rows);

  const gemm_detail::Bf16KernelSet& ks_;
  const gemm_detail::Bf16AttentionKernels* fused_;  // null: the portable steps
  int64_t sq_, sk_, d_, dv_;
  float scale_;
  int64_t row_block_;      // query rows per block: whole tiles, at most kRowBlock
  int64_t kp_d_, kp_s_;    // D and Sk padded to the kernels' K step: the two products' depths
  int64_t ld_q_, ld_p_;    // elements between rounded rows of Q and of the probabilities
  uint16_t* k_panels_;     // K^T as ceil(Sk / 16) panels of kp_d_ x 16
  uint16_t* v_panels_;     // V as ceil(Dv / 16) panels of kp_s_ x 16
  uint16_t* q_rows_;       // a block of query rows, rounded and scaled
  uint16_t* p_rows_;       // their probabilities, rounded
  float* scores_;          // their scores, f32
  int64_t dv_padded_;      // Dv rounded up to whole panels
  uint16_t* row_scratch_;  // rounded rows of K (or two of V) before they are spread over the panels
};

}  // namespace aiov
