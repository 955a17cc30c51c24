// Reductions over axes (ReduceSum/Mean/Max/Min/Prod/Logical*), NormalizeL2, ArgMax/ArgMin, MVN.
#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <set>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/isa.hpp"
#include "kernels/normalize_row.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// Axes to reduce (sorted, unique); empty operand = all axes unless noop_with_empty_axes.
std::vector<int64_t> reduce_axes(const Node& n, const TensorView* v, int64_t rank, bool* noop) {
  *noop = false;
  std::vector<int64_t> raw;
  if (v)
    raw = read_int_tensor(n, *v, "axes");
  else if (n.has_attr("axes"))
    raw = n.attr_ints("axes");
  std::set<int64_t> axes;
  for (auto a : raw) axes.insert(normalize_axis(n, a, rank));
  if (axes.empty()) {
    if (n.attr_int("noop_with_empty_axes")) {
      *noop = true;
      return {};
    }
    for (int64_t i = 0; i < rank; ++i) axes.insert(i);
  }
  return std::vector<int64_t>(axes.begin(), axes.end());
}

std::vector<PortInfo> infer_reduce(const InferContext& c) {
  const PortInfo& x = c.in[0];
  bool keep = c.node.attr_int("keep_dims") != 0;
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  const TensorView* axes_value = c.in.size() > 1 ? c.in_value[1] : nullptr;
  if (c.in.size() > 1 && !axes_value) {
    if (keep) return {PortInfo{x.type, PartialShape(Dims(x.shape.dims.size(), kDynamic))}};
    return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  }
  bool noop;
  auto axes = reduce_axes(c.node, axes_value, x.shape.rank(), &noop);
  if (noop) return {x};
  Dims out;
  for (int64_t d = 0; d < x.shape.rank(); ++d) {
    bool r = std::binary_search(axes.begin(), axes.end(), d);
    if (!r)
      out.push_back(x.shape.dims[d]);
    else if (keep)
      out.push_back(1);
  }
  return {PortInfo{x.type, PartialShape(out)}};
}

// ReduceLogicalAnd/Or: min (all) and max (any) over booleans.
std::vector<PortInfo> infer_logical_reduce(const InferContext& c) {
  if (c.in[0].type != ElementType::boolean && c.in[0].type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected a boolean input, got " + type_name(c.in[0].type));
  return infer_reduce(c);
}

enum class ReduceKind { kSum, kMean, kMax, kMin, kProd, kL2, kLogSumExp, kL1, kSumSquare, kLogSum };

// The input viewed as [outer, reduced, inner] blocks after moving reduced axes together is
// not contiguous in general; we iterate output positions and walk the reduced sub-box.
struct ReduceGeometry {
  Dims kept_shape;  // output positions (kept dims)
  std::vector<int64_t> kept_strides, red_shape, red_strides;
  int64_t red_count = 1;
};

ReduceGeometry reduce_geometry(const Dims& in, const std::vector<int64_t>& axes) {
  auto st = row_strides(in);
  ReduceGeometry g;
  for (int64_t d = 0; d < (int64_t)in.size(); ++d) {
    if (std::binary_search(axes.begin(), axes.end(), d)) {
      g.red_shape.push_back(in[d]);
      g.red_strides.push_back(st[d]);
      g.red_count *= in[d];
    } else {
      g.kept_shape.push_back(in[d]);
      g.kept_strides.push_back(st[d]);
    }
  }
  return g;
}

template <class T>
KernelFn make_reduce(const PrepareContext& ctx, const ReduceGeometry& g, ReduceKind kind) {
  return [g, kind](const KernelArgs& k) {
    using C = typename ComputeOf<T>::type;
    using Acc = typename std::conditional<std::is_floating_point<C>::value, double, C>::type;
    const T* x = k.in[0]->as<T>();
    T* o = k.out[0]->as<T>();
    int64_t outs = numel(g.kept_shape);
    auto one = [&](int64_t i) {
      int64_t rem = i, base = 0;
      for (int d = (int)g.kept_shape.size() - 1; d >= 0; --d) {
        base += (rem % g.kept_shape[d]) * g.kept_strides[d];
        rem /= g.kept_shape[d];
      }
      Acc acc = kind == ReduceKind::kProd ? Acc(1) : Acc(0);
      Acc best = 0;
      bool first = true;
      std::vector<int64_t> idx(g.red_shape.size(), 0);
      int64_t off = base;
      for (int64_t j = 0; j < g.red_count; ++j) {
        Acc v = (Acc)load(x[off]);
        switch (kind) {
          case ReduceKind::kSum:
          case ReduceKind::kMean:
          case ReduceKind::kLogSum:
            acc += v;
            break;
          case ReduceKind::kProd:
            acc *= v;
            break;
          case ReduceKind::kL2:
          case ReduceKind::kSumSquare:
            acc += v * v;
            break;
          case ReduceKind::kL1:
            acc += (v < 0 ? (Acc)(Acc(0) - v) : v);
            break;
          case ReduceKind::kMax:
            if (first || v > best) best = v;
            break;
          case ReduceKind::kMin:
            if (first || v < best) best = v;
            break;
          case ReduceKind::kLogSumExp:
            if (first || v > best) best = v;
            break;
        }
        first = false;
        for (int d = (int)g.red_shape.size() - 1; d >= 0; --d) {
          off += g.red_strides[d];
          if (++idx[d] < g.red_shape[d]) break;
          off -= g.red_strides[d] * g.red_shape[d];
          idx[d] = 0;
        }
      }
      if (kind == ReduceKind::kLogSumExp) {
        double s = 0;
        std::fill(idx.begin(), idx.end(), 0);
        off = base;
        for (int64_t j = 0; j < g.red_count; ++j) {
          s += std::exp((double)load(x[off]) - (double)best);
          for (int d = (int)g.red_shape.size() - 1; d >= 0; --d) {
            off += g.red_strides[d];
            if (++idx[d] < g.red_shape[d]) break;
            off -= g.red_strides[d] * g.red_shape[d];
            idx[d] = 0;
          }
        }
        acc = (Acc)(std::log(s) + (double)best);
      }
      if (kind == ReduceKind::kMax || kind == ReduceKind::kMin) acc = best;
      if (first && (kind == ReduceKind::kMax || kind == ReduceKind::kMin)) {
        // ONNX: the max of nothing is -inf (the type's lowest value without infinities), the min +inf.
        using L = std::numeric_limits<C>;
        C none = kind == ReduceKind::kMax ? (L::has_infinity ? -L::infinity() : L::lowest())
                                          : (L::has_infinity ? L::infinity() : L::max());
        acc = (Acc)none;
      }
      if (kind == ReduceKind::kMean) acc = g.red_count ? (Acc)(acc / (Acc)g.red_count) : acc;
      if (kind == ReduceKind::kL2) acc = (Acc)std::sqrt((double)acc);
      if (kind == ReduceKind::kLogSum) acc = (Acc)std::log((double)acc);
      o[i] = store<T>((C)acc);
    };
    if (outs * g.red_count >= (1 << 16) && k.ctx->pool && outs > 1)
      k.ctx->pool->parallel_for(
          outs, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, g.red_count)),
          [&](int64_t s, int64_t e) {
            for (int64_t i = s; i < e; ++i) one(i);
          },
          k.ctx->max_threads);
    else
      for (int64_t i = 0; i < outs; ++i) one(i);
  };
}

// out[o, i] = reduce over r of x[o, r, i] with x seen as [outer, red, inner]: consecutive
// reduced axes ahead of contiguous kept ones (global pooling over NHWC). Whole inner rows
// are combined at once, so the loop is contiguous and vectorizes.
AIOV_MULTIVERSION
void reduce_rows(const float* __restrict x, float* __restrict o, int64_t red, int64_t inner, ReduceKind kind) {
  std::memcpy(o, x, inner * sizeof(float));
  for (int64_t r = 1; r < red; ++r) {
    const float* row = x + r * inner;
    if (kind == ReduceKind::kMax)
      for (int64_t i = 0; i < inner; ++i) o[i] = row[i] > o[i] ? row[i] : o[i];
    else if (kind == ReduceKind::kMin)
      for (int64_t i = 0; i < inner; ++i) o[i] = row[i] < o[i] ? row[i] : o[i];
    else
      for (int64_t i = 0; i < inner; ++i) o[i] += row[i];
  }
  if (kind == ReduceKind::kMean) {
    const float inv = 1.0f / (float)red;
    for (int64_t i = 0; i < inner; ++i) o[i] *= inv;
  }
}

// Sum, maximum or minimum of n >= 1 contiguous values (the mean divides the sum): 16 lanes
// of partial results (a loop GCC vectorizes), sums carried in double every kSumBlock values,
// as the generic loop sums in double. Like it, a NaN counts only as the first value.
AIOV_MULTIVERSION
float reduce_run(const float* __restrict x, int64_t n, ReduceKind kind) {
  constexpr int kLanes = 16;
  constexpr int64_t kSumBlock = 1024;
  const bool sum = kind == ReduceKind::kSum || kind == ReduceKind::kMean;
  if (!sum && x[0] != x[0]) return x[0];
  double total = 0;
  float lanes[kLanes];
  const float none = kind == ReduceKind::kMax ? -INFINITY : INFINITY;
  for (int l = 0; l < kLanes; ++l) lanes[l] = sum ? 0.0f : none;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const float* v = x + i;
    if (kind == ReduceKind::kMax)
      for (int l = 0; l < kLanes; ++l) lanes[l] = v[l] > lanes[l] ? v[l] : lanes[l];
    else if (kind == ReduceKind::kMin)
      for (int l = 0; l < kLanes; ++l) lanes[l] = v[l] < lanes[l] ? v[l] : lanes[l];
    else
      for (int l = 0; l < kLanes; ++l) lanes[l] += v[l];
    if (sum && (i + kLanes) % kSumBlock == 0) {
      for (int l = 0; l < kLanes; ++l) total += lanes[l], lanes[l] = 0.0f;
    }
  }
  float best = x[0];
  for (; i < n; ++i) {
    if (kind == ReduceKind::kMax)
      best = x[i] > best ? x[i] : best;
    else if (kind == ReduceKind::kMin)
      best = x[i] < best ? x[i] : best;
    else
      total += x[i];
  }
  for (int l = 0; l < kLanes; ++l) {
    if (kind == ReduceKind::kMax)
      best = lanes[l] > best ? lanes[l] : best;
    else if (kind == ReduceKind::kMin)
      best = lanes[l] < best ? lanes[l] : best;
    else
      total += lanes[l];
  }
  if (!sum) return best;
  return (float)(kind == ReduceKind::kMean ? total / (double)n : total);
}

KernelFn reduce_middle_block(const TensorView& in, const std::vector<int64_t>& axes, ReduceKind kind) {
  const bool simple =
      kind == ReduceKind::kSum || kind == ReduceKind::kMean || kind == ReduceKind::kMax || kind == ReduceKind::kMin;
  if (!simple || in.type != ElementType::f32 || axes.empty()) return nullptr;
  for (size_t i = 1; i < axes.size(); ++i)
    if (axes[i] != axes[i - 1] + 1) return nullptr;
  int64_t outer = 1, red = 1, inner = 1;
  for (int64_t d = 0; d < (int64_t)in.shape.size(); ++d) {
    if (d < axes.front())
      outer *= in.shape[d];
    else if (d <= axes.back())
      red *= in.shape[d];
    else
      inner *= in.shape[d];
  }
  if (red < 1) return nullptr;
  if (inner == 1) {
    // The trailing axes: each output reduces one contiguous run (global pooling over NCHW, a
    // whole tensor), 1.5 ns a value through the generic loop's odometer and doubles.
    return [outer, red, kind](const KernelArgs& k) {
      const float* x = k.in[0]->as<float>();
      float* o = k.out[0]->as<float>();
      auto rows = [&](int64_t a0, int64_t a1) {
        for (int64_t a = a0; a < a1; ++a) o[a] = reduce_run(x + a * red, red, kind);
      };
      if (k.ctx->pool && outer > 1 && outer * red >= (1 << 16))
        k.ctx->pool->parallel_for(outer, std::max<int64_t>(1, (1 << 14) / red), rows, k.ctx->max_threads);
      else
        rows(0, outer);
    };
  }
  // Rows of at least 4 values: vector adds beat reducing each strided column (23 us against 7
  // for a [8, 16, 16, 8] global average pool over NHWC, an int8 EfficientNet's squeeze).
  if (inner < 4) return nullptr;
  return [outer, red, inner, kind](const KernelArgs& k) {
    const float* x = k.in[0]->as<float>();
    float* o = k.out[0]->as<float>();
    for (int64_t a = 0; a < outer; ++a) reduce_rows(x + a * red * inner, o + a * inner, red, inner, kind);
  };
}

template <ReduceKind Kind>
KernelFn prepare_reduce(const PrepareContext& ctx) {
  bool noop;
  const TensorView* axes = ctx.in.size() > 1 ? &ctx.in[1] : nullptr;
  if (axes && !axes->data) throw NotSupported(ctx.node.describe() + ": axes must be known at compile time");
  auto ax = reduce_axes(ctx.node, axes, (int64_t)ctx.in[0].shape.size(), &noop);
  if (noop) {
    size_t bytes = ctx.out[0].bytes();
    return [bytes](const KernelArgs& k) { std::memcpy(k.out[0]->data, k.in[0]->data, bytes); };
  }
  if (KernelFn fast = reduce_middle_block(ctx.in[0], ax, Kind)) return fast;
  ReduceGeometry g = reduce_geometry(ctx.in[0].shape, ax);
  return dispatch_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    // Over booleans only max (any) and min (all) mean something.
    if constexpr (std::is_same<T, bool>::value) {
      if (Kind != ReduceKind::kMax && Kind != ReduceKind::kMin)
        throw NotSupported(ctx.node.describe() + ": boolean input");
    }
    return make_reduce<T>(ctx, g, Kind);
  });
}

// ---- NormalizeL2: x / sqrt(sum of x^2 over axes), the sum floored by (max) or offset by (add) eps ----

std::vector<int64_t> normalize_axes(const Node& n, const TensorView& v, int64_t rank) {
  std::set<int64_t> axes;
  for (auto a : read_int_tensor(n, v, "axes")) axes.insert(normalize_axis(n, a, rank));
  return std::vector<int64_t>(axes.begin(), axes.end());
}

std::vector<PortInfo> infer_normalize_l2(const InferContext& c) {
  if (!is_float(c.in[0].type) && c.in[0].type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected a floating-point input, got " + type_name(c.in[0].type));
  if (c.in_value[1] && c.in[0].shape.rank_known) normalize_axes(c.node, *c.in_value[1], c.in[0].shape.rank());
  return {c.in[0]};
}

KernelFn prepare_normalize_l2(const PrepareContext& ctx) {
  if (!ctx.in[1].data) throw NotSupported(ctx.node.describe() + ": axes must be known at compile time");
  const auto axes = normalize_axes(ctx.node, ctx.in[1], (int64_t)ctx.in[0].shape.size());
  // No axes: each element is divided by itself (OpenVINO's spec: 1 for every non-zero element).
  const bool by_itself = axes.empty();
  ReduceGeometry g = reduce_geometry(ctx.in[0].shape, axes);
  const double eps = ctx.node.attr_float("eps");
  const bool add = ctx.node.attr_str("eps_mode") == "add";
  return dispatch_float_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [g, eps, add, by_itself](const KernelArgs& k) {
      const T* x = k.in[0]->as<T>();
      T* y = k.out[0]->as<T>();
      // walks the reduced sub-box of one kept position, calling f(offset)
      auto walk = [&g](int64_t base, auto&& f) {
        std::vector<int64_t> idx(g.red_shape.size(), 0);
        int64_t off = base;
        for (int64_t j = 0; j < g.red_count; ++j) {
          f(off);
          for (int d = (int)g.red_shape.size() - 1; d >= 0; --d) {
            off += g.red_strides[d];
            if (++idx[d] < g.red_shape[d]) break;
            off -= g.red_strides[d] * g.red_shape[d];
            idx[d] = 0;
          }
        }
      };
      for (int64_t i = 0, outs = numel(g.kept_shape); i < outs; ++i) {
        int64_t rem = i, base = 0;
        for (int d = (int)g.kept_shape.size() - 1; d >= 0; --d) {
          base += (rem % g.kept_shape[d]) * g.kept_strides[d];
          rem /= g.kept_shape[d];
        }
        if (by_itself) {
          y[base] = store<T>((typename ComputeOf<T>::type)(load(x[base]) != 0 ? 1 : 0));
          continue;
        }
        double sum = 0;
        walk(base, [&](int64_t off) { sum += (double)load(x[off]) * (double)load(x[off]); });
        const double inv = 1.0 / std::sqrt(add ? sum + eps : std::max(sum, eps));
        walk(base, [&](int64_t off) { y[off] = store<T>((typename ComputeOf<T>::type)((double)load(x[off]) * inv)); });
      }
    };
  });
}

// ---- ArgMax / ArgMin (ONNX semantics; i64 indices) ----------------------------------

std::vector<PortInfo> infer_arg(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known) return {PortInfo{ElementType::i64, PartialShape::dynamic_rank()}};
  int64_t axis = normalize_axis(c.node, c.node.attr_int("axis"), x.shape.rank());
  Dims out = x.shape.dims;
  if (c.node.attr_int("keepdims"))
    out[axis] = 1;
  else
    out.erase(out.begin() + axis);
  return {PortInfo{ElementType::i64, PartialShape(out)}};
}

template <bool Max>
KernelFn prepare_arg(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  int64_t axis = normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)s.size());
  bool last = ctx.node.attr_int("select_last_index") != 0;
  const AroundAxis around = around_axis(s, axis);
  const int64_t outer = around.outer, len = around.len, inner = around.inner;
  return dispatch_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [outer, len, inner, last](const KernelArgs& k) {
      const T* x = k.in[0]->as<T>();
      int64_t* o = k.out[0]->as<int64_t>();
      for (int64_t a = 0; a < outer; ++a)
        for (int64_t i = 0; i < inner; ++i) {
          const T* p = x + a * len * inner + i;
          int64_t best = 0;
          auto bv = load(p[0]);
          for (int64_t j = 1; j < len; ++j) {
            auto v = load(p[j * inner]);
            bool better = Max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
            if (better) {
              bv = v;
              best = j;
            }
          }
          o[a * inner + i] = best;
        }
    };
  });
}

// ---- MVN: (x - mean) / sqrt(var + eps) over axes -----------------------------------------

std::vector<PortInfo> infer_same(const InferContext& c) {
  if (!is_float(c.in[0].type) && c.in[0].type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected a floating-point input, got " + type_name(c.in[0].type));
  return {c.in[0]};
}

// Mean and variance of a row in f32 with 16 partial sums (vectorizable without reassociating
// a single accumulator), then y = (x - mean) * scale (* gamma + beta).
AIOV_MULTIVERSION
void normalize_row(const float* __restrict a, float* __restrict b, int64_t len, bool norm_var, double eps,
                   bool eps_outside, const float* __restrict gamma, const float* __restrict beta) {
  constexpr int kLanes = 16;
  float part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] += a[i + l];
  float tail = 0.0f;
  for (; i < len; ++i) tail += a[i];
  double sum = tail;
  for (int l = 0; l < kLanes; ++l) sum += part[l];
  const float m = (float)(sum / (double)len);
  float sc = 1.0f;
  if (norm_var) {
    float sq[kLanes] = {};
    for (i = 0; i + kLanes <= len; i += kLanes)
      for (int l = 0; l < kLanes; ++l) sq[l] += (a[i + l] - m) * (a[i + l] - m);
    float sq_tail = 0.0f;
    for (; i < len; ++i) sq_tail += (a[i] - m) * (a[i] - m);
    double var = sq_tail;
    for (int l = 0; l < kLanes; ++l) var += sq[l];
    var /= (double)len;
    sc = (float)(eps_outside ? 1.0 / (std::sqrt(var) + eps) : 1.0 / std::sqrt(var + eps));
  }
  if (gamma && beta)
    for (i = 0; i < len; ++i) b[i] = (a[i] - m) * sc * gamma[i] + beta[i];
  else if (gamma)
    for (i = 0; i < len; ++i) b[i] = (a[i] - m) * sc * gamma[i];
  else
    for (i = 0; i < len; ++i) b[i] = (a[i] - m) * sc;
}

// Rows of `len` contiguous values, in parallel when there is enough work.
KernelFn normalize_rows_kernel(int64_t rows, int64_t len, bool norm_var, double eps, bool eps_outside, bool affine,
                               bool has_beta) {
  return [=](const KernelArgs& k) {
    const float* x = k.in[0]->as<float>();
    float* y = k.out[0]->as<float>();
    const float* gamma = affine ? k.in[1]->as<float>() : nullptr;
    const float* beta = affine && has_beta ? k.in[2]->as<float>() : nullptr;
    static const normalize_detail::NormalizeRowsFn avx512 =
        selected_isa() == Isa::avx512 ? normalize_detail::avx512_normalize_rows() : nullptr;
    auto run = [&](int64_t r0, int64_t r1) {
      if (avx512) return avx512(x + r0 * len, y + r0 * len, r1 - r0, len, norm_var, eps, eps_outside, gamma, beta);
      for (int64_t r = r0; r < r1; ++r)
        normalize_row(x + r * len, y + r * len, len, norm_var, eps, eps_outside, gamma, beta);
    };
    for_rows(*k.ctx, rows, len, run);
  };
}

KernelFn prepare_mvn(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  bool noop;
  const TensorView* axes = ctx.in.size() > 1 ? &ctx.in[1] : nullptr;
  if (axes && !axes->data) throw NotSupported(ctx.node.describe() + ": axes must be known at compile time");
  auto ax = reduce_axes(ctx.node, axes, (int64_t)s.size(), &noop);
  // Only trailing axes (LayerNorm, InstanceNorm over H,W): rows of `len` contiguous values.
  for (size_t i = 0; i < ax.size(); ++i)
    if (ax[i] != (int64_t)(s.size() - ax.size() + i))
      throw NotSupported(ctx.node.describe() + ": MVN over non-trailing axes");
  int64_t len = 1;
  for (auto a : ax) len *= s[a];
  int64_t rows = len ? numel(s) / len : 0;
  if (ctx.in[0].type != ElementType::f32) throw NotSupported(ctx.node.describe() + ": non-f32 input");
  return normalize_rows_kernel(rows, len, ctx.node.attr_int("normalize_variance") != 0, ctx.node.attr_float("eps"),
                               ctx.node.attr_str("eps_mode") == "outside_sqrt", false, false);
}

// aiov.LayerNorm(x, gamma [len], beta [len]): MVN over the last axis with its scale and
// shift applied in the same pass (made by the graph optimizer from MVN -> Multiply -> Add).
std::vector<PortInfo> infer_layer_norm(const InferContext& c) {
  if (c.in[0].type != ElementType::f32) throw InputError(c.node.describe() + ": expected f32 data");
  const PartialShape& x = c.in[0].shape;
  for (size_t i = 1; i < c.in.size(); ++i)
    if (x.rank_known && c.in[i].shape.rank_known &&
        (c.in[i].shape.rank() != 1 || c.in[i].shape.dims[0] != x.dims.back()))
      throw InputError(c.node.describe() + ": scale and shift must be [" + std::to_string(x.dims.back()) + "], got " +
                       c.in[i].shape.str());
  return {PortInfo{ElementType::f32, x}};
}

KernelFn prepare_layer_norm(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  const int64_t len = s.empty() ? 1 : s.back();
  const int64_t rows = len ? numel(s) / len : 0;
  return normalize_rows_kernel(rows, len, true, ctx.node.attr_float("eps"),
                               ctx.node.attr_str("eps_mode") == "outside_sqrt", true, ctx.in.size() > 2);
}

// ---- TopK(data, k) -> values, indices ---------------------------------------------------------

std::vector<PortInfo> infer_topk(const InferContext& c) {
  const PortInfo& x = c.in[0];
  ElementType it = type_from_name(c.node.attr_str("index_element_type"));
  if (!x.shape.rank_known)
    return {PortInfo{x.type, PartialShape::dynamic_rank()}, PortInfo{it, PartialShape::dynamic_rank()}};
  int64_t axis = normalize_axis(c.node, c.node.attr_int("axis"), x.shape.rank());
  Dims out = x.shape.dims;
  if (c.in_value[1]) {
    int64_t k = read_int_tensor(c.node, *c.in_value[1], "k").at(0);
    if (k < 0) throw InputError(c.node.describe() + ": k must be >= 0, got " + std::to_string(k));
    if (out[axis] >= 0 && k > out[axis])
      throw InputError(c.node.describe() + ": k = " + std::to_string(k) + " exceeds the axis size " +
                       std::to_string(out[axis]));
    out[axis] = k;
  } else {
    out[axis] = kDynamic;
  }
  return {PortInfo{x.type, PartialShape(out)}, PortInfo{it, PartialShape(out)}};
}

KernelFn prepare_topk(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  int64_t axis = normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)s.size());
  int64_t k = ctx.out[0].shape[axis];
  bool largest = ctx.node.attr_str("mode") == "max";
  bool by_index = ctx.node.attr_str("sort") == "index";
  const AroundAxis around = around_axis(s, axis);
  const int64_t outer = around.outer, len = around.len, inner = around.inner;
  bool i32 = ctx.out[1].type == ElementType::i32;
  return dispatch_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [=](const KernelArgs& a) {
      const T* x = a.in[0]->as<T>();
      T* v = a.out[0]->as<T>();
      std::vector<int64_t> idx((size_t)len);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          const T* p = x + o * len * inner + i;
          for (int64_t j = 0; j < len; ++j) idx[j] = j;
          // Ties keep the lower index first (ONNX).
          auto better = [&](int64_t l, int64_t r) {
            auto lv = load(p[l * inner]), rv = load(p[r * inner]);
            if (lv != rv) return largest ? lv > rv : lv < rv;
            return l < r;
          };
          std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
          if (by_index) std::sort(idx.begin(), idx.begin() + k);
          for (int64_t j = 0; j < k; ++j) {
            int64_t dst = o * k * inner + j * inner + i;
            v[dst] = p[idx[j] * inner];
            if (i32)
              a.out[1]->as<int32_t>()[dst] = (int32_t)idx[j];
            else
              a.out[1]->as<int64_t>()[dst] = idx[j];
          }
        }
    };
  });
}

// ---- CumSum(data, axis) --------------------------------------------------------------------------

std::vector<PortInfo> infer_cumsum(const InferContext& c) {
  if (c.in.size() > 1 && c.in_value[1] && c.in[0].shape.rank_known)
    normalize_axis(c.node, read_int_tensor(c.node, *c.in_value[1], "axis").at(0), c.in[0].shape.rank());
  return {c.in[0]};
}

// CumSum and CumProd share the walk; only the combining step and its identity differ.
template <bool Product>
KernelFn prepare_cumulative(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  int64_t axis = ctx.in.size() > 1 ? read_int_tensor(ctx.node, ctx.in[1], "axis").at(0) : 0;
  axis = normalize_axis(ctx.node, axis, (int64_t)s.size());
  bool exclusive = ctx.node.attr_int("exclusive") != 0, reverse = ctx.node.attr_int("reverse") != 0;
  const AroundAxis around = around_axis(s, axis);
  const int64_t outer = around.outer, len = around.len, inner = around.inner;
  return dispatch_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    using C = typename ComputeOf<T>::type;
    using Acc = typename std::conditional<std::is_floating_point<C>::value, double, C>::type;
    return [=](const KernelArgs& a) {
      const T* x = a.in[0]->as<T>();
      T* y = a.out[0]->as<T>();
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          Acc acc = Product ? Acc(1) : Acc(0);
          for (int64_t step = 0; step < len; ++step) {
            int64_t j = reverse ? len - 1 - step : step;
            int64_t at = (o * len + j) * inner + i;
            Acc v = (Acc)load(x[at]);
            if (exclusive) {
              y[at] = store<T>((C)acc);
              acc = Product ? (Acc)(acc * v) : (Acc)(acc + v);
            } else {
              acc = Product ? (Acc)(acc * v) : (Acc)(acc + v);
              y[at] = store<T>((C)acc);
            }
          }
        }
    };
  });
}

// ---- Hardmax: 1 at the first maximum along the axis, 0 elsewhere ------------------------------

KernelFn prepare_hardmax(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  const int64_t axis = normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)s.size());
  const AroundAxis around = around_axis(s, axis);
  const int64_t outer = around.outer, len = around.len, inner = around.inner;
  return dispatch_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    using C = typename ComputeOf<T>::type;
    if constexpr (!std::is_floating_point<C>::value) {
      throw NotSupported(ctx.node.describe() + ": expected a floating-point input");
    } else {
      return [=](const KernelArgs& a) {
        const T* x = a.in[0]->as<T>();
        T* y = a.out[0]->as<T>();
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i) {
            const int64_t base = o * len * inner + i;
            int64_t best = 0;
            C best_v = len ? load(x[base]) : C(0);
            // Like argmax: a NaN counts as the largest value, the first one wins.
            for (int64_t j = 1; j < len && !std::isnan(best_v); ++j) {
              const C v = load(x[base + j * inner]);
              if (v > best_v || std::isnan(v)) {
                best = j;
                best_v = v;
              }
            }
            for (int64_t j = 0; j < len; ++j) y[base + j * inner] = store<T>(C(j == best ? 1 : 0));
          }
      };
    }
  });
}

std::vector<PortInfo> infer_hardmax(const InferContext& c) {
  if (!is_float(c.in[0].type) && c.in[0].type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected a floating-point input, got " + type_name(c.in[0].type));
  if (c.in[0].shape.rank_known) normalize_axis(c.node, c.node.attr_int("axis"), c.in[0].shape.rank());
  return {c.in[0]};
}

}  // namespace

void register_reduce_ops(OpRegistry& r) {
  r.add(with_value_inputs(
      OpDef{"TopK", 2, 2, infer_topk, prepare_topk}.with_attrs(
          {int_attr("axis", -1), str_attr("mode", "max", {"max", "min"}),
           str_attr("sort", "value", {"value", "index", "none"}), type_attr("index_element_type", "i64")}),
      {1}));
  r.add(with_value_inputs(OpDef{"CumSum", 1, 2, infer_cumsum, prepare_cumulative<false>}.with_attrs(
                              {bool_attr("exclusive", false), bool_attr("reverse", false)}),
                          {1}));
  r.add(with_value_inputs(OpDef{"aiov.CumProd", 1, 2, infer_cumsum, prepare_cumulative<true>}
                              .with_attrs({bool_attr("exclusive", false), bool_attr("reverse", false)})
                              .ir({"aiov.CumProd"}, "aiov1")
                              .onnx_op("CumProd", 26)
                              .opset_builder("cum_prod"),
                          {1}));
  // ONNX opset 13's Hardmax (earlier opsets flatten to 2-D first: a converter in frontends/onnx.py).
  r.add(OpDef{"aiov.Hardmax", 1, 1, infer_hardmax, prepare_hardmax}
            .with_attrs({int_attr("axis", -1)})
            .ir({"aiov.Hardmax"}, "aiov1")
            .opset_builder("hardmax"));
  // Axes come as input 1 (OpenVINO) or, from older ONNX, the `axes` attribute.
  const std::vector<AttrSpec> reduce{bool_attr("keep_dims", false), ints_attr("axes").ir_name("-"),
                                     bool_attr("noop_with_empty_axes", false).ir_name("-")};
  // The reductions and the IR opset that has them; "aiov1": OpenVINO has none, and the IR
  // names it aiov.<type>. ONNX's ReduceL1, SumSquare and LogSum, and the logical reductions
  // over booleans (min is all, max is any).
  struct Reduction {
    const char* type;
    PrepareFn prepare;
    const char* opset;
    InferFn infer = infer_reduce;
  };
  const Reduction reductions[] = {
      {"ReduceSum", prepare_reduce<ReduceKind::kSum>, "opset1"},
      {"ReduceMean", prepare_reduce<ReduceKind::kMean>, "opset1"},
      {"ReduceMax", prepare_reduce<ReduceKind::kMax>, "opset1"},
      {"ReduceMin", prepare_reduce<ReduceKind::kMin>, "opset1"},
      {"ReduceProd", prepare_reduce<ReduceKind::kProd>, "opset1"},
      {"ReduceL2", prepare_reduce<ReduceKind::kL2>, "opset4"},
      {"ReduceLogSumExp", prepare_reduce<ReduceKind::kLogSumExp>, "aiov1"},
      {"ReduceLogicalAnd", prepare_reduce<ReduceKind::kMin>, "opset1", infer_logical_reduce},
      {"ReduceLogicalOr", prepare_reduce<ReduceKind::kMax>, "opset1", infer_logical_reduce},
      {"ReduceL1", prepare_reduce<ReduceKind::kL1>, "opset4"},
      {"ReduceSumSquare", prepare_reduce<ReduceKind::kSumSquare>, "aiov1"},
      {"ReduceLogSum", prepare_reduce<ReduceKind::kLogSum>, "aiov1"},
  };
  for (const Reduction& d : reductions) {
    const std::string ir_type = std::string(d.opset) == "aiov1" ? "aiov." + std::string(d.type) : d.type;
    r.add(with_value_inputs(OpDef{d.type, 1, 2, d.infer, d.prepare}.with_attrs(reduce).ir({ir_type}, d.opset), {1}));
  }
  r.add(with_value_inputs(OpDef{"NormalizeL2", 2, 2, infer_normalize_l2, prepare_normalize_l2}
                              .with_attrs({float_attr("eps", 1e-12), str_attr("eps_mode", "add", {"add", "max"})})
                              .ir({"NormalizeL2"}, "opset1")
                              .opset_builder("normalize_l2"),
                          {1}));
  const std::vector<AttrSpec> arg{int_attr("axis", 0), bool_attr("keepdims", true),
                                  bool_attr("select_last_index", false)};
  r.add(OpDef{"ArgMax", 1, 1, infer_arg, prepare_arg<true>}.with_attrs(arg));
  r.add(OpDef{"ArgMin", 1, 1, infer_arg, prepare_arg<false>}.with_attrs(arg));
  r.add(with_value_inputs(OpDef{"MVN", 1, 2, infer_same, widened<prepare_mvn>}
                              .with_attrs({bool_attr("normalize_variance", true), float_attr("eps", 1e-9),
                                           str_attr("eps_mode", "inside_sqrt", {"inside_sqrt", "outside_sqrt"})})
                              .ir({"MVN"}, "opset6"),
                          {1}));
  r.add(OpDef{"aiov.LayerNorm", 2, 3, infer_layer_norm, prepare_layer_norm}.with_attrs(
      {float_attr("eps", 1e-5), str_attr("eps_mode", "inside_sqrt", {"inside_sqrt", "outside_sqrt"})}));
}

}  // namespace aiov
