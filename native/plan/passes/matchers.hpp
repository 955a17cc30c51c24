// What graph passes look for in a graph (constants, per-channel vectors, layout transposes,
// layout-blind ops, activations a fused op can apply) and the small constants and transposes
// they build. Shared by every pass; what an op is (layout-blind, an activation) the registry says.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "plan/graph.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/registry.hpp"

namespace aiov::passes {

inline bool same(const Value& a, const Value& b) { return a.node == b.node && a.index == b.index; }

inline const Node* const_of(const Value& v) { return v.node->op == op_name::Constant ? v.node.get() : nullptr; }

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

// One constant f32 value.
inline bool one_float(const Value& v, float& out) {
  const Node* c = const_of(v);
  if (!c || c->outputs[0].type != ElementType::f32 || numel(c->outputs[0].shape.dims) != 1) return false;
  out = *static_cast<const float*>(c->constant->data());
  return true;
}

// The integers of a constant i64 or i32 tensor.
inline bool const_ints(const Value& v, std::vector<int64_t>& out) {
  const Node* c = const_of(v);
  if (!c) return false;
  const ElementType t = c->outputs[0].type;
  const int64_t count = numel(c->outputs[0].shape.dims);
  if (count < 0 || (t != ElementType::i64 && t != ElementType::i32)) return false;
  out.resize((size_t)count);
  for (int64_t i = 0; i < count; ++i)
    out[i] = t == ElementType::i64 ? static_cast<const int64_t*>(c->constant->data())[i]
                                   : static_cast<const int32_t*>(c->constant->data())[i];
  return true;
}

// One constant integer, of any rank holding one element.
inline bool one_int(const Value& v, int64_t& out) {
  std::vector<int64_t> values;
  if (!const_ints(v, values) || values.size() != 1) return false;
  out = values[0];
  return true;
}

// A u8 tensor and the one positive scale and zero point that dequantize it.
struct DequantizedU8 {
  Value q;
  float scale = 0;
  uint8_t zero = 0;
};

// v = (float(q) - zero) * scale with q u8 and one constant zero point and scale > 0: the
// dequantization the ONNX frontend composes (Convert, Subtract, Multiply; no Subtract for a
// zero point of 0).
inline bool dequantized_u8(const Value& v, DequantizedU8& out) {
  const Node& mul = *v.node;
  if (mul.op != op_name::Multiply || mul.attr_str("auto_broadcast", "numpy") != "numpy") return false;
  float s = 0, z = 0;
  const int at = one_float(mul.inputs[1], s) ? 0 : one_float(mul.inputs[0], s) ? 1 : -1;
  if (at < 0 || !(s > 0)) return false;
  const Node* from = mul.inputs[at].node.get();
  if (from->op == op_name::Subtract && from->attr_str("auto_broadcast", "numpy") == "numpy" &&
      one_float(from->inputs[1], z))
    from = from->inputs[0].node.get();
  if (from->op != op_name::Convert || from->outputs[0].type != ElementType::f32) return false;
  const Value& raw = from->inputs[0];
  if (raw.node->outputs[raw.index].type != ElementType::u8 || z < 0 || z > 255 || z != std::floor(z)) return false;
  out = DequantizedU8{raw, s, (uint8_t)z};
  return true;
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
    if (i + offset == axis)
      along = d[i];
    else if (d[i] != 1)
      return false;
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
  if (n.op != op_name::Transpose) return {};
  const Node* p = const_of(n.inputs[1]);
  if (!p || p->outputs[0].type != ElementType::i64) return {};
  const int64_t* d = static_cast<const int64_t*>(p->constant->data());
  return std::vector<int64_t>(d, d + numel(p->outputs[0].shape.dims));
}

inline const std::vector<int64_t> kToNhwc{0, 2, 3, 1};
inline const std::vector<int64_t> kToNchw{0, 3, 1, 2};

inline bool is_to_nchw(const Value& v) { return transpose_perm(*v.node) == kToNchw; }

inline NodePtr transposed_to(const Value& v, const std::vector<int64_t>& perm) {
  return make_node(op_name::Transpose, {v, Value{i64_constant(perm, ""), 0}}, {}, "");
}
inline NodePtr to_nchw(const NodePtr& nhwc) { return transposed_to(Value{nhwc, 0}, kToNchw); }

// v with a unit axis inserted at `axis` / its unit axis `axis` dropped (views: no copy).
inline NodePtr unsqueezed(const Value& v, int64_t axis) {
  return make_node(op_name::Unsqueeze, {v, Value{i64_constant({axis}, ""), 0}}, {}, "");
}
inline NodePtr squeezed(const Value& v, int64_t axis) {
  return make_node(op_name::Squeeze, {v, Value{i64_constant({axis}, ""), 0}}, {}, "");
}

// The ops the registry marks layout-blind (OpDef::layout_blind), asked by name.
struct LayoutBlindOps {
  LayoutBlind kind;
  size_t count(const std::string& op) const {
    const OpDef* d = OpRegistry::instance().find(op);
    return d && d->layout_blind == kind ? 1 : 0;
  }
};
inline const LayoutBlindOps kLayoutBlindUnary{LayoutBlind::unary};
inline const LayoutBlindOps kLayoutBlindBinary{LayoutBlind::binary};
inline const LayoutBlindOps kLayoutBlindPerTensor{LayoutBlind::per_tensor};

// The activation a node applies when it is a fusable one (OpDef::activation).
inline bool registry_activation(const Node& u, Activation& a) {
  const OpDef* d = OpRegistry::instance().find(u.op);
  return d && activation_of_node(*d, u, a);
}

// The activation parameters (alpha, beta) as fused ops and chain steps carry them.
inline void activation_params(const Node& u, double& alpha, double& beta) {
  Activation a;
  alpha = beta = 0;
  if (registry_activation(u, a)) alpha = a.alpha, beta = a.beta;
}

inline bool activation_of(const Node& u, Attrs& attrs) {
  Activation a;
  if (!registry_activation(u, a)) return false;
  attrs["act"] = std::string(act_kind_name(a.kind));
  attrs["act_alpha"] = (double)a.alpha;
  attrs["act_beta"] = (double)a.beta;
  return true;
}

}  // namespace aiov::passes
