// Elementwise ops: numpy-broadcast binaries and unaries.
#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstring>
#include <limits>
#include <type_traits>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/gelu_row.hpp"
#include "kernels/isa.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

constexpr int64_t kParallelGrain = 1 << 15;  // elements; below this threads cost more than they save

// ---- binary ----------------------------------------------------------------

struct AddF {
  template <class C>
  C operator()(C a, C b) const {
    return a + b;
  }
};
struct SubF {
  template <class C>
  C operator()(C a, C b) const {
    return a - b;
  }
};
struct MulF {
  template <class C>
  C operator()(C a, C b) const {
    return a * b;
  }
};
struct MaxF {
  template <class C>
  C operator()(C a, C b) const {
    return a > b ? a : b;
  }
};
struct MinF {
  template <class C>
  C operator()(C a, C b) const {
    return a < b ? a : b;
  }
};
struct DivF {
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_floating_point<C>::value) {
      return a / b;
    } else {
      // Integer division floors like Python (OpenVINO's pythondiv); x/0 gives 0 instead of a trap.
      if (b == 0) return 0;
      C q = a / b;
      if constexpr (std::is_signed<C>::value)
        if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
      return q;
    }
  }
};
// C-style integer division (ONNX): truncates toward zero.
struct TruncDivF {
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_floating_point<C>::value)
      return a / b;
    else
      return b == 0 ? C(0) : C(a / b);
  }
};
struct PowF {
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_floating_point<C>::value) {
      return std::pow(a, b);
    } else {
      if constexpr (std::is_signed<C>::value)
        if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
      C r = 1;
      for (C e = b, base = a; e > 0; e >>= 1, base *= base)
        if (e & 1) r *= base;
      return r;
    }
  }
};

// Collapsed broadcast geometry: out = rows x inner, each input walks rows with
// per-dimension strides and reads its inner run with stride 0 or 1.
struct BroadcastGeometry {
  int64_t total = 0;
  int64_t inner = 1;
  size_t inputs = 0;
  std::vector<int64_t> inner_step;  // per input: 0 where broadcast, else 1
  Dims outer;                       // collapsed outer dims
  std::vector<int64_t> strides;     // [outer dim][input]: element strides (0 where broadcast)

  // off[i] = where input i's row r starts. N: the input count when known at compile time,
  // so the binary ops' per-row arithmetic unrolls (rows may be only a few elements long).
  template <size_t N = 0>
  void row_offsets(int64_t r, int64_t* off) const {
    const size_t n = N ? N : inputs;
    for (size_t i = 0; i < n; ++i) off[i] = 0;
    for (int d = (int)outer.size() - 1; d >= 0; --d) {
      const int64_t idx = r % outer[d];
      r /= outer[d];
      for (size_t i = 0; i < n; ++i) off[i] += idx * strides[d * n + i];
    }
  }
};

BroadcastGeometry make_geometry(const Dims& out, const std::vector<Dims>& ins) {
  const size_t r = out.size(), n = ins.size();
  // Drop size-1 output dims, merge neighbours with the same broadcast pattern.
  struct D {
    int64_t n;
    std::vector<bool> bcast;  // per input
  };
  std::vector<D> dims;
  for (size_t d = 0; d < r; ++d) {
    if (out[d] == 1) continue;
    D dim{out[d], std::vector<bool>(n)};
    for (size_t i = 0; i < n; ++i) {
      const size_t lead = r - ins[i].size();  // numpy alignment: missing leading dims are 1
      dim.bcast[i] = d < lead || ins[i][d - lead] == 1;
    }
    if (!dims.empty() && dims.back().bcast == dim.bcast)
      dims.back().n *= dim.n;
    else
      dims.push_back(std::move(dim));
  }
  BroadcastGeometry g;
  g.total = numel(out);
  g.inputs = n;
  g.inner_step.assign(n, 1);
  if (dims.empty()) return g;
  const D last = dims.back();
  dims.pop_back();
  g.inner = last.n;
  std::vector<int64_t> stride(n);
  for (size_t i = 0; i < n; ++i) {
    g.inner_step[i] = last.bcast[i] ? 0 : 1;
    stride[i] = last.bcast[i] ? 1 : last.n;
  }
  g.outer.resize(dims.size());
  g.strides.resize(dims.size() * n);
  for (int d = (int)dims.size() - 1; d >= 0; --d) {
    g.outer[d] = dims[d].n;
    for (size_t i = 0; i < n; ++i) {
      g.strides[d * n + i] = dims[d].bcast[i] ? 0 : stride[i];
      if (!dims[d].bcast[i]) stride[i] *= dims[d].n;
    }
  }
  return g;
}

template <class T, class O, class F>
AIOV_MULTIVERSION void binary_run(const T* __restrict a, int64_t as, const T* __restrict b, int64_t bs, O* __restrict o,
                                  int64_t n, F f) {
  if (as == 1 && bs == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = store<O>(f(load(a[i]), load(b[i])));
  } else if (as == 1) {
    auto y = load(b[0]);
    for (int64_t i = 0; i < n; ++i) o[i] = store<O>(f(load(a[i]), y));
  } else if (bs == 1) {
    auto x = load(a[0]);
    for (int64_t i = 0; i < n; ++i) o[i] = store<O>(f(x, load(b[i])));
  } else {
    O v = store<O>(f(load(a[0]), load(b[0])));
    for (int64_t i = 0; i < n; ++i) o[i] = v;
  }
}

// Elementwise over a broadcast geometry; T is the input storage type, O the output's.
template <class T, class O, class F>
KernelFn make_binary(const PrepareContext& ctx, F f) {
  BroadcastGeometry g = make_geometry(ctx.out[0].shape, {ctx.in[0].shape, ctx.in[1].shape});
  return [g, f](const KernelArgs& k) {
    const T* a = k.in[0]->as<T>();
    const T* b = k.in[1]->as<T>();
    O* o = k.out[0]->as<O>();
    if (g.total == 0) return;
    int64_t rows = g.total / g.inner;
    const int64_t as = g.inner_step[0], bs = g.inner_step[1];
    // Rows along the innermost outer dim step by its strides: the offsets are worked out
    // (divisions) once per run of it, not per row, as rows may be a few channels long (a
    // squeeze-excitation scale over NHWC).
    auto run_rows = [&](int64_t r0, int64_t r1) {
      const size_t last = g.outer.size() - 1;
      const int64_t len = g.outer[last], sa = g.strides[last * 2], sb = g.strides[last * 2 + 1];
      for (int64_t r = r0; r < r1;) {
        int64_t off[2];
        g.row_offsets<2>(r, off);
        for (const int64_t end = std::min(r1, r + len - r % len); r < end; ++r, off[0] += sa, off[1] += sb)
          binary_run<T, O, F>(a + off[0], as, b + off[1], bs, o + r * g.inner, g.inner, f);
      }
    };
    bool parallel = g.total >= 2 * kParallelGrain && k.ctx->pool;
    if (rows == 1) {
      if (parallel) {
        k.ctx->pool->parallel_for(
            g.total, kParallelGrain,
            [&](int64_t s, int64_t e) { binary_run<T, O, F>(a + s * as, as, b + s * bs, bs, o + s, e - s, f); },
            k.ctx->max_threads);
      } else {
        binary_run<T, O, F>(a, as, b, bs, o, g.inner, f);
      }
    } else if (parallel) {
      k.ctx->pool->parallel_for(rows, std::max<int64_t>(1, kParallelGrain / g.inner), run_rows, k.ctx->max_threads);
    } else {
      run_rows(0, rows);
    }
  };
}

ElementType common_input_type(const InferContext& c) {
  expect_type_match(c.node, c.in[0], c.in[1]);
  return c.in[0].type == ElementType::dynamic ? c.in[1].type : c.in[0].type;
}

PartialShape binary_shape(const InferContext& c) {
  return broadcast_shapes(c.node, c.in[0].shape, c.in[1].shape, c.node.attr_str("auto_broadcast"));
}

std::vector<PortInfo> infer_binary(const InferContext& c) {
  ElementType t = common_input_type(c);
  if (t == ElementType::boolean || is_packed(t))
    throw InputError(c.node.describe() + ": arithmetic on element type " + type_name(t) + " is not supported");
  return {PortInfo{t, binary_shape(c)}};
}

std::vector<PortInfo> infer_compare(const InferContext& c) {
  ElementType t = common_input_type(c);
  if (is_packed(t)) throw InputError(c.node.describe() + ": element type " + type_name(t) + " is not supported");
  return {PortInfo{ElementType::boolean, binary_shape(c)}};
}

std::vector<PortInfo> infer_logical(const InferContext& c) {
  ElementType t = common_input_type(c);
  if (t != ElementType::boolean && t != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected boolean inputs, got " + type_name(t));
  return {PortInfo{ElementType::boolean, binary_shape(c)}};
}

template <class F>
KernelFn prepare_binary(const PrepareContext& ctx) {
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_same<T, bool>::value)
      throw NotSupported(ctx.node.describe() + ": boolean arithmetic");
    else
      return make_binary<T, T>(ctx, F{});
  });
}

// x ** e for one f32 exponent e read when the step runs: the powers models write (x^2 in RMS
// norms, x^3 in tanh-GELU) as multiplies, which vectorize; std::pow
// per element cost more than the matrix products around it. Other exponents keep std::pow.
AIOV_MULTIVERSION void power_by_scalar(const float* __restrict x, float e, float* __restrict y, int64_t n) {
  if (e == 2.0f) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * x[i];
  } else if (e == 3.0f) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * x[i] * x[i];
  } else if (e == 1.0f) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i];
  } else if (e == -1.0f) {
    for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / x[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = std::pow(x[i], e);
  }
}

KernelFn prepare_power(const PrepareContext& ctx) {
  if (ctx.out[0].type != ElementType::f32 || ctx.in[1].type != ElementType::f32 || ctx.in[1].count() != 1 ||
      ctx.in[0].shape != ctx.out[0].shape)
    return prepare_binary<PowF>(ctx);
  const int64_t n = ctx.out[0].count();
  return [n](const KernelArgs& k) {
    const float* x = k.in[0]->as<float>();
    const float e = k.in[1]->as<float>()[0];
    float* y = k.out[0]->as<float>();
    if (n >= 2 * kParallelGrain && k.ctx->pool)
      k.ctx->pool->parallel_for(
          n, kParallelGrain, [&](int64_t s, int64_t end) { power_by_scalar(x + s, e, y + s, end - s); },
          k.ctx->max_threads);
    else
      power_by_scalar(x, e, y, n);
  };
}

// Divide's `pythondiv` (default true) picks floor or truncating integer division.
KernelFn prepare_divide(const PrepareContext& ctx) {
  if (ctx.node.attr_int("pythondiv")) return prepare_binary<DivF>(ctx);
  return prepare_binary<TruncDivF>(ctx);
}

struct EqF {
  template <class C>
  uint8_t operator()(C a, C b) const {
    return a == b;
  }
};
struct NeF {
  template <class C>
  uint8_t operator()(C a, C b) const {
    return a != b;
  }
};
struct LtF {
  template <class C>
  uint8_t operator()(C a, C b) const {
    return a < b;
  }
};
struct GtF {
  template <class C>
  uint8_t operator()(C a, C b) const {
    return a > b;
  }
};
struct LeF {
  template <class C>
  uint8_t operator()(C a, C b) const {
    return a <= b;
  }
};
struct GeF {
  template <class C>
  uint8_t operator()(C a, C b) const {
    return a >= b;
  }
};
struct AndF {
  uint8_t operator()(uint8_t a, uint8_t b) const { return a && b; }
};
struct OrF {
  uint8_t operator()(uint8_t a, uint8_t b) const { return a || b; }
};
struct XorF {
  uint8_t operator()(uint8_t a, uint8_t b) const { return (a != 0) != (b != 0); }
};

template <class F>
KernelFn prepare_compare(const PrepareContext& ctx) {
  return dispatch_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return make_binary<T, bool>(ctx, F{});
  });
}

template <class F>
KernelFn prepare_logical(const PrepareContext& ctx) {
  return make_binary<bool, bool>(ctx, F{});
}

// PRelu: x where x >= 0, else slope * x (slope broadcasts onto x).
struct PReluF {
  template <class C>
  C operator()(C x, C slope) const {
    return x < 0 ? (C)(x * slope) : x;
  }
};

// ---- Select: cond ? a : b, three-way numpy broadcasting ------------------------

std::vector<PortInfo> infer_select(const InferContext& c) {
  if (c.in[0].type != ElementType::boolean && c.in[0].type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": the condition must be boolean, got " + type_name(c.in[0].type));
  expect_type_match(c.node, c.in[1], c.in[2]);
  std::string mode = c.node.attr_str("auto_broadcast");
  PartialShape s = broadcast_shapes(c.node, c.in[1].shape, c.in[2].shape, mode);
  s = broadcast_shapes(c.node, c.in[0].shape, s, mode);
  ElementType t = c.in[1].type == ElementType::dynamic ? c.in[2].type : c.in[1].type;
  return {PortInfo{t, s}};
}

// Element strides of `in` aligned to `out` (0 where broadcast).
std::vector<int64_t> broadcast_strides(const Dims& in, const Dims& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t s = 1;
  for (int i = (int)in.size() - 1; i >= 0; --i) {
    int o = i + (int)(out.size() - in.size());
    st[o] = in[i] == 1 ? 0 : s;
    s *= in[i];
  }
  return st;
}

// o[i] = c[i * cs] ? a[i * as] : b[i * bs] for one row of a broadcast geometry (steps 0 or 1),
// elements moved as unsigned integers of their size, chosen by a mask from the condition: GCC
// leaves the ternary a branch, which a random condition mispredicts half the time.
template <class E>
inline E select_bits(bool c, E a, E b) {
  const E mask = (E)0 - (E)c;
  return (a & mask) | (b & (E)~mask);
}
template <class E>
AIOV_MULTIVERSION void select_run(const bool* __restrict c, int64_t cs, const E* __restrict a, int64_t as,
                                  const E* __restrict b, int64_t bs, E* __restrict o, int64_t n) {
  if (cs == 1 && as == 1 && bs == 1)
    for (int64_t i = 0; i < n; ++i) o[i] = select_bits(c[i], a[i], b[i]);
  else if (cs == 1 && as == 1)
    for (int64_t i = 0; i < n; ++i) o[i] = select_bits(c[i], a[i], b[0]);
  else if (cs == 1 && bs == 1)
    for (int64_t i = 0; i < n; ++i) o[i] = select_bits(c[i], a[0], b[i]);
  else
    for (int64_t i = 0; i < n; ++i) o[i] = select_bits(c[i * cs], a[i * as], b[i * bs]);
}

// Rows of the broadcast geometry, each one run (one memcpy and an odometer step per element
// took 2 ns a value, 10x OpenVINO's Select).
template <class E>
KernelFn select_rows(const BroadcastGeometry& g) {
  return [g](const KernelArgs& k) {
    if (g.total == 0) return;
    const bool* c = k.in[0]->as<bool>();
    const E* a = static_cast<const E*>(k.in[1]->data);
    const E* b = static_cast<const E*>(k.in[2]->data);
    E* o = static_cast<E*>(k.out[0]->data);
    const int64_t rows = g.total / g.inner;
    auto run = [&](int64_t r0, int64_t r1) {
      int64_t off[3];
      for (int64_t r = r0; r < r1; ++r) {
        g.row_offsets<3>(r, off);
        select_run<E>(c + off[0], g.inner_step[0], a + off[1], g.inner_step[1], b + off[2], g.inner_step[2],
                      o + r * g.inner, g.inner);
      }
    };
    if (g.total >= 2 * kParallelGrain && k.ctx->pool && rows > 1)
      k.ctx->pool->parallel_for(rows, std::max<int64_t>(1, kParallelGrain / g.inner), run, k.ctx->max_threads);
    else
      run(0, rows);
  };
}

KernelFn prepare_select(const PrepareContext& ctx) {
  Dims out = ctx.out[0].shape;
  if (ctx.in[0].type == ElementType::boolean) {
    const BroadcastGeometry g = make_geometry(out, {ctx.in[0].shape, ctx.in[1].shape, ctx.in[2].shape});
    switch (bit_width(ctx.out[0].type)) {
      case 8:
        return select_rows<uint8_t>(g);
      case 16:
        return select_rows<uint16_t>(g);
      case 32:
        return select_rows<uint32_t>(g);
      case 64:
        return select_rows<uint64_t>(g);
      default:
        break;
    }
  }
  auto sc = broadcast_strides(ctx.in[0].shape, out), sa = broadcast_strides(ctx.in[1].shape, out),
       sb = broadcast_strides(ctx.in[2].shape, out);
  size_t es = bit_width(ctx.out[0].type) / 8;
  if (es == 0) throw NotSupported(ctx.node.describe() + ": sub-byte element types");
  int64_t total = numel(out);
  return [out, sc, sa, sb, es, total](const KernelArgs& k) {
    const bool* c = k.in[0]->as<bool>();
    const char* a = static_cast<const char*>(k.in[1]->data);
    const char* b = static_cast<const char*>(k.in[2]->data);
    char* o = static_cast<char*>(k.out[0]->data);
    std::vector<int64_t> idx(out.size(), 0);
    int64_t oc = 0, oa = 0, ob = 0;
    for (int64_t i = 0; i < total; ++i) {
      std::memcpy(o + i * es, c[oc] ? a + oa * es : b + ob * es, es);
      for (int d = (int)out.size() - 1; d >= 0; --d) {
        oc += sc[d];
        oa += sa[d];
        ob += sb[d];
        if (++idx[d] < out[d]) break;
        oc -= sc[d] * out[d];
        oa -= sa[d] * out[d];
        ob -= sb[d] * out[d];
        idx[d] = 0;
      }
    }
  };
}

// ---- unary -----------------------------------------------------------------

struct AbsF {
  template <class C>
  C operator()(C x) const {
    if constexpr (std::is_floating_point<C>::value)
      return std::fabs(x);  // abs(-0.0) is +0.0
    else if constexpr (std::is_unsigned<C>::value)
      return x;
    else
      return x < 0 ? -x : x;
  }
};
struct NegF {
  template <class C>
  C operator()(C x) const {
    return (C)(C(0) - x);
  }
};
// NaN passes through (x < 0 is false for NaN), as in numpy and onnxruntime.
struct ReluF {
  template <class C>
  C operator()(C x) const {
    return x < 0 ? C(0) : x;
  }
};
struct SignF {
  template <class C>
  C operator()(C x) const {
    return (C)((x > C(0)) - (x < C(0)));
  }
};
struct ExpF {
  float operator()(float x) const { return fast_exp(x); }
  template <class C>
  C operator()(C x) const {
    return (C)std::exp((double)x);
  }
};
struct SigmoidF {
  float operator()(float x) const { return fast_sigmoid(x); }
  template <class C>
  C operator()(C x) const {
    return (C)(1.0 / (1.0 + std::exp(-(double)x)));
  }
};
struct TanhF {
  float operator()(float x) const { return fast_tanh(x); }
  template <class C>
  C operator()(C x) const {
    return (C)std::tanh((double)x);
  }
};
// A <cmath> function: in float for float, in double for the other types.
#define AIOV_MATH_FUNCTOR(Name, fn)                        \
  struct Name {                                            \
    float operator()(float x) const { return std::fn(x); } \
    template <class C>                                     \
    C operator()(C x) const {                              \
      return (C)std::fn((double)x);                        \
    }                                                      \
  };
AIOV_MATH_FUNCTOR(LogF, log)
AIOV_MATH_FUNCTOR(SqrtF, sqrt)
AIOV_MATH_FUNCTOR(ErfF, erf)
// Rounding in the value's own type (an integer rounds to itself).
#define AIOV_ROUNDING_FUNCTOR(Name, fn) \
  struct Name {                         \
    template <class C>                  \
    C operator()(C x) const {           \
      return (C)std::fn(x);             \
    }                                   \
  };
AIOV_ROUNDING_FUNCTOR(FloorF, floor)
AIOV_ROUNDING_FUNCTOR(CeilF, ceil)
AIOV_ROUNDING_FUNCTOR(RoundEvenF, nearbyint)
#undef AIOV_ROUNDING_FUNCTOR
struct ReciprocalF {
  template <class C>
  C operator()(C x) const {
    return (C)(C(1) / x);
  }
};
struct SoftplusF {
  template <class C>
  C operator()(C x) const {
    double d = (double)x;
    return (C)(d > 20 ? d : std::log1p(std::exp(d)));
  }
};
struct HSwishF {
  template <class C>
  C operator()(C x) const {
    C r = x + C(3);
    r = r < 0 ? C(0) : (r > C(6) ? C(6) : r);
    return (C)(x * r / C(6));
  }
};
struct HSigmoidF {
  template <class C>
  C operator()(C x) const {
    C r = x + C(3);
    r = r < 0 ? C(0) : (r > C(6) ? C(6) : r);
    return (C)(r / C(6));
  }
};
struct GeluErfF {
  // f32 as the fused epilogue's GeluErf computes it (fast_erf: vectorizes, error below 4e-7);
  // libm's scalar erf was a tenth of a quantized transformer's time.
  float operator()(float x) const { return 0.5f * x * (1.0f + fast_erf(x * 0.70710678118654752f)); }
  template <class C>
  C operator()(C x) const {
    return (C)(0.5 * (double)x * (1.0 + std::erf((double)x * 0.70710678118654752)));
  }
};
struct GeluTanhF {
  float operator()(float x) const {
    return 0.5f * x * (1.0f + fast_tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  }
  template <class C>
  C operator()(C x) const {
    double d = (double)x;
    return (C)(0.5 * d * (1.0 + std::tanh(0.7978845608028654 * (d + 0.044715 * d * d * d))));
  }
};
// Parametrised: alpha/beta/min/max come from the node's attributes.
struct EluF {
  double alpha;
  template <class C>
  C operator()(C x) const {
    return x > 0 ? x : (C)(alpha * (std::exp((double)x) - 1.0));
  }
};
struct LeakyReluF {
  double alpha;
  template <class C>
  C operator()(C x) const {
    return x >= 0 ? x : (C)(alpha * (double)x);
  }
};
struct HardSigmoidF {
  double alpha, beta;
  template <class C>
  C operator()(C x) const {
    double v = alpha * (double)x + beta;
    return (C)(v < 0 ? 0 : (v > 1 ? 1 : v));
  }
};
// min(max(x, lo), hi), as ONNX defines Clip: with lo > hi every value becomes hi; NaN stays.
struct ClampF {
  double lo, hi;
  template <class C>
  C operator()(C x) const {
    double v = (double)x;
    v = v < lo ? lo : v;
    return (C)(v > hi ? hi : v);
  }
  float operator()(float x) const {
    float l = (float)lo, h = (float)hi;
    x = x < l ? l : x;
    return x > h ? h : x;
  }
};

// Gelu's erf form over f32 with AVX-512 intrinsics (gelu_row.hpp) where the CPU's path is
// AVX-512, else null (the functor's loop runs).
gelu_detail::GeluRowFn avx512_gelu_row() {
  static const gelu_detail::GeluRowFn row =
      selected_isa() == Isa::avx512 ? gelu_detail::avx512_gelu_erf_row() : nullptr;
  return row;
}

template <class T, class F>
AIOV_MULTIVERSION void unary_run(const T* __restrict x, T* __restrict y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = store<T>(f(load(x[i])));
}

template <class F>
KernelFn make_unary(const PrepareContext& ctx, F f) {
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_same<T, bool>::value) {
      throw NotSupported(ctx.node.describe() + ": boolean input");
    } else {
      int64_t n = ctx.out[0].count();
      return [n, f](const KernelArgs& k) {
        const T* x = k.in[0]->as<T>();
        T* y = k.out[0]->as<T>();
        if (n >= kParallelGrain / 2 && k.ctx->pool) {
          k.ctx->pool->parallel_for(
              n, kParallelGrain / 4, [&](int64_t s, int64_t e) { unary_run<T, F>(x + s, y + s, e - s, f); },
              k.ctx->max_threads);
        } else {
          unary_run<T, F>(x, y, n, f);
        }
      };
    }
  });
}

template <class F>
KernelFn prepare_unary(const PrepareContext& ctx) {
  return make_unary(ctx, F{});
}

KernelFn prepare_gelu(const PrepareContext& ctx) {
  std::string mode = ctx.node.attr_str("approximation_mode");
  if (mode == "TANH" || mode == "tanh") return make_unary(ctx, GeluTanhF{});
  // f32 on AVX-512: the intrinsics row, split over the pool as make_unary does.
  const gelu_detail::GeluRowFn row = avx512_gelu_row();
  if (ctx.out[0].type == ElementType::f32 && row) {
    const int64_t n = ctx.out[0].count();
    return [n, row](const KernelArgs& k) {
      const float* x = k.in[0]->as<float>();
      float* y = k.out[0]->as<float>();
      if (n >= kParallelGrain / 2 && k.ctx->pool)
        k.ctx->pool->parallel_for(
            n, kParallelGrain / 4, [&](int64_t s, int64_t e) { row(x + s, y + s, e - s); }, k.ctx->max_threads);
      else
        row(x, y, n);
    };
  }
  return make_unary(ctx, GeluErfF{});
}
KernelFn prepare_elu(const PrepareContext& ctx) { return make_unary(ctx, EluF{ctx.node.attr_float("alpha")}); }
KernelFn prepare_leaky(const PrepareContext& ctx) { return make_unary(ctx, LeakyReluF{ctx.node.attr_float("alpha")}); }
KernelFn prepare_hard_sigmoid(const PrepareContext& ctx) {
  return make_unary(ctx, HardSigmoidF{ctx.node.attr_float("alpha"), ctx.node.attr_float("beta")});
}
KernelFn prepare_clamp(const PrepareContext& ctx) {
  return make_unary(ctx, ClampF{ctx.node.attr_float("min"), ctx.node.attr_float("max")});
}

// ---- aiov.ElementwiseChain: a run of f32 elementwise ops in one pass ----------------
// The graph optimizer joins ops whose intermediate results have no other use. Input 0 is
// the chain's input x; attribute "steps" names the ops in order, "operands" gives each
// binary step's other operand (a node input; 0 is x itself, as in x * sigmoid(x)) or -1,
// "swapped" whether that operand is the left one (c - t), "alphas"/"betas" the
// parameters of Clamp and LeakyRelu. Operands broadcast into x without growing it, so the
// result has x's shape. Each block of values stays in L1 while every step runs over it,
// using the same functors as the standalone ops.

struct ChainStep {
  ChainStepFn run;
  int operand;   // node input of a binary step, -1 for unary
  bool swapped;  // operand on the left
  float alpha, beta;
};

template <class F>
inline void chain_binary(float* __restrict t, const float* __restrict v, int64_t v_step, int64_t n, bool swapped, F f) {
  if (v_step) {
    if (swapped)
      for (int64_t i = 0; i < n; ++i) t[i] = f(v[i], t[i]);
    else
      for (int64_t i = 0; i < n; ++i) t[i] = f(t[i], v[i]);
  } else {
    const float c = v[0];
    if (swapped)
      for (int64_t i = 0; i < n; ++i) t[i] = f(c, t[i]);
    else
      for (int64_t i = 0; i < n; ++i) t[i] = f(t[i], c);
  }
}

template <class F>
inline void chain_unary(float* __restrict t, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) t[i] = store<float>(f(t[i]));
}

// The chain steps each op's OpDef names (OpDef::chain): the standalone ops' functors on floats.
template <class F>
AIOV_MULTIVERSION void chain_binary_step(float* t, const float* v, int64_t v_step, int64_t n, bool swapped, float,
                                         float) {
  chain_binary(t, v, v_step, n, swapped, F{});
}
template <class F>
AIOV_MULTIVERSION void chain_unary_step(float* t, const float*, int64_t, int64_t n, bool, float, float) {
  chain_unary(t, n, F{});
}
// Parametrised functors take the node's activation parameters (ActivationTrait).
template <class F>
AIOV_MULTIVERSION void chain_activation_step(float* t, const float*, int64_t, int64_t n, bool, float a, float b) {
  chain_unary(t, n, F{a, b});
}
AIOV_MULTIVERSION void chain_clamp(float* t, const float*, int64_t, int64_t n, bool, float a, float b) {
  chain_unary(t, n, ClampF{a, b});
}
AIOV_MULTIVERSION void chain_leaky(float* t, const float*, int64_t, int64_t n, bool, float a, float) {
  chain_unary(t, n, LeakyReluF{a});
}
// Gelu's variant index (0: erf, 1: tanh) arrives as a (see ActivationTrait).
AIOV_MULTIVERSION void chain_gelu(float* t, const float*, int64_t, int64_t n, bool, float a, float) {
  if (a != 0.0f)
    chain_unary(t, n, GeluTanhF{});
  else if (const gelu_detail::GeluRowFn row = avx512_gelu_row())
    row(t, t, n);  // in place: each vector is loaded before it is stored
  else
    chain_unary(t, n, GeluErfF{});
}

std::vector<PortInfo> infer_elementwise_chain(const InferContext& c) {
  const std::vector<int64_t> operands = c.node.attr_ints("operands");
  for (size_t i = 0; i < c.in.size(); ++i) {
    if (c.in[i].type != ElementType::f32 && c.in[i].type != ElementType::dynamic)
      throw InputError(c.node.describe() + ": expected f32 inputs, input " + std::to_string(i) + " is " +
                       type_name(c.in[i].type));
    if (i > 0 && c.in[0].shape.rank_known && c.in[i].shape.is_static() && c.in[0].shape.is_static() &&
        broadcast_shapes(c.node, c.in[0].shape, c.in[i].shape, "numpy").dims != c.in[0].shape.dims)
      throw InputError(c.node.describe() + ": operand " + c.in[i].shape.str() + " would grow the input " +
                       c.in[0].shape.str());
  }
  for (int64_t o : operands)
    if (o >= (int64_t)c.in.size()) throw InputError(c.node.describe() + ": operand index out of range");
  return {PortInfo{ElementType::f32, c.in[0].shape}};
}

constexpr int64_t kBlock = 1024;  // a chain's values per pass, 4 KiB: stays in L1 across the steps

// y = x * scale + shift, then Relu (which keeps NaN, as the Relu step does), over n values.
AIOV_MULTIVERSION void scale_shift_run(const float* __restrict x, float* __restrict y, const float* __restrict scale,
                                       const float* __restrict shift, int64_t n, bool relu) {
  if (relu) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i] * scale[i] + shift[i];
      y[i] = v < 0.0f ? 0.0f : v;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale[i] + shift[i];
  }
}

// Each row's one value (v at the row's offset) along its row of dst, in whole runs of 16 that
// pass the row's end: the next row's run overwrites the excess, so no row pays a scalar tail
// (dst holds 16 spare floats for the last row's).
AIOV_MULTIVERSION void spread_row_values(float* __restrict dst, const float* __restrict v, const int64_t* off,
                                         int64_t off_step, int64_t rows, int64_t inner) {
  const int64_t padded = (inner + 15) / 16 * 16;
  for (int64_t r = 0; r < rows; ++r) {
    const float c = v[off[r * off_step]];
    float* __restrict row = dst + r * inner;
    for (int64_t j = 0; j < padded; ++j) row[j] = c;
  }
}

KernelFn prepare_elementwise_chain(const PrepareContext& ctx) {
  const Node& node = ctx.node;
  std::vector<ChainStep> steps;
  std::vector<std::string> step_ops;
  {
    const std::string names = node.attr_str("steps");
    const auto operands = node.attr_ints("operands"), swapped = node.attr_ints("swapped");
    const auto alphas = node.attr_floats("alphas"), betas = node.attr_floats("betas");
    size_t start = 0;
    for (size_t i = 0; start <= names.size(); ++i) {
      size_t end = names.find(',', start);
      if (end == std::string::npos) end = names.size();
      ChainStep st{};
      const OpDef* op = OpRegistry::instance().find(names.substr(start, end - start));
      st.run = op ? op->chain : nullptr;
      if (!st.run || i >= operands.size() || i >= swapped.size() || i >= alphas.size() || i >= betas.size())
        throw InputError(node.describe() + ": malformed step " + std::to_string(i) + " in '" + names + "'");
      st.operand = (int)operands[i];
      st.swapped = swapped[i] != 0;
      st.alpha = (float)alphas[i];
      st.beta = (float)betas[i];
      steps.push_back(st);
      step_ops.push_back(names.substr(start, end - start));
      start = end + 1;
    }
  }
  std::vector<Dims> shapes;
  for (const auto& in : ctx.in) shapes.push_back(in.shape);
  const BroadcastGeometry g = make_geometry(ctx.out[0].shape, shapes);
  // Short rows (an NHWC tensor's channels, against per-channel operands: DenseNet's BatchNorm
  // and Relu before each convolution, 16-32 floats a row) cost a row's offsets and every
  // step's call per few values: 1.2 ns a value, 5x OpenVINO's. When every operand is either
  // x's whole shape or the same for every row, blocks of whole rows run as one: each
  // per-row operand repeated along a block once per call.
  enum class Rows { whole, same_row, scalar };
  std::vector<Rows> kinds(g.inputs, Rows::whole);
  bool merge_rows = g.total > 0 && g.inner > 0 && g.inner < kBlock / 2 && !g.outer.empty();
  for (size_t i = 1; i < g.inputs && merge_rows; ++i) {
    bool same_every_row = true;
    for (size_t d = 0; d < g.outer.size(); ++d) same_every_row = same_every_row && g.strides[d * g.inputs + i] == 0;
    if (same_every_row)
      kinds[i] = g.inner_step[i] ? Rows::same_row : Rows::scalar;
    else
      merge_rows = merge_rows && shapes[i] == ctx.out[0].shape;
  }
  // A per-channel scale and shift, then maybe Relu (DenseNet's BatchNorm and Relu before each
  // convolution): one pass over each block, where the steps took five (a copy in, one per step,
  // a copy out), 2.5x OpenVINO's time on DenseNet's 16-32 channels.
  const auto per_row = [&](const ChainStep& st) { return st.operand > 0 && kinds[st.operand] != Rows::whole; };
  const bool scale_shift = merge_rows && (steps.size() == 2 || (steps.size() == 3 && step_ops[2] == "Relu")) &&
                           step_ops[0] == "Multiply" && step_ops[1] == "Add" && per_row(steps[0]) && per_row(steps[1]);
  if (scale_shift) {
    // A block no longer than the tensor: the operands are spread along it on every call.
    const int64_t rows_per_block = std::min(kBlock / g.inner, g.total / g.inner), block = rows_per_block * g.inner;
    const int scale_in = steps[0].operand, shift_in = steps[1].operand;
    const bool relu = steps.size() == 3;
    return [g, kinds, rows_per_block, block, scale_in, shift_in, relu](const KernelArgs& k) {
      const int64_t inner = g.inner, rows = g.total / inner;
      const float* x = k.in[0]->as<float>();
      float* y = k.out[0]->as<float>();
      // Each operand repeated (or its one value spread) along a block.
      alignas(64) float scale[kBlock], shift[kBlock];
      auto spread = [&](int i, float* v) {
        const float* src = k.in[i]->as<float>();
        if (kinds[i] == Rows::scalar)
          std::fill_n(v, block, src[0]);
        else
          for (int64_t r = 0; r < rows_per_block; ++r) std::copy_n(src, inner, v + r * inner);
      };
      spread(scale_in, scale);
      spread(shift_in, shift);
      auto run_blocks = [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t at = b * block, n = std::min(block, (rows - b * rows_per_block) * inner);
          scale_shift_run(x + at, y + at, scale, shift, n, relu);
        }
      };
      const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
      if (g.total >= 2 * kParallelGrain && k.ctx->pool)
        k.ctx->pool->parallel_for(blocks, std::max<int64_t>(1, kParallelGrain / block), run_blocks, k.ctx->max_threads);
      else
        run_blocks(0, blocks);
    };
  }
  if (merge_rows) {
    const int64_t rows_per_block = kBlock / g.inner, block = rows_per_block * g.inner;
    return [steps, g, kinds, rows_per_block, block](const KernelArgs& k) {
      const int64_t inner = g.inner, rows = g.total / inner;
      const float* x = k.in[0]->as<float>();
      float* y = k.out[0]->as<float>();
      std::vector<const float*> in(g.inputs);
      std::vector<std::vector<float>> repeated(g.inputs);
      for (size_t i = 0; i < g.inputs; ++i) {
        in[i] = k.in[i]->as<float>();
        if (kinds[i] != Rows::same_row) continue;
        repeated[i].resize((size_t)block);
        for (int64_t r = 0; r < rows_per_block; ++r) std::copy_n(in[i], inner, repeated[i].data() + r * inner);
      }
      auto run_blocks = [&](int64_t b0, int64_t b1) {
        alignas(64) float t[kBlock];
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t at = b * block, n = std::min(block, (rows - b * rows_per_block) * inner);
          std::copy_n(x + at, n, t);
          for (const ChainStep& s : steps) {
            if (s.operand < 0) {
              s.run(t, nullptr, 0, n, s.swapped, s.alpha, s.beta);
              continue;
            }
            const Rows kind = kinds[s.operand];
            const float* v = kind == Rows::whole      ? in[s.operand] + at
                             : kind == Rows::same_row ? repeated[s.operand].data()
                                                      : in[s.operand];
            s.run(t, v, kind == Rows::scalar ? 0 : 1, n, s.swapped, s.alpha, s.beta);
          }
          std::copy_n(t, n, y + at);
        }
      };
      const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
      if (g.total >= 2 * kParallelGrain && k.ctx->pool)
        k.ctx->pool->parallel_for(blocks, std::max<int64_t>(1, kParallelGrain / block), run_blocks, k.ctx->max_threads);
      else
        run_blocks(0, blocks);
    };
  }
  if (g.total > 0 && g.inner > 0 && g.inner < kBlock / 2) {
    // Short rows against operands that differ from row to row (wav2vec2's GroupNorm scale and
    // shift, one value per channel of an NCW row of 79, then erf-Gelu): the binary steps run
    // row by row from each row's offsets, but the copies and every unary step run over a block
    // of whole rows at once, so the vectorized Gelu sees 1024 values a call, not 79 and a tail.
    const int64_t rows_per_block = kBlock / g.inner;
    return [steps, g, rows_per_block](const KernelArgs& k) {
      const int64_t inner = g.inner, rows = g.total / inner, inputs = (int64_t)g.inputs;
      const float* x = k.in[0]->as<float>();
      float* y = k.out[0]->as<float>();
      std::vector<const float*> in(g.inputs);
      for (size_t i = 0; i < g.inputs; ++i) in[i] = k.in[i]->as<float>();
      const size_t dims = g.outer.size();
      auto run_blocks = [&](int64_t b0, int64_t b1) {
        alignas(64) float t[kBlock];
        alignas(64) float spread[kBlock + 16];
        std::vector<int64_t> off((size_t)(rows_per_block * inputs)), at((size_t)inputs), idx(dims);
        // Rows run in order: the offsets step like an odometer from the first row's (a row's
        // offsets from scratch take two divisions per dim, most of a short row's time).
        g.row_offsets(b0 * rows_per_block, at.data());
        for (int64_t d = (int64_t)dims - 1, r = b0 * rows_per_block; d >= 0; --d) {
          idx[(size_t)d] = r % g.outer[(size_t)d];
          r /= g.outer[(size_t)d];
        }
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t r0 = b * rows_per_block, block_rows = std::min(rows_per_block, rows - r0);
          const int64_t n = block_rows * inner;
          for (int64_t r = 0; r < block_rows; ++r) {
            std::copy_n(at.data(), inputs, off.data() + r * inputs);
            for (int64_t d = (int64_t)dims - 1; d >= 0; --d) {
              const int64_t* stride = g.strides.data() + d * inputs;
              if (++idx[(size_t)d] < g.outer[(size_t)d]) {
                for (int64_t i = 0; i < inputs; ++i) at[(size_t)i] += stride[i];
                break;
              }
              idx[(size_t)d] = 0;
              for (int64_t i = 0; i < inputs; ++i) at[(size_t)i] -= (g.outer[(size_t)d] - 1) * stride[i];
            }
          }
          std::copy_n(x + r0 * inner, n, t);
          for (const ChainStep& s : steps) {
            if (s.operand < 0) {
              s.run(t, nullptr, 0, n, s.swapped, s.alpha, s.beta);
              continue;
            }
            const float* v = in[s.operand];
            if (g.inner_step[s.operand] == 0) {
              // One value a row (a per-channel scale): spread along the block, then one call.
              spread_row_values(spread, v, off.data() + s.operand, inputs, block_rows, inner);
              s.run(t, spread, 1, n, s.swapped, s.alpha, s.beta);
              continue;
            }
            for (int64_t r = 0; r < block_rows; ++r)
              s.run(t + r * inner, v + off[r * inputs + s.operand], 1, inner, s.swapped, s.alpha, s.beta);
          }
          std::copy_n(t, n, y + r0 * inner);
        }
      };
      const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
      if (g.total >= 2 * kParallelGrain && k.ctx->pool)
        k.ctx->pool->parallel_for(blocks, std::max<int64_t>(1, kParallelGrain / (rows_per_block * inner)), run_blocks,
                                  k.ctx->max_threads);
      else
        run_blocks(0, blocks);
    };
  }
  return [steps, g](const KernelArgs& k) {
    if (g.total == 0) return;
    const int64_t inner = g.inner;
    const float* x = k.in[0]->as<float>();  // x has the output's shape: operands never grow it
    float* y = k.out[0]->as<float>();
    std::vector<const float*> in(g.inputs);
    for (size_t i = 0; i < g.inputs; ++i) in[i] = k.in[i]->as<float>();
    auto run_rows = [&](int64_t r0, int64_t r1) {
      alignas(64) float t[kBlock];
      std::vector<int64_t> off(g.inputs);
      for (int64_t r = r0; r < r1; ++r) {
        g.row_offsets(r, off.data());
        for (int64_t j0 = 0; j0 < inner; j0 += kBlock) {
          const int64_t n = std::min(kBlock, inner - j0);
          std::copy_n(x + r * inner + j0, n, t);
          for (const ChainStep& s : steps) {
            if (s.operand < 0) {
              s.run(t, nullptr, 0, n, s.swapped, s.alpha, s.beta);
            } else {
              const int64_t step = g.inner_step[s.operand];
              s.run(t, in[s.operand] + off[s.operand] + j0 * step, step, n, s.swapped, s.alpha, s.beta);
            }
          }
          std::copy_n(t, n, y + r * inner + j0);
        }
      }
    };
    const int64_t rows = g.total / inner;
    if (g.total >= 2 * kParallelGrain && k.ctx->pool)
      k.ctx->pool->parallel_for(rows, std::max<int64_t>(1, kParallelGrain / inner), run_rows, k.ctx->max_threads);
    else
      run_rows(0, rows);
  };
}

KernelFn prepare_not(const PrepareContext& ctx) {
  int64_t n = ctx.out[0].count();
  return [n](const KernelArgs& k) {
    const bool* x = k.in[0]->as<bool>();
    bool* y = k.out[0]->as<bool>();
    for (int64_t i = 0; i < n; ++i) y[i] = !x[i];
  };
}

template <bool FloatOnly>
std::vector<PortInfo> infer_unary(const InferContext& c) {
  ElementType t = c.in[0].type;
  if (t == ElementType::boolean || is_packed(t) || (FloatOnly && !is_float(t) && t != ElementType::dynamic))
    throw InputError(c.node.describe() + ": expected a " + (FloatOnly ? "floating-point" : "numeric") + " input, got " +
                     type_name(t));
  return {c.in[0]};
}

std::vector<PortInfo> infer_not(const InferContext& c) {
  if (c.in[0].type != ElementType::boolean && c.in[0].type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected a boolean input, got " + type_name(c.in[0].type));
  return {c.in[0]};
}

// An activation whose standalone op, chain step and epilogue share one formula
// (kernels/activations.hpp); alpha/beta come from the node's ActivationTrait parameters.
template <class F>
KernelFn prepare_activation(const PrepareContext& ctx) {
  Activation a;
  activation_of_node(op_def(ctx.node), ctx.node, a);
  return make_unary(ctx, F{a.alpha, a.beta});
}

// x * sigmoid(x): the fast sigmoid on float, exact otherwise.
struct SwishF {
  float operator()(float x) const { return x * fast_sigmoid(x); }
  template <class C>
  C operator()(C x) const {
    return (C)((double)x / (1.0 + std::exp(-(double)x)));
  }
};

std::string nonzero(const Node&, const std::vector<PortInfo>&, const Attr& v) {
  const double* d = std::get_if<double>(&v);
  const int64_t* i = std::get_if<int64_t>(&v);
  return (d && *d == 0) || (i && *i == 0) ? "non-zero" : "";
}

const std::vector<std::string> kBroadcastModes{"numpy", "none"};
AttrSpec broadcast_attr() { return str_attr("auto_broadcast", "numpy", kBroadcastModes); }

OpDef binary(const char* type, PrepareFn prepare, InferFn infer = infer_binary) {
  return OpDef{type, 2, 2, infer, prepare}.with_attrs({broadcast_attr()});
}
template <class F>
OpDef arithmetic(const char* type) {
  return binary(type, prepare_binary<F>).blind(LayoutBlind::binary).chain_step(chain_binary_step<F>);
}
template <class F, bool FloatOnly>
OpDef unary(const char* type) {
  return OpDef{type, 1, 1, infer_unary<FloatOnly>, prepare_unary<F>}.blind(LayoutBlind::unary);
}
// A unary op that is also an ElementwiseChain step.
template <class F, bool FloatOnly>
OpDef chainable_unary(const char* type) {
  return unary<F, FloatOnly>(type).chain_step(chain_unary_step<F>);
}
// A unary op that is also an ElementwiseChain step and an epilogue activation.
OpDef fusable(OpDef d, ChainStepFn step, ActivationTrait act) {
  return d.blind(LayoutBlind::unary).chain_step(step).fusable(std::move(act));
}
template <class F>
OpDef activation(const char* type, ActKind kind, std::vector<AttrSpec> attrs = {}, std::string alpha = "",
                 std::string beta = "") {
  return fusable(OpDef{type, 1, 1, infer_unary<true>, prepare_activation<F>}.with_attrs(std::move(attrs)),
                 chain_activation_step<F>, ActivationTrait{{kind}, std::move(alpha), std::move(beta), "", {}});
}

// ---- trigonometric and hyperbolic functions (ONNX float types) ---------------------------
AIOV_MATH_FUNCTOR(SinF, sin)
AIOV_MATH_FUNCTOR(CosF, cos)
AIOV_MATH_FUNCTOR(TanF, tan)
AIOV_MATH_FUNCTOR(AsinF, asin)
AIOV_MATH_FUNCTOR(AcosF, acos)
AIOV_MATH_FUNCTOR(AtanF, atan)
AIOV_MATH_FUNCTOR(SinhF, sinh)
AIOV_MATH_FUNCTOR(CoshF, cosh)
AIOV_MATH_FUNCTOR(AsinhF, asinh)
AIOV_MATH_FUNCTOR(AcoshF, acosh)
AIOV_MATH_FUNCTOR(AtanhF, atanh)
#undef AIOV_MATH_FUNCTOR

// ---- remainders ----------------------------------------------------------------------------
// Mod: the sign of the dividend (C fmod, OpenVINO Mod); FloorMod: the sign of the divisor
// (Python's %, OpenVINO FloorMod). An integer remainder by 0 is 0 rather than a trap, and
// by -1 is 0 (INT_MIN % -1 traps too).
struct TruncModF {
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_floating_point<C>::value) {
      return std::fmod(a, b);
    } else {
      if (b == 0) return 0;
      if constexpr (std::is_signed<C>::value)
        if (b == -1) return 0;
      return (C)(a % b);
    }
  }
};
struct FloorModF {
  template <class C>
  C operator()(C a, C b) const {
    C r = TruncModF{}(a, b);
    if constexpr (std::is_floating_point<C>::value) {
      if (r == 0) return std::copysign(C(0), b);  // numpy: a zero remainder takes the divisor's sign
      if ((r < 0) != (b < 0)) r += b;
    } else if constexpr (std::is_signed<C>::value) {
      if (r != 0 && ((r < 0) != (b < 0))) r = (C)(r + b);
    }
    return r;
  }
};

// ---- bitwise ops: integers bit by bit, booleans logically --------------------------------
struct BitAndF {
  template <class C>
  C operator()(C a, C b) const {
    return (C)(a & b);
  }
};
struct BitOrF {
  template <class C>
  C operator()(C a, C b) const {
    return (C)(a | b);
  }
};
struct BitXorF {
  template <class C>
  C operator()(C a, C b) const {
    return (C)(a ^ b);
  }
};
// Shifts by the type's width or more give 0 (C++ leaves them undefined).
struct ShlF {
  template <class C>
  C operator()(C a, C b) const {
    using U = typename std::make_unsigned<C>::type;
    if (b < 0 || (uint64_t)b >= sizeof(C) * 8) return 0;
    return (C)((U)a << b);
  }
};
struct ShrF {
  template <class C>
  C operator()(C a, C b) const {
    if (b < 0 || (uint64_t)b >= sizeof(C) * 8) return (C)(a < 0 ? -1 : 0);
    return (C)(a >> b);
  }
};

std::vector<PortInfo> infer_bitwise(const InferContext& c) {
  ElementType t = common_input_type(c);
  if (is_float(t) || is_packed(t))
    throw InputError(c.node.describe() + ": expected integer or boolean inputs, got " + type_name(t));
  return {PortInfo{t, binary_shape(c)}};
}

std::vector<PortInfo> infer_shift(const InferContext& c) {
  ElementType t = common_input_type(c);
  if (is_float(t) || is_packed(t) || t == ElementType::boolean)
    throw InputError(c.node.describe() + ": expected integer inputs, got " + type_name(t));
  return {PortInfo{t, binary_shape(c)}};
}

template <class F, class BoolF>
KernelFn prepare_bitwise(const PrepareContext& ctx) {
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_same<T, bool>::value)
      return make_binary<bool, bool>(ctx, BoolF{});
    else if constexpr (std::is_integral<T>::value)
      return make_binary<T, T>(ctx, F{});
    else
      throw NotSupported(ctx.node.describe() + ": bitwise op on a floating-point type");
  });
}

template <class F>
KernelFn prepare_integer_binary(const PrepareContext& ctx) {
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_integral<T>::value && !std::is_same<T, bool>::value)
      return make_binary<T, T>(ctx, F{});
    else
      throw NotSupported(ctx.node.describe() + ": expected an integer type");
  });
}

std::vector<PortInfo> infer_bitwise_not(const InferContext& c) {
  ElementType t = c.in[0].type;
  if (is_float(t) || is_packed(t))
    throw InputError(c.node.describe() + ": expected an integer or boolean input, got " + type_name(t));
  return {c.in[0]};
}

KernelFn prepare_bitwise_not(const PrepareContext& ctx) {
  if (ctx.out[0].type == ElementType::boolean) return prepare_not(ctx);
  const int64_t n = ctx.out[0].count();
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_integral<T>::value && !std::is_same<T, bool>::value) {
      return [n](const KernelArgs& k) {
        const T* x = k.in[0]->as<T>();
        T* y = k.out[0]->as<T>();
        for (int64_t i = 0; i < n; ++i) y[i] = (T)~x[i];
      };
    } else {
      throw NotSupported(ctx.node.describe() + ": expected an integer type");
    }
  });
}

// ---- IsNaN / IsInf: float in, boolean out ------------------------------------------------
std::vector<PortInfo> infer_float_test(const InferContext& c) {
  ElementType t = c.in[0].type;
  if (!is_float(t) && t != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected a floating-point input, got " + type_name(t));
  return {PortInfo{ElementType::boolean, c.in[0].shape}};
}

template <class Test>
KernelFn make_float_test(const PrepareContext& ctx, Test test) {
  const int64_t n = ctx.out[0].count();
  return dispatch_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_floating_point<typename ComputeOf<T>::type>::value) {
      return [n, test](const KernelArgs& k) {
        const T* x = k.in[0]->as<T>();
        bool* y = k.out[0]->as<bool>();
        for (int64_t i = 0; i < n; ++i) y[i] = test((double)load(x[i]));
      };
    } else {
      throw NotSupported(ctx.node.describe() + ": expected a floating-point type");
    }
  });
}

KernelFn prepare_is_nan(const PrepareContext& ctx) {
  return make_float_test(ctx, [](double v) { return std::isnan(v); });
}
KernelFn prepare_is_inf(const PrepareContext& ctx) {
  const bool pos = ctx.node.attr_int("detect_positive") != 0, neg = ctx.node.attr_int("detect_negative") != 0;
  return make_float_test(ctx, [pos, neg](double v) { return std::isinf(v) && (v > 0 ? pos : neg); });
}

}  // namespace

// Each op's whole description: schema, traits and its names in IR, ONNX and aiov.opset.
void register_elementwise_ops(OpRegistry& r) {
  r.add(arithmetic<AddF>("Add").ir({"Add"}, "opset1").onnx_op("Add", 7).opset_builder("add"));
  r.add(arithmetic<SubF>("Subtract").ir({"Subtract"}, "opset1").onnx_op("Sub", 7).opset_builder("subtract"));
  r.add(arithmetic<MulF>("Multiply").ir({"Multiply"}, "opset1").onnx_op("Mul", 7).opset_builder("multiply"));
  r.add(binary("Divide", prepare_divide)
            .blind(LayoutBlind::binary)
            .chain_step(chain_binary_step<DivF>)
            .with_attrs({broadcast_attr(), bool_attr("pythondiv", true).ir_name("m_pythondiv").onnx_name("-")})
            .ir({"Divide"}, "opset1")
            .opset_builder("divide"));
  r.add(binary("PRelu", prepare_binary<PReluF>).ir({"PRelu"}, "opset1").onnx_op("PRelu", 7).opset_builder("prelu"));
  // Comparisons and logical ops, in OpenVINO's opset1; onnx null: ONNX has no such op.
  struct Predicate {
    const char* type;
    PrepareFn prepare;
    InferFn infer;
    const char* onnx;
    int onnx_since;
    const char* builder;
  };
  const Predicate predicates[] = {
      {"Equal", prepare_compare<EqF>, infer_compare, "Equal", 7, "equal"},
      {"NotEqual", prepare_compare<NeF>, infer_compare, nullptr, 0, "not_equal"},
      {"Less", prepare_compare<LtF>, infer_compare, "Less", 7, "less"},
      {"Greater", prepare_compare<GtF>, infer_compare, "Greater", 7, "greater"},
      {"LessEqual", prepare_compare<LeF>, infer_compare, "LessOrEqual", 12, "less_equal"},
      {"GreaterEqual", prepare_compare<GeF>, infer_compare, "GreaterOrEqual", 12, "greater_equal"},
      {"LogicalAnd", prepare_logical<AndF>, infer_logical, "And", 7, "logical_and"},
      {"LogicalOr", prepare_logical<OrF>, infer_logical, "Or", 7, "logical_or"},
      {"LogicalXor", prepare_logical<XorF>, infer_logical, "Xor", 7, "logical_xor"},
  };
  for (const Predicate& p : predicates) {
    OpDef d = binary(p.type, p.prepare, p.infer).ir({p.type}, "opset1").opset_builder(p.builder);
    if (p.onnx) d.onnx_op(p.onnx, p.onnx_since);
    r.add(d);
  }
  r.add(OpDef{"LogicalNot", 1, 1, infer_not, prepare_not}
            .ir({"LogicalNot"}, "opset1")
            .onnx_op("Not")
            .opset_builder("logical_not"));
  r.add(OpDef{"Select", 3, 3, infer_select, prepare_select}
            .with_attrs({broadcast_attr()})
            .ir({"Select"}, "opset1")
            .onnx_op("Where", 9));
  r.add(arithmetic<MaxF>("Maximum").ir({"Maximum"}, "opset1").opset_builder("maximum"));
  r.add(arithmetic<MinF>("Minimum").ir({"Minimum"}, "opset1").opset_builder("minimum"));
  r.add(binary("Power", prepare_power).ir({"Power"}, "opset1").opset_builder("power"));
  r.add(chainable_unary<AbsF, false>("Abs").ir({"Abs"}, "opset1").onnx_op("Abs").opset_builder("absolute"));
  r.add(chainable_unary<NegF, false>("Negative").ir({"Negative"}, "opset1").onnx_op("Neg").opset_builder("negative"));
  r.add(fusable(unary<ReluF, false>("Relu"), chain_unary_step<ReluF>, {{ActKind::relu}})
            .ir({"ReLU", "Relu"}, "opset1")
            .onnx_op("Relu")
            .opset_builder("relu"));
  r.add(fusable(unary<SigmoidF, true>("Sigmoid"), chain_unary_step<SigmoidF>, {{ActKind::sigmoid}})
            .ir({"Sigmoid"}, "opset1")
            .onnx_op("Sigmoid")
            .opset_builder("sigmoid"));
  r.add(fusable(unary<TanhF, true>("Tanh"), chain_unary_step<TanhF>, {{ActKind::tanh}})
            .ir({"Tanh"}, "opset1")
            .onnx_op("Tanh")
            .opset_builder("tanh"));
  r.add(chainable_unary<ExpF, true>("Exp").ir({"Exp"}, "opset1").onnx_op("Exp").opset_builder("exp"));
  r.add(unary<LogF, true>("Log").ir({"Log"}, "opset1").onnx_op("Log").opset_builder("log"));
  r.add(chainable_unary<SqrtF, true>("Sqrt").ir({"Sqrt"}, "opset1").onnx_op("Sqrt").opset_builder("sqrt"));
  r.add(unary<SignF, false>("Sign").ir({"Sign"}, "opset1").onnx_op("Sign", 9).opset_builder("sign"));
  r.add(unary<ErfF, true>("Erf").ir({"Erf"}, "opset1").onnx_op("Erf", 9).opset_builder("erf"));
  r.add(unary<FloorF, true>("Floor").ir({"Floor"}, "opset1").onnx_op("Floor").opset_builder("floor"));
  r.add(unary<CeilF, true>("Ceiling").ir({"Ceiling"}, "opset1").onnx_op("Ceil").opset_builder("ceiling"));
  r.add(unary<RoundEvenF, true>("Round")
            .with_attrs({str_attr("mode", "half_to_even", {"half_to_even"}).onnx_name("-")})
            .ir({"Round"}, "opset5")
            .onnx_op("Round", 11));
  r.add(unary<ReciprocalF, true>("Reciprocal").onnx_op("Reciprocal").opset_builder("reciprocal"));
  r.add(unary<SoftplusF, true>("SoftPlus").ir({"SoftPlus"}, "opset4").onnx_op("Softplus").opset_builder("softplus"));
  r.add(fusable(unary<HSwishF, true>("HSwish"), chain_unary_step<HSwishF>, {{ActKind::hswish}})
            .ir({"HSwish"}, "opset4")
            .onnx_op("HardSwish", 14)
            .opset_builder("hswish"));
  r.add(chainable_unary<HSigmoidF, true>("HSigmoid").ir({"HSigmoid"}, "opset5").opset_builder("hsigmoid"));
  r.add(fusable(OpDef{"Swish", 1, 1, infer_unary<true>, prepare_unary<SwishF>}, chain_unary_step<SwishF>,
                {{ActKind::swish}})
            .ir({"Swish"}, "opset4")
            .opset_builder("swish"));
  r.add(fusable(OpDef{"Gelu", 1, 1, infer_unary<true>, prepare_gelu}.with_attrs(
                    {str_attr("approximation_mode", "ERF", {"ERF", "TANH", "erf", "tanh"})}),
                chain_gelu, {{ActKind::gelu_erf, ActKind::gelu_tanh}, "", "", "approximation_mode", {"ERF", "TANH"}})
            .ir({"Gelu"}, "opset7"));
  r.add(OpDef{"Elu", 1, 1, infer_unary<true>, prepare_elu}
            .blind(LayoutBlind::unary)
            .with_attrs({float_attr("alpha", 1.0)})
            .ir({"Elu"}, "opset1")
            .onnx_op("Elu")
            .opset_builder("elu"));
  r.add(fusable(OpDef{"LeakyRelu", 1, 1, infer_unary<true>, prepare_leaky}.with_attrs({float_attr("alpha", 0.01)}),
                chain_leaky, {{ActKind::leaky_relu}, "alpha"})
            .onnx_op("LeakyRelu", 6)
            .opset_builder("leaky_relu"));
  r.add(OpDef{"HardSigmoid", 1, 1, infer_unary<true>, prepare_hard_sigmoid}
            .with_attrs({float_attr("alpha", 0.2), float_attr("beta", 0.5)})
            .blind(LayoutBlind::unary)
            .onnx_op("HardSigmoid", 6)
            .opset_builder("hard_sigmoid"));
  r.add(fusable(OpDef{"Clamp", 1, 1, infer_unary<false>, prepare_clamp}.with_attrs(
                    {float_attr("min", -INFINITY), float_attr("max", INFINITY)}),
                chain_clamp, {{ActKind::clamp}, "min", "max"})
            .ir({"Clamp"}, "opset1"));
  // Activations added through the one formula in kernels/activations.hpp.
  r.add(activation<act::Mish>("Mish", ActKind::mish).ir({"Mish"}, "opset4").onnx_op("Mish", 18).opset_builder("mish"));
  r.add(activation<act::Selu>("Selu", ActKind::selu,
                              {float_attr("alpha", 1.67326319217681884765625),
                               float_attr("gamma", 1.05070102214813232421875).at_least(0)},
                              "alpha", "gamma")
            .ir({"aiov.Selu"}, "aiov1")
            .onnx_op("Selu", 6)
            .opset_builder("selu"));
  r.add(activation<act::Celu>("Celu", ActKind::celu, {float_attr("alpha", 1.0).checked_by(nonzero)}, "alpha")
            .ir({"aiov.Celu"}, "aiov1")
            .onnx_op("Celu", 12)
            .opset_builder("celu"));
  r.add(activation<act::Softsign>("SoftSign", ActKind::softsign)
            .ir({"SoftSign"}, "opset9")
            .onnx_op("Softsign")
            .opset_builder("softsign"));
  r.add(activation<act::ThresholdedRelu>("ThresholdedRelu", ActKind::thresholded_relu, {float_attr("alpha", 1.0)},
                                         "alpha")
            .ir({"aiov.ThresholdedRelu"}, "aiov1")
            .onnx_op("ThresholdedRelu", 10)
            .opset_builder("thresholded_relu"));
  r.add(activation<act::Shrink>("Shrink", ActKind::shrink,
                                {float_attr("lambd", 0.5).at_least(0), float_attr("bias", 0.0)}, "lambd", "bias")
            .ir({"aiov.Shrink"}, "aiov1")
            .onnx_op("Shrink", 9)
            .opset_builder("shrink"));

  // Trigonometric and hyperbolic functions, named alike by OpenVINO and ONNX: the OpenVINO
  // opset and the ONNX opset that have each.
  const auto same_named = [&r](OpDef d, const char* opset, int onnx_since) {
    std::string builder = d.type;
    for (char& ch : builder) ch = (char)std::tolower((unsigned char)ch);
    r.add(d.ir({d.type}, opset).onnx_op(d.type, onnx_since).opset_builder(builder));
  };
  same_named(unary<SinF, true>("Sin"), "opset1", 7);
  same_named(unary<CosF, true>("Cos"), "opset1", 7);
  same_named(unary<TanF, true>("Tan"), "opset1", 7);
  same_named(unary<AsinF, true>("Asin"), "opset1", 7);
  same_named(unary<AcosF, true>("Acos"), "opset1", 7);
  same_named(unary<AtanF, true>("Atan"), "opset1", 7);
  same_named(unary<SinhF, true>("Sinh"), "opset1", 9);
  same_named(unary<CoshF, true>("Cosh"), "opset1", 9);
  same_named(unary<AsinhF, true>("Asinh"), "opset4", 9);
  same_named(unary<AcoshF, true>("Acosh"), "opset4", 9);
  same_named(unary<AtanhF, true>("Atanh"), "opset4", 9);
  // Remainders (ONNX Mod picks one by its fmod attribute: a converter in frontends/onnx.py).
  r.add(binary("FloorMod", prepare_binary<FloorModF>)
            .blind(LayoutBlind::binary)
            .ir({"FloorMod"}, "opset1")
            .opset_builder("floor_mod"));
  r.add(binary("Mod", prepare_binary<TruncModF>).blind(LayoutBlind::binary).ir({"Mod"}, "opset1").opset_builder("mod"));
  // Bitwise ops and shifts (ONNX BitShift picks a direction: a converter in frontends/onnx.py).
  r.add(binary("BitwiseAnd", prepare_bitwise<BitAndF, AndF>, infer_bitwise)
            .blind(LayoutBlind::binary)
            .ir({"BitwiseAnd"}, "opset13")
            .onnx_op("BitwiseAnd", 18)
            .opset_builder("bitwise_and"));
  r.add(binary("BitwiseOr", prepare_bitwise<BitOrF, OrF>, infer_bitwise)
            .blind(LayoutBlind::binary)
            .ir({"BitwiseOr"}, "opset13")
            .onnx_op("BitwiseOr", 18)
            .opset_builder("bitwise_or"));
  r.add(binary("BitwiseXor", prepare_bitwise<BitXorF, XorF>, infer_bitwise)
            .blind(LayoutBlind::binary)
            .ir({"BitwiseXor"}, "opset13")
            .onnx_op("BitwiseXor", 18)
            .opset_builder("bitwise_xor"));
  r.add(OpDef{"BitwiseNot", 1, 1, infer_bitwise_not, prepare_bitwise_not}
            .blind(LayoutBlind::unary)
            .ir({"BitwiseNot"}, "opset13")
            .onnx_op("BitwiseNot", 18)
            .opset_builder("bitwise_not"));
  r.add(binary("BitwiseLeftShift", prepare_integer_binary<ShlF>, infer_shift)
            .blind(LayoutBlind::binary)
            .ir({"BitwiseLeftShift"}, "opset15")
            .opset_builder("bitwise_left_shift"));
  r.add(binary("BitwiseRightShift", prepare_integer_binary<ShrF>, infer_shift)
            .blind(LayoutBlind::binary)
            .ir({"BitwiseRightShift"}, "opset15")
            .opset_builder("bitwise_right_shift"));
  // Float classification.
  r.add(OpDef{"IsNaN", 1, 1, infer_float_test, prepare_is_nan}
            .blind(LayoutBlind::unary)
            .ir({"IsNaN"}, "opset10")
            .onnx_op("IsNaN", 9)
            .opset_builder("is_nan"));
  r.add(OpDef{"IsInf", 1, 1, infer_float_test, prepare_is_inf}
            .with_attrs({bool_attr("detect_positive", true), bool_attr("detect_negative", true)})
            .blind(LayoutBlind::unary)
            .ir({"IsInf"}, "opset10")
            .onnx_op("IsInf", 10)
            .opset_builder("is_inf"));
  // Each value of x is read before the output value at its place is written.
  r.add(with_reused_input(
      OpDef{"aiov.ElementwiseChain", 1, -1, infer_elementwise_chain, prepare_elementwise_chain}.with_attrs(
          {str_attr("steps", "").must_be_given(), ints_attr("operands").must_be_given(),
           ints_attr("swapped").must_be_given(), floats_attr("alphas").must_be_given(),
           floats_attr("betas").must_be_given()}),
      0));
}

}  // namespace aiov
