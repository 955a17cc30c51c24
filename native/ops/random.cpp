// Random generators: uniform and normal samples (ONNX RandomUniform/RandomNormal and their
// *Like forms), Bernoulli draws and Multinomial sampling. ONNX fixes no generator, only that a
// seed makes the values reproducible: a seeded node gives the same values on every run. An
// unseeded node draws a fresh seed per run; but a node with no run-time input is folded like
// any constant when a plan is built, so its values are then drawn once per plan.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <random>

#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// The node's seed: the same generator on every run; unseeded, a fresh one per run.
struct Seed {
  bool given = false;
  double value = 0;
  explicit Seed(const Node& n) : given(n.attr_int("seeded") != 0), value(n.attr_float("seed")) {}
  std::mt19937_64 generator() const {
    if (given) {
      uint64_t bits;
      std::memcpy(&bits, &value, sizeof bits);
      return std::mt19937_64(bits);
    }
    static std::atomic<uint64_t> runs{std::random_device{}()};
    return std::mt19937_64(runs.fetch_add(0x9e3779b97f4a7c15ull));
  }
};

// A double in [0, 1) from the top 53 bits (the same on every platform, unlike std's distributions).
double uniform01(std::mt19937_64& g) { return (double)(g() >> 11) * (1.0 / 9007199254740992.0); }

std::vector<PortInfo> infer_random(const Node& n, const std::vector<PortInfo>& in) {
  ElementType t = type_from_name(n.attr_str("output_type"));
  if (!is_float(t)) throw InputError(n.describe() + ": output_type must be a floating-point type");
  if (!in.empty()) return {PortInfo{t, in[0].shape}};
  Dims shape = n.attr_ints("shape");
  for (int64_t d : shape)
    if (d < 0) throw InputError(n.describe() + ": shape " + dims_str(shape) + " has a negative dimension");
  return {PortInfo{t, PartialShape(shape)}};
}

std::vector<PortInfo> infer_random_op(const InferContext& c) { return infer_random(c.node, c.in); }

// uniform: a + (b - a) * U[0, 1); normal: a + b * N(0, 1) (Box-Muller).
KernelFn prepare_random(const PrepareContext& ctx) {
  const Node& node = ctx.node;
  const bool normal = node.attr_str("distribution") == "normal";
  const double a = node.attr_float("a"), b = node.attr_float("b");
  const int64_t count = ctx.out[0].count();
  const Seed seed(ctx.node);
  return dispatch_type(ctx.out[0].type, node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    using C = typename ComputeOf<T>::type;
    return [=](const KernelArgs& k) {
      std::mt19937_64 g = seed.generator();
      T* y = k.out[0]->as<T>();
      for (int64_t i = 0; i < count; ++i) {
        double v;
        if (normal) {
          double u1 = 1.0 - uniform01(g), u2 = uniform01(g);  // u1 in (0, 1]: log stays finite
          v = a + b * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
        } else {
          v = a + (b - a) * uniform01(g);
        }
        y[i] = store<T>((C)v);
      }
    };
  });
}

// ---- Bernoulli(p): 1 with probability p, else 0 -------------------------------------------------

std::vector<PortInfo> infer_bernoulli(const InferContext& c) {
  if (!is_float(c.in[0].type))
    throw InputError(c.node.describe() + ": the probabilities must be floating-point, got " + type_name(c.in[0].type));
  return {PortInfo{type_from_name(c.node.attr_str("output_type")), c.in[0].shape}};
}

KernelFn prepare_bernoulli(const PrepareContext& ctx) {
  const int64_t count = ctx.out[0].count();
  const Seed seed(ctx.node);
  const ElementType pt = ctx.in[0].type;
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    using C = typename ComputeOf<T>::type;
    return [=](const KernelArgs& k) {
      std::mt19937_64 g = seed.generator();
      T* y = k.out[0]->as<T>();
      dispatch_type(pt, "Bernoulli", [&](auto ptag) {
        using P = decltype(ptag);
        const P* p = k.in[0]->as<P>();
        for (int64_t i = 0; i < count; ++i) y[i] = store<T>((C)(uniform01(g) < (double)load(p[i]) ? 1 : 0));
      });
    };
  });
}

// ---- Multinomial(logits [batch, classes]) -> [batch, sample_size] class indices ---------------

std::vector<PortInfo> infer_multinomial(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!is_float(x.type)) throw InputError(c.node.describe() + ": the logits must be floating-point");
  if (x.shape.rank_known && x.shape.rank() != 2)
    throw InputError(c.node.describe() + ": expected [batch, classes] logits, got " + x.shape.str());
  ElementType t = type_from_name(c.node.attr_str("output_type"));
  if (t != ElementType::i32 && t != ElementType::i64)
    throw InputError(c.node.describe() + ": output_type must be i32 or i64, got " + type_name(t));
  int64_t batch = x.shape.rank_known ? x.shape.dims[0] : kDynamic;
  return {PortInfo{t, PartialShape(Dims{batch, c.node.attr_int("sample_size")})}};
}

KernelFn prepare_multinomial(const PrepareContext& ctx) {
  const int64_t batch = ctx.in[0].shape[0], classes = ctx.in[0].shape[1], samples = ctx.out[0].shape[1];
  const Seed seed(ctx.node);
  const ElementType xt = ctx.in[0].type;
  const bool wide = ctx.out[0].type == ElementType::i64;
  return [=](const KernelArgs& k) {
    std::mt19937_64 g = seed.generator();
    std::vector<double> cdf((size_t)classes);
    dispatch_type(xt, "Multinomial", [&](auto tag) {
      using X = decltype(tag);
      const X* x = k.in[0]->as<X>();
      for (int64_t b = 0; b < batch; ++b) {
        // Probabilities proportional to exp(logit): subtract the row's largest for range.
        double top = -INFINITY, total = 0;
        for (int64_t j = 0; j < classes; ++j) top = std::max(top, (double)load(x[b * classes + j]));
        for (int64_t j = 0; j < classes; ++j) cdf[j] = total += std::exp((double)load(x[b * classes + j]) - top);
        for (int64_t s = 0; s < samples; ++s) {
          double u = uniform01(g) * total;
          int64_t pick = std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
          pick = std::min(pick, classes - 1);
          if (wide)
            k.out[0]->as<int64_t>()[b * samples + s] = pick;
          else
            k.out[0]->as<int32_t>()[b * samples + s] = (int32_t)pick;
        }
      }
    });
  };
}

std::vector<AttrSpec> seed_attrs() { return {bool_attr("seeded", false), float_attr("seed", 0.0)}; }

}  // namespace

void register_random_ops(OpRegistry& r) {
  std::vector<AttrSpec> random = seed_attrs();
  random.push_back(str_attr("distribution", "uniform", {"uniform", "normal"}));
  random.push_back(float_attr("a", 0.0));
  random.push_back(float_attr("b", 1.0));
  random.push_back(ints_attr("shape"));  // without an input: the output's shape
  random.push_back(type_attr("output_type", "f32"));
  r.add(OpDef{"aiov.Random", 0, 1, infer_random_op, prepare_random}.with_attrs(random).ir({"aiov.Random"}, "aiov1"));
  std::vector<AttrSpec> bernoulli = seed_attrs();
  bernoulli.push_back(type_attr("output_type", "f32"));
  r.add(OpDef{"aiov.Bernoulli", 1, 1, infer_bernoulli, prepare_bernoulli}.with_attrs(bernoulli).ir({"aiov.Bernoulli"},
                                                                                                   "aiov1"));
  std::vector<AttrSpec> multinomial = seed_attrs();
  multinomial.push_back(int_attr("sample_size", 1).at_least(1));
  multinomial.push_back(type_attr("output_type", "i32"));
  r.add(OpDef{"aiov.Multinomial", 1, 1, infer_multinomial, prepare_multinomial}
            .with_attrs(multinomial)
            .ir({"aiov.Multinomial"}, "aiov1"));
}

}  // namespace aiov
