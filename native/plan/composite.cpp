#include "plan/composite.hpp"

#include <cstring>

namespace aiov {

HeldTensor hold_composite(std::shared_ptr<const Composite> c) {
  HeldTensor h;
  h.view.type = c->type;
  h.view.shape = Dims{0};
  h.view.composite = c.get();
  h.composite = std::move(c);
  return h;
}

HeldTensor owned(HeldTensor t) {
  if (t.view.composite && !t.composite) t.composite = t.view.composite->shared_from_this();
  return t;
}

HeldTensor kept(HeldTensor t) {
  t = owned(std::move(t));
  if (t.view.composite || t.keep) return t;
  t.keep = std::make_shared<Buffer>(t.view.bytes());
  if (t.view.bytes()) std::memcpy(t.keep->data(), t.view.data, t.view.bytes());
  t.view.data = t.keep->data();
  return t;
}

HeldTensor hold_input(const EvalContext& c, size_t i) {
  // A body's parameter has no owner in a node-by-node run (it shows its caller's memory,
  // which a Loop reuses and a subgraph's run frees): it is copied like an unheld input.
  return kept(c.held ? c.held->at(i) : HeldTensor{c.in.at(i), nullptr, nullptr});
}

ValueKind kind_of(const TensorView& t) { return t.composite ? t.composite->kind : ValueKind::tensor; }

const Composite& expect_composite(const TensorView& t, ValueKind kind, const Node& who, const char* what) {
  if (kind_of(t) != kind)
    throw InputError(who.describe() + ": " + what + " must be " + kind_name(kind) + ", got " + kind_name(kind_of(t)));
  return *t.composite;
}

void expect_tensor(const TensorView& t, const Node& who, const char* what) {
  if (t.composite)
    throw InputError(who.describe() + ": " + what + " must be a tensor, got " + kind_name(t.composite->kind));
}

}  // namespace aiov
