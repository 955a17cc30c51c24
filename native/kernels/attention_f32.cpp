#include "kernels/attention_f32.hpp"

#include <algorithm>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/gemm_kernels.hpp"
#include "kernels/gemm_pack.hpp"
#include "kernels/isa.hpp"
#include "kernels/softmax_row.hpp"

namespace aiov {

using namespace attention_f32_detail;

F32Attention::F32Attention(int64_t Sq, int64_t Sk, int64_t D, int64_t Dv, float scale, GemmPrecision products)
    : fused_(nullptr), products_(products == GemmPrecision::f16 ? products : GemmPrecision::f32) {
  shape_ = HeadShape{Sq, Sk, D, Dv, scale, nullptr, nullptr, 0};
  thread_local std::vector<float> panels, scores;
  // K^T's panels (16 x 16 transposes) cost about what the fused scores of D / 8 query rows
  // do; with fewer rows the generic products, which read K where it lies, are the faster
  // (one thread, 12 heads of 128 keys x 64: 1 row 13 us against 25 fused, 4 rows 29 against
  // 32, 8 rows 51 against 48). With no keys each output row is an empty sum (zeros), which
  // the generic products give.
  const bool fusable = products_ == GemmPrecision::f32 && Sk > 0 && Sq * 8 >= D;
  if (fusable && selected_isa() == Isa::avx512) fused_ = avx512_head();
  if (fused_) {
    shape_.ld_scores = (Sk + kPanelKeys - 1) / kPanelKeys * kPanelKeys;
    // Zeroed: the last panel's lanes past Sk are never written and multiply as zeros.
    panels.assign((size_t)(shape_.ld_scores * std::max<int64_t>(D, 1)), 0.0f);
    scores.resize((size_t)(kRowBlock * shape_.ld_scores));
  } else {
    shape_.ld_scores = Sk;
    scores.resize((size_t)std::max<int64_t>(Sq * Sk, 1));
  }
  shape_.k_panels = panels.data();
  shape_.scores = scores.data();
}

void F32Attention::head(const AttentionHead& h, const AttentionBias& bias, const AttentionHead*) {
  const HeadShape& s = shape_;
  if (fused_) {
    // K^T through the GEMM's in-register transposes, 16 keys (one panel) at a time: masked
    // gathers per panel row were ~10% slower on Zen 4's small heads.
    const gemm_detail::KernelSet& ks = gemm_detail::kernels();
    for (int64_t n0 = 0; n0 < s.sk; n0 += kPanelKeys)
      gemm_detail::transpose_pack(ks, (int)std::min(kPanelKeys, s.sk - n0), s.d, h.k + n0 * h.ldk, h.ldk, s.scale,
                                  s.k_panels + n0 * s.d, kPanelKeys);
    return fused_(s, h, bias);
  }
  gemm(products_, false, true, s.sq, s.sk, s.d, s.scale, h.q, h.ldq, h.k, h.ldk, 0.0f, s.scores, s.sk, nullptr);
  for (int64_t i = 0; i < s.sq; ++i) {
    float* row = s.scores + i * s.sk;
    const float* b = bias.rows ? bias.rows + i * bias.row_step : nullptr;
    if (b && bias.per_key) {
      for (int64_t j = 0; j < s.sk; ++j) row[j] += b[j];
    } else if (b) {
      for (int64_t j = 0; j < s.sk; ++j) row[j] += b[0];
    }
    softmax_row(row, row, s.sk);
  }
  gemm(products_, false, false, s.sq, s.dv, s.sk, 1.0f, s.scores, s.sk, h.v, h.ldv, 0.0f, h.out, h.ldo, nullptr);
}

}  // namespace aiov
