// What graph passes look for in a graph (constants, per-channel vectors, layout transposes,
// layout-blind ops, activations a fused op can apply) and the small constants and transposes
// they build. Shared by every pass; moved here unchanged from the single-file optimizer.
#pragma once
#include <cmath>
#include <string>
#include <unordered_set>
#include <vector>

#include "plan/graph.hpp"

namespace aiov::passes {

inline bool same(const Value& a, const Value& b) { return a.node == b.node && a.index == b.index; }

inline const Node* const_of(const Value& v) { return v.node->op == "Constant" ? v.node.get() : nullptr; }

inline NodePtr i64_constant(const std::vector<int64_t>& values, const std::string& name) {
  return make_constant(ElementType::i64, Dims{(int64_t)values.size()}, values.data(), values.size() * 8, name);
}

inline NodePtr f32_constant(const Dims& shape, const std::vector<float>& values, const std::string& name) {
  return make_constant(ElementType::f32, shape, values.data(), values.size() * 4, name);
}

inline std::vector<float> floats_of(const Node& c) {
  const float* p = static_cast<const float*>(c.constant->data());
  return std::vector<float>(p, p + numel(c.outputs[0].shape.dims));
}

inline bool scalar_near(const Value& v, double want) {
  const Node* c = const_of(v);
  if (!c || c->outputs[0].type != ElementType::f32 || numel(c->outputs[0].shape.dims) != 1) return false;
  double got = *static_cast<const float*>(c->constant->data());
  return std::fabs(got - want) <= 1e-4 * std::fabs(want);
}

// Values of a constant that, broadcast (numpy rules) against a tensor of rank `rank`, vary
// only along `axis` (size `channels`) and do not grow the tensor: one value per channel.
inline bool channel_vector(const Value& v, int rank, int axis, int64_t channels, std::vector<float>& out) {
  const Node* c = const_of(v);
  if (!c || c->outputs[0].type != ElementType::f32 || channels < 0) return false;
  const Dims& d = c->outputs[0].shape.dims;
  if ((int)d.size() > rank) return false;
  const int offset = rank - (int)d.size();
  int64_t along = 1;
  for (int i = 0; i < (int)d.size(); ++i) {
    if (i + offset == axis) along = d[i];
    else if (d[i] != 1) return false;
  }
  if (along != 1 && along != channels) return false;
  std::vector<float> vals = floats_of(*c);
  out.assign(channels, vals[0]);
  if (along == channels) out = vals;
  return true;
}

inline bool numpy_broadcast(const Node& n) { return n.attr_str("auto_broadcast", "numpy") == "numpy"; }

// The operand of binary node u that is not produced by `from`.
inline const Value& other_input(const Node& u, const Node* from) {
  return u.inputs[0].node.get() == from ? u.inputs[1] : u.inputs[0];
}

// Perm of a Transpose with a constant order, else empty.
inline std::vector<int64_t> transpose_perm(const Node& n) {
  if (n.op != "Transpose") return {};
  const Node* p = const_of(n.inputs[1]);
  if (!p || p->outputs[0].type != ElementType::i64) return {};
  const int64_t* d = static_cast<const int64_t*>(p->constant->data());
  return std::vector<int64_t>(d, d + numel(p->outputs[0].shape.dims));
}

inline const std::vector<int64_t> kToNhwc{0, 2, 3, 1};
inline const std::vector<int64_t> kToNchw{0, 3, 1, 2};

inline bool is_to_nchw(const Value& v) { return transpose_perm(*v.node) == kToNchw; }

inline NodePtr transposed_to(const Value& v, const std::vector<int64_t>& perm) {
  return make_node("Transpose", {v, Value{i64_constant(perm, ""), 0}}, {}, "");
}
inline NodePtr to_nchw(const NodePtr& nhwc) { return transposed_to(Value{nhwc, 0}, kToNchw); }

inline const std::unordered_set<std::string> kLayoutBlindUnary{
    "Relu", "Clamp", "Sigmoid", "Tanh", "HSwish", "HSigmoid", "Gelu", "Elu", "LeakyRelu", "Exp", "Abs",
    "Negative", "Sqrt", "Erf", "HardSigmoid", "SoftPlus", "Floor", "Ceiling", "Round", "Sign", "Log", "Reciprocal"};
inline const std::unordered_set<std::string> kLayoutBlindBinary{"Add", "Subtract", "Multiply", "Divide", "Maximum",
                                                         "Minimum"};

// The parameters of Clamp (min, max) and LeakyRelu (alpha, -), as fused ops carry them.
inline void activation_params(const Node& u, double& alpha, double& beta) {
  alpha = beta = 0;
  if (u.op == "Clamp") alpha = u.attr_float("min", -INFINITY), beta = u.attr_float("max", INFINITY);
  else if (u.op == "LeakyRelu") alpha = u.attr_float("alpha", 0.01);
}

inline bool is_tanh_gelu(const Node& u) {
  const std::string mode = u.attr_str("approximation_mode", "ERF");
  return u.op == "Gelu" && (mode == "TANH" || mode == "tanh");
}

inline bool activation_of(const Node& u, Attrs& attrs) {
  std::string act;
  double alpha, beta;
  activation_params(u, alpha, beta);
  if (u.op == "Relu") act = "relu";
  else if (u.op == "Sigmoid") act = "sigmoid";
  else if (u.op == "Tanh") act = "tanh";
  else if (u.op == "HSwish") act = "hswish";
  else if (u.op == "Clamp") act = "clamp";
  else if (u.op == "LeakyRelu") act = "leaky_relu";
  else if (u.op == "Gelu") act = is_tanh_gelu(u) ? "gelu_tanh" : "gelu_erf";
  else return false;
  attrs["act"] = act;
  attrs["act_alpha"] = alpha;
  attrs["act_beta"] = beta;
  return true;
}

}  // namespace aiov::passes
