#include "plan/optimize.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "plan/registry.hpp"

namespace aiov {
namespace {

constexpr size_t kMaxFoldedBytes = size_t{64} << 20;  // larger results stay computed per plan

bool same(const Value& a, const Value& b) { return a.node == b.node && a.index == b.index; }

const Node* const_of(const Value& v) { return v.node->op == "Constant" ? v.node.get() : nullptr; }

NodePtr i64_constant(const std::vector<int64_t>& values, const std::string& name) {
  return make_constant(ElementType::i64, Dims{(int64_t)values.size()}, values.data(), values.size() * 8, name);
}

NodePtr f32_constant(const Dims& shape, const std::vector<float>& values, const std::string& name) {
  return make_constant(ElementType::f32, shape, values.data(), values.size() * 4, name);
}

std::vector<float> floats_of(const Node& c) {
  const float* p = static_cast<const float*>(c.constant->data());
  return std::vector<float>(p, p + numel(c.outputs[0].shape.dims));
}

bool scalar_near(const Value& v, double want) {
  const Node* c = const_of(v);
  if (!c || c->outputs[0].type != ElementType::f32 || numel(c->outputs[0].shape.dims) != 1) return false;
  double got = *static_cast<const float*>(c->constant->data());
  return std::fabs(got - want) <= 1e-4 * std::fabs(want);
}

// Values of a constant that, broadcast (numpy rules) against a tensor of rank `rank`, vary
// only along `axis` (size `channels`) and do not grow the tensor: one value per channel.
bool channel_vector(const Value& v, int rank, int axis, int64_t channels, std::vector<float>& out) {
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

bool numpy_broadcast(const Node& n) { return n.attr_str("auto_broadcast", "numpy") == "numpy"; }

// The operand of binary node u that is not produced by `from`.
const Value& other_input(const Node& u, const Node* from) {
  return u.inputs[0].node.get() == from ? u.inputs[1] : u.inputs[0];
}

// Perm of a Transpose with a constant order, else empty.
std::vector<int64_t> transpose_perm(const Node& n) {
  if (n.op != "Transpose") return {};
  const Node* p = const_of(n.inputs[1]);
  if (!p || p->outputs[0].type != ElementType::i64) return {};
  const int64_t* d = static_cast<const int64_t*>(p->constant->data());
  return std::vector<int64_t>(d, d + numel(p->outputs[0].shape.dims));
}

const std::vector<int64_t> kToNhwc{0, 2, 3, 1};
const std::vector<int64_t> kToNchw{0, 3, 1, 2};

bool is_to_nchw(const Value& v) { return transpose_perm(*v.node) == kToNchw; }

NodePtr transposed_to(const Value& v, const std::vector<int64_t>& perm) {
  return make_node("Transpose", {v, Value{i64_constant(perm, ""), 0}}, {}, "");
}
NodePtr to_nchw(const NodePtr& nhwc) { return transposed_to(Value{nhwc, 0}, kToNchw); }

const std::unordered_set<std::string> kLayoutBlindUnary{
    "Relu", "Clamp", "Sigmoid", "Tanh", "HSwish", "HSigmoid", "Gelu", "Elu", "LeakyRelu", "Exp", "Abs",
    "Negative", "Sqrt", "Erf", "HardSigmoid", "SoftPlus", "Floor", "Ceiling", "Round", "Sign", "Log", "Reciprocal"};
const std::unordered_set<std::string> kLayoutBlindBinary{"Add", "Subtract", "Multiply", "Divide", "Maximum",
                                                         "Minimum"};

class Rewriter {
 public:
  explicit Rewriter(const Graph& src) { clone(src); }

  Graph run() {
    fold_constants();
    recognise_gelu();
    convolutions_to_nhwc();
    sink_layout_changes();
    convolutions_read_planar();
    fuse_attention();
    fuse_layer_norm();
    fuse_matmul_bias();
    fuse_epilogues();
    fuse_elementwise_chains();
    return g_;
  }

 private:
  Graph g_;
  std::vector<NodePtr> order_;
  std::unordered_map<const Node*, std::vector<Node*>> users_;  // consumer per input slot
  std::unordered_map<const Node*, int> output_refs_;           // graph outputs per node

  void clone(const Graph& src) {
    std::unordered_map<const Node*, NodePtr> copy;
    for (const NodePtr& n : src.topological_order()) {
      auto c = std::make_shared<Node>(*n);
      for (Value& in : c->inputs) in.node = copy.at(in.node.get());
      copy[n.get()] = c;
    }
    for (const NodePtr& p : src.parameters) {
      auto it = copy.find(p.get());
      g_.parameters.push_back(it != copy.end() ? it->second : p);
    }
    for (const Value& o : src.outputs) g_.outputs.push_back(Value{copy.at(o.node.get()), o.index});
    refresh();
  }

  void refresh() {
    order_ = g_.topological_order();
    users_.clear();
    output_refs_.clear();
    for (const NodePtr& n : order_)
      for (const Value& in : n->inputs) users_[in.node.get()].push_back(n.get());
    for (const Value& o : g_.outputs) ++output_refs_[o.node.get()];
  }

  // The single consumer of node n's outputs, if there is exactly one use and it is not a
  // graph output (only then may n's result disappear into a fused op).
  Node* sole_user(const Node& n) const {
    auto it = users_.find(&n);
    if (it == users_.end() || it->second.size() != 1 || output_refs_.count(&n)) return nullptr;
    return it->second[0];
  }

  NodePtr shared(Node* n) const { return n->shared_from_this(); }

  void replace(const Value& from, const Value& to) {
    for (const NodePtr& n : order_)
      for (Value& in : n->inputs)
        if (same(in, from)) in = to;
    for (Value& o : g_.outputs)
      if (same(o, from)) o = to;
  }

  // ---- constants ------------------------------------------------------------------------

  void fold_constants() {
    const OpRegistry& reg = OpRegistry::instance();
    for (const NodePtr& n : order_) {
      if (n->op == "Parameter" || n->op == "Constant" || n->inputs.empty()) continue;
      bool all_const = true;
      for (const Value& in : n->inputs) all_const = all_const && const_of(in);
      if (!all_const) continue;
      try {
        const OpDef& def = reg.get(n->op);
        std::vector<TensorView> ins(n->inputs.size());
        InferContext ictx{*n, {}, {}};
        for (size_t i = 0; i < ins.size(); ++i) {
          const Node& c = *n->inputs[i].node;
          ins[i] = TensorView{c.constant->data(), c.outputs[0].type, c.outputs[0].shape.dims};
          ictx.in.push_back(c.outputs[0]);
        }
        for (auto& t : ins) ictx.in_value.push_back(&t);
        std::vector<PortInfo> outs = infer_outputs(def, ictx);
        PrepareContext pctx{*n, ins, {}};
        std::vector<BufferPtr> bufs;
        size_t total = 0;
        bool static_shapes = true;
        for (const PortInfo& o : outs) {
          static_shapes = static_shapes && o.shape.is_static();
          if (static_shapes) total += byte_size(o.type, numel(o.shape.dims));
        }
        if (!static_shapes || total > kMaxFoldedBytes) continue;
        for (const PortInfo& o : outs) {
          bufs.push_back(std::make_shared<Buffer>(byte_size(o.type, numel(o.shape.dims))));
          pctx.out.push_back(TensorView{bufs.back()->data(), o.type, o.shape.dims});
        }
        if (def.aliases_input0) std::memcpy(pctx.out[0].data, ins[0].data, pctx.out[0].bytes());
        else run_kernel_now(def, pctx);
        for (size_t o = 0; o < outs.size(); ++o) {
          NodePtr c = make_constant(outs[o].type, outs[o].shape.dims, pctx.out[o].data, pctx.out[o].bytes(), n->name);
          c->output_names = {n->output_names.size() > o ? n->output_names[o] : std::vector<std::string>{}};
          replace(Value{n, (int)o}, Value{c, 0});
        }
      } catch (const std::exception&) {
        // Left to the planner, which reports the error with the model's real input shapes.
      }
    }
    refresh();
  }

  // ---- Gelu -------------------------------------------------------------------------------

  // x * 0.5 * (1 + erf(x / sqrt(2))) in the two shapes exporters write it.
  void recognise_gelu() {
    bool changed = false;
    for (const NodePtr& e : order_) {
      if (e->op != "Erf") continue;
      const Node& scaled = *e->inputs[0].node;
      Value x;
      if (scaled.op == "Divide" && scalar_near(scaled.inputs[1], std::sqrt(2.0))) x = scaled.inputs[0];
      else if (scaled.op == "Multiply" && scalar_near(scaled.inputs[1], std::sqrt(0.5))) x = scaled.inputs[0];
      else if (scaled.op == "Multiply" && scalar_near(scaled.inputs[0], std::sqrt(0.5))) x = scaled.inputs[1];
      else continue;
      Node* plus = sole_user(*e);
      if (!plus || plus->op != "Add") continue;
      const Value& one = other_input(*plus, e.get());
      if (!scalar_near(one, 1.0)) continue;
      Node* prod = sole_user(*plus);
      if (!prod || prod->op != "Multiply") continue;
      const Value& other = other_input(*prod, plus);
      Value result;
      if (same(other, x)) {  // (x * (1 + erf)) * 0.5
        Node* half = sole_user(*prod);
        if (!half || half->op != "Multiply") continue;
        const Value& h = other_input(*half, prod);
        if (!scalar_near(h, 0.5)) continue;
        result = Value{shared(half), 0};
      } else {  // (x * 0.5) * (1 + erf)
        const Node& xh = *other.node;
        if (xh.op != "Multiply") continue;
        bool ok = (same(xh.inputs[0], x) && scalar_near(xh.inputs[1], 0.5)) ||
                  (same(xh.inputs[1], x) && scalar_near(xh.inputs[0], 0.5));
        if (!ok) continue;
        result = Value{shared(prod), 0};
      }
      if (result.node->outputs[0].shape.dims != x.node->outputs[x.index].shape.dims) continue;
      NodePtr gelu = make_node("Gelu", {x}, Attrs{{"approximation_mode", std::string("ERF")}}, e->name);
      replace(result, Value{gelu, 0});
      changed = true;
    }
    if (changed) refresh();
  }

  // ---- convolutions ---------------------------------------------------------------------

  void convolutions_to_nhwc() {
    bool changed = false;
    for (const NodePtr& conv : order_) {
      if (conv->op != "Convolution") continue;
      const Node* filters = const_of(conv->inputs[1]);
      const PortInfo& xi = conv->inputs[0].node->outputs[conv->inputs[0].index];
      if (!filters || xi.type != ElementType::f32 || !xi.shape.rank_known || xi.shape.rank() != 4 ||
          conv->attr_str("layout", "nchw") != "nchw")
        continue;
      const Dims fdims = filters->outputs[0].shape.dims;
      const int64_t O = fdims[0];
      std::vector<float> scale(O, 1.0f), bias(O, 0.0f), vec;
      // Per-channel ops right after the convolution fold into a filter scale and its bias.
      Node* last = conv.get();
      for (Node* u = sole_user(*last); u; u = sole_user(*last)) {
        const bool first_in = u->inputs[0].node.get() == last;
        const Value& other = u->inputs.size() > 1 ? u->inputs[first_in ? 1 : 0] : u->inputs[0];
        if (u->op == "BatchNormInference" && first_in) {
          std::vector<float> p[4];
          bool ok = true;
          for (int i = 0; i < 4; ++i) ok = ok && channel_vector(u->inputs[i + 1], 1, 0, O, p[i]);
          if (!ok) break;
          const double eps = u->attr_float("epsilon", 1e-5);
          for (int64_t o = 0; o < O; ++o) {  // inputs: gamma, beta, mean, variance
            const float inv = (float)(p[0][o] / std::sqrt((double)p[3][o] + eps));
            scale[o] *= inv;
            bias[o] = (bias[o] - p[2][o]) * inv + p[1][o];
          }
        } else if (kLayoutBlindBinary.count(u->op) && numpy_broadcast(*u) && channel_vector(other, 4, 1, O, vec)) {
          if (u->op == "Add") for (int64_t o = 0; o < O; ++o) bias[o] += vec[o];
          else if (u->op == "Subtract" && first_in) for (int64_t o = 0; o < O; ++o) bias[o] -= vec[o];
          else if (u->op == "Multiply")
            for (int64_t o = 0; o < O; ++o) scale[o] *= vec[o], bias[o] *= vec[o];
          else if (u->op == "Divide" && first_in)
            for (int64_t o = 0; o < O; ++o) scale[o] /= vec[o], bias[o] /= vec[o];
          else break;
        } else {
          break;
        }
        last = u;
      }
      Attrs attrs = conv->attrs;
      attrs["layout"] = std::string("nhwc");
      // The filters stay the model's constant, shared with the model rather than copied; the
      // kernel applies the per-channel scale as it rearranges them (see aiov.FusedConv).
      if (std::any_of(scale.begin(), scale.end(), [](float s) { return s != 1.0f; }))
        attrs["filter_scale"] = std::vector<double>(scale.begin(), scale.end());
      NodePtr xt = transposed_to(conv->inputs[0], kToNhwc);
      NodePtr fused = make_node("aiov.FusedConv",
                                {Value{xt, 0}, conv->inputs[1],
                                 Value{f32_constant(Dims{O}, bias, conv->name + "/bias"), 0}},
                                attrs, conv->name);
      replace(Value{shared(last), 0}, Value{to_nchw(fused), 0});
      changed = true;
    }
    if (changed) refresh();
  }

  // Moves NHWC->NCHW transposes down past ops that do not care about the layout, so that a
  // following NCHW->NHWC transpose meets them and both disappear.
  void sink_layout_changes() {
    for (bool changed = true; changed;) {
      changed = false;
      for (const NodePtr& u : order_) {
        if (sink_one(u)) {
          changed = true;
          refresh();
          break;
        }
      }
    }
  }

  bool sink_one(const NodePtr& u) {
    int at = -1;
    for (size_t i = 0; i < u->inputs.size() && at < 0; ++i)
      if (is_to_nchw(u->inputs[i])) at = (int)i;
    if (at < 0) return false;
    const Value y = u->inputs[at].node->inputs[0];  // the NHWC value
    if (transpose_perm(*u) == kToNhwc) {
      replace(Value{u, 0}, y);
      return true;
    }
    if (kLayoutBlindUnary.count(u->op) && u->inputs.size() == 1) {
      NodePtr nu = make_node(u->op, {y}, u->attrs, u->name);
      replace(Value{u, 0}, Value{to_nchw(nu), 0});
      return true;
    }
    if (kLayoutBlindBinary.count(u->op) && numpy_broadcast(*u)) {
      const Value& other = u->inputs[1 - at];
      Value moved;
      if (is_to_nchw(other)) {
        moved = other.node->inputs[0];
      } else if (const Node* c = const_of(other)) {
        Dims d = c->outputs[0].shape.dims;
        if (d.size() > 4) return false;
        d.insert(d.begin(), 4 - d.size(), 1);
        moved = Value{permuted_constant(*c, d), 0};
      } else {
        return false;
      }
      std::vector<Value> ins(2);
      ins[at] = y;
      ins[1 - at] = moved;
      NodePtr nu = make_node(u->op, ins, u->attrs, u->name);
      replace(Value{u, 0}, Value{to_nchw(nu), 0});
      return true;
    }
    if ((u->op == "MaxPool" || u->op == "AvgPool") && at == 0 && u->outputs.size() == 1 &&
        u->attr_str("layout", "nchw") == "nchw") {
      Attrs attrs = u->attrs;
      attrs["layout"] = std::string("nhwc");
      NodePtr nu = make_node(u->op, {y}, attrs, u->name);
      replace(Value{u, 0}, Value{to_nchw(nu), 0});
      return true;
    }
    if ((u->op == "ReduceMean" || u->op == "ReduceMax" || u->op == "ReduceMin" || u->op == "ReduceSum") && at == 0 &&
        u->inputs.size() == 2) {
      const Node* axes_node = const_of(u->inputs[1]);
      if (!axes_node || axes_node->outputs[0].type != ElementType::i64) return false;
      const int64_t* a = static_cast<const int64_t*>(axes_node->constant->data());
      const std::vector<int64_t> where{0, 3, 1, 2};  // NCHW axis -> NHWC axis
      std::vector<int64_t> axes;
      std::vector<bool> reduced(4, false);
      for (int64_t i = 0; i < numel(axes_node->outputs[0].shape.dims); ++i) {
        int64_t ax = a[i] < 0 ? a[i] + 4 : a[i];
        if (ax < 0 || ax > 3) return false;
        axes.push_back(where[ax]);
        reduced[ax] = true;
      }
      const bool keep = u->attr_int("keep_dims", 0) != 0;
      if (!keep) {  // without kept dims the remaining axes must stay in order
        int64_t prev = -1;
        for (int ax = 0; ax < 4; ++ax) {
          if (reduced[ax]) continue;
          if (where[ax] < prev) return false;
          prev = where[ax];
        }
      }
      NodePtr nu = make_node(u->op, {y, Value{i64_constant(axes, ""), 0}}, u->attrs, u->name);
      replace(Value{u, 0}, keep ? Value{to_nchw(nu), 0} : Value{nu, 0});
      return true;
    }
    return false;
  }

  // Convolutions left reading a transpose of NCHW data to NHWC (the model's image, at the
  // start of a region) read the NCHW data as it lies when it has few channels: their GEMM
  // copies or gathers such narrow input anyway, and the transpose is a pass over the image
  // before any work starts (10 us of a 224 px stem's 145). Wide inputs stay NHWC, where a
  // pixel's channels are one run.
  void convolutions_read_planar() {
    constexpr int64_t kMaxPlanarChannels = 4;
    bool changed = false;
    for (const NodePtr& conv : order_) {
      if (conv->op != "aiov.FusedConv" || conv->has_attr("input_layout") ||
          transpose_perm(*conv->inputs[0].node) != kToNhwc)
        continue;
      const Value nchw = conv->inputs[0].node->inputs[0];
      const PartialShape& shape = nchw.node->outputs[nchw.index].shape;
      if (!shape.rank_known || shape.rank() != 4 || shape.dims[1] < 1 || shape.dims[1] > kMaxPlanarChannels) continue;
      conv->inputs[0] = nchw;
      conv->attrs["input_layout"] = std::string("nchw");
      changed = true;
    }
    if (changed) refresh();
  }

  // A rank-4 constant (dims `d`, already padded) in NHWC order.
  static NodePtr permuted_constant(const Node& c, const Dims& d) {
    const size_t esize = byte_size(c.outputs[0].type, 1);
    const Dims out{d[0], d[2], d[3], d[1]};
    std::vector<uint8_t> bytes(numel(d) * esize);
    const uint8_t* src = static_cast<const uint8_t*>(c.constant->data());
    for (int64_t n = 0; n < d[0]; ++n)
      for (int64_t ch = 0; ch < d[1]; ++ch)
        for (int64_t h = 0; h < d[2]; ++h)
          for (int64_t w = 0; w < d[3]; ++w) {
            const int64_t s = ((n * d[1] + ch) * d[2] + h) * d[3] + w;
            const int64_t t = ((n * d[2] + h) * d[3] + w) * d[1] + ch;
            std::memcpy(&bytes[t * esize], src + s * esize, esize);
          }
    return make_constant(c.outputs[0].type, out, bytes.data(), bytes.size(), c.name);
  }

  // ---- attention --------------------------------------------------------------------------

  // The node behind `v` when it is a Transpose with this order, else null.
  static const Node* transposed(const Value& v, const std::vector<int64_t>& perm) {
    return transpose_perm(*v.node) == perm ? v.node.get() : nullptr;
  }

  // Transpose(MatMul(Softmax(scale * MatMul(Q, K^T) [+ mask]), V), [0, 2, 1, 3]) with Q, K and V
  // each Transpose([b, s, h, d], [0, 2, 1, 3]) becomes one aiov.Attention on the untransposed
  // Q, K and V.
  void fuse_attention() {
    const std::vector<int64_t> heads{0, 2, 1, 3}, swap_last{0, 1, 3, 2};
    bool changed = false;
    for (const NodePtr& pv : order_) {
      if (pv->op != "MatMul" || pv->attr_int("transpose_a", 0) || pv->attr_int("transpose_b", 0)) continue;
      Node* out = sole_user(*pv);
      const Node* vt = transposed(pv->inputs[1], heads);
      Node* probs = pv->inputs[0].node.get();
      if (!out || transpose_perm(*out) != heads || !vt || probs->op != "Softmax" || sole_user(*probs) != pv.get())
        continue;
      const PartialShape& ps = probs->outputs[0].shape;
      const int64_t axis = probs->attr_int("axis", 1);  // the Softmax op's default axis is 1
      if (!ps.rank_known || ps.rank() != 4 || (axis != -1 && axis != 3)) continue;
      Node* scores = probs->inputs[0].node.get();
      Node* consumer = probs;  // the node that must be the scores' only user
      std::vector<Value> mask;
      if (scores->op == "Add" && numpy_broadcast(*scores) && sole_user(*scores) == probs) {
        Node* add = scores;
        for (int side = 0; side < 2 && mask.empty(); ++side) {
          Node* s = add->inputs[side].node.get();
          if (s->op == "Divide" || s->op == "Multiply" || s->op == "MatMul") {
            mask.push_back(add->inputs[1 - side]);
            scores = s;
            consumer = add;
          }
        }
        if (mask.empty()) continue;
        const PortInfo& mi = mask[0].node->outputs[mask[0].index];
        if (mi.type != ElementType::f32 || !mi.shape.rank_known || mi.shape.rank() > 4) continue;
      }
      if (sole_user(*scores) != consumer) continue;
      double scale = 1.0;
      Node* qk = scores;
      if (scores->op == "Divide" || scores->op == "Multiply") {
        const int c = const_of(scores->inputs[1]) ? 1 : 0;
        const Node* k = const_of(scores->inputs[c]);
        if (!k || k->outputs[0].type != ElementType::f32 || numel(k->outputs[0].shape.dims) != 1 ||
            (scores->op == "Divide" && c == 0))
          continue;
        const double value = *static_cast<const float*>(k->constant->data());
        scale = scores->op == "Divide" ? 1.0 / value : value;
        qk = scores->inputs[1 - c].node.get();
        if (sole_user(*qk) != scores) continue;
      }
      if (qk->op != "MatMul" || qk->attr_int("transpose_a", 0)) continue;
      const Node* qt = transposed(qk->inputs[0], heads);
      const Node* kt = nullptr;
      if (qk->attr_int("transpose_b", 0)) {
        kt = transposed(qk->inputs[1], heads);
      } else if (const Node* kk = transposed(qk->inputs[1], swap_last)) {
        kt = transposed(kk->inputs[0], heads);
      } else if (const Node* kd = transposed(qk->inputs[1], std::vector<int64_t>{0, 2, 3, 1})) {
        // [b, s, h, d] -> [b, h, d, s] in one transpose
        kt = kd;
      }
      if (!qt || !kt) continue;
      std::vector<Value> ins{qt->inputs[0], kt->inputs[0], vt->inputs[0]};
      for (const Value& m : mask) ins.push_back(m);
      NodePtr att;
      try {
        att = make_node("aiov.Attention", ins, Attrs{{"scale", scale}}, pv->name);
      } catch (const std::exception&) {
        continue;  // shapes that do not fit the fused op: leave the chain as written
      }
      replace(Value{shared(out), 0}, Value{att, 0});
      changed = true;
    }
    if (changed) refresh();
  }

  // ---- layer normalization ----------------------------------------------------------------

  // MVN over the last axis -> Multiply(gamma) [-> Add(beta)], constants along that axis.
  void fuse_layer_norm() {
    bool changed = false;
    for (const NodePtr& mvn : order_) {
      if (mvn->op != "MVN" || mvn->inputs.size() != 2 || !mvn->attr_int("normalize_variance", 1)) continue;
      const PartialShape& xs = mvn->outputs[0].shape;
      const Node* axes = const_of(mvn->inputs[1]);
      if (!xs.rank_known || xs.rank() < 1 || !axes || axes->outputs[0].type != ElementType::i64 ||
          numel(axes->outputs[0].shape.dims) != 1 || xs.dims.back() < 0)
        continue;
      const int64_t axis = *static_cast<const int64_t*>(axes->constant->data());
      const int rank = (int)xs.rank();
      if (axis != -1 && axis != rank - 1) continue;
      const int64_t len = xs.dims.back();
      Node* mul = sole_user(*mvn);
      std::vector<float> gamma, beta;
      if (!mul || mul->op != "Multiply" || !numpy_broadcast(*mul)) continue;
      const Value& g = other_input(*mul, mvn.get());
      if (!channel_vector(g, rank, rank - 1, len, gamma)) continue;
      Node* last = mul;
      Node* add = sole_user(*mul);
      if (add && add->op == "Add" && numpy_broadcast(*add)) {
        const Value& b = other_input(*add, mul);
        if (channel_vector(b, rank, rank - 1, len, beta)) last = add;
      }
      if (beta.empty()) beta.assign(len, 0.0f);
      Attrs attrs{{"eps", mvn->attr_float("eps", 1e-9)},
                  {"eps_mode", mvn->attr_str("eps_mode", "inside_sqrt")}};
      NodePtr ln = make_node("aiov.LayerNorm",
                             {mvn->inputs[0], Value{f32_constant(Dims{len}, gamma, mvn->name + "/gamma"), 0},
                              Value{f32_constant(Dims{len}, beta, mvn->name + "/beta"), 0}},
                             attrs, mvn->name);
      replace(Value{shared(last), 0}, Value{ln, 0});
      changed = true;
    }
    if (changed) refresh();
  }

  // ---- matmul and epilogues -------------------------------------------------------------

  void fuse_matmul_bias() {
    bool changed = false;
    for (const NodePtr& mm : order_) {
      if (mm->op != "MatMul" || mm->attr_int("transpose_a", 0)) continue;
      const Node* w = const_of(mm->inputs[1]);
      const PortInfo& xi = mm->inputs[0].node->outputs[mm->inputs[0].index];
      const PartialShape& ys = mm->outputs[0].shape;
      if (!w || w->outputs[0].type != ElementType::f32 || w->outputs[0].shape.rank() != 2 || !xi.shape.rank_known ||
          xi.shape.rank() < 2 || !ys.rank_known)
        continue;
      Node* add = sole_user(*mm);
      std::vector<float> bias;
      if (!add || add->op != "Add" || !numpy_broadcast(*add)) continue;
      const Value& other = other_input(*add, mm.get());
      const int64_t N = ys.dims.back();
      if (!channel_vector(other, (int)ys.rank(), (int)ys.rank() - 1, N, bias)) continue;
      Attrs attrs{{"transpose_b", mm->attr_int("transpose_b", 0)}};
      NodePtr fused = make_node("aiov.FusedMatMul",
                                {mm->inputs[0], mm->inputs[1], Value{f32_constant(Dims{N}, bias, mm->name + "/bias"), 0}},
                                attrs, mm->name);
      replace(Value{shared(add), 0}, Value{fused, 0});
      changed = true;
    }
    if (changed) refresh();
  }

  // The parameters of Clamp (min, max) and LeakyRelu (alpha, -), as fused ops carry them.
  static void activation_params(const Node& u, double& alpha, double& beta) {
    alpha = beta = 0;
    if (u.op == "Clamp") alpha = u.attr_float("min", -INFINITY), beta = u.attr_float("max", INFINITY);
    else if (u.op == "LeakyRelu") alpha = u.attr_float("alpha", 0.01);
  }

  static bool is_tanh_gelu(const Node& u) {
    const std::string mode = u.attr_str("approximation_mode", "ERF");
    return u.op == "Gelu" && (mode == "TANH" || mode == "tanh");
  }

  static bool activation_of(const Node& u, Attrs& attrs) {
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

  void fuse_epilogues() {
    for (bool changed = true; changed;) {
      changed = false;
      for (const NodePtr& f : order_) {
        if ((f->op != "aiov.FusedConv" && f->op != "aiov.FusedMatMul") || f->attr_str("act", "none") != "none") continue;
        Node* u = sole_user(*f);
        if (!u) continue;
        std::vector<Value> ins = f->inputs;
        Attrs attrs = f->attrs;
        if (activation_of(*u, attrs)) {
          // fused: activation applied last
        } else if (u->op == "Add" && numpy_broadcast(*u) && ins.size() == 3) {
          const Value& other = other_input(*u, f.get());
          if (same(other, Value{f, 0}) || !same_shape(other, Value{f, 0})) continue;
          ins.push_back(other);  // the residual
        } else {
          continue;
        }
        NodePtr nf = make_node(f->op, ins, attrs, f->name);
        replace(Value{shared(u), 0}, Value{nf, 0});
        refresh();
        changed = true;
        break;
      }
    }
  }

  // ---- elementwise chains ----------------------------------------------------------------

  // One step of an elementwise chain: node u applied to the running value `run`.
  struct ChainLink {
    std::string step;
    Value operand;         // binary: the other input
    bool binary = false, swapped = false;
    double alpha = 0, beta = 0;
  };

  // The other operand broadcasts into the running value without growing it: every aligned
  // dim is 1 or the same known size.
  static bool fits_into(const Value& o, const Value& run) {
    const PortInfo& a = o.node->outputs[o.index];
    const PartialShape& r = run.node->outputs[run.index].shape;
    if (a.type != ElementType::f32 || !a.shape.rank_known || !r.rank_known || a.shape.rank() > r.rank()) return false;
    const size_t off = r.dims.size() - a.shape.dims.size();
    for (size_t i = 0; i < a.shape.dims.size(); ++i) {
      const int64_t d = a.shape.dims[i];
      if (d != 1 && (d < 0 || d != r.dims[off + i])) return false;
    }
    return true;
  }

  // `x`: the chain's input, if known; as the other operand it always fits (every step keeps
  // its shape).
  static bool chain_link(const Node& u, const Value& run, ChainLink& link, const Value* x = nullptr) {
    if (u.outputs.size() != 1 || u.outputs[0].type != ElementType::f32) return false;
    link = ChainLink{};
    link.step = is_tanh_gelu(u) ? "GeluTanh" : u.op;
    activation_params(u, link.alpha, link.beta);
    if (!chainable_elementwise_op(link.step)) return false;
    if (u.inputs.size() == 1) return same(u.inputs[0], run);
    if (u.inputs.size() != 2 || !numpy_broadcast(u)) return false;
    link.binary = true;
    link.swapped = same(u.inputs[1], run);
    if (!link.swapped && !same(u.inputs[0], run)) return false;
    link.operand = u.inputs[link.swapped ? 0 : 1];
    return !same(link.operand, run) && ((x && same(link.operand, *x)) || fits_into(link.operand, run));
  }

  // Whether u is a chain step applied to one of its inputs; that input is `run`.
  static bool link_on_some_input(const Node& u, ChainLink& link, Value& run) {
    for (const Value& in : u.inputs)
      if (chain_link(u, in, link)) return run = in, true;
    return false;
  }

  // Runs of two or more elementwise ops, each the sole user of the one before, become one
  // aiov.ElementwiseChain: one pass over memory instead of one per op.
  void fuse_elementwise_chains() {
    for (bool changed = true; changed;) {
      changed = false;
      for (const NodePtr& n : order_) {
        // n heads a chain if it applies to one of its inputs (x) and x is not itself the
        // result of a link whose only user is n.
        ChainLink first, before;
        Value x;
        if (!link_on_some_input(*n, first, x)) continue;
        Value unused;
        if (sole_user(*x.node) == n.get() && link_on_some_input(*x.node, before, unused)) continue;
        std::vector<ChainLink> links{first};
        Node* last = n.get();
        for (Node* u = sole_user(*last); u; u = sole_user(*last)) {
          ChainLink link;
          if (!chain_link(*u, Value{shared(last), 0}, link, &x)) break;
          links.push_back(link);
          last = u;
        }
        if (links.size() < 2) continue;
        std::vector<Value> ins{x};
        std::string steps;
        std::vector<int64_t> operands, swapped;
        std::vector<double> alphas, betas;
        for (const ChainLink& l : links) {
          int64_t slot = -1;
          if (l.binary) {
            for (size_t i = 0; i < ins.size() && slot < 0; ++i)
              if (same(ins[i], l.operand)) slot = (int64_t)i;
            if (slot < 0) slot = (int64_t)ins.size(), ins.push_back(l.operand);
          }
          steps += (steps.empty() ? "" : ",") + l.step;
          operands.push_back(slot);
          swapped.push_back(l.swapped ? 1 : 0);
          alphas.push_back(l.alpha);
          betas.push_back(l.beta);
        }
        Attrs attrs{{"steps", steps}, {"operands", operands}, {"swapped", swapped}, {"alphas", alphas},
                    {"betas", betas}};
        NodePtr chain = make_node("aiov.ElementwiseChain", ins, attrs, last->name);
        replace(Value{shared(last), 0}, Value{chain, 0});
        refresh();
        changed = true;
        break;
      }
    }
  }

  // Same rank and the same dims wherever known (a residual must match the output exactly;
  // the fused op checks the concrete shapes again when planned).
  static bool same_shape(const Value& a, const Value& b) {
    const PartialShape& x = a.node->outputs[a.index].shape;
    const PartialShape& y = b.node->outputs[b.index].shape;
    if (!x.rank_known || !y.rank_known || x.rank() != y.rank()) return false;
    if (a.node->outputs[a.index].type != ElementType::f32) return false;
    for (size_t i = 0; i < x.dims.size(); ++i)
      if (x.dims[i] != y.dims[i]) return false;
    return true;
  }
};

}  // namespace

Graph optimize_graph(const Graph& g) { return Rewriter(g).run(); }

bool graph_optimization_enabled() {
  const char* env = std::getenv("AIOV_GRAPH_OPT");
  return !(env && std::strcmp(env, "0") == 0);
}

}  // namespace aiov
