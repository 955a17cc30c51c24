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

HeldTensor hold_input(const EvalContext& c, size_t i) {
  if (c.held) return owned(c.held->at(i));
  HeldTensor h = owned(HeldTensor{c.in.at(i), nullptr, nullptr});
  if (h.view.composite) return h;
  h.keep = std::make_shared<Buffer>(h.view.bytes());
  if (h.view.bytes()) std::memcpy(h.keep->data(), h.view.data, h.view.bytes());
  h.view.data = h.keep->data();
  return h;
}

ValueKind kind_of(const TensorView& t) { return t.composite ? t.composite->kind : ValueKind::tensor; }

const Composite& expect_composite(const TensorView& t, ValueKind kind, const std::string& who, const char* what) {
  if (kind_of(t) != kind)
    throw InputError(who + ": " + what + " must be " + kind_name(kind) + ", got " + kind_name(kind_of(t)));
  return *t.composite;
}

void expect_tensor(const TensorView& t, const std::string& who, const char* what) {
  if (t.composite) throw InputError(who + ": " + what + " must be a tensor, got " + kind_name(t.composite->kind));
}

}  // namespace aiov
