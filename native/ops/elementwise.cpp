// Elementwise ops: numpy-broadcast binaries and unaries.
#include <algorithm>
#include <cmath>
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
  int64_t a_inner_step = 1, b_inner_step = 1;
  Dims outer;                  // collapsed outer dims
  std::vector<int64_t> sa, sb; // element strides for outer dims (0 where broadcast)
};

BroadcastGeometry make_geometry(const Dims& out, const Dims& a, const Dims& b) {
  size_t r = out.size();
  auto aligned = [r](const Dims& d) {
    Dims x(r, 1);
    std::copy(d.begin(), d.end(), x.begin() + (r - d.size()));
    return x;
  };
  Dims A = aligned(a), B = aligned(b);
  // Drop size-1 output dims, merge neighbours with the same broadcast pattern.
  struct D { int64_t n; bool ab, bb; };
  std::vector<D> dims;
  for (size_t i = 0; i < r; ++i) {
    if (out[i] == 1) continue;
    D d{out[i], A[i] == 1, B[i] == 1};
    if (!dims.empty() && dims.back().ab == d.ab && dims.back().bb == d.bb) dims.back().n *= d.n;
    else dims.push_back(d);
  }
  BroadcastGeometry g;
  g.total = numel(out);
  if (dims.empty()) return g;
  D last = dims.back();
  dims.pop_back();
  g.inner = last.n;
  g.a_inner_step = last.ab ? 0 : 1;
  g.b_inner_step = last.bb ? 0 : 1;
  int64_t stride_a = last.ab ? 1 : last.n, stride_b = last.bb ? 1 : last.n;
  g.outer.resize(dims.size());
  g.sa.resize(dims.size());
  g.sb.resize(dims.size());
  for (int i = (int)dims.size() - 1; i >= 0; --i) {
    g.outer[i] = dims[i].n;
    g.sa[i] = dims[i].ab ? 0 : stride_a;
    g.sb[i] = dims[i].bb ? 0 : stride_b;
    if (!dims[i].ab) stride_a *= dims[i].n;
    if (!dims[i].bb) stride_b *= dims[i].n;
  }
  return g;
}

template <class T, class F>
AIOV_MULTIVERSION void binary_run(const T* __restrict a, int64_t as, const T* __restrict b, int64_t bs,
                                  T* __restrict o, int64_t n) {
  F f;
  if (as == 1 && bs == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = store<T>(f(load(a[i]), load(b[i])));
  } else if (as == 1) {
    auto y = load(b[0]);
    for (int64_t i = 0; i < n; ++i) o[i] = store<T>(f(load(a[i]), y));
  } else if (bs == 1) {
    auto x = load(a[0]);
    for (int64_t i = 0; i < n; ++i) o[i] = store<T>(f(x, load(b[i])));
  } else {
    T v = store<T>(f(load(a[0]), load(b[0])));
    for (int64_t i = 0; i < n; ++i) o[i] = v;
  }
}

template <class T, class F>
KernelFn make_binary(const PrepareContext& ctx) {
  BroadcastGeometry g = make_geometry(ctx.out[0].shape, ctx.in[0].shape, ctx.in[1].shape);
  return [g](const KernelArgs& k) {
    const T* a = k.in[0]->as<T>();
    const T* b = k.in[1]->as<T>();
    T* o = k.out[0]->as<T>();
    if (g.total == 0) return;
    int64_t rows = g.total / g.inner;
    auto run_rows = [&](int64_t r0, int64_t r1) {
      // Row r -> outer multi-index -> input offsets.
      for (int64_t r = r0; r < r1; ++r) {
        int64_t rem = r, oa = 0, ob = 0;
        for (int d = (int)g.outer.size() - 1; d >= 0; --d) {
          int64_t idx = rem % g.outer[d];
          rem /= g.outer[d];
          oa += idx * g.sa[d];
          ob += idx * g.sb[d];
        }
        binary_run<T, F>(a + oa, g.a_inner_step, b + ob, g.b_inner_step, o + r * g.inner, g.inner);
      }
    };
    if (rows == 1) {
      // One long run: split it across threads.
      if (g.total >= 2 * kParallelGrain && k.ctx->pool) {
        k.ctx->pool->parallel_for(g.total, kParallelGrain, [&](int64_t s, int64_t e) {
          binary_run<T, F>(a + s * g.a_inner_step, g.a_inner_step, b + s * g.b_inner_step, g.b_inner_step,
                           o + s, e - s);
        }, k.ctx->max_threads);
      } else {
        binary_run<T, F>(a, g.a_inner_step, b, g.b_inner_step, o, g.inner);
      }
      return;
    }
    if (g.total >= 2 * kParallelGrain && k.ctx->pool) {
      int64_t grain = std::max<int64_t>(1, kParallelGrain / g.inner);
      k.ctx->pool->parallel_for(rows, grain, run_rows, k.ctx->max_threads);
    } else {
      run_rows(0, rows);
    }
  };
}

std::vector<PortInfo> infer_binary(const InferContext& c) {
  expect_type_match(c.node, c.in[0], c.in[1]);
  std::string mode = c.node.attr_str("auto_broadcast", "numpy");
  ElementType t = c.in[0].type == ElementType::dynamic ? c.in[1].type : c.in[0].type;
  if (t == ElementType::boolean || is_packed(t))
    throw InputError(c.node.describe() + ": arithmetic on element type " + type_name(t) + " is not supported");
  return {PortInfo{t, broadcast_shapes(c.node, c.in[0].shape, c.in[1].shape, mode)}};
}

template <class F>
KernelFn prepare_binary(const PrepareContext& ctx) {
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_same<T, bool>::value) {
      throw NotSupported(ctx.node.describe() + ": boolean arithmetic");
    } else {
      return make_binary<T, F>(ctx);
    }
  });
}

// Divide's `pythondiv` (default true) picks floor or truncating integer division.
KernelFn prepare_divide(const PrepareContext& ctx) {
  if (ctx.node.attr_int("pythondiv", 1)) return prepare_binary<DivF>(ctx);
  return prepare_binary<TruncDivF>(ctx);
}

// ---- unary -----------------------------------------------------------------

struct AbsF { template <class C> C operator()(C x) const {
  if constexpr (std::is_unsigned<C>::value) return x; else return x < 0 ? -x : x; } };
struct NegF { template <class C> C operator()(C x) const { return (C)(C(0) - x); } };
struct ReluF { template <class C> C operator()(C x) const { return x > 0 ? x : C(0); } };
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

template <class T, class F>
AIOV_MULTIVERSION void unary_run(const T* __restrict x, T* __restrict y, int64_t n) {
  F f;
  for (int64_t i = 0; i < n; ++i) y[i] = store<T>(f(load(x[i])));
}

template <class F, bool FloatOnly>
KernelFn prepare_unary(const PrepareContext& ctx) {
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_same<T, bool>::value) {
      throw NotSupported(ctx.node.describe() + ": boolean input");
    } else {
      int64_t n = ctx.out[0].count();
      return [n](const KernelArgs& k) {
        const T* x = k.in[0]->as<T>();
        T* y = k.out[0]->as<T>();
        if (n >= 2 * kParallelGrain / 4 && k.ctx->pool) {
          k.ctx->pool->parallel_for(n, kParallelGrain / 4, [&](int64_t s, int64_t e) {
            unary_run<T, F>(x + s, y + s, e - s);
          }, k.ctx->max_threads);
        } else {
          unary_run<T, F>(x, y, n);
        }
      };
    }
  });
}

template <bool FloatOnly>
std::vector<PortInfo> infer_unary(const InferContext& c) {
  ElementType t = c.in[0].type;
  if (t == ElementType::boolean || is_packed(t) || (FloatOnly && !is_float(t) && t != ElementType::dynamic))
    throw InputError(c.node.describe() + ": expected a " + (FloatOnly ? "floating-point" : "numeric") +
                     " input, got " + type_name(t));
  return {c.in[0]};
}

template <class F>
void add_binary(OpRegistry& r, const char* name) {
  r.add(OpDef{name, 2, 2, infer_binary, prepare_binary<F>});
}
template <class F, bool FloatOnly>
void add_unary(OpRegistry& r, const char* name) {
  r.add(OpDef{name, 1, 1, infer_unary<FloatOnly>, prepare_unary<F, FloatOnly>});
}

}  // namespace

void register_elementwise_ops(OpRegistry& r) {
  add_binary<AddF>(r, "Add");
  add_binary<SubF>(r, "Subtract");
  add_binary<MulF>(r, "Multiply");
  r.add(OpDef{"Divide", 2, 2, infer_binary, prepare_divide});
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
}

}  // namespace aiov
