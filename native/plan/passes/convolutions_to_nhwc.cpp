#include <algorithm>

#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

const char* const kWindowAttrs[] = {"strides", "dilations", "pads_begin", "pads_end"};

// A 1-D convolution's window attributes as a 2-D one's over a height of 1 (one row, no
// padding, stride and dilation 1), or false when they are not one entry each (the op's own
// kernel then reports them).
bool window_as_2d(const Node& conv, Attrs& attrs) {
  for (const char* name : kWindowAttrs) {
    const std::vector<int64_t> along = spatial_ints(conv, name, 1);
    if (along.size() != 1) return false;
    const int64_t height = std::string(name) == "strides" || std::string(name) == "dilations" ? 1 : 0;
    attrs[name] = std::vector<int64_t>{height, along[0]};
  }
  return true;
}

}  // namespace

// 2-D convolutions on f32 NCHW data with constant filters become aiov.FusedConv in NHWC,
// between a transpose of their input and one back. 1-D ones (NCW: audio front ends,
// wav2vec2's positional convolution) take the same kernels as 2-D ones over an image one row
// high: their input and filters gain a unit height, the output loses it again (views, the
// filters' data shared), instead of the generic im2col loops per image and group.
// BatchNorm and per-channel Add/Subtract/Multiply/Divide right after the convolution fold
// into its bias and a per-channel filter scale.
bool convolutions_to_nhwc(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& conv : ctx.order()) {
    if (conv->op != op_name::Convolution || !ctx.live(*conv)) continue;
    const Node* filters = const_of(conv->inputs[1]);
    const PortInfo& xi = conv->inputs[0].node->outputs[conv->inputs[0].index];
    if (!filters || xi.type != ElementType::f32 || !xi.shape.rank_known ||
        (xi.shape.rank() != 4 && xi.shape.rank() != 3) || conv->attr_str("layout", "nchw") != "nchw")
      continue;
    const bool one_d = xi.shape.rank() == 3;
    const Dims fdims = filters->outputs[0].shape.dims;
    Attrs attrs = conv->attrs;
    if (one_d && (fdims.size() != 3 || !window_as_2d(*conv, attrs))) continue;
    const int rank = one_d ? 3 : 4;
    const int64_t O = fdims[0];
    std::vector<float> scale(O, 1.0f), bias(O, 0.0f), vec;
    // Per-channel ops right after the convolution fold into a filter scale and its bias.
    Node* last = conv.get();
    for (Node* u = ctx.sole_user(*last); u; u = ctx.sole_user(*last)) {
      const bool first_in = u->inputs[0].node.get() == last;
      const Value& other = u->inputs.size() > 1 ? u->inputs[first_in ? 1 : 0] : u->inputs[0];
      if (u->op == op_name::BatchNormInference && first_in) {
        std::vector<float> p[4];
        bool ok = true;
        for (int i = 0; i < 4; ++i) ok = ok && channel_vector(u->inputs[i + 1], 1, 0, O, p[i]);
        if (!ok) break;
        const double eps = u->attr_float("epsilon", 1e-5);
        for (int64_t o = 0; o < O; ++o) {  // inputs: gamma, beta, mean, variance
          const float inv = (float)(p[0][o] / std::sqrt((double)p[3][o] + eps));
          scale[o] *= inv;
          bias[o] = (bias[o] - p[2][o]) * inv + p[1][o];
        }
      } else if (kLayoutBlindBinary.count(u->op) && numpy_broadcast(*u) && channel_vector(other, rank, 1, O, vec)) {
        if (u->op == op_name::Add)
          for (int64_t o = 0; o < O; ++o) bias[o] += vec[o];
        else if (u->op == op_name::Subtract && first_in)
          for (int64_t o = 0; o < O; ++o) bias[o] -= vec[o];
        else if (u->op == op_name::Multiply)
          for (int64_t o = 0; o < O; ++o) scale[o] *= vec[o], bias[o] *= vec[o];
        else if (u->op == op_name::Divide && first_in)
          for (int64_t o = 0; o < O; ++o) scale[o] /= vec[o], bias[o] /= vec[o];
        else
          break;
      } else {
        break;
      }
      last = u;
    }
    attrs["layout"] = std::string("nhwc");
    // The filters stay the model's constant, shared with the model rather than copied; the
    // kernel applies the per-channel scale as it rearranges them (see aiov.FusedConv).
    if (std::any_of(scale.begin(), scale.end(), [](float s) { return s != 1.0f; }))
      attrs["filter_scale"] = std::vector<double>(scale.begin(), scale.end());
    Value x = conv->inputs[0], w = conv->inputs[1];
    if (one_d) {  // [N, C, W] as [N, C, 1, W]; filters [O, C/group, k] as [O, C/group, 1, k]
      x = Value{unsqueezed(x, 2), 0};
      w = Value{
          make_constant(ElementType::f32, Dims{fdims[0], fdims[1], 1, fdims[2]}, filters->constant, filters->name), 0};
    }
    NodePtr xt = transposed_to(x, kToNhwc);
    NodePtr fused =
        make_node(op_name::FusedConv, {Value{xt, 0}, w, Value{f32_constant(Dims{O}, bias, conv->name + "/bias"), 0}},
                  attrs, conv->name);
    NodePtr y = to_nchw(fused);
    if (one_d) y = squeezed(Value{y, 0}, 2);
    ctx.replace(Value{PassContext::shared(last), 0}, Value{y, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
