// Sequences and optionals at run time: values that are not one tensor. They exist only in
// node-by-node runs (a model with such a port is planned node by node) and between a request
// and its caller. Immutable once made: ops that "change" one make a new one sharing the
// tensors, so a value may be read by many nodes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "plan/registry.hpp"

namespace aiov {

struct Composite : std::enable_shared_from_this<Composite> {
  ValueKind kind = ValueKind::sequence;
  ElementType type = ElementType::dynamic;  // the elements' type
  // A sequence: its tensors, in order. An optional: none (empty) or one, a tensor or (for an
  // optional sequence) a value holding a sequence.
  std::vector<HeldTensor> items;
};

// A value holding `c` (view.composite set, shape {0}, no data).
HeldTensor hold_composite(std::shared_ptr<const Composite> c);
// `t` with ownership of whatever it shows: its composite taken from the view when unowned.
HeldTensor owned(HeldTensor t);
// `t` as a value that outlives its source: owned (above), a tensor nobody owns copied.
HeldTensor kept(HeldTensor t);
// Input `i` of an eval with an owner: shared when the caller gave one, else copied.
HeldTensor hold_input(const EvalContext& c, size_t i);
// The kind of value a view shows.
ValueKind kind_of(const TensorView& t);
// The composite `t` shows, checked to be of `kind` (InputError naming node `who` and `what`).
const Composite& expect_composite(const TensorView& t, ValueKind kind, const Node& who, const char* what);
// `t` checked to be a tensor (InputError naming node `who` and `what`).
void expect_tensor(const TensorView& t, const Node& who, const char* what);

}  // namespace aiov
