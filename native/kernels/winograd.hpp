// Winograd F(2x2, 3x3) convolution on NHWC f32 data at stride 1. Each 2x2 block of outputs
// is made from a transformed 4x4 input tile with 16 products per (input, output) channel
// pair instead of the 36 of the direct form. The products are GEMMs (tiles x C times C x O)
// on the packed-weight GEMM; the transforms are additions. (A stride-2 form on 5x5 tiles,
// 25 products, measured slower than the direct paths and was removed.)
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/epilogue.hpp"
#include "kernels/gemm.hpp"
#include "kernels/nhwc_window.hpp"

namespace aiov {

class ThreadPool;

// The 16 transformed filter matrices U = G f G^T of a 3x3 filter bank, each [C, O] packed
// for the GEMM. They do not depend on the input size, so every plan of a model shares them.
struct WinogradFilters {
  // filters: [O, C, 3, 3] (OIHW), output channel o's times scale[o] when scale is given.
  WinogradFilters(int64_t C, int64_t O, const float* filters, const std::vector<float>& scale = {});
  WinogradFilters() = default;  // empty, for load
  std::vector<std::unique_ptr<PackedB>> u;
  // Whether these are the 16 matrices [C, O] of a bank of O filters over C channels (checked
  // before use when they were read from a blob).
  bool fits(int64_t C, int64_t O) const;
};

class Winograd2x3 {
 public:
  // Whether the transform pays for a 3x3, stride-1, undilated, ungrouped convolution of
  // this geometry with O output channels: enough tiles and channels to amortise the
  // transforms, and transformed weights (16/9 of the filters) that still stream from cache.
  static bool worthwhile(const Window2d& g, int64_t O);

  // filters: made from the conv's [O, g.C, 3, 3] weights.
  Winograd2x3(const Window2d& g, int64_t O, std::shared_ptr<const WinogradFilters> filters);

  // y [N, OH, OW, O] = epilogue(conv(x [N, H, W, C])); y must not overlap x.
  void run(const float* x, const Epilogue& e, float* y, ThreadPool* pool, int max_threads) const;

 private:
  void block(const float* x, int64_t t0, int64_t count, const Epilogue& e, float* y) const;

  Window2d g_;
  int64_t O_, tiles_y_, tiles_x_, tiles_;
  std::shared_ptr<const WinogradFilters> filters_;
};

}  // namespace aiov
