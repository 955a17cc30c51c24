// MatMul with numpy semantics (1-D promotion, batch broadcasting, transpose flags).
#include <algorithm>
#include <cstring>
#include <memory>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/epilogue.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_threads.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

struct MatMulShapes {
  Dims a, b;  // with 1-D inputs promoted to 2-D, transposes applied logically
  bool a_vec = false, b_vec = false;
};

// Output shape of a matmul; dims may be dynamic (-1).
PartialShape matmul_shape(const Node& n, const PartialShape& pa, const PartialShape& pb, bool ta, bool tb) {
  if (!pa.rank_known || !pb.rank_known) return PartialShape::dynamic_rank();
  if (pa.rank() == 0 || pb.rank() == 0)
    throw InputError(n.describe() + ": inputs must have rank >= 1, got " + pa.str() + " and " + pb.str());
  Dims a = pa.dims, b = pb.dims;
  bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec)
    a.insert(a.begin(), 1);
  else if (ta)
    std::swap(a[a.size() - 1], a[a.size() - 2]);
  if (b_vec)
    b.push_back(1);
  else if (tb)
    std::swap(b[b.size() - 1], b[b.size() - 2]);
  int64_t ka = a[a.size() - 1], kb = b[b.size() - 2];
  if (ka >= 0 && kb >= 0 && ka != kb)
    throw InputError(n.describe() + ": inner dimensions do not match: " + pa.str() + (ta ? "^T" : "") + " x " +
                     pb.str() + (tb ? "^T" : "") + " (" + std::to_string(ka) + " vs " + std::to_string(kb) + ")");
  PartialShape ba(Dims(a.begin(), a.end() - 2)), bb(Dims(b.begin(), b.end() - 2));
  Dims out = broadcast_shapes(n, ba, bb, "numpy").dims;
  if (!a_vec) out.push_back(a[a.size() - 2]);
  if (!b_vec) out.push_back(b[b.size() - 1]);
  return PartialShape(out);
}

std::vector<PortInfo> infer_matmul(const InferContext& c) {
  expect_type_match(c.node, c.in[0], c.in[1]);
  ElementType t = c.in[0].type;
  if (t == ElementType::boolean || is_packed(t))
    throw InputError(c.node.describe() + ": element type " + type_name(t) + " is not supported");
  bool ta = c.node.attr_int("transpose_a") != 0, tb = c.node.attr_int("transpose_b") != 0;
  return {PortInfo{t, matmul_shape(c.node, c.in[0].shape, c.in[1].shape, ta, tb)}};
}

struct MatMulGeometry {
  int64_t M, N, K;
  bool ta, tb;
  int64_t batches;
  std::vector<int64_t> a_off, b_off;  // element offsets per batch
  int64_t a_mat, b_mat;               // elements per stored matrix
};

MatMulGeometry geometry(const Dims& sa, const Dims& sb, const Dims& so, bool ta, bool tb) {
  Dims a = sa, b = sb;
  bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) {
    a.insert(a.begin(), 1);
    ta = false;
  }
  if (b_vec) {
    b.push_back(1);
    tb = false;
  }
  MatMulGeometry g;
  g.ta = ta;
  g.tb = tb;
  int64_t ar = a[a.size() - 2], ac = a[a.size() - 1], br = b[b.size() - 2], bc = b[b.size() - 1];
  g.M = ta ? ac : ar;
  g.K = ta ? ar : ac;
  g.N = tb ? br : bc;
  g.a_mat = ar * ac;
  g.b_mat = br * bc;
  Dims batch(so.begin(), so.end() - (a_vec ? 0 : 1) - (b_vec ? 0 : 1));
  g.batches = numel(batch);
  size_t r = batch.size();
  auto strides = [&](const Dims& x) {
    Dims d(r, 1);
    size_t nb = x.size() - 2;
    for (size_t i = 0; i < nb; ++i) d[r - nb + i] = x[i];
    std::vector<int64_t> s(r, 0);
    int64_t st = 1;
    for (int i = (int)r - 1; i >= 0; --i) {
      s[i] = d[i] == 1 ? 0 : st;
      st *= d[i];
    }
    return s;
  };
  auto stA = strides(a), stB = strides(b);
  g.a_off.resize(g.batches);
  g.b_off.resize(g.batches);
  for (int64_t i = 0; i < g.batches; ++i) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int d = (int)r - 1; d >= 0; --d) {
      int64_t idx = rem % batch[d];
      rem /= batch[d];
      oa += idx * stA[d];
      ob += idx * stB[d];
    }
    g.a_off[i] = oa * g.a_mat;
    g.b_off[i] = ob * g.b_mat;
  }
  return g;
}

// Input 1 (constant weights) packed for rows of A, once per compiled model.
std::shared_ptr<const PackedB> packed_weights(const PrepareContext& ctx, bool tb, int64_t K, int64_t N, int64_t ldb,
                                              int64_t rows) {
  const GemmPrecision precision = gemm_precision(ctx.inference_precision);
  return ctx.derived<PackedB>(
      1, "PackedB " + PackedB::layout(tb, K, N, ldb, rows, precision),
      [&] {
        return std::make_shared<PackedB>(tb, K, N, static_cast<const float*>(ctx.in[1].data), ldb, rows, precision);
      },
      [&](const PackedB& p) { return p.fits(K, N, rows, precision); });
}

KernelFn prepare_f32(const PrepareContext& ctx, const MatMulGeometry& g) {
  const int64_t lda = g.ta ? g.M : g.K, ldb = g.tb ? g.K : g.N;
  bool b_shared = true;  // every batch reads the same B
  for (auto o : g.b_off) b_shared = b_shared && o == 0;
  bool a_dense = true;  // A's batches are consecutive, so they stack into one tall matrix
  for (int64_t i = 0; i < g.batches; ++i) a_dense = a_dense && g.a_off[i] == i * g.a_mat;
  if (ctx.in[1].data && b_shared && !g.ta && a_dense) {
    // Weights known at compile time: pack once, then one GEMM over all rows.
    int64_t rows = g.M * g.batches;
    auto packed = packed_weights(ctx, g.tb, g.K, g.N, ldb, rows);
    ctx.note_kernel("packed-weight GEMM " + gemm_kernels(gemm_precision(ctx.inference_precision)));
    int64_t K = g.K, N = g.N;
    return [packed, rows, K, N](const KernelArgs& k) {
      sgemm_packed(false, rows, k.in[0]->as<float>(), K, *packed, Epilogue{}, k.out[0]->as<float>(), N, k.ctx->pool,
                   k.ctx->max_threads);
    };
  }
  const GemmPrecision precision = gemm_precision(ctx.inference_precision);
  ctx.note_kernel((g.batches > 1 && g.M * g.N * g.K < (1 << 18) ? "GEMM per batch on a thread " : "GEMM ") +
                  gemm_kernels(precision));
  return [g, lda, ldb, precision](const KernelArgs& k) {
    const float* A = k.in[0]->as<float>();
    const float* B = k.in[1]->as<float>();
    float* C = k.out[0]->as<float>();
    const int64_t c_mat = g.M * g.N;
    bool small = g.M * g.N * g.K < (1 << 18);
    if (g.batches > 1 && small && k.ctx->pool) {
      // Many small products (attention heads): whole products per thread, and all of them on
      // this one when together they are too little to pay for a hand-off.
      k.ctx->pool->parallel_for_units(
          g.batches, gemm_detail::est_ns(2.0 * g.M * g.N * g.K, 4.0 * (g.M * g.K + g.K * g.N + g.M * g.N)),
          [&](int64_t s, int64_t e) {
            for (int64_t i = s; i < e; ++i)
              gemm(precision, g.ta, g.tb, g.M, g.N, g.K, 1.0f, A + g.a_off[i], lda, B + g.b_off[i], ldb, 0.0f,
                   C + i * c_mat, g.N, nullptr);
          },
          k.ctx->max_threads);
      return;
    }
    for (int64_t i = 0; i < g.batches; ++i)
      gemm(precision, g.ta, g.tb, g.M, g.N, g.K, 1.0f, A + g.a_off[i], lda, B + g.b_off[i], ldb, 0.0f, C + i * c_mat,
           g.N, k.ctx->pool, k.ctx->max_threads);
  };
}

// Reference path for the other numeric types: exact accumulation in the compute type.
template <class T>
KernelFn prepare_generic(const MatMulGeometry& g) {
  return [g](const KernelArgs& k) {
    using C = typename ComputeOf<T>::type;
    using Acc = typename std::conditional<std::is_floating_point<C>::value, double, C>::type;
    const T* A = k.in[0]->as<T>();
    const T* B = k.in[1]->as<T>();
    T* O = k.out[0]->as<T>();
    for (int64_t bi = 0; bi < g.batches; ++bi) {
      const T* a = A + g.a_off[bi];
      const T* b = B + g.b_off[bi];
      T* o = O + bi * g.M * g.N;
      for (int64_t m = 0; m < g.M; ++m)
        for (int64_t n = 0; n < g.N; ++n) {
          Acc acc = 0;
          for (int64_t kk = 0; kk < g.K; ++kk) {
            Acc x = (Acc)load(g.ta ? a[kk * g.M + m] : a[m * g.K + kk]);
            Acc y = (Acc)load(g.tb ? b[n * g.K + kk] : b[kk * g.N + n]);
            acc += x * y;
          }
          o[m * g.N + n] = store<T>((C)acc);
        }
    }
  };
}

KernelFn prepare_matmul(const PrepareContext& ctx) {
  bool ta = ctx.node.attr_int("transpose_a") != 0, tb = ctx.node.attr_int("transpose_b") != 0;
  MatMulGeometry g = geometry(ctx.in[0].shape, ctx.in[1].shape, ctx.out[0].shape, ta, tb);
  if (g.M * g.N == 0 || g.batches == 0) return [](const KernelArgs&) {};
  if (g.K == 0) {
    size_t bytes = ctx.out[0].bytes();
    return [bytes](const KernelArgs& k) { std::memset(k.out[0]->data, 0, bytes); };
  }
  if (ctx.out[0].type == ElementType::f32) return prepare_f32(ctx, g);
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    if constexpr (std::is_same<T, bool>::value)
      throw NotSupported(ctx.node.describe() + ": boolean");
    else {
      ctx.note_kernel("reference loops (not f32)");
      return prepare_generic<T>(g);
    }
  });
}

// ---- aiov.FusedMatMul: x [..., K] times constant weights [K, N] (or [N, K] with transpose_b),
// plus bias [N], an optional residual shaped like the output, then an activation. The graph
// optimizer makes it from MatMul -> Add -> activation chains so the output is written once.

std::vector<PortInfo> infer_fused_matmul(const InferContext& c) {
  std::vector<PortInfo> out = infer_matmul(c);
  const PartialShape& y = out[0].shape;
  if (c.in[2].shape.rank_known && y.rank_known && (c.in[2].shape.rank() != 1 || c.in[2].shape.dims[0] != y.dims.back()))
    throw InputError(c.node.describe() + ": bias must be [" + std::to_string(y.dims.back()) + "], got " +
                     c.in[2].shape.str());
  if (c.in.size() > 3 && c.in[3].shape.is_static() && y.is_static() && c.in[3].shape.dims != y.dims)
    throw InputError(c.node.describe() + ": residual must be " + y.str() + ", got " + c.in[3].shape.str());
  return out;
}

KernelFn prepare_fused_matmul(const PrepareContext& ctx) {
  if (ctx.out[0].type != ElementType::f32 || !ctx.in[1].data || ctx.in[1].shape.size() != 2 ||
      ctx.node.attr_int("transpose_a"))
    throw NotSupported(ctx.node.describe() + ": needs f32 data and constant 2-D weights");
  const bool tb = ctx.node.attr_int("transpose_b") != 0;
  const Dims& ws = ctx.in[1].shape;
  const int64_t K = tb ? ws[1] : ws[0], N = tb ? ws[0] : ws[1];
  const int64_t rows = K ? numel(ctx.in[0].shape) / K : 0;
  auto packed = packed_weights(ctx, tb, K, N, tb ? K : N, rows);
  ctx.note_kernel("packed-weight GEMM " + gemm_kernels(gemm_precision(ctx.inference_precision)) + " + fused epilogue");
  const FusedOutput output(ctx);
  return [packed, rows, N, output](const KernelArgs& k) {
    sgemm_packed(false, rows, k.in[0]->as<float>(), packed->K(), *packed, output.at(k, N), k.out[0]->as<float>(), N,
                 k.ctx->pool, k.ctx->max_threads);
  };
}

}  // namespace

void register_matmul_ops(OpRegistry& r) {
  r.add(OpDef{"MatMul", 2, 2, infer_matmul, prepare_matmul}
            .with_attrs({bool_attr("transpose_a", false), bool_attr("transpose_b", false)})
            .ir({"MatMul"}, "opset1")
            .onnx_op("MatMul"));
  // Input 3, the residual, is read by each tile before it writes the same place.
  r.add(with_reused_input(OpDef{"aiov.FusedMatMul", 3, 4, infer_fused_matmul, prepare_fused_matmul}.with_attrs(
                              {bool_attr("transpose_a", false), bool_attr("transpose_b", false),
                               str_attr("act", "none", std::vector<std::string>(kActNames, kActNames + kActKindCount))
                                   .ir_name("-")
                                   .onnx_name("-"),
                               float_attr("act_alpha", 0.0), float_attr("act_beta", 0.0)}),
                          3));
}

}  // namespace aiov
