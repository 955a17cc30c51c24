// Softmax and LogSoftmax over one axis.
#include <algorithm>
#include <cmath>

#include "kernels/dispatch.hpp"
#include "kernels/softmax_row.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<PortInfo> infer_softmax(const InferContext& c) {
  ElementType t = c.in[0].type;
  if (!is_float(t) && t != ElementType::dynamic)
    throw InputError(c.node.describe() + ": expected a floating-point input, got " + type_name(t));
  if (c.in[0].shape.rank_known) normalize_axis(c.node, c.node.attr_int("axis"), c.in[0].shape.rank());
  return {c.in[0]};
}

template <class T>
void softmax_strided(const T* x, T* y, int64_t len, int64_t stride) {
  using C = typename ComputeOf<T>::type;
  C m = load(x[0]);
  for (int64_t i = 1; i < len; ++i) m = std::max(m, (C)load(x[i * stride]));
  double s = 0;
  for (int64_t i = 0; i < len; ++i) s += std::exp((double)(load(x[i * stride]) - m));
  for (int64_t i = 0; i < len; ++i) y[i * stride] = store<T>((C)(std::exp((double)(load(x[i * stride]) - m)) / s));
}

template <class T>
void log_softmax_strided(const T* x, T* y, int64_t len, int64_t stride) {
  double m = -INFINITY, sum = 0;
  for (int64_t i = 0; i < len; ++i) m = std::max(m, (double)load(x[i * stride]));
  for (int64_t i = 0; i < len; ++i) sum += std::exp((double)load(x[i * stride]) - m);
  const double lse = std::log(sum) + m;
  for (int64_t i = 0; i < len; ++i)
    y[i * stride] = store<T>((typename ComputeOf<T>::type)((double)load(x[i * stride]) - lse));
}

// Applies line(x, y, len, stride) to each line along the middle axis of an outer x len x inner
// tensor, y being the same place of the output.
template <class T, class Line>
void along_axis(const T* x, T* y, const AroundAxis& a, Line line) {
  for (int64_t o = 0; o < a.outer; ++o)
    for (int64_t i = 0; i < a.inner; ++i) {
      const int64_t first = o * a.len * a.inner + i;
      line(x + first, y + first, a.len, a.inner);
    }
}

AroundAxis softmax_axis(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  return around_axis(s, normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)s.size()));
}

// A non-last axis of f32 data: each unit one block of up to kSoftmaxColumns columns of one
// outer slice, which `columns` (softmax_columns or log_softmax_columns) runs as vector lanes.
KernelFn in_column_blocks(int64_t outer, int64_t len, int64_t inner,
                          void (*columns)(const float*, float*, int64_t, int64_t, int64_t)) {
  const int64_t blocks = (inner + kSoftmaxColumns - 1) / kSoftmaxColumns;
  return [outer, len, inner, blocks, columns](const KernelArgs& k) {
    const float* x = k.in[0]->as<float>();
    float* y = k.out[0]->as<float>();
    auto units = [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t o = u / blocks, c0 = u % blocks * kSoftmaxColumns;
        const int64_t at = o * len * inner + c0;
        columns(x + at, y + at, len, std::min(kSoftmaxColumns, inner - c0), inner);
      }
    };
    for_rows(*k.ctx, outer * blocks, len * std::min(kSoftmaxColumns, inner), units);
  };
}

KernelFn prepare_softmax(const PrepareContext& ctx) {
  const AroundAxis around = softmax_axis(ctx);
  const int64_t outer = around.outer, len = around.len, inner = around.inner;
  if (outer * len * inner == 0) return [](const KernelArgs&) {};
  if (ctx.in[0].type == ElementType::f32 && inner == 1) {
    return [outer, len](const KernelArgs& k) {
      const float* x = k.in[0]->as<float>();
      float* y = k.out[0]->as<float>();
      auto rows = [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) softmax_row(x + r * len, y + r * len, len);
      };
      for_rows(*k.ctx, outer, len, rows);
    };
  }
  if (ctx.in[0].type == ElementType::f32) {
    // A non-last axis: blocks of columns, each softmax a lane of contiguous vector loops (one
    // strided line at a time with a double exp per value took 7x OpenVINO's time over NCHW
    // channels).
    return in_column_blocks(outer, len, inner, softmax_columns);
  }
  return dispatch_float_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return
        [around](const KernelArgs& k) { along_axis(k.in[0]->as<T>(), k.out[0]->as<T>(), around, softmax_strided<T>); };
  });
}

KernelFn prepare_log_softmax(const PrepareContext& ctx) {
  const AroundAxis around = softmax_axis(ctx);
  const int64_t outer = around.outer, len = around.len, inner = around.inner;
  if (outer * len * inner == 0) return [](const KernelArgs&) {};
  if (ctx.in[0].type == ElementType::f32 && inner > 1) {
    // A non-last axis in blocks of columns, as Softmax (5x OpenVINO's time line by line).
    return in_column_blocks(outer, len, inner, log_softmax_columns);
  }
  return dispatch_float_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [around](const KernelArgs& k) {
      along_axis(k.in[0]->as<T>(), k.out[0]->as<T>(), around, log_softmax_strided<T>);
    };
  });
}

}  // namespace

void register_softmax_ops(OpRegistry& r) {
  r.add(OpDef{"Softmax", 1, 1, infer_softmax, prepare_softmax}
            .with_attrs({int_attr("axis", 1)})
            .ir({"SoftMax", "Softmax"}, "opset8"));
  r.add(OpDef{"LogSoftmax", 1, 1, infer_softmax, prepare_log_softmax}
            .with_attrs({int_attr("axis", 1)})
            .ir({"LogSoftmax"}, "opset5"));
}

}  // namespace aiov
