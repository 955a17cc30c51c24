// f16 products: the portable kernel set (the reference the AVX512-FP16 kernels are tested
// against), the f16 packing of B and the choice of kernels (sgemm_f16 is beside sgemm_bf16).
#include "kernels/gemm_f16.hpp"

#include <algorithm>

#include "kernels/gemm_driver.hpp"
#include "kernels/isa.hpp"
#include "kernels/scalar.hpp"

namespace aiov {
namespace gemm_detail {
namespace {

void convert_portable(const float* src, int64_t n, float scale, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half(scale == 1.0f ? src[i] : scale * src[i]);
}

constexpr int kPortableMR = 4;

void tile_portable(const Bf16Tile& t) {
  const Tile& o = t.out;
  float acc[kPortableMR][kBf16TileCols] = {};
  for (int64_t k = 0; k < t.kp; ++k)
    for (int r = 0; r < o.rows; ++r) {
      const float av = half_to_float(t.a[r * t.lda + k]);
      for (int j = 0; j < o.cols; ++j) {
        const uint16_t* panel = t.b + (j / kBf16PanelCols) * t.b_panel_stride;
        acc[r][j] += av * half_to_float(panel[k * kBf16PanelCols + j % kBf16PanelCols]);
      }
    }
  for (int r = 0; r < o.rows; ++r)
    for (int j = 0; j < o.cols; ++j) merge_value(o, r, j, acc[r][j]);
}

const Bf16KernelSet kPortableF16{"scalar", kPortableMR, &tile_portable, &convert_portable, nullptr, nullptr};

const Bf16KernelSet* choose_f16_kernels() {
  if (selected_f16_isa() == F16Isa::avx512_fp16)
    if (const Bf16KernelSet* k = avx512_fp16_kernels()) return k;
  return &kPortableF16;
}

}  // namespace

const Bf16KernelSet& portable_f16_kernels() { return kPortableF16; }

const Bf16KernelSet& f16_kernels() {
  static const Bf16KernelSet* chosen = choose_f16_kernels();  // once; thread-safe static init
  return *chosen;
}

void pack_b_f16(bool trans_b, const float* B, int64_t ldb, int64_t K, int64_t N, int64_t kp, uint16_t* dst) {
  const int64_t panels = ceil_div(N, kBf16PanelCols);
  std::fill(dst, dst + panels * kp * kBf16PanelCols, uint16_t{0});
  for (int64_t p = 0; p < panels; ++p) {
    uint16_t* panel = dst + p * kp * kBf16PanelCols;
    const int64_t n0 = p * kBf16PanelCols;
    const int cols = (int)std::min<int64_t>(kBf16PanelCols, N - n0);
    for (int64_t k = 0; k < K; ++k)
      for (int j = 0; j < cols; ++j)
        panel[k * kBf16PanelCols + j] = float_to_half(trans_b ? B[(n0 + j) * ldb + k] : B[k * ldb + n0 + j]);
  }
}

}  // namespace gemm_detail

using namespace gemm_detail;

const char* gemm_f16_isa() { return f16_kernels().name; }

}  // namespace aiov
