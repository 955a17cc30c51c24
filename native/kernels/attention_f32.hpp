// Attention heads in f32: softmax(scale * Q K^T + bias) V of one (batch, head) at a time.
// Through the generic GEMM each head paid two drivers' set-up (blocking, packing, dispatch)
// for products of a few thousand FMAs (ViT's and wav2vec2's heads of 17-39 tokens x 16), more
// than the arithmetic. On AVX-512 a head is one kernel (attention_f32_avx512.cpp): K^T packed
// once per head (scaled) into 16-key panels, then per block of query rows the scores in
// registers, stored to an L1 block, masked and exponentiated in place, multiplied by V read
// straight from its rows, and each output row divided by its sum. Elsewhere, and for heads
// of fewer than D / 8 query rows (see F32Attention::F32Attention), the two generic products
// with the softmax rows between them.
#pragma once
#include <cstdint>

#include "kernels/attention_bf16.hpp"  // AttentionHead, AttentionBias: the one head interface
#include "kernels/gemm.hpp"            // GemmPrecision

namespace aiov {

namespace attention_f32_detail {
// The fused head's shape and scratch: k_panels holds K^T, scaled, as ceil(Sk / 16) panels of
// D rows of 16 keys (lanes past Sk zeros), scores kRowBlock rows of ld_scores floats (Sk
// rounded up to 16).
struct HeadShape {
  int64_t sq, sk, d, dv;
  float scale;
  float* k_panels;
  float* scores;
  int64_t ld_scores;
};
constexpr int64_t kRowBlock = 8;    // query rows whose scores are made together
constexpr int64_t kPanelKeys = 16;  // keys per panel of K^T: one zmm of scores
using HeadFn = void (*)(const HeadShape& shape, const AttentionHead& h, const AttentionBias& bias);
HeadFn avx512_head();  // null when built without AVX-512 (attention_f32_avx512.cpp)
}  // namespace attention_f32_detail

// One thread's run of heads of one shape and its scratch. Not shared between threads.
// products: GemmPrecision::f16 under an f16 hint, whose heads take the generic products in
// f16 (the fused kernel is f32 only); any other value means f32.
class F32Attention {
 public:
  F32Attention(int64_t Sq, int64_t Sk, int64_t D, int64_t Dv, float scale, GemmPrecision products);
  F32Attention(const F32Attention&) = delete;
  F32Attention& operator=(const F32Attention&) = delete;

  // next (the head this thread runs after this one) is taken for the op's one head loop and
  // not used: prefetching its rows, as the bf16 heads do, measured slower here (up to a fifth
  // on one-row heads) and never faster.
  void head(const AttentionHead& h, const AttentionBias& bias, const AttentionHead* next = nullptr);

 private:
  attention_f32_detail::HeadShape shape_;
  attention_f32_detail::HeadFn fused_;  // null: the generic products
  GemmPrecision products_;
};

}  // namespace aiov
