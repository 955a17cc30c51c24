// Sliding-window kernels over NHWC f32 tensors (depthwise convolution, pooling),
// vectorized along the contiguous channel axis, and few-output convolutions of NCHW and NHWC input.
#pragma once
#include <cstdint>

#include "kernels/epilogue.hpp"

namespace aiov {

class ThreadPool;

// Geometry of a 2-D sliding window over NHWC data; pads at the end are implied by OH/OW.
struct Window2d {
  int64_t N, H, W, C;              // input
  int64_t OH, OW;                  // output spatial size (already computed by the caller)
  int64_t kh, kw, sh, sw, dh, dw;  // kernel, stride, dilation (all >= 1)
  int64_t ph, pw;                  // padding at the beginning (top, left), >= 0
};

// y[n, oy, ox, c] = epilogue( sum_{ky,kx} x[n, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw, c] * w[(ky*kw + kx) * C + c] )
// Taps outside the input contribute 0. Epilogue: bias indexed by c ([C]), residual indexed as
// residual[(n*OH*OW + oy*OW + ox) * ld_residual + c], then the activation.
// y must not overlap x or w; it may alias the residual only if ld_residual == C (exactly in place).
void depthwise_conv_nhwc(const Window2d& g, const float* x, const float* w, const Epilogue& e, float* y,
                         ThreadPool* pool, int max_threads);

// Max over the in-bounds taps of each window (padding never wins; a window with no
// in-bounds tap yields -inf).
void max_pool_nhwc(const Window2d& g, const float* x, float* y, ThreadPool* pool, int max_threads);

// Average of each window; count_pad: divide by kh*kw always (ONNX count_include_pad=1),
// otherwise by the number of in-bounds taps (a window with none yields 0).
void avg_pool_nhwc(const Window2d& g, bool count_pad, const float* x, float* y, ThreadPool* pool, int max_threads);

// Output channels planar_conv_few_outputs takes, and the stride of its weights' rows.
constexpr int64_t kPlanarMaxOutputs = 16;
constexpr int64_t kPlanarStride = 16;

// A convolution (one group) of an NCHW image x into NHWC y with O <= kPlanarMaxOutputs
// channels. w holds the filters as one row of kPlanarStride floats (O weights, then zeros)
// per tap, taps ordered (ky, c, kx). Epilogue as for depthwise_conv_nhwc, indexed by output
// channel and pixel.
void planar_conv_few_outputs(const Window2d& g, int64_t O, const float* x, const float* w, const Epilogue& e, float* y,
                             ThreadPool* pool, int max_threads);

// The same for NHWC input x (any C; meant for few channels, where a GEMM's K is short and
// its tiles mostly padding), in `groups` groups of C / groups input channels and O output
// channels each (y has groups * O channels; bias and residual are indexed by them): w holds,
// group after group, one row of kPlanarStride floats per tap, taps ordered (ky, kx, c). y
// must not overlap x or w; it may alias the residual only if ld_residual == groups * O
// (exactly in place: each pixel's residual is read before it is written). ld_y: floats
// between y's pixels when more than groups * O (a Concat's slice), 0 for groups * O.
void nhwc_conv_few_outputs(const Window2d& g, int64_t O, const float* x, const float* w, const Epilogue& e, float* y,
                           ThreadPool* pool, int max_threads, int64_t groups = 1, int64_t ld_y = 0);

}  // namespace aiov
