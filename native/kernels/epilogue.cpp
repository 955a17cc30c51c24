#include "kernels/epilogue.hpp"

#include <stdexcept>

#include "kernels/epilogue_impl.hpp"
#include "kernels/isa.hpp"

namespace aiov {

void apply_epilogue_row(float* y, int64_t n, const float* bias, const float* res, const Activation& act) {
  // Same instruction set as the GEMM kernels (CPUID, capped by AIOV_GEMM_ISA).
  static const epilogue_detail::RowFn row = [] {
    const Isa isa = selected_isa();
    epilogue_detail::RowFn f = nullptr;
    if (isa == Isa::avx512) f = epilogue_detail::avx512_row();
    if (!f && isa >= Isa::avx2) f = epilogue_detail::avx2_row();
    return f ? f : &epilogue_detail::epilogue_row;
  }();
  row(y, n, bias, res, act);
}

void apply_epilogue(float* c, int64_t ldc, int64_t rows, int64_t cols, int64_t row0, int64_t col0, const Epilogue& e) {
  const float* bias = e.bias ? e.bias + col0 : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    const float* res = e.residual ? e.residual + (row0 + r) * e.ld_residual + col0 : nullptr;
    apply_epilogue_row(c + r * ldc, cols, bias, res, e.act);
  }
}

ActKind act_kind_from_name(const std::string& name) {
  for (int i = 0; i < kActKindCount; ++i)
    if (name == kActNames[i]) return (ActKind)i;
  throw std::invalid_argument("unknown fused activation '" + name + "'");
}

const char* act_kind_name(ActKind kind) { return kActNames[(int)kind]; }

}  // namespace aiov
