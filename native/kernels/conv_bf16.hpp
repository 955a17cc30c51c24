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

// Values per tap the direct kernel reads at most (the zeros a padding tap reads).
constexpr int64_t kBf16DirectMaxRun = 4096;

// Whether the direct kernel runs here: bf16 products on the avx512_bf16 set (not AMX, whose
// tiles take the GEMM path, nor the portable loops).
bool bf16_direct_conv_available();

// Whether the direct kernel applies activation `act` in its registers (none, ReLU, clamp,
// HardSwish, Sigmoid, Swish); others take a pass over each finished block.
bool bf16_direct_conv_merges(const Activation& act);

// Whether an NHWC window of `group` groups takes it with the GEMM's weights: an even channel
// count per group (a tap is then whole channel pairs), at most kBf16DirectMaxRun.
bool bf16_direct_conv_fits(const Window2d& g, int64_t group = 1);

// y[i] = x[i] rounded to bf16 (nearest even, NaN kept), i < count, on the bf16 set's converter.
void round_to_bf16(const float* x, int64_t count, uint16_t* y);

// x's count values rounded to bf16 in a buffer of the calling thread's that lives until its
// next call (a grouped convolution's input, rounded once for all its groups).
const uint16_t* bf16_rounded_copy(const float* x, int64_t count, ThreadPool* pool, int max_threads);

// y = epilogue(conv(x, B)) for NHWC x (g.N x g.H x g.W x g.C), each of the g.kh x g.kw taps
// reading `run` consecutive values from value c0 of its pixel on: g.C (the pixel's channels,
// c0 = 0), a group's channels (c0 its first), or more (with g.kw = 1, a kernel row of pixels of
// an image padded so that no window leaves it). B: the weights packed in bf16 ([K, O], K
// ordered (tap, value), each tap's run padded with a zero weight to an even count: K = taps x
// (run + run % 2)). x is given as bf16 (x16) or f32 (x, rounded to bf16 once per call: a
// grouped caller rounds it once for all groups); the output is f32 (y) or bf16 (y16), O values
// of each pixel's ldy (a group's outputs among all). The residual is e's (f32) or residual16
// (bf16, e.ld_residual values apart, e.residual null): a region carrying bf16 through a
// residual block. Either may be the output itself (ld_residual == ldy). Throws
// std::logic_error when the kernel is not available or B does not match.
void conv_bf16_direct(const Window2d& g, int64_t run, int64_t c0, const float* x, const uint16_t* x16, const PackedB& B,
                      const Epilogue& e, const uint16_t* residual16, float* y, uint16_t* y16, int64_t ldy,
                      ThreadPool* pool, int max_threads);

// Whether a depthwise convolution writing bf16 merges its activation `act` (none, ReLU or clamp:
// the only ones carried in bf16 out of a depthwise convolution).
bool bf16_depthwise_merges(const Activation& act);

// Whether a depthwise convolution over bf16 data with a kh x kw window (dilations dh, dw, stride
// sw across) takes the channel-pair runs here: an AVX-512 bf16 set (avx512_bf16, amx) and an
// undilated 3x3 at stride 1 or 2 across. Each loaded zmm is then 32 channels, widened by one
// op per 16, and the runs beat the f32 kernel on f32 data even at stride 1.
bool bf16_depthwise_pairs(int64_t kh, int64_t kw, int64_t sw, int64_t dh, int64_t dw);

// A depthwise convolution over NHWC data (g.C channels, one per group and output), reading f32
// (x) or bf16 (x16), writing f32 (y) or bf16 (y16, only with an activation that
// bf16_depthwise_merges), the weights w as depthwise_conv_nhwc takes them ([taps, C]), in f32
// products. Where the bf16 kernels are AVX-512 ones (avx512_bf16, amx), one pass converting
// bf16 as it loads and stores; elsewhere the f32 depthwise kernel between widening and
// rounding copies. The residual may be y itself (ld_residual == C).
void depthwise_conv_bf16(const Window2d& g, const float* x, const uint16_t* x16, const float* w, const Epilogue& e,
                         float* y, uint16_t* y16, ThreadPool* pool, int max_threads);

// The NCHW f32 image x (g.N x g.C x g.H x g.W) as NHWC bf16 with zero borders: g.ph rows above
// and `bottom` below, g.pw pixels left and `right` right. In a buffer of the calling thread's
// that lives until its next call.
const uint16_t* padded_channels_last_bf16(const Window2d& g, int64_t bottom, int64_t right, const float* x,
                                          ThreadPool* pool, int max_threads);

// The same of an NHWC image, f32 (x, rounded) or bf16 (x16, copied): a window over few
// channels then reads each kernel row, kw pixels x C channels contiguous there, as one tap.
const uint16_t* padded_nhwc_bf16(const Window2d& g, int64_t bottom, int64_t right, const float* x, const uint16_t* x16,
                                 ThreadPool* pool, int max_threads);

}  // namespace aiov
