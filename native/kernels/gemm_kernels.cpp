// Which micro-kernel set the GEMM runs: the one for selected_isa(), and for weights the
// panel width decides.
#include "kernels/gemm_kernels.hpp"

#include <stdexcept>

#include "kernels/isa.hpp"

namespace aiov {
namespace gemm_detail {
namespace {

const KernelSet* choose_kernels() {
  const Isa isa = selected_isa();
  (void)isa;
#if defined(AIOV_X86)
  if (isa == Isa::avx512)
    if (const KernelSet* k = avx512_kernels()) return k;
  if (isa >= Isa::avx2)
    if (const KernelSet* k = avx2_kernels()) return k;
#endif
  return &portable_kernels();
}

}  // namespace

const KernelSet& kernels() {
  static const KernelSet* chosen = choose_kernels();  // once; thread-safe static init
  return *chosen;
}

const KernelSet& kernels_for_weights(int64_t N, int64_t rows_hint) {
  const KernelSet& ks = kernels();
  if (ks.wide && rows_hint >= 512 && N <= 2 * ks.wide->nr && N % ks.wide->nr == 0) return *ks.wide;
  return ks;
}

const KernelSet& kernels_for_panels(int width) {
  const KernelSet& ks = kernels();
  if (width == ks.nr) return ks;
  if (ks.wide && width == ks.wide->nr) return *ks.wide;
  throw std::logic_error("PackedB was packed for a different GEMM kernel");
}

}  // namespace gemm_detail

const char* gemm_isa() { return gemm_detail::kernels().name; }

}  // namespace aiov
