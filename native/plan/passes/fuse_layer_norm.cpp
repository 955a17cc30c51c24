#include <algorithm>

#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// The values of an i64 constant, or nothing.
bool ints_of(const Value& v, std::vector<int64_t>& out) {
  const Node* c = const_of(v);
  if (!c || c->outputs[0].type != ElementType::i64) return false;
  const int64_t* p = static_cast<const int64_t*>(c->constant->data());
  out.assign(p, p + numel(c->outputs[0].shape.dims));
  return true;
}

// A normalization over each sample's channel groups being matched: aiov.GroupNorm(x) with
// these per-channel gamma and beta, so far. While `grouping` is set (not yet reshaped back),
// the values read are x viewed as [N, groups, rest], so constants vary along the groups.
struct GroupNormMatch {
  Value x;
  int64_t groups = 0, channels = 0;
  double eps = 0;
  std::string eps_mode = "inside_sqrt";
  std::vector<float> gamma, beta;
  const Node* grouping = nullptr;  // the Reshape to [N, groups, -1], while grouped
};

// MVN over every axis after the channels of its input: of x itself (InstanceNormalization),
// or of x reshaped to [N, G, -1] (torch's GroupNorm export; the reshape keeps each sample's
// groups contiguous, so its rows are x's).
bool mvn_over_channel_groups(const Node& mvn, GroupNormMatch& m) {
  if (mvn.op != op_name::MVN || mvn.inputs.size() != 2 || !mvn.attr_int("normalize_variance", 1)) return false;
  const Value& v = mvn.inputs[0];
  const PortInfo& in = v.node->outputs[v.index];
  std::vector<int64_t> axes;
  if (in.type != ElementType::f32 || !in.shape.rank_known || in.shape.rank() < 3 || in.shape.dims[1] <= 0 ||
      !ints_of(mvn.inputs[1], axes))
    return false;
  const int64_t rank = (int64_t)in.shape.rank();
  for (int64_t& a : axes) a = a < 0 ? a + rank : a;
  std::sort(axes.begin(), axes.end());
  if ((int64_t)axes.size() != rank - 2) return false;
  for (int64_t i = 0; i < rank - 2; ++i)
    if (axes[i] != i + 2) return false;
  m.groups = m.channels = in.shape.dims[1];
  m.x = v;
  m.eps = mvn.attr_float("eps", 1e-9);
  m.eps_mode = mvn.attr_str("eps_mode", "inside_sqrt");
  m.gamma.assign(m.channels, 1.0f);
  m.beta.assign(m.channels, 0.0f);
  const Node& r = *v.node;
  std::vector<int64_t> target;
  if (r.op != op_name::Reshape || rank != 3 || !ints_of(r.inputs[1], target) || target.size() != 3 ||
      target[1] != m.groups)
    return true;
  const PartialShape& xs = r.inputs[0].node->outputs[r.inputs[0].index].shape;
  if (!xs.rank_known || xs.rank() < 2 || xs.dims[1] <= 0 || xs.dims[1] % m.groups) return true;
  const bool keeps_batch = (target[0] == 0 && r.attr_int("special_zero")) || (target[0] > 0 && target[0] == xs.dims[0]);
  if (!keeps_batch) return true;
  m.x = r.inputs[0];
  m.channels = xs.dims[1];
  m.gamma.assign(m.channels, 1.0f);
  m.beta.assign(m.channels, 0.0f);
  m.grouping = &r;
  return true;
}

// ONNX's GroupNormalization (f32, constant scale and bias) as the start of a match.
bool group_normalization(const Node& n, GroupNormMatch& m) {
  if (n.op != op_name::GroupNormalization) return false;
  const PortInfo& in = n.inputs[0].node->outputs[n.inputs[0].index];
  if (in.type != ElementType::f32 || !in.shape.rank_known || in.shape.rank() < 2 || in.shape.dims[1] <= 0) return false;
  m.x = n.inputs[0];
  m.channels = in.shape.dims[1];
  m.groups = n.attr_int("num_groups");
  m.eps = n.attr_float("epsilon");
  return m.channels % m.groups == 0 && channel_vector(n.inputs[1], 1, 0, m.channels, m.gamma) &&
         channel_vector(n.inputs[2], 1, 0, m.channels, m.beta);
}

// u, the sole reader of the value matched so far (`from`), taken into the match: a Multiply
// or Add by one constant per channel (per group while grouped), or the Reshape back to x's
// shape (by its ShapeOf, or its dims when static).
bool absorb_step(const Node& u, const Node* from, GroupNormMatch& m) {
  const PartialShape& now = from->outputs[0].shape;
  if ((u.op == op_name::Multiply || u.op == op_name::Add) && numpy_broadcast(u) && now.rank_known) {
    const int64_t along = m.grouping ? m.groups : m.channels;
    std::vector<float> k;
    if (!channel_vector(other_input(u, from), (int)now.rank(), 1, along, k)) return false;
    const int64_t per = m.channels / along;
    for (int64_t c = 0; c < m.channels; ++c) {
      const float v = k[c / per];
      if (u.op == op_name::Multiply)
        m.gamma[c] *= v, m.beta[c] *= v;
      else
        m.beta[c] += v;
    }
    return true;
  }
  if (u.op != op_name::Reshape || !m.grouping) return false;
  const Node& target = *u.inputs[1].node;
  const PartialShape& xs = m.x.node->outputs[m.x.index].shape;
  std::vector<int64_t> dims;
  const bool back = (target.op == op_name::ShapeOf && same(target.inputs[0], m.x)) ||
                    (xs.is_static() && ints_of(u.inputs[1], dims) && dims == xs.dims);
  if (back) m.grouping = nullptr;
  return back;
}

// MVN over channel groups (or GroupNormalization), then per-channel Multiply and Add
// constants, through the Reshape back from groups, then an activation, becomes one
// aiov.GroupNorm. Needs at least one step after the normalization (else it stays as it is).
// `grouped_only`: only MVN over a Reshape to groups (and GroupNormalization), which goes before
// LayerNorm's match (one group of a rank-3 tensor is MVN over its last axis, but its scale and
// shift come per channel after the Reshape back).
bool fuse_group_norm(PassContext& ctx, const NodePtr& start, bool grouped_only) {
  GroupNormMatch m;
  const bool mvn = mvn_over_channel_groups(*start, m);
  if (mvn ? grouped_only && !m.grouping : !group_normalization(*start, m)) return false;
  Node* last = start.get();
  Attrs attrs{{"num_groups", m.groups}, {"eps", m.eps}, {"eps_mode", m.eps_mode}};
  int steps = 0;
  for (Node* u = ctx.sole_user(*last); u; u = ctx.sole_user(*last)) {
    if (absorb_step(*u, last, m)) {
      last = u;
      ++steps;
      continue;
    }
    if (activation_of(*u, attrs)) {
      last = u;
      ++steps;
    }
    break;
  }
  if (!steps) return false;
  const std::string& name = start->name;
  NodePtr fused = make_node(op_name::GroupNorm,
                            {m.x, Value{f32_constant(Dims{m.channels}, m.gamma, name + "/gamma"), 0},
                             Value{f32_constant(Dims{m.channels}, m.beta, name + "/beta"), 0}},
                            attrs, name);
  Value result{fused, 0};
  if (m.grouping)  // still [N, G, -1]: the same reshape of the fused output
    result = Value{make_node(op_name::Reshape, {result, m.grouping->inputs[1]},
                             Attrs{{"special_zero", (int64_t)m.grouping->attr_int("special_zero")}}, ""),
                   0};
  ctx.replace(Value{PassContext::shared(last), 0}, result);
  return true;
}

}  // namespace

// MVN over the last axis -> Multiply(gamma) [-> Add(beta)], constants along that axis, becomes
// one aiov.LayerNorm.
bool fuse_layer_norm(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& n : ctx.order())
    if (ctx.live(*n) && fuse_group_norm(ctx, n, true)) changed = true;
  for (const NodePtr& mvn : ctx.order()) {
    if (mvn->op != op_name::MVN || !ctx.live(*mvn) || mvn->inputs.size() != 2 ||
        !mvn->attr_int("normalize_variance", 1))
      continue;
    const PartialShape& xs = mvn->outputs[0].shape;
    const Node* axes = const_of(mvn->inputs[1]);
    if (!xs.rank_known || xs.rank() < 1 || !axes || axes->outputs[0].type != ElementType::i64 ||
        numel(axes->outputs[0].shape.dims) != 1 || xs.dims.back() < 0)
      continue;
    const int64_t axis = *static_cast<const int64_t*>(axes->constant->data());
    const int rank = (int)xs.rank();
    if (axis != -1 && axis != rank - 1) continue;
    const int64_t len = xs.dims.back();
    Node* mul = ctx.sole_user(*mvn);
    std::vector<float> gamma, beta;
    if (!mul || mul->op != op_name::Multiply || !numpy_broadcast(*mul)) continue;
    const Value& g = other_input(*mul, mvn.get());
    if (!channel_vector(g, rank, rank - 1, len, gamma)) continue;
    Node* last = mul;
    Node* add = ctx.sole_user(*mul);
    if (add && add->op == op_name::Add && numpy_broadcast(*add)) {
      const Value& b = other_input(*add, mul);
      if (channel_vector(b, rank, rank - 1, len, beta)) last = add;
    }
    if (beta.empty()) beta.assign(len, 0.0f);
    Attrs attrs{{"eps", mvn->attr_float("eps", 1e-9)}, {"eps_mode", mvn->attr_str("eps_mode", "inside_sqrt")}};
    NodePtr ln = make_node(op_name::LayerNorm,
                           {mvn->inputs[0], Value{f32_constant(Dims{len}, gamma, mvn->name + "/gamma"), 0},
                            Value{f32_constant(Dims{len}, beta, mvn->name + "/beta"), 0}},
                           attrs, mvn->name);
    ctx.replace(Value{PassContext::shared(last), 0}, Value{ln, 0});
    changed = true;
  }
  // MVN over the axes after the channels that LayerNorm's match left: aiov.GroupNorm.
  for (const NodePtr& n : ctx.order())
    if (ctx.live(*n) && fuse_group_norm(ctx, n, false)) changed = true;
  return changed;
}

}  // namespace aiov::passes
