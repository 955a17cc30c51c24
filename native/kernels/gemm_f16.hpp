// f16 products (INFERENCE_PRECISION_HINT f16): the bf16 driver (gemm_bf16.hpp) runs them with
// A rounded to f16 a block of rows at a time, B packed in f16 once, and these kernels.
// Accumulation is f32, as oneDNN's brgemm does on AVX512-FP16 without AMX-FP16 (it widens
// f16 operands with VCVTPH2PSX and multiplies in f32): VFMADDPH's f16 accumulators would
// double the throughput but round every partial sum to 11 bits and overflow past 65504.
// Not for use outside native/kernels/gemm*.
#pragma once
#include <cstdint>

#include "kernels/gemm_bf16.hpp"

namespace aiov {
namespace gemm_detail {

// f16 B panels: kBf16PanelCols columns, K padded with zeros to kBf16KStep (bf16_padded_k),
// stored k-major: element (k, j) at panel[k * 16 + j] (one ymm of f16 per k). The driver
// steps through them as through bf16 panels (same sizes and strides).
// A rows (Bf16Tile::a) hold f16 bits; the kernel set's convert rounds f32 to f16 (nearest even).

// Null when the CPU file was built without AVX512-FP16 (non-x86, compilers without -mavx512fp16).
const Bf16KernelSet* avx512_fp16_kernels();
const Bf16KernelSet& portable_f16_kernels();

// The set for selected_f16_isa() (the portable one when its file lacks it); chosen once.
const Bf16KernelSet& f16_kernels();

// op(B) [K, N] as f16 panels (layout above) at dst: ceil(N / 16) panels of kp * 16 values.
void pack_b_f16(bool trans_b, const float* B, int64_t ldb, int64_t K, int64_t N, int64_t kp, uint16_t* dst);

}  // namespace gemm_detail
}  // namespace aiov
