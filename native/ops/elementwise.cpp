// Elementwise ops: numpy-broadcast binaries and unaries.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

constexpr int64_t kParallelGrain = 1 << 15;  // elements; below this threads cost more than they save

// ---- binary ----------------------------------------------------------------

struct AddF { template <class C> C operator()(C a, C b) const { return a + b; } };
struct SubF { template <class C> C operator()(C a, C b) const { return a - b; } };
struct MulF { template <class C> C operator()(C a, C b) const { return a * b; } };
struct MaxF { template <class C> C operator()(C a, C b) const { return a > b ? a : b; } };
struct MinF { template <class C> C operator()(C a, C b) const { return a < b ? a : b; } };
struct DivF {
  template <class C> C operator()(C a, C b) const {
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
  template <class C> C operator()(C a, C b) const {
    if constexpr (std::is_floating_point<C>::value) return a / b;
    else return b == 0 ? C(0) : C(a / b);
  }
};
struct PowF {
  template <class C> C operator()(C a, C b) const {
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
    if (!dims.empty() && dims.back().bcast == dim.bcast) dims.back().n *= dim.n;
    else dims.push_back(std::move(dim));
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
AIOV_MULTIVERSION void binary_run(const T* __restrict a, int64_t as, const T* __restrict b, int64_t bs,
                                  O* __restrict o, int64_t n, F f) {
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
    auto run_rows = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t off[2];
        g.row_offsets<2>(r, off);
        binary_run<T, O, F>(a + off[0], as, b + off[1], bs, o + r * g.inner, g.inner, f);
      }
    };
    bool parallel = g.total >= 2 * kParallelGrain && k.ctx->pool;
    if (rows == 1) {
      if (parallel) {
        k.ctx->pool->parallel_for(g.total, kParallelGrain, [&](int64_t s, int64_t e) {
          binary_run<T, O, F>(a + s * as, as, b + s * bs, bs, o + s, e - s, f);
        }, k.ctx->max_threads);
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
  return broadcast_shapes(c.node, c.in[0].shape, c.in[1].shape, c.node.attr_str("auto_broadcast", "numpy"));
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
    if constexpr (std::is_same<T, bool>::value) throw NotSupported(ctx.node.describe() + ": boolean arithmetic");
    else return make_binary<T, T>(ctx, F{});
  });
}

// Divide's `pythondiv` (default true) picks floor or truncating integer division.
KernelFn prepare_divide(const PrepareContext& ctx) {
  if (ctx.node.attr_int("pythondiv", 1)) return prepare_binary<DivF>(ctx);
  return prepare_binary<TruncDivF>(ctx);
}

struct EqF { template <class C> uint8_t operator()(C a, C b) const { return a == b; } };
struct NeF { template <class C> uint8_t operator()(C a, C b) const { return a != b; } };
struct LtF { template <class C> uint8_t operator()(C a, C b) const { return a < b; } };
struct GtF { template <class C> uint8_t operator()(C a, C b) const { return a > b; } };
struct LeF { template <class C> uint8_t operator()(C a, C b) const { return a <= b; } };
struct GeF { template <class C> uint8_t operator()(C a, C b) const { return a >= b; } };
struct AndF { uint8_t operator()(uint8_t a, uint8_t b) const { return a && b; } };
struct OrF { uint8_t operator()(uint8_t a, uint8_t b) const { return a || b; } };
struct XorF { uint8_t operator()(uint8_t a, uint8_t b) const { return (a != 0) != (b != 0); } };

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
struct PReluF { template <class C> C operator()(C x, C slope) const { return x < 0 ? (C)(x * slope) : x; } };

// ---- Select: cond ? a : b, three-way numpy broadcasting ------------------------

std::vector<PortInfo> infer_select(const InferContext& c) {
  if (c.in[0].type != ElementType::boolean && c.in[0].type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": the condition must be boolean, got " + type_name(c.in[0].type));
  expect_type_match(c.node, c.in[1], c.in[2]);
  std::string mode = c.node.attr_str("auto_broadcast", "numpy");
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

KernelFn prepare_select(const PrepareContext& ctx) {
  Dims out = ctx.out[0].shape;
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
        oc += sc[d]; oa += sa[d]; ob += sb[d];
        if (++idx[d] < out[d]) break;
        oc -= sc[d] * out[d]; oa -= sa[d] * out[d]; ob -= sb[d] * out[d];
        idx[d] = 0;
      }
    }
  };
}

// ---- unary -----------------------------------------------------------------

struct AbsF { template <class C> C operator()(C x) const {
  if constexpr (std::is_floating_point<C>::value) return std::fabs(x);  // abs(-0.0) is +0.0
  else if constexpr (std::is_unsigned<C>::value) return x;
  else return x < 0 ? -x : x; } };
struct NegF { template <class C> C operator()(C x) const { return (C)(C(0) - x); } };
// NaN passes through (x < 0 is false for NaN), as in numpy and onnxruntime.
struct ReluF { template <class C> C operator()(C x) const { return x < 0 ? C(0) : x; } };
struct SignF { template <class C> C operator()(C x) const { return (C)((x > C(0)) - (x < C(0))); } };
struct ExpF {
  float operator()(float x) const { return fast_exp(x); }
  template <class C> C operator()(C x) const { return (C)std::exp((double)x); }
};
struct SigmoidF {
  float operator()(float x) const { return fast_sigmoid(x); }
  template <class C> C operator()(C x) const { return (C)(1.0 / (1.0 + std::exp(-(double)x))); }
};
struct TanhF {
  float operator()(float x) const { return fast_tanh(x); }
  template <class C> C operator()(C x) const { return (C)std::tanh((double)x); }
};
struct LogF { template <class C> C operator()(C x) const { return (C)std::log((double)x); }
  float operator()(float x) const { return std::log(x); } };
struct SqrtF { template <class C> C operator()(C x) const { return (C)std::sqrt((double)x); }
  float operator()(float x) const { return std::sqrt(x); } };
struct ErfF { template <class C> C operator()(C x) const { return (C)std::erf((double)x); }
  float operator()(float x) const { return std::erf(x); } };
struct FloorF { template <class C> C operator()(C x) const { return (C)std::floor(x); } };
struct CeilF { template <class C> C operator()(C x) const { return (C)std::ceil(x); } };
struct RoundEvenF { template <class C> C operator()(C x) const { return (C)std::nearbyint(x); } };
struct ReciprocalF { template <class C> C operator()(C x) const { return (C)(C(1) / x); } };
struct SoftplusF { template <class C> C operator()(C x) const {
  double d = (double)x; return (C)(d > 20 ? d : std::log1p(std::exp(d))); } };
struct HSwishF { template <class C> C operator()(C x) const {
  C r = x + C(3); r = r < 0 ? C(0) : (r > C(6) ? C(6) : r); return (C)(x * r / C(6)); } };
struct HSigmoidF { template <class C> C operator()(C x) const {
  C r = x + C(3); r = r < 0 ? C(0) : (r > C(6) ? C(6) : r); return (C)(r / C(6)); } };
struct GeluErfF { template <class C> C operator()(C x) const {
  return (C)(0.5 * (double)x * (1.0 + std::erf((double)x * 0.70710678118654752))); } };
struct GeluTanhF {
  float operator()(float x) const {
    return 0.5f * x * (1.0f + fast_tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  }
  template <class C> C operator()(C x) const {
    double d = (double)x;
    return (C)(0.5 * d * (1.0 + std::tanh(0.7978845608028654 * (d + 0.044715 * d * d * d))));
  }
};
// Parametrised: alpha/beta/min/max come from the node's attributes.
struct EluF { double alpha; template <class C> C operator()(C x) const {
  return x > 0 ? x : (C)(alpha * (std::exp((double)x) - 1.0)); } };
struct LeakyReluF { double alpha; template <class C> C operator()(C x) const {
  return x >= 0 ? x : (C)(alpha * (double)x); } };
struct HardSigmoidF { double alpha, beta; template <class C> C operator()(C x) const {
  double v = alpha * (double)x + beta; return (C)(v < 0 ? 0 : (v > 1 ? 1 : v)); } };
// min(max(x, lo), hi), as ONNX defines Clip: with lo > hi every value becomes hi; NaN stays.
struct ClampF { double lo, hi; template <class C> C operator()(C x) const {
  double v = (double)x; v = v < lo ? lo : v; return (C)(v > hi ? hi : v); }
  float operator()(float x) const { float l = (float)lo, h = (float)hi; x = x < l ? l : x; return x > h ? h : x; } };

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
          k.ctx->pool->parallel_for(n, kParallelGrain / 4, [&](int64_t s, int64_t e) {
            unary_run<T, F>(x + s, y + s, e - s, f);
          }, k.ctx->max_threads);
        } else {
          unary_run<T, F>(x, y, n, f);
        }
      };
    }
  });
}

template <class F>
KernelFn prepare_unary(const PrepareContext& ctx) { return make_unary(ctx, F{}); }

KernelFn prepare_gelu(const PrepareContext& ctx) {
  std::string mode = ctx.node.attr_str("approximation_mode", "ERF");
  if (mode == "TANH" || mode == "tanh") return make_unary(ctx, GeluTanhF{});
  return make_unary(ctx, GeluErfF{});
}
KernelFn prepare_elu(const PrepareContext& ctx) { return make_unary(ctx, EluF{ctx.node.attr_float("alpha", 1.0)}); }
KernelFn prepare_leaky(const PrepareContext& ctx) {
  return make_unary(ctx, LeakyReluF{ctx.node.attr_float("alpha", 0.01)});
}
KernelFn prepare_hard_sigmoid(const PrepareContext& ctx) {
  return make_unary(ctx, HardSigmoidF{ctx.node.attr_float("alpha", 0.2), ctx.node.attr_float("beta", 0.5)});
}
KernelFn prepare_clamp(const PrepareContext& ctx) {
  return make_unary(ctx, ClampF{ctx.node.attr_float("min", -INFINITY), ctx.node.attr_float("max", INFINITY)});
}

// ---- aiov.ElementwiseChain: a run of f32 elementwise ops in one pass ----------------
// The graph optimizer joins ops whose intermediate results have no other use. Input 0 is
// the chain's input x; attribute "steps" names the ops in order, "operands" gives each
// binary step's other operand (a node input; 0 is x itself, as in x * sigmoid(x)) or -1,
// "swapped" whether that operand is the left one (c - t), "alphas"/"betas" the
// parameters of Clamp and LeakyRelu. Operands broadcast into x without growing it, so the
// result has x's shape. Each block of values stays in L1 while every step runs over it,
// using the same functors as the standalone ops.

enum class ChainOp : uint8_t { add, sub, mul, div, max, min, relu, sigmoid, tanh, exp, abs, neg, sqrt, hswish,
                               hsigmoid, clamp, leaky, gelu_erf, gelu_tanh };

struct ChainStep {
  ChainOp op;
  int operand;   // node input of a binary step, -1 for unary
  bool swapped;  // operand on the left
  float alpha, beta;
};

const std::pair<const char*, ChainOp> kChainOps[] = {
    {"Add", ChainOp::add}, {"Subtract", ChainOp::sub}, {"Multiply", ChainOp::mul}, {"Divide", ChainOp::div},
    {"Maximum", ChainOp::max}, {"Minimum", ChainOp::min}, {"Relu", ChainOp::relu},
    {"Sigmoid", ChainOp::sigmoid}, {"Tanh", ChainOp::tanh}, {"Exp", ChainOp::exp}, {"Abs", ChainOp::abs},
    {"Negative", ChainOp::neg}, {"Sqrt", ChainOp::sqrt}, {"HSwish", ChainOp::hswish},
    {"HSigmoid", ChainOp::hsigmoid}, {"Clamp", ChainOp::clamp}, {"LeakyRelu", ChainOp::leaky},
    {"Gelu", ChainOp::gelu_erf}, {"GeluTanh", ChainOp::gelu_tanh}};

bool chain_op_of(const std::string& name, ChainOp& op) {
  for (const auto& [n, o] : kChainOps)
    if (name == n) return op = o, true;
  return false;
}

template <class F>
inline void chain_binary(float* __restrict t, const float* __restrict v, int64_t v_step, int64_t n, bool swapped,
                         F f) {
  if (v_step) {
    if (swapped) for (int64_t i = 0; i < n; ++i) t[i] = f(v[i], t[i]);
    else for (int64_t i = 0; i < n; ++i) t[i] = f(t[i], v[i]);
  } else {
    const float c = v[0];
    if (swapped) for (int64_t i = 0; i < n; ++i) t[i] = f(c, t[i]);
    else for (int64_t i = 0; i < n; ++i) t[i] = f(t[i], c);
  }
}

template <class F>
inline void chain_unary(float* __restrict t, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) t[i] = store<float>(f(t[i]));
}

AIOV_MULTIVERSION void chain_apply(const ChainStep& s, float* __restrict t, const float* __restrict v, int64_t v_step,
                                   int64_t n) {
  switch (s.op) {
    case ChainOp::add: return chain_binary(t, v, v_step, n, s.swapped, AddF{});
    case ChainOp::sub: return chain_binary(t, v, v_step, n, s.swapped, SubF{});
    case ChainOp::mul: return chain_binary(t, v, v_step, n, s.swapped, MulF{});
    case ChainOp::div: return chain_binary(t, v, v_step, n, s.swapped, DivF{});
    case ChainOp::max: return chain_binary(t, v, v_step, n, s.swapped, MaxF{});
    case ChainOp::min: return chain_binary(t, v, v_step, n, s.swapped, MinF{});
    case ChainOp::relu: return chain_unary(t, n, ReluF{});
    case ChainOp::sigmoid: return chain_unary(t, n, SigmoidF{});
    case ChainOp::tanh: return chain_unary(t, n, TanhF{});
    case ChainOp::exp: return chain_unary(t, n, ExpF{});
    case ChainOp::abs: return chain_unary(t, n, AbsF{});
    case ChainOp::neg: return chain_unary(t, n, NegF{});
    case ChainOp::sqrt: return chain_unary(t, n, SqrtF{});
    case ChainOp::hswish: return chain_unary(t, n, HSwishF{});
    case ChainOp::hsigmoid: return chain_unary(t, n, HSigmoidF{});
    case ChainOp::clamp: return chain_unary(t, n, ClampF{s.alpha, s.beta});
    case ChainOp::leaky: return chain_unary(t, n, LeakyReluF{s.alpha});
    case ChainOp::gelu_erf: return chain_unary(t, n, GeluErfF{});
    case ChainOp::gelu_tanh: return chain_unary(t, n, GeluTanhF{});
  }
}

std::vector<PortInfo> infer_elementwise_chain(const InferContext& c) {
  const std::vector<int64_t> operands = c.node.attr_ints("operands", {});
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

KernelFn prepare_elementwise_chain(const PrepareContext& ctx) {
  const Node& node = ctx.node;
  std::vector<ChainStep> steps;
  {
    const std::string names = node.attr_str("steps", "");
    const auto operands = node.attr_ints("operands", {}), swapped = node.attr_ints("swapped", {});
    const auto alphas = node.attr_floats("alphas", {}), betas = node.attr_floats("betas", {});
    size_t start = 0;
    for (size_t i = 0; start <= names.size(); ++i) {
      size_t end = names.find(',', start);
      if (end == std::string::npos) end = names.size();
      ChainStep st{};
      if (!chain_op_of(names.substr(start, end - start), st.op) || i >= operands.size() || i >= swapped.size() ||
          i >= alphas.size() || i >= betas.size())
        throw InputError(node.describe() + ": malformed step " + std::to_string(i) + " in '" + names + "'");
      st.operand = (int)operands[i];
      st.swapped = swapped[i] != 0;
      st.alpha = (float)alphas[i];
      st.beta = (float)betas[i];
      steps.push_back(st);
      start = end + 1;
    }
  }
  std::vector<Dims> shapes;
  for (const auto& in : ctx.in) shapes.push_back(in.shape);
  const BroadcastGeometry g = make_geometry(ctx.out[0].shape, shapes);
  return [steps, g](const KernelArgs& k) {
    if (g.total == 0) return;
    const int64_t inner = g.inner;
    const float* x = k.in[0]->as<float>();  // x has the output's shape: operands never grow it
    float* y = k.out[0]->as<float>();
    std::vector<const float*> in(g.inputs);
    for (size_t i = 0; i < g.inputs; ++i) in[i] = k.in[i]->as<float>();
    auto run_rows = [&](int64_t r0, int64_t r1) {
      constexpr int64_t kBlock = 1024;  // 4 KiB: stays in L1 across the steps
      alignas(64) float t[kBlock];
      std::vector<int64_t> off(g.inputs);
      for (int64_t r = r0; r < r1; ++r) {
        g.row_offsets(r, off.data());
        for (int64_t j0 = 0; j0 < inner; j0 += kBlock) {
          const int64_t n = std::min(kBlock, inner - j0);
          std::copy_n(x + r * inner + j0, n, t);
          for (const ChainStep& s : steps) {
            if (s.operand < 0) {
              chain_apply(s, t, nullptr, 0, n);
            } else {
              const int64_t step = g.inner_step[s.operand];
              chain_apply(s, t, in[s.operand] + off[s.operand] + j0 * step, step, n);
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
    throw InputError(c.node.describe() + ": expected a " + (FloatOnly ? "floating-point" : "numeric") +
                     " input, got " + type_name(t));
  return {c.in[0]};
}

std::vector<PortInfo> infer_not(const InferContext& c) {
  if (c.in[0].type != ElementType::boolean && c.in[0].type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected a boolean input, got " + type_name(c.in[0].type));
  return {c.in[0]};
}

template <class F>
void add_binary(OpRegistry& r, const char* name) {
  r.add(OpDef{name, 2, 2, infer_binary, prepare_binary<F>});
}
template <class F, bool FloatOnly>
void add_unary(OpRegistry& r, const char* name) {
  r.add(OpDef{name, 1, 1, infer_unary<FloatOnly>, prepare_unary<F>});
}

}  // namespace

void register_elementwise_ops(OpRegistry& r) {
  add_binary<AddF>(r, "Add");
  add_binary<SubF>(r, "Subtract");
  add_binary<MulF>(r, "Multiply");
  r.add(OpDef{"Divide", 2, 2, infer_binary, prepare_divide});
  add_binary<PReluF>(r, "PRelu");
  r.add(OpDef{"Equal", 2, 2, infer_compare, prepare_compare<EqF>});
  r.add(OpDef{"NotEqual", 2, 2, infer_compare, prepare_compare<NeF>});
  r.add(OpDef{"Less", 2, 2, infer_compare, prepare_compare<LtF>});
  r.add(OpDef{"Greater", 2, 2, infer_compare, prepare_compare<GtF>});
  r.add(OpDef{"LessEqual", 2, 2, infer_compare, prepare_compare<LeF>});
  r.add(OpDef{"GreaterEqual", 2, 2, infer_compare, prepare_compare<GeF>});
  r.add(OpDef{"LogicalAnd", 2, 2, infer_logical, prepare_logical<AndF>});
  r.add(OpDef{"LogicalOr", 2, 2, infer_logical, prepare_logical<OrF>});
  r.add(OpDef{"LogicalXor", 2, 2, infer_logical, prepare_logical<XorF>});
  r.add(OpDef{"LogicalNot", 1, 1, infer_not, prepare_not});
  r.add(OpDef{"Select", 3, 3, infer_select, prepare_select});
  add_binary<MaxF>(r, "Maximum");
  add_binary<MinF>(r, "Minimum");
  add_binary<PowF>(r, "Power");
  add_unary<AbsF, false>(r, "Abs");
  add_unary<NegF, false>(r, "Negative");
  add_unary<ReluF, false>(r, "Relu");
  add_unary<SigmoidF, true>(r, "Sigmoid");
  add_unary<TanhF, true>(r, "Tanh");
  add_unary<ExpF, true>(r, "Exp");
  add_unary<LogF, true>(r, "Log");
  add_unary<SqrtF, true>(r, "Sqrt");
  add_unary<SignF, false>(r, "Sign");
  add_unary<ErfF, true>(r, "Erf");
  add_unary<FloorF, true>(r, "Floor");
  add_unary<CeilF, true>(r, "Ceiling");
  add_unary<RoundEvenF, true>(r, "Round");
  add_unary<ReciprocalF, true>(r, "Reciprocal");
  add_unary<SoftplusF, true>(r, "SoftPlus");
  add_unary<HSwishF, true>(r, "HSwish");
  add_unary<HSigmoidF, true>(r, "HSigmoid");
  r.add(OpDef{"Gelu", 1, 1, infer_unary<true>, prepare_gelu});
  r.add(OpDef{"Elu", 1, 1, infer_unary<true>, prepare_elu});
  r.add(OpDef{"LeakyRelu", 1, 1, infer_unary<true>, prepare_leaky});
  r.add(OpDef{"HardSigmoid", 1, 1, infer_unary<true>, prepare_hard_sigmoid});
  r.add(OpDef{"Clamp", 1, 1, infer_unary<false>, prepare_clamp});
  // Each value of x is read before the output value at its place is written.
  r.add(with_reused_input(
      OpDef{"aiov.ElementwiseChain", 1, -1, infer_elementwise_chain, prepare_elementwise_chain}, 0));
}

bool chainable_elementwise_op(const std::string& op) {
  ChainOp unused;
  return chain_op_of(op, unused);
}

}  // namespace aiov
