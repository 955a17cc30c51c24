// Sequences and optionals (ONNX's sequence and optional types): values known only by running,
// so every op here computes through `eval` in node-by-node runs (plan/composite.hpp). Tensors
// put into a sequence are shared, not copied; an op that changes a sequence makes a new one.
#include <algorithm>
#include <cstring>

#include "plan/composite.hpp"
#include "plan/registry.hpp"
#include "plan/subgraph.hpp"

namespace aiov {

namespace {

void expect_kind(const Node& n, const PortInfo& p, size_t i, ValueKind kind) {
  if (p.kind != kind)
    throw InputError(n.describe() + ": input " + std::to_string(i) + " must be " + kind_name(kind) + ", got " +
                     kind_name(p.kind));
}

void expect_same_type(const Node& n, ElementType want, ElementType got, const char* what) {
  if (want != got && want != ElementType::dynamic && got != ElementType::dynamic)
    throw InputError(n.describe() + ": " + what + " must be " + type_name(want) +
                     " like the sequence's elements, got " + type_name(got));
}

// A position operand: one i32 or i64 value (a scalar, or a one-element tensor as ONNX's own
// cases give it).
void expect_index(const Node& n, const PortInfo& p, size_t i, const char* what) {
  expect_kind(n, p, i, ValueKind::tensor);
  if (p.type != ElementType::i32 && p.type != ElementType::i64 && p.type != ElementType::dynamic)
    throw InputError(n.describe() + ": " + what + " must be i32 or i64, got " + type_name(p.type));
  const bool one = !p.shape.rank_known || p.shape.rank() == 0 ||
                   (p.shape.rank() == 1 && (p.shape.dims[0] == 1 || p.shape.dims[0] == kDynamic));
  if (!one) throw InputError(n.describe() + ": " + what + " must hold one value, got shape " + p.shape.str());
}

PortInfo sequence_of(ElementType type, PartialShape shape) {
  return PortInfo{type, std::move(shape), ValueKind::sequence};
}

std::shared_ptr<Composite> new_sequence(ElementType type) {
  auto c = std::make_shared<Composite>();
  c->kind = ValueKind::sequence;
  c->type = type;
  return c;
}

const Composite& sequence_input(const EvalContext& c, size_t i) {
  return expect_composite(c.in.at(i), ValueKind::sequence, c.node, "input 0");
}

// A position in a sequence of `size` tensors: negative counts from the end; valid in [-size,
// size) (or [-size, size] when `end_ok`, inserting at the end).
size_t position(const Node& n, const TensorView& t, size_t size, bool end_ok) {
  if (t.count() != 1) throw InputError(n.describe() + ": position must hold one value, got shape " + dims_str(t.shape));
  const int64_t p = read_int_tensor(n, t, "position").at(0);
  const int64_t len = (int64_t)size, hi = end_ok ? len : len - 1;
  if (p < -len || p > hi)
    throw InputError(n.describe() + ": position " + std::to_string(p) + " is out of range for a sequence of " +
                     std::to_string(len) + " tensors (expected " + std::to_string(-len) + " to " + std::to_string(hi) +
                     ")");
  return (size_t)(p < 0 ? p + len : p);
}

HeldTensor scalar_i64(int64_t v) {
  HeldTensor h;
  h.view.type = ElementType::i64;
  h.keep = std::make_shared<Buffer>(sizeof(int64_t));
  h.view.data = h.keep->data();
  *h.view.as<int64_t>() = v;
  return h;
}

HeldTensor scalar_bool(bool v) {
  HeldTensor h;
  h.view.type = ElementType::boolean;
  h.keep = std::make_shared<Buffer>(1);
  h.view.data = h.keep->data();
  *h.view.as<uint8_t>() = v ? 1 : 0;
  return h;
}

HeldTensor new_tensor(ElementType type, const Dims& shape, const Node& n) {
  try {
    numel(shape);  // checks the size; the node's name is built only on failure
  } catch (const InputError&) {
    check_tensor_size(shape, n.describe() + " output");
  }
  HeldTensor h;
  h.view.type = type;
  h.view.shape = shape;
  h.keep = std::make_shared<Buffer>(h.view.bytes());
  h.view.data = h.keep->data();
  return h;
}

// ---- SequenceEmpty, SequenceConstruct, SequenceLength -------------------------------------------

std::vector<PortInfo> infer_sequence_empty(const InferContext& c) {
  return {sequence_of(type_from_name(c.node.attr_str("element_type")), PartialShape::dynamic_rank())};
}

std::vector<HeldTensor> eval_sequence_empty(const EvalContext& c) {
  return {hold_composite(new_sequence(type_from_name(c.node.attr_str("element_type"))))};
}

std::vector<PortInfo> infer_sequence_construct(const InferContext& c) {
  PartialShape shape = c.in.at(0).shape;
  for (size_t i = 0; i < c.in.size(); ++i) {
    expect_kind(c.node, c.in[i], i, ValueKind::tensor);
    expect_same_type(c.node, c.in[0].type, c.in[i].type, "every input");
    shape = merge_shapes(shape, c.in[i].shape);
  }
  return {sequence_of(c.in[0].type, shape)};
}

std::vector<HeldTensor> eval_sequence_construct(const EvalContext& c) {
  auto seq = new_sequence(c.in.at(0).type);
  for (size_t i = 0; i < c.in.size(); ++i) seq->items.push_back(hold_input(c, i));
  return {hold_composite(seq)};
}

std::vector<PortInfo> infer_sequence_length(const InferContext& c) {
  expect_kind(c.node, c.in.at(0), 0, ValueKind::sequence);
  return {PortInfo{ElementType::i64, PartialShape(Dims{})}};
}

std::vector<HeldTensor> eval_sequence_length(const EvalContext& c) {
  return {scalar_i64((int64_t)sequence_input(c, 0).items.size())};
}

// ---- SequenceAt, SequenceInsert, SequenceErase ----------------------------------------------

std::vector<PortInfo> infer_sequence_at(const InferContext& c) {
  expect_kind(c.node, c.in.at(0), 0, ValueKind::sequence);
  expect_index(c.node, c.in.at(1), 1, "position");
  return {PortInfo{c.in[0].type, c.in[0].shape}};
}

std::vector<HeldTensor> eval_sequence_at(const EvalContext& c) {
  const Composite& seq = sequence_input(c, 0);
  return {seq.items[position(c.node, c.in[1], seq.items.size(), false)]};
}

std::vector<PortInfo> infer_sequence_insert(const InferContext& c) {
  expect_kind(c.node, c.in.at(0), 0, ValueKind::sequence);
  expect_kind(c.node, c.in.at(1), 1, ValueKind::tensor);
  expect_same_type(c.node, c.in[0].type, c.in[1].type, "the tensor inserted");
  if (c.in.size() > 2) expect_index(c.node, c.in[2], 2, "position");
  const ElementType type = c.in[0].type == ElementType::dynamic ? c.in[1].type : c.in[0].type;
  return {sequence_of(type, merge_shapes(c.in[0].shape, c.in[1].shape))};
}

std::vector<HeldTensor> eval_sequence_insert(const EvalContext& c) {
  const Composite& seq = sequence_input(c, 0);
  expect_tensor(c.in.at(1), c.node, "input 1");
  if (!seq.items.empty() && seq.items[0].view.type != c.in[1].type)
    expect_same_type(c.node, seq.items[0].view.type, c.in[1].type, "the tensor inserted");
  const size_t at = c.in.size() > 2 ? position(c.node, c.in[2], seq.items.size(), true) : seq.items.size();
  auto out = std::make_shared<Composite>(seq);
  out->type = c.in[1].type;
  out->items.insert(out->items.begin() + (std::ptrdiff_t)at, hold_input(c, 1));
  return {hold_composite(out)};
}

std::vector<PortInfo> infer_sequence_erase(const InferContext& c) {
  expect_kind(c.node, c.in.at(0), 0, ValueKind::sequence);
  if (c.in.size() > 1) expect_index(c.node, c.in[1], 1, "position");
  return {c.in[0]};
}

std::vector<HeldTensor> eval_sequence_erase(const EvalContext& c) {
  const Composite& seq = sequence_input(c, 0);
  if (seq.items.empty()) throw InputError(c.node.describe() + ": cannot erase from an empty sequence");
  const size_t at = c.in.size() > 1 ? position(c.node, c.in[1], seq.items.size(), false) : seq.items.size() - 1;
  auto out = std::make_shared<Composite>(seq);
  out->items.erase(out->items.begin() + (std::ptrdiff_t)at);
  return {hold_composite(out)};
}

// ---- SplitToSequence, ConcatFromSequence ----------------------------------------------------

std::vector<PortInfo> infer_split_to_sequence(const InferContext& c) {
  const Node& n = c.node;
  expect_kind(n, c.in.at(0), 0, ValueKind::tensor);
  if (c.in.size() > 1) expect_kind(n, c.in[1], 1, ValueKind::tensor);
  PartialShape shape = c.in[0].shape;
  if (shape.rank_known) {
    if (shape.rank() == 0) throw InputError(n.describe() + ": cannot split a scalar");
    const int64_t axis = normalize_axis(n, n.attr_int("axis"), shape.rank());
    if (c.in.size() < 2 && n.attr_int("keepdims") == 0)
      shape.dims.erase(shape.dims.begin() + axis);
    else
      shape.dims[axis] = c.in.size() < 2 ? 1 : kDynamic;
  }
  return {sequence_of(c.in[0].type, shape)};
}

std::vector<HeldTensor> eval_split_to_sequence(const EvalContext& c) {
  const Node& n = c.node;
  const TensorView& x = c.in.at(0);
  expect_tensor(x, n, "input 0");
  if (x.shape.empty()) throw InputError(n.describe() + ": cannot split a scalar");
  const int64_t axis = normalize_axis(n, n.attr_int("axis"), (int64_t)x.shape.size());
  const AroundAxis around = around_axis(x.shape, axis);
  std::vector<int64_t> sizes;
  bool keep_axis = true;
  if (c.in.size() < 2) {
    sizes.assign((size_t)around.len, 1);
    keep_axis = n.attr_int("keepdims") != 0;
  } else {
    expect_tensor(c.in[1], n, "split");
    const std::vector<int64_t> split = read_int_tensor(n, c.in[1], "split");
    if (c.in[1].shape.empty()) {
      const int64_t step = split.at(0);
      if (step <= 0) throw InputError(n.describe() + ": split must be positive, got " + std::to_string(step));
      for (int64_t at = 0; at < around.len; at += step) sizes.push_back(std::min(step, around.len - at));
    } else {
      int64_t total = 0;
      for (int64_t s : split) {
        if (s < 0) throw InputError(n.describe() + ": split sizes must be >= 0, got " + std::to_string(s));
        total = checked_add(total, s, n.describe() + " split");
      }
      if (total != around.len)
        throw InputError(n.describe() + ": split sizes add up to " + std::to_string(total) + ", the axis has " +
                         std::to_string(around.len));
      sizes = split;
    }
  }
  auto seq = new_sequence(x.type);
  const size_t inner = byte_size(x.type, around.inner);
  int64_t at = 0;
  for (int64_t len : sizes) {
    Dims shape = x.shape;
    shape[axis] = len;
    if (!keep_axis) shape.erase(shape.begin() + axis);
    HeldTensor piece = new_tensor(x.type, shape, n);
    const char* src = static_cast<const char*>(x.data);
    char* dst = static_cast<char*>(piece.view.data);
    for (int64_t o = 0; o < around.outer; ++o)
      if (len) std::memcpy(dst + o * len * inner, src + (o * around.len + at) * inner, len * inner);
    seq->items.push_back(std::move(piece));
    at += len;
  }
  return {hold_composite(seq)};
}

std::vector<PortInfo> infer_concat_from_sequence(const InferContext& c) {
  const Node& n = c.node;
  expect_kind(n, c.in.at(0), 0, ValueKind::sequence);
  PartialShape shape = c.in[0].shape;
  if (shape.rank_known) {
    const bool stack = n.attr_int("new_axis") != 0;
    const int64_t axis = normalize_axis(n, n.attr_int("axis"), shape.rank() + (stack ? 1 : 0));
    if (stack)
      shape.dims.insert(shape.dims.begin() + axis, kDynamic);
    else
      shape.dims[axis] = kDynamic;
  }
  return {PortInfo{c.in[0].type, shape}};
}

std::vector<HeldTensor> eval_concat_from_sequence(const EvalContext& c) {
  const Node& n = c.node;
  const Composite& seq = sequence_input(c, 0);
  if (seq.items.empty()) throw InputError(n.describe() + ": cannot concatenate an empty sequence");
  const bool stack = n.attr_int("new_axis") != 0;
  const Dims& first = seq.items[0].view.shape;
  const int64_t axis = normalize_axis(n, n.attr_int("axis"), (int64_t)first.size() + (stack ? 1 : 0));
  Dims shape = first;
  if (stack) shape.insert(shape.begin() + axis, 0);
  for (size_t i = 0; i < seq.items.size(); ++i) {
    Dims piece = seq.items[i].view.shape;
    if (stack) piece.insert(piece.begin() + axis, 1);
    Dims other = piece, want = shape;
    other[axis] = want[axis] = 0;
    if (other != want)
      throw InputError(n.describe() + ": tensor " + std::to_string(i) + " has shape " +
                       dims_str(seq.items[i].view.shape) + ", which does not join tensor 0's " + dims_str(first) +
                       " along axis " + std::to_string(axis));
    if (__builtin_add_overflow(i == 0 ? 0 : shape[axis], piece[axis], &shape[axis]))
      throw InputError(n.describe() + ": the joined tensors are too long along axis " + std::to_string(axis));
  }
  HeldTensor out = new_tensor(seq.type, shape, n);
  const AroundAxis whole = around_axis(shape, axis);
  const size_t inner = byte_size(seq.type, whole.inner);
  char* dst = static_cast<char*>(out.view.data);
  int64_t at = 0;
  for (const HeldTensor& item : seq.items) {
    const int64_t len = stack ? 1 : item.view.shape[axis];
    const char* src = static_cast<const char*>(item.view.data);
    for (int64_t o = 0; o < whole.outer; ++o)
      if (len) std::memcpy(dst + (o * whole.len + at) * inner, src + o * len * inner, len * inner);
    at += len;
  }
  return {out};
}

// ---- SequenceMap --------------------------------------------------------------------------
// Inputs: the sequence, additional inputs (sequences of the same length are walked along with
// it, tensors are passed whole), then `captured` values the body reads from outside.

const Body& map_body(const Node& n) {
  auto it = n.bodies.find("body");
  if (it == n.bodies.end() || !it->second) throw InputError(n.describe() + ": the subgraph 'body' is missing");
  if (it->second->graph.parameters.size() != n.inputs.size())
    throw InputError(n.describe() + ": its body takes " + std::to_string(it->second->graph.parameters.size()) +
                     " inputs, the node passes " + std::to_string(n.inputs.size()));
  return *it->second;
}

size_t walked_inputs(const Node& n) {
  const int64_t captured = n.attr_int("captured");
  if (captured >= (int64_t)n.inputs.size())
    throw InputError(n.describe() + ": " + std::to_string(n.inputs.size()) + " inputs cannot hold a sequence and " +
                     std::to_string(captured) + " captured values");
  return n.inputs.size() - (size_t)captured;
}

std::vector<PortInfo> infer_sequence_map(const InferContext& c) {
  const Node& n = c.node;
  const Body& b = map_body(n);
  expect_kind(n, c.in.at(0), 0, ValueKind::sequence);
  for (size_t i = 0; i < c.in.size(); ++i) {
    const bool walked = i < walked_inputs(n) && c.in[i].kind == ValueKind::sequence;
    const PortInfo& param = b.graph.parameters[i]->outputs[0];
    const ValueKind want = walked ? ValueKind::tensor : c.in[i].kind;
    if (param.kind != want || (param.type != c.in[i].type && c.in[i].type != ElementType::dynamic))
      throw InputError(n.describe() + ": body input " + std::to_string(i) + " is " + kind_name(param.kind) + " of " +
                       type_name(param.type) + ", the node passes " + kind_name(want) + " of " +
                       type_name(c.in[i].type));
  }
  std::vector<PortInfo> outs;
  for (size_t o = 0; o < b.graph.outputs.size(); ++o) {
    const Value& v = b.graph.outputs[o];
    const PortInfo& piece = v.node->outputs[v.index];
    if (piece.kind != ValueKind::tensor)
      throw InputError(n.describe() + ": body output " + std::to_string(o) + " must be a tensor, got " +
                       kind_name(piece.kind));
    outs.push_back(sequence_of(piece.type, piece.shape));
  }
  return outs;
}

std::vector<HeldTensor> eval_sequence_map(const EvalContext& c) {
  const Node& n = c.node;
  const Body& b = map_body(n);
  const CompiledModel& body = compiled_body(b);
  const size_t walked = walked_inputs(n);
  const size_t length = sequence_input(c, 0).items.size();
  for (size_t i = 1; i < walked; ++i)
    if (c.in[i].composite && c.in[i].composite->kind == ValueKind::sequence &&
        c.in[i].composite->items.size() != length)
      throw InputError(n.describe() + ": input " + std::to_string(i) + " holds " +
                       std::to_string(c.in[i].composite->items.size()) + " tensors, input 0 holds " +
                       std::to_string(length));
  std::vector<std::shared_ptr<Composite>> outs;
  for (size_t o = 0; o < b.graph.outputs.size(); ++o) {
    const Value& v = b.graph.outputs[o];
    outs.push_back(new_sequence(v.node->outputs[v.index].type));
  }
  std::vector<TensorView> in = c.in;
  for (size_t t = 0; t < length; ++t) {
    if (c.exec.abort && c.exec.abort->load(std::memory_order_relaxed)) throw Cancelled("inference was cancelled");
    for (size_t i = 0; i < walked; ++i)
      if (c.in[i].composite && c.in[i].composite->kind == ValueKind::sequence) in[i] = c.in[i].composite->items[t].view;
    std::vector<HeldTensor> pieces = run_compiled(body, in, c.exec);
    for (size_t o = 0; o < outs.size(); ++o) outs[o]->items.push_back(std::move(pieces[o]));
  }
  std::vector<HeldTensor> result;
  for (auto& o : outs) result.push_back(hold_composite(o));
  return result;
}

// ---- Optional, OptionalHasElement, OptionalGetElement, Identity -------------------------------

ValueKind optional_of(ValueKind k) {
  return k == ValueKind::sequence ? ValueKind::optional_sequence : ValueKind::optional_tensor;
}

bool is_optional(ValueKind k) { return k == ValueKind::optional_tensor || k == ValueKind::optional_sequence; }

std::vector<PortInfo> infer_optional(const InferContext& c) {
  const Node& n = c.node;
  if (c.in.empty()) {
    const bool of_sequence = n.attr_str("of") == "sequence";
    return {PortInfo{type_from_name(n.attr_str("element_type")), PartialShape::dynamic_rank(),
                     of_sequence ? ValueKind::optional_sequence : ValueKind::optional_tensor}};
  }
  if (is_optional(c.in[0].kind))
    throw InputError(n.describe() + ": input 0 must be a tensor or a sequence, got " + kind_name(c.in[0].kind));
  return {PortInfo{c.in[0].type, c.in[0].shape, optional_of(c.in[0].kind)}};
}

std::vector<HeldTensor> eval_optional(const EvalContext& c) {
  auto opt = std::make_shared<Composite>();
  if (c.in.empty()) {
    opt->kind = c.node.attr_str("of") == "sequence" ? ValueKind::optional_sequence : ValueKind::optional_tensor;
    opt->type = type_from_name(c.node.attr_str("element_type"));
  } else {
    opt->kind = optional_of(kind_of(c.in[0]));
    opt->type = c.in[0].type;
    opt->items.push_back(hold_input(c, 0));
  }
  return {hold_composite(opt)};
}

std::vector<PortInfo> infer_optional_has_element(const InferContext&) {
  return {PortInfo{ElementType::boolean, PartialShape(Dims{})}};
}

// Opset 18: a tensor or sequence given where an optional is expected counts as one holding it;
// no input at all, as an empty one.
std::vector<HeldTensor> eval_optional_has_element(const EvalContext& c) {
  if (c.in.empty()) return {scalar_bool(false)};
  const ValueKind k = kind_of(c.in[0]);
  return {scalar_bool(!is_optional(k) || !c.in[0].composite->items.empty())};
}

std::vector<PortInfo> infer_optional_get_element(const InferContext& c) {
  PortInfo p = c.in.at(0);
  if (p.kind == ValueKind::optional_tensor) p.kind = ValueKind::tensor;
  if (p.kind == ValueKind::optional_sequence) p.kind = ValueKind::sequence;
  return {p};
}

std::vector<HeldTensor> eval_optional_get_element(const EvalContext& c) {
  if (!is_optional(kind_of(c.in.at(0)))) return {hold_input(c, 0)};
  const Composite& opt = *c.in[0].composite;
  if (opt.items.empty()) throw InputError(c.node.describe() + ": the optional input is empty");
  return {opt.items[0]};
}

std::vector<PortInfo> infer_identity(const InferContext& c) { return {c.in.at(0)}; }

std::vector<HeldTensor> eval_identity(const EvalContext& c) { return {hold_input(c, 0)}; }

OpDef sequence_op(OpDef def, EvalFn eval) {
  def.eval = eval;
  def.composites = true;
  return def;
}

}  // namespace

void register_sequence_ops(OpRegistry& r) {
  r.add(sequence_op(OpDef{"SequenceEmpty", 0, 0, infer_sequence_empty, prepare_by_eval}, eval_sequence_empty)
            .with_attrs({type_attr("element_type", "f32").onnx_name("-")}));
  r.add(
      sequence_op(OpDef{"SequenceConstruct", 1, -1, infer_sequence_construct, prepare_by_eval}, eval_sequence_construct)
          .onnx_op("SequenceConstruct", 11));
  r.add(sequence_op(OpDef{"SequenceLength", 1, 1, infer_sequence_length, prepare_by_eval}, eval_sequence_length)
            .onnx_op("SequenceLength", 11));
  r.add(sequence_op(OpDef{"SequenceAt", 2, 2, infer_sequence_at, prepare_by_eval}, eval_sequence_at)
            .onnx_op("SequenceAt", 11));
  r.add(sequence_op(OpDef{"SequenceInsert", 2, 3, infer_sequence_insert, prepare_by_eval}, eval_sequence_insert)
            .onnx_op("SequenceInsert", 11));
  r.add(sequence_op(OpDef{"SequenceErase", 1, 2, infer_sequence_erase, prepare_by_eval}, eval_sequence_erase)
            .onnx_op("SequenceErase", 11));
  r.add(sequence_op(OpDef{"SplitToSequence", 1, 2, infer_split_to_sequence, prepare_by_eval}, eval_split_to_sequence)
            .with_attrs({int_attr("axis", 0), bool_attr("keepdims", true)})
            .onnx_op("SplitToSequence", 11));
  r.add(sequence_op(OpDef{"ConcatFromSequence", 1, 1, infer_concat_from_sequence, prepare_by_eval},
                    eval_concat_from_sequence)
            .with_attrs({int_attr("axis", 0).must_be_given(), bool_attr("new_axis", false)})
            .onnx_op("ConcatFromSequence", 11));
  r.add(sequence_op(OpDef{"SequenceMap", 1, -1, infer_sequence_map, prepare_by_eval}, eval_sequence_map)
            .with_attrs({int_attr("captured", 0).at_least(0).ir_name("-").onnx_name("-")}));
  r.add(sequence_op(OpDef{"Optional", 0, 1, infer_optional, prepare_by_eval}, eval_optional)
            .with_attrs({type_attr("element_type", "f32").onnx_name("-"),
                         str_attr("of", "tensor", {"tensor", "sequence"}).onnx_name("-")}));
  r.add(sequence_op(OpDef{"OptionalHasElement", 0, 1, infer_optional_has_element, prepare_by_eval},
                    eval_optional_has_element)
            .onnx_op("OptionalHasElement", 15));
  r.add(sequence_op(OpDef{"OptionalGetElement", 1, 1, infer_optional_get_element, prepare_by_eval},
                    eval_optional_get_element)
            .onnx_op("OptionalGetElement", 15));
  OpDef identity = sequence_op(OpDef{"Identity", 1, 1, infer_identity, prepare_by_eval}, eval_identity);
  identity.aliases_input0 = true;
  r.add(identity);
}

}  // namespace aiov
