// Direct bf16 convolution (INFERENCE_PRECISION_HINT bf16 on AVX512_BF16 without AMX): an NHWC
// convolution of one group summed tap by tap from the input pixels where they lie, as
// oneDNN's brgconv does, instead of copying im2col rows into the GEMM's blocks. Each channel
// pair of a tap is one VDPBF16PS step, so K is not padded (a 1x1 over 16 channels runs 8
// pair steps, where the GEMM's K padded to 32 ran 16).
#pragma once
#include <cstdint>

#include "kernels/epilogue.hpp"
#include "kernels/gemm.hpp"
#include "kernels/nhwc_window.hpp"

namespace aiov {

class ThreadPool;

// Channels per tap the direct kernel takes: an even count (a tap is then whole channel
// pairs), at most kBf16DirectMaxChannels (the zeros a padding tap reads).
constexpr int64_t kBf16DirectMaxChannels = 4096;

// Whether the direct kernel runs here: bf16 products on the avx512_bf16 set (not AMX, whose
// tiles take the GEMM path, nor the portable loops).
bool bf16_direct_conv_available();

// Whether a window over C channels (one group) takes it.
bool bf16_direct_conv_fits(const Window2d& g);

// y = epilogue(conv(x, B)) for NHWC x (g.N x g.H x g.W x g.C) and weights B packed in bf16
// ([K, O], K ordered (ky, kx, c)). x is given as bf16 (x16) or f32 (x, rounded to bf16 once
// per call); the output is f32 (y) or bf16 (y16), O values per pixel. The residual may be y
// itself (ld_residual == O). Throws std::logic_error when !bf16_direct_conv_fits(g) or B
// does not match.
void conv_bf16_direct(const Window2d& g, const float* x, const uint16_t* x16, const PackedB& B, const Epilogue& e,
                      float* y, uint16_t* y16, ThreadPool* pool, int max_threads);

}  // namespace aiov
