// Depthwise 8-bit integer convolution (one filter per channel, MobileNet's 3x3 stride 1 and 2)
// and its narrow-group kin (groups of 2, 4, 8 or 16 channels in and as many out: ResNeXt,
// RegNet) on channels-last u8 images: every output pixel sums its taps' values times the
// s32 weights, vectorized over output channels (AVX512-VNNI: VPDPBUSD on 4 kernel rows at
// once where the weights fit s8, else VPDPWSSD, 16 channels a step, each lane's group inputs
// brought to it by a lane permute, 4 at once by VPDPBUSD for groups of 4 to 16 whose weights
// fit s8; or portable loops), then writes
// s32, f32 or requantized u8. The zero points are folded in by the caller: weights are
// w - w_zero, padding reads the data's zero point, and `channel_add` takes out
// data_zero * sum of the weights, so sums are exact in s32.
#pragma once
#include <cstdint>
#include <vector>

namespace aiov {

struct DepthwiseInt8 {
  int64_t channels = 0;
  int64_t group_width = 1;  // channels per group, in and out: 1 (depthwise), 2, 4, 8 or 16
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  const uint8_t* image = nullptr;  // [in_h, in_w, channels], u8 (signed data shifted by 128)
  uint8_t pad = 0;                 // the padding byte, in the image's u8 domain
  // [kernel_h * kernel_w, group_width, channels]: (t, i, o) weighs input channel
  // o - o % group_width + i under tap t for output channel o; w - w_zero.
  const int32_t* weights = nullptr;
  const int32_t* channel_add = nullptr;  // [channels], added to every sum
  // The weights as depthwise_int8_row_weights packs them for the VNNI kernel that takes 4
  // kernel rows a byte each (VPDPBUSD), or null (that kernel does not apply).
  const int8_t* row_weights = nullptr;
  // Groups of 4, 8 or 16 channels whose weights all fit s8, as depthwise_int8_quad_weights
  // packs them for the VNNI kernel that takes 4 group inputs a byte each (VPDPBUSD), or null.
  const int32_t* quad_weights = nullptr;
  // Output element (c, oy, ox) at out[c * channel_stride + (oy * out_w + ox) * pixel_stride],
  // one of the two strides 1 (NCHW: pixel_stride 1; NHWC: channel_stride 1).
  int32_t* out_i32 = nullptr;  // the sum as it is, or
  float* out_f32 = nullptr;    // y = float(sum) * scale[c] + bias[c] (then max(0, y) with relu), or
  uint8_t* out_u8 = nullptr;   // y requantized as aiov.Quantize does it (out_scale, out_zero)
  int64_t channel_stride = 0, pixel_stride = 0;
  const float* scale = nullptr;  // [channels]
  const float* bias = nullptr;   // [channels] or null
  bool relu = false;
  float out_scale = 1.0f;
  int32_t out_zero = 0;
};

// The work cut into units for a pool: output rows or, when there are few rows and the
// kernel writes a channels-last output itself, rows x blocks of channels (so both cores have
// work on a 7x7 image).
int64_t depthwise_int8_units(const DepthwiseInt8& p);
// Units [u0, u1).
void depthwise_int8_run(const DepthwiseInt8& p, int64_t u0, int64_t u1);

// Depthwise windows whose weights (w - w_zero) all fit s8, `kernel_w` 3, 5 or 7 taps wide,
// undilated along the width, stride 1 or 2 along it, on AVX512-VNNI: each 64-channel vector of
// an input column holds 4 kernel rows' bytes per channel (permuted channels, the order the
// byte and word unpacks leave), so one VPDPBUSD adds 4 taps, and each column serves every
// output pixel of the row whose window holds it. 16 or 32 channels at stride 1 take 4 or 2
// neighbouring pixels per vector. The weights [channels, kernel_h * kernel_w] as s32 (p.weights'
// [taps, channels] layout), packed for that kernel; empty where it does not apply (or the CPU
// lacks it).
std::vector<int8_t> depthwise_int8_row_weights(const int32_t* weights, int64_t channels, int64_t group_width,
                                               int64_t kernel_h, int64_t kernel_w, int64_t stride_w,
                                               int64_t dilation_w);

// Groups of 4, 8 or 16 channels (group_width) whose weights (w - w_zero, p.weights' layout) all
// fit s8, on AVX512-VNNI: dword (t, q, o) holds the weights of output channel o for its group's
// inputs 4 q .. 4 q + 3 under tap t, a byte each ([taps, group_width / 4, channels]), so one
// VPDPBUSD adds 4 of a group's inputs. Empty where it does not apply (or the CPU lacks it).
std::vector<int32_t> depthwise_int8_quad_weights(const int32_t* weights, int64_t channels, int64_t group_width,
                                                 int64_t taps);

// The kernels depthwise sums run on: "avx512_vnni" or "scalar" (AIOV_INT8_ISA lowers it).
const char* depthwise_int8_isa();

namespace depthwise_detail {

struct DepthwiseKernels {
  const char* name;  // int8_isa_name of its ISA
  // Sums of `count` pixels, all channels, to acc [count, channels]: pixel i's tap t at
  // taps[t] + i * step (bytes).
  void (*pixels)(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int32_t* acc);
  // The same sums of channels [c0, c1) (c0 a multiple of 16) through the epilogue straight
  // into a channels-last output (channel_stride 1): pixel i's channels from element out_at +
  // i * pixel_stride. Null where the driver goes through `pixels` and `dequantize` instead.
  void (*pixels_nhwc)(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int64_t out_at,
                      int64_t c0, int64_t c1);
  // y[c] = float(sums[c]) * scale[c] + bias[c] (relu) for one pixel's channels (no FMA: the
  // same f32 values as the portable path, which requantization depends on).
  void (*dequantize)(const DepthwiseInt8& p, const int32_t* sums, float* y);
  // Output rows [oy0, oy1) of channels [c0, c1) (c0 a multiple of 64) on the row kernel into a
  // channels-last output, taps outside the image reading `padding` (at least (out_w *
  // stride_w + kernel_w + 1) * channels + 64 bytes of the padding byte), where
  // row_kernel_applies. Null without that kernel.
  void (*rows_nhwc)(const DepthwiseInt8& p, int64_t oy0, int64_t oy1, int64_t c0, int64_t c1, const uint8_t* padding);
};

// The row kernel's layout: blocks of 64 channels, and per (block, group of 4 kernel rows, kx)
// 256 bytes: lane position q = 16 L + 4 k + j of vector k (dword 4 L + j) holds channel
// 64 block + q, byte r kernel row 4 group + r (0 past the kernel or the channels). A last
// block of 16 or 32 channels holds them 4 or 2 times over (channel 64 block + q % width):
// one vector takes that many neighbouring pixels.
inline int64_t row_block_width(int64_t channels, int64_t c) { return channels - c < 64 ? channels - c : 64; }
inline int64_t row_block_pixels(int64_t channels, int64_t c) {
  const int64_t width = row_block_width(channels, c);
  return width == 16 || width == 32 ? 64 / width : 1;
}

// The row kernel takes these sums: weights packed for it and at most 64 kernel rows.
inline bool row_kernel_applies(const DepthwiseInt8& p) { return p.row_weights && p.kernel_h <= 64; }

// Null when the file was built without the instructions.
const DepthwiseKernels* vnni_depthwise_kernels();

}  // namespace depthwise_detail

}  // namespace aiov
