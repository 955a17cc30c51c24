// Variables of stateful models: storage each request keeps between its inferences, which
// ReadValue reads and Assign writes (the write takes effect when the inference succeeds).
#pragma once
#include <string>
#include <vector>

#include "core/types.hpp"
#include "plan/graph.hpp"

namespace aiov {

// A variable as the model declares it (ReadValue's variable_type/variable_shape, else what
// its Assign writes).
struct VariableDesc {
  std::string id;
  ElementType type = ElementType::dynamic;
  PartialShape shape = PartialShape::dynamic_rank();
};

struct VariableSlot {
  BufferPtr data;  // the value ReadValue reads, when `set`
  Dims shape;
  bool set = false;
  BufferPtr next;  // what Assign wrote during the running inference, when `written`
  Dims next_shape;
  bool written = false;
};

// One request's variables, in the order of the compiled model's VariableDesc list.
struct VariableStore {
  const std::vector<VariableDesc>* descs = nullptr;
  std::vector<VariableSlot> slots;

  // Index of variable `id`; InputError when the model has no such variable.
  int index_of(const std::string& id) const;
  // The inference succeeded: what Assign wrote becomes the variables' values.
  void commit();
  // The inference failed or was cancelled: the variables keep their previous values.
  void discard();
};

// The variables a graph's ReadValue/Assign nodes use, in order of first use; InputError when
// two nodes disagree on a variable's type.
std::vector<VariableDesc> collect_variables(const std::vector<NodePtr>& order);

// A ReadValue's output shape in a plan: the variable's current shape (`state`, null when it
// has no value), else its initial value's (input 0), else its declared shape, which must then
// be static.
PartialShape read_value_plan_shape(const Node& n, const std::vector<TensorView>& in, const Dims* state);

// A ReadValue's variable_shape attribute as OpenVINO writes it ("?,2", "2,2", "..." or "[1,?]").
PartialShape parse_variable_shape(const Node& n, const std::string& text);

}  // namespace aiov
