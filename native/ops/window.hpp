// Sliding-window geometry (strides, dilations, pads, auto_pad) shared by convolution and
// pooling, in every layout: the one place these shape rules live.
#pragma once
#include <cstdint>
#include <vector>

#include "plan/graph.hpp"

namespace aiov {

struct Window {
  std::vector<int64_t> in, out, kernel, stride, dilation, pad_begin, pad_end;
};

// How a pooling window count rounds: down; up (OpenVINO's 'ceil': a last window may start in
// the end padding); up unless the last window would start in the padding ('ceil_torch', as
// PyTorch and ONNX's ceil_mode do).
enum class Rounding { floor, ceil, ceil_torch };
// A pooling node's rounding_type.
Rounding pool_rounding(const Node& n);

// Resolves the node's strides/dilations/pads/auto_pad for spatial input dims `in`.
Window make_window(const Node& n, const std::vector<int64_t>& in, const std::vector<int64_t>& kernel,
                   Rounding rounding = Rounding::floor);

struct AttrSpec;
// The attributes of a sliding window (strides, dilations, pads, auto_pad, layout), as every
// convolution and pooling op declares them.
std::vector<AttrSpec> window_attrs();
// Convolution's `group`: positive, and dividing the data's channels where they are known.
AttrSpec group_attr();

// Every spatial kernel works on 3 spatial dims; 1-D and 2-D windows get leading unit dims.
Window to_3d(Window w);

// Data layouts of image tensors. Models are NCHW; the optimizer runs convolution regions in
// NHWC, where channels are contiguous for the GEMM and the vector loops.
enum class Layout { nchw, nhwc };
Layout layout_of(const Node& n);  // the node's "layout" attribute (default nchw)
// The layout its data input is read in: "input_layout" when given (a convolution may read
// NCHW and write NHWC), else its layout.
Layout input_layout_of(const Node& n);
// [N, C, spatial...] <-> [N, spatial..., C]
Dims to_channels_first(const Dims& d, Layout layout);
Dims from_channels_first(const Dims& d, Layout layout);

// Output shapes (in the node's layout) of a convolution with filters f [O, C/group, k...]
// and data x in its input layout, and of a pooling window; dims stay dynamic where inputs are.
PartialShape conv_output_shape(const Node& n, const PartialShape& x, const PartialShape& f);
PartialShape pool_output_shape(const Node& n, const PartialShape& x);

}  // namespace aiov
