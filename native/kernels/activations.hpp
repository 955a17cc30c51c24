// Every activation a producing kernel (GEMM, convolution) can fold into its epilogue: its
// kind and its scalar formula on float, with up to two parameters (alpha, beta) that the
// producing op's attributes give (see OpDef::activation in plan/registry.hpp). ActKind,
// the kind names and the epilogue loops are all generated from AIOV_ACTIVATIONS, so adding
// an activation is one functor and one X(...) line here, plus its op in ops/.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/scalar.hpp"

namespace aiov {
namespace act {

// The float formulas of the original activations use the fast approximations (they are
// vectorized in the epilogue loops); the standalone ops keep their own exact functors.
struct None {
  float a, b;
  float operator()(float x) const { return x; }
};
// ReLU and clamp keep NaN: clamp is min(max(x, lo), hi), as ONNX defines it.
struct Relu {
  float a, b;
  float operator()(float x) const { return x < 0.0f ? 0.0f : x; }
};
struct LeakyRelu {
  float a, b;
  float operator()(float x) const { return x > 0.0f ? x : a * x; }
};
struct Clamp {
  float a, b;
  float operator()(float x) const {
    x = x < a ? a : x;
    return x > b ? b : x;
  }
};
struct Sigmoid {
  float a, b;
  float operator()(float x) const { return fast_sigmoid(x); }
};
struct Tanh {
  float a, b;
  float operator()(float x) const { return fast_tanh(x); }
};
struct HSwish {
  float a, b;
  float operator()(float x) const {
    float r = x + 3.0f;
    r = r < 0.0f ? 0.0f : (r > 6.0f ? 6.0f : r);
    return x * r * (1.0f / 6.0f);
  }
};
struct GeluErf {
  float a, b;
  float operator()(float x) const { return 0.5f * x * (1.0f + fast_erf(x * 0.70710678118654752f)); }
};
struct GeluTanh {
  float a, b;
  float operator()(float x) const {
    return 0.5f * x * (1.0f + fast_tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
};
struct Swish {
  float a, b;
  float operator()(float x) const { return x * fast_sigmoid(x); }
};

// Activations whose standalone op uses the same formula: templates over float and double.
// ln(1 + e^x) without overflow for large x.
template <class C>
inline C softplus_of(C x) {
  return x > C(20) ? x : std::log1p(std::exp(x));
}
struct Mish {
  float a, b;
  template <class C>
  C operator()(C x) const {
    return x * std::tanh(softplus_of(x));
  }
};
// alpha = a, gamma = b.
struct Selu {
  float a, b;
  template <class C>
  C operator()(C x) const {
    return C(b) * (x > C(0) ? x : C(a) * (std::exp(x) - C(1)));
  }
};
// alpha = a.
struct Celu {
  float a, b;
  template <class C>
  C operator()(C x) const {
    const C m = C(a) * (std::exp(x / C(a)) - C(1));
    return (x > C(0) ? x : C(0)) + (m < C(0) ? m : C(0));
  }
};
struct Softsign {
  float a, b;
  template <class C>
  C operator()(C x) const {
    return x / (C(1) + std::fabs(x));
  }
};
// alpha (threshold) = a.
struct ThresholdedRelu {
  float a, b;
  template <class C>
  C operator()(C x) const {
    return x > C(a) ? x : C(0);
  }
};
// lambd = a, bias = b.
struct Shrink {
  float a, b;
  template <class C>
  C operator()(C x) const {
    return x < -C(a) ? x + C(b) : (x > C(a) ? x - C(b) : C(0));
  }
};

}  // namespace act

// X(kind, functor): the epilogue activations. `none` must stay first (the default).
// clang-format off
#define AIOV_ACTIVATIONS(X)                                                                              \
  X(none, None) X(relu, Relu) X(leaky_relu, LeakyRelu) X(clamp, Clamp) X(sigmoid, Sigmoid) X(tanh, Tanh) \
  X(hswish, HSwish) X(gelu_erf, GeluErf) X(gelu_tanh, GeluTanh) X(swish, Swish) X(mish, Mish)           \
  X(selu, Selu) X(celu, Celu) X(softsign, Softsign) X(thresholded_relu, ThresholdedRelu) X(shrink, Shrink)
// clang-format on

enum class ActKind : uint8_t {
#define AIOV_ACT_ENUM(kind, F) kind,
  AIOV_ACTIVATIONS(AIOV_ACT_ENUM)
#undef AIOV_ACT_ENUM
};

constexpr const char* kActNames[] = {
#define AIOV_ACT_NAME(kind, F) #kind,
    AIOV_ACTIVATIONS(AIOV_ACT_NAME)
#undef AIOV_ACT_NAME
};
constexpr int kActKindCount = (int)(sizeof(kActNames) / sizeof(kActNames[0]));
static_assert((int)ActKind::none == 0, "an Activation's default kind is none");

}  // namespace aiov
