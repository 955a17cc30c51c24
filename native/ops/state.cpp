// Stateful ops: ReadValue reads a variable of the running request (its initial value when the
// variable has none), Assign writes one. Their kernels reach the request's VariableStore
// through ExecContext; neither is ever folded (OpDef::stateful).
#include "plan/state.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "plan/registry.hpp"

namespace aiov {

int VariableStore::index_of(const std::string& id) const {
  if (descs)
    for (size_t i = 0; i < descs->size(); ++i)
      if ((*descs)[i].id == id) return (int)i;
  throw InputError("the model has no variable '" + id + "'");
}

void VariableStore::commit() {
  for (VariableSlot& s : slots) {
    if (!s.written) continue;
    std::swap(s.data, s.next);  // the old value's buffer is reused by the next write
    std::swap(s.shape, s.next_shape);
    s.set = true;
    s.written = false;
  }
}

void VariableStore::discard() {
  for (VariableSlot& s : slots) s.written = false;
}

PartialShape parse_variable_shape(const Node& n, const std::string& text) {
  std::string t;
  for (char ch : text)
    if (ch != ' ' && ch != '[' && ch != ']' && ch != '{' && ch != '}') t += ch;
  if (t == "...") return PartialShape::dynamic_rank();
  auto bad = [&] {
    return InputError(n.describe() + ": variable_shape '" + text +
                      "' is not a shape (expected dims like '2,3', '?,4', '1..8' or '...')");
  };
  // A dimension's length; "" (an open interval end) is -1.
  auto length = [&](const std::string& d) -> int64_t {
    if (d.empty()) return -1;
    errno = 0;
    char* stop = nullptr;
    const long long v = std::strtoll(d.c_str(), &stop, 10);
    if (*stop != '\0' || v < 0 || errno == ERANGE) throw bad();
    return v;
  };
  Dims dims;
  if (t.empty()) return PartialShape(dims);  // a scalar
  size_t start = 0;
  while (start <= t.size()) {
    size_t end = t.find(',', start);
    if (end == std::string::npos) end = t.size();
    const std::string d = t.substr(start, end - start);
    const size_t range = d.find("..");
    if (d == "?" || d == "-1") {
      dims.push_back(-1);
    } else if (range != std::string::npos) {
      // An interval: static only when both ends agree.
      const int64_t lo = length(d.substr(0, range)), hi = length(d.substr(range + 2));
      dims.push_back(lo >= 0 && lo == hi ? lo : -1);
    } else {
      if (d.empty()) throw bad();
      dims.push_back(length(d));
    }
    start = end + 1;
  }
  return PartialShape(dims);
}

PartialShape read_value_plan_shape(const Node& n, const std::vector<TensorView>& in, const Dims* state) {
  if (state) return PartialShape(*state);
  if (!in.empty()) return PartialShape(in[0].shape);
  PartialShape declared = parse_variable_shape(n, n.attr_str("variable_shape"));
  if (!declared.is_static())
    throw InputError(n.describe() + ": variable '" + n.attr_str("variable_id") +
                     "' has no value and no initial value, and its shape " + declared.str() +
                     " is not static: set its state first");
  return declared;
}

namespace {

ElementType variable_type(const Node& n) {
  const std::string text = n.attr_str("variable_type");
  return text.empty() ? ElementType::dynamic : type_from_name(text);
}

bool shapes_agree(const PartialShape& a, const PartialShape& b) {
  if (!a.rank_known || !b.rank_known) return true;
  if (a.rank() != b.rank()) return false;
  for (int64_t i = 0; i < a.rank(); ++i)
    if (a.dims[i] >= 0 && b.dims[i] >= 0 && a.dims[i] != b.dims[i]) return false;
  return true;
}

// The output is the variable as declared (OpenVINO's rule); the initial value must fit it.
std::vector<PortInfo> infer_read_value(const InferContext& c) {
  const Node& n = c.node;
  if (n.attr_str("variable_id").empty()) throw InputError(n.describe() + ": variable_id is empty");
  ElementType type = variable_type(n);
  PartialShape shape = parse_variable_shape(n, n.attr_str("variable_shape"));
  if (c.in.empty()) return {PortInfo{type, shape}};
  const PortInfo& init = c.in[0];
  if (type != ElementType::dynamic && init.type != ElementType::dynamic && init.type != type)
    throw InputError(n.describe() + ": the initial value is " + type_name(init.type) + " but variable '" +
                     n.attr_str("variable_id") + "' holds " + type_name(type));
  if (!shapes_agree(shape, init.shape))
    throw InputError(n.describe() + ": the initial value's shape " + init.shape.str() + " does not fit variable '" +
                     n.attr_str("variable_id") + "' of shape " + shape.str());
  if (type == ElementType::dynamic) type = init.type;
  if (!shape.rank_known) shape = init.shape;
  return {PortInfo{type, shape}};
}

VariableStore& store_of(const KernelArgs& a, const std::string& op) {
  if (!a.ctx || !a.ctx->variables) throw std::runtime_error(op + " can only run inside an inference request");
  return *a.ctx->variables;
}

KernelFn prepare_read_value(const PrepareContext& p) {
  const std::string id = p.node.attr_str("variable_id");
  const bool has_init = !p.in.empty();
  return [id, has_init](const KernelArgs& a) {
    VariableStore& store = store_of(a, "ReadValue");
    const VariableSlot& slot = store.slots.at(store.index_of(id));
    const TensorView& out = *a.out[0];
    const size_t bytes = out.bytes();
    if (slot.set) {
      // The plan was made for this state's shape (it is part of the plan key).
      if (slot.shape != out.shape) throw std::runtime_error("variable '" + id + "' changed shape during planning");
      if (bytes) std::memcpy(out.data, slot.data->data(), bytes);
    } else if (has_init) {
      if (bytes) std::memcpy(out.data, a.in[0]->data, bytes);
    } else if (bytes) {
      std::memset(out.data, 0, bytes);
    }
  };
}

std::vector<PortInfo> infer_assign(const InferContext& c) {
  if (c.in.empty()) return {};
  return {c.in[0]};
}

KernelFn prepare_assign(const PrepareContext& p) {
  if (p.in.empty()) throw InputError(p.node.describe() + " has no value to assign");
  const std::string id = p.node.attr_str("variable_id");
  return [id](const KernelArgs& a) {
    VariableStore& store = store_of(a, "Assign");
    VariableSlot& slot = store.slots.at(store.index_of(id));
    const TensorView& in = *a.in[0];
    const size_t bytes = in.bytes();
    if (!slot.next || slot.next->size() < bytes) slot.next = std::make_shared<Buffer>(bytes);
    if (bytes) std::memcpy(slot.next->data(), in.data, bytes);
    slot.next_shape = in.shape;
    slot.written = true;
  };
}

}  // namespace

std::vector<VariableDesc> collect_variables(const std::vector<NodePtr>& order) {
  std::vector<VariableDesc> vars;
  auto find = [&](const std::string& id) -> VariableDesc* {
    for (auto& v : vars)
      if (v.id == id) return &v;
    return nullptr;
  };
  for (const NodePtr& np : order) {
    const Node& n = *np;
    if (n.op != "ReadValue") continue;
    const std::string id = n.attr_str("variable_id");
    ElementType type = variable_type(n);
    if (type == ElementType::dynamic) type = n.outputs[0].type;
    PartialShape shape = parse_variable_shape(n, n.attr_str("variable_shape"));
    if (VariableDesc* v = find(id)) {
      if (v->type != type)
        throw InputError(n.describe() + " reads variable '" + id + "' as " + type_name(type) + ", another node as " +
                         type_name(v->type));
      continue;
    }
    vars.push_back(VariableDesc{id, type, shape});
  }
  for (const NodePtr& np : order) {
    const Node& n = *np;
    if (n.op != "Assign") continue;
    const std::string id = n.attr_str("variable_id");
    if (id.empty()) throw InputError(n.describe() + " names no variable (variable_id is empty)");
    if (n.inputs.empty()) throw InputError(n.describe() + " has no value to assign");
    const PortInfo& in = n.inputs[0].node->outputs[n.inputs[0].index];
    VariableDesc* v = find(id);
    if (!v) {
      vars.push_back(VariableDesc{id, in.type, in.shape});
      continue;
    }
    if (v->type != in.type)
      throw InputError(n.describe() + " writes " + type_name(in.type) + " to variable '" + id + "', which holds " +
                       type_name(v->type));
  }
  return vars;
}

void register_state_ops(OpRegistry& r) {
  r.add(OpDef{"ReadValue", 0, 1, infer_read_value, prepare_read_value}
            .with_attrs(
                {str_attr("variable_id", ""), str_attr("variable_type", "dynamic"), str_attr("variable_shape", "...")})
            .keeps_state()
            .ir({"ReadValue"}, "opset6"));
  OpDef assign{"Assign", 0, 1, infer_assign, prepare_assign};
  assign.aliases_input0 = true;  // its output is the value it stores
  r.add(assign.with_attrs({str_attr("variable_id", "")}).keeps_state().ir({"Assign"}, "opset6"));
}

}  // namespace aiov
