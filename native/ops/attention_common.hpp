// What the attention-family ops (Attention, LinearAttention, CausalConvWithState and the decoder
// blocks around them) share: how an omitted optional input reaches them, the float types their
// f32 kernels run through widened<>, and arithmetic on dims that may be unknown.
#pragma once
#include <vector>

#include "plan/registry.hpp"

namespace aiov {

// An optional input omitted before given ones arrives as an empty [0] tensor from the frontend.
inline bool omitted_input(const Dims& shape) { return shape.size() == 1 && shape[0] == 0; }
inline bool input_given(const std::vector<PortInfo>& in, size_t i) {
  return i < in.size() && !(in[i].shape.rank_known && omitted_input(in[i].shape.dims));
}
inline bool input_given(const std::vector<TensorView>& in, size_t i) {
  return i < in.size() && !omitted_input(in[i].shape);
}

// f16 and bf16 are widened to f32 around the kernel (widened<>).
inline bool widenable_float(ElementType t) {
  return t == ElementType::f32 || t == ElementType::f16 || t == ElementType::bf16;
}

// Dims of inferred shapes: unknown (kDynamic) when an operand is.
inline int64_t dim_sum(int64_t a, int64_t b) { return a < 0 || b < 0 ? kDynamic : a + b; }
inline int64_t dim_div(int64_t a, int64_t b) { return a < 0 || b <= 0 ? kDynamic : a / b; }
inline int64_t dim_mul(int64_t a, int64_t b) { return a < 0 || b < 0 ? kDynamic : a * b; }

}  // namespace aiov
