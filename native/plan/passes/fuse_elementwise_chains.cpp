#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"
#include "plan/registry.hpp"

namespace aiov::passes {

namespace {

// One step of an elementwise chain: node u applied to the running value `run`.
struct ChainLink {
  std::string step;
  Value operand;  // binary: the other input
  bool binary = false, swapped = false;
  double alpha = 0, beta = 0;
};

// The other operand broadcasts into the running value without growing it: every aligned
// dim is 1 or the same known size.
bool fits_into(const Value& o, const Value& run) {
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
bool chain_link(const Node& u, const Value& run, ChainLink& link, const Value* x = nullptr) {
  if (u.outputs.size() != 1 || u.outputs[0].type != ElementType::f32) return false;
  link = ChainLink{};
  link.step = u.op;
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
bool link_on_some_input(const Node& u, ChainLink& link, Value& run) {
  for (const Value& in : u.inputs)
    if (chain_link(u, in, link)) return run = in, true;
  return false;
}

// Fuses the chain headed by n, if n heads one; returns whether it did.
bool fuse_chain_from(PassContext& ctx, const NodePtr& n) {
  // n heads a chain if it applies to one of its inputs (x) and x is not itself the
  // result of a link whose only user is n.
  ChainLink first, before;
  Value x;
  if (!link_on_some_input(*n, first, x)) return false;
  Value unused;
  if (ctx.sole_user(*x.node) == n.get() && link_on_some_input(*x.node, before, unused)) return false;
  std::vector<ChainLink> links{first};
  Node* last = n.get();
  for (Node* u = ctx.sole_user(*last); u; u = ctx.sole_user(*last)) {
    ChainLink link;
    if (!chain_link(*u, Value{PassContext::shared(last), 0}, link, &x)) break;
    links.push_back(link);
    last = u;
  }
  if (links.size() < 2) return false;
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
  Attrs attrs{{"steps", steps}, {"operands", operands}, {"swapped", swapped}, {"alphas", alphas}, {"betas", betas}};
  NodePtr chain = make_node(op_name::ElementwiseChain, ins, attrs, last->name);
  ctx.replace(Value{PassContext::shared(last), 0}, Value{chain, 0});
  return true;
}

}  // namespace

// Runs of two or more elementwise ops, each the sole user of the one before, become one
// aiov.ElementwiseChain: one pass over memory instead of one per op. One walk in topological
// order: a chain is built from its first op, so the ops after it are gone when the walk gets
// there, and a built chain never extends another (it is not a chainable op).
bool fuse_elementwise_chains(PassContext& ctx) {
  return ctx.rewrite_live([&](const NodePtr& n) { return fuse_chain_from(ctx, n); });
}

}  // namespace aiov::passes
