// Control flow: If, Loop and Scan run subgraphs (Node::bodies), each compiled once into a
// model of its own (plan/subgraph.hpp). Values a body reads from the enclosing scope are
// trailing inputs of the node (attribute `captured` counts them for Loop and Scan).
//
// Output shapes: `infer` gives static shapes when planning the body for the concrete input
// shapes tells them (an If whose condition is known, or whose branches agree; a Loop whose
// carried values keep their shapes and that has no scan outputs; a Scan whose states keep
// theirs). Otherwise they are known only by running, and the enclosing plan runs node by
// node, calling `eval`.
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "plan/composite.hpp"
#include "plan/registry.hpp"
#include "plan/subgraph.hpp"

namespace aiov {

// What two shapes have in common: equal dimensions stay, others become dynamic.
PartialShape merge_shapes(const PartialShape& a, const PartialShape& b) {
  if (!a.rank_known || !b.rank_known || a.rank() != b.rank()) return PartialShape::dynamic_rank();
  Dims d(a.dims.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = a.dims[i] == b.dims[i] ? a.dims[i] : kDynamic;
  return PartialShape(d);
}

namespace {

const Body& body_of(const Node& n, const std::string& key) {
  auto it = n.bodies.find(key);
  if (it == n.bodies.end() || !it->second) throw InputError(n.describe() + ": the subgraph '" + key + "' is missing");
  return *it->second;
}

const PortInfo& body_output(const Body& b, size_t i) {
  const Value& v = b.graph.outputs[i];
  return v.node->outputs[v.index];
}

bool same_shape(const PartialShape& a, const PartialShape& b) {
  return a.rank_known == b.rank_known && a.dims == b.dims;
}

// A one-element tensor read as a truth value (any element type: non-zero is true).
bool truth(const Node& n, const TensorView& t, const char* what) {
  if (t.count() != 1)
    throw InputError(n.describe() + ": " + what + " must hold one value, got shape " + dims_str(t.shape));
  const size_t bytes = element_bytes(n, t.type);
  const auto* p = static_cast<const unsigned char*>(t.data);
  for (size_t i = 0; i < bytes; ++i)
    if (p[i]) return true;
  return false;
}

int64_t read_count(const Node& n, const TensorView& t, const char* what) {
  if (t.count() != 1)
    throw InputError(n.describe() + ": " + what + " must hold one value, got shape " + dims_str(t.shape));
  return read_int_tensor(n, t, what).at(0);
}

void check_cancelled(const ExecContext& exec) {
  if (exec.abort && exec.abort->load(std::memory_order_relaxed)) throw Cancelled("inference was cancelled");
}

// Bytes a run may collect into scan outputs: the machine's memory (beyond it, fail clearly
// instead of being killed).
size_t memory_bytes() {
  static const size_t bytes = [] {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : size_t(1) << 40;
  }();
  return bytes;
}

// Scan outputs are collected per iteration; their total must fit in memory.
struct ScanCollector {
  const Node& n;
  std::vector<std::vector<HeldTensor>> pieces;
  size_t bytes = 0;
  ScanCollector(const Node& node, size_t count) : n(node), pieces(count) {}
  void add(size_t k, HeldTensor t, int64_t iteration) {
    bytes += t.view.bytes();
    if (bytes > memory_bytes())
      throw InputError(n.describe() + ": its scan outputs need more than this machine's " +
                       std::to_string(memory_bytes()) + " bytes of memory after " + std::to_string(iteration + 1) +
                       " iterations");
    pieces[k].push_back(std::move(t));
  }
};

// The pieces (one type and shape) stacked along `axis` of a result one rank higher; piece t
// lands at position t, or count-1-t when `reverse`. `empty_piece` shapes a result of no
// pieces (unknown dimensions become 0).
HeldTensor stack(const Node& n, const std::vector<HeldTensor>& pieces, int64_t axis, bool reverse,
                 const PortInfo& empty_piece, size_t output) {
  const int64_t count = (int64_t)pieces.size();
  ElementType type = empty_piece.type;
  Dims piece;
  if (pieces.empty()) {
    piece = empty_piece.shape.rank_known ? empty_piece.shape.dims : Dims{};
    for (auto& d : piece) d = std::max<int64_t>(d, 0);
  } else {
    type = pieces[0].view.type;
    piece = pieces[0].view.shape;
    for (int64_t t = 1; t < count; ++t)
      if (pieces[t].view.shape != piece || pieces[t].view.type != type)
        throw InputError(n.describe() + ": scan output " + std::to_string(output) + " has shape " + dims_str(piece) +
                         " at iteration 0 and " + dims_str(pieces[t].view.shape) + " at iteration " +
                         std::to_string(t) + "; every iteration must give the same shape");
  }
  const int64_t rank = (int64_t)piece.size() + 1;
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank)
    throw InputError(n.describe() + ": scan output axis is out of range for rank " + std::to_string(rank));
  Dims shape = piece;
  shape.insert(shape.begin() + axis, count);
  check_tensor_size(shape, n.describe() + " scan output " + std::to_string(output));
  HeldTensor out;
  out.view.type = type;
  out.view.shape = shape;
  out.keep = std::make_shared<Buffer>(out.view.bytes());
  out.view.data = out.keep->data();
  const int64_t outer = numel(Dims(piece.begin(), piece.begin() + axis));
  const size_t inner = byte_size(type, numel(Dims(piece.begin() + axis, piece.end())));
  char* dst = static_cast<char*>(out.view.data);
  for (int64_t t = 0; t < count; ++t) {
    const int64_t pos = reverse ? count - 1 - t : t;
    const char* src = static_cast<const char*>(pieces[t].view.data);
    for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + (o * count + pos) * inner, src + o * inner, inner);
  }
  return out;
}

// Position `pos` along `axis` of `t`, with that axis removed, copied into `into`.
void take_slice(const Node& n, const TensorView& t, int64_t axis, int64_t pos, HeldTensor& into) {
  Dims shape = t.shape;
  const int64_t len = shape[axis];
  shape.erase(shape.begin() + axis);
  const size_t inner = byte_size(t.type, numel(Dims(shape.begin() + axis, shape.end())));
  const int64_t outer = numel(Dims(shape.begin(), shape.begin() + axis));
  into.view.type = t.type;
  into.view.shape = shape;
  const size_t bytes = into.view.bytes();
  if (!into.keep || into.keep->size() < bytes) into.keep = std::make_shared<Buffer>(bytes);
  into.view.data = into.keep->data();
  (void)n;
  const char* src = static_cast<const char*>(t.data);
  char* dst = static_cast<char*>(into.view.data);
  for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + o * inner, src + (o * len + pos) * inner, inner);
}

void check_body_inputs(const Node& n, const char* key, const Body& b, size_t expected) {
  if (b.graph.parameters.size() != expected)
    throw InputError(n.describe() + ": its subgraph '" + key + "' takes " + std::to_string(b.graph.parameters.size()) +
                     " inputs, the node passes " + std::to_string(expected));
}

// Planned output shapes of `b` for inputs `in` (values where known), or false.
bool plan_body(const Body& b, const std::vector<PortInfo>& in, const std::vector<const TensorView*>& values,
               std::vector<PortInfo>& out) {
  for (const auto& p : in)
    if (!p.shape.is_static()) return false;
  return planned_output_shapes(compiled_body(b), in, values, out);
}

ValueKind optional_of(ValueKind k) {
  return k == ValueKind::sequence ? ValueKind::optional_sequence
         : k == ValueKind::tensor ? ValueKind::optional_tensor
                                  : k;
}

// `value` as the body's parameter of kind `want` takes it: a tensor or sequence given where
// the body reads an optional is an optional holding it.
HeldTensor as_kind(HeldTensor value, ValueKind want) {
  if (kind_of(value.view) == want || optional_of(kind_of(value.view)) != want) return value;
  auto opt = std::make_shared<Composite>();
  opt->kind = want;
  opt->type = value.view.type;
  opt->items.push_back(kept(std::move(value)));
  return hold_composite(opt);
}

// ---- If -----------------------------------------------------------------------------------
// Inputs: cond, then the captured values both branches take as their parameters.

std::vector<PortInfo> infer_if(const InferContext& c) {
  const Node& n = c.node;
  const Body& then_b = body_of(n, "then_branch");
  const Body& else_b = body_of(n, "else_branch");
  check_body_inputs(n, "then_branch", then_b, n.inputs.size() - 1);
  check_body_inputs(n, "else_branch", else_b, n.inputs.size() - 1);
  const size_t outs = then_b.graph.outputs.size();
  if (else_b.graph.outputs.size() != outs)
    throw InputError(n.describe() + ": then_branch gives " + std::to_string(outs) + " outputs, else_branch " +
                     std::to_string(else_b.graph.outputs.size()));
  std::vector<PortInfo> merged;
  for (size_t i = 0; i < outs; ++i) {
    const PortInfo &a = body_output(then_b, i), &b = body_output(else_b, i);
    if (a.type != b.type || a.kind != b.kind)
      throw InputError(n.describe() + ": output " + std::to_string(i) + " is " + kind_name(a.kind) + " of " +
                       type_name(a.type) + " in then_branch and " + kind_name(b.kind) + " of " + type_name(b.type) +
                       " in else_branch");
    merged.push_back(PortInfo{a.type, merge_shapes(a.shape, b.shape), a.kind});
  }
  const std::vector<PortInfo> captured(c.in.begin() + 1, c.in.end());
  const std::vector<const TensorView*> values(c.in_value.begin() + 1, c.in_value.end());
  std::vector<PortInfo> planned, other;
  if (c.in_value[0]) {
    const Body& taken = truth(n, *c.in_value[0], "the condition") ? then_b : else_b;
    if (plan_body(taken, captured, values, planned)) return planned;
    std::vector<PortInfo> declared;
    for (size_t i = 0; i < outs; ++i) declared.push_back(body_output(taken, i));
    return declared;
  }
  if (plan_body(then_b, captured, values, planned) && plan_body(else_b, captured, values, other)) {
    bool same = true;
    for (size_t i = 0; i < outs; ++i) same = same && same_shape(planned[i].shape, other[i].shape);
    if (same) return planned;
  }
  return merged;
}

std::vector<HeldTensor> eval_if(const EvalContext& c) {
  const bool cond = truth(c.node, c.in[0], "the condition");
  const Body& taken = body_of(c.node, cond ? "then_branch" : "else_branch");
  const std::vector<TensorView> captured(c.in.begin() + 1, c.in.end());
  return run_compiled(compiled_body(taken), captured, c.exec);
}

// ---- Loop ---------------------------------------------------------------------------------
// Inputs: M (trip count), cond, N carried values, captured values. The body takes
// (iteration, cond, carried..., captured...) and gives (cond, carried..., scan outputs...).
// With stop_on_cond false (ONNX: no cond input), the body's cond is ignored.

struct LoopLayout {
  size_t carried, captured, scans;
};

LoopLayout loop_layout(const Node& n, const Body& b) {
  const int64_t captured = n.attr_int("captured");
  const int64_t carried = (int64_t)n.inputs.size() - 2 - captured;
  if (carried < 0)
    throw InputError(n.describe() + ": " + std::to_string(n.inputs.size()) + " inputs cannot hold M, cond and " +
                     std::to_string(captured) + " captured values");
  check_body_inputs(n, "body", b, n.inputs.size());
  if (b.graph.outputs.size() < (size_t)carried + 1)
    throw InputError(n.describe() + ": its body gives " + std::to_string(b.graph.outputs.size()) +
                     " outputs; it needs the condition and " + std::to_string(carried) + " carried values");
  return {(size_t)carried, (size_t)captured, b.graph.outputs.size() - 1 - (size_t)carried};
}

std::vector<PortInfo> infer_loop(const InferContext& c) {
  const Node& n = c.node;
  const Body& b = body_of(n, "body");
  const LoopLayout L = loop_layout(n, b);
  std::vector<PortInfo> outs;
  for (size_t i = 0; i < L.carried; ++i) {
    const PortInfo& init = c.in[2 + i];
    const PortInfo& next = body_output(b, 1 + i);
    if (init.type != next.type || (init.kind != next.kind && init.kind != optional_of(next.kind)))
      throw InputError(n.describe() + ": carried value " + std::to_string(i) + " starts as " + kind_name(init.kind) +
                       " of " + type_name(init.type) + " but the body gives " + kind_name(next.kind) + " of " +
                       type_name(next.type));
    // An optional that the body fills (ONNX's loop16_seq_none): the loop gives what the body does.
    outs.push_back(PortInfo{init.type, merge_shapes(init.shape, next.shape), next.kind});
  }
  for (size_t k = 0; k < L.scans; ++k) {
    const PortInfo& piece = body_output(b, 1 + L.carried + k);
    if (piece.kind != ValueKind::tensor)
      throw InputError(n.describe() + ": scan output " + std::to_string(k) + " must be a tensor, the body gives " +
                       kind_name(piece.kind));
    PartialShape shape = PartialShape::dynamic_rank();
    if (piece.shape.rank_known) {
      shape = piece.shape;
      shape.dims.insert(shape.dims.begin(), kDynamic);
    }
    outs.push_back(PortInfo{piece.type, shape});
  }
  // With no scan outputs, the shapes are static when one iteration keeps every carried shape
  // (and no carried value or counter shapes the body's plan by its value).
  if (L.scans == 0 && L.carried > 0) {
    const CompiledModel& body = compiled_body(b);
    bool value_free = true;
    for (size_t i = 0; i < 2 + L.carried; ++i) value_free = value_free && !body.value_keyed()[i];
    std::vector<PortInfo> in{PortInfo{ElementType::i64, PartialShape(Dims{})},
                             PortInfo{ElementType::boolean, PartialShape(Dims{})}};
    std::vector<const TensorView*> values(2 + L.carried, nullptr);
    for (size_t i = 2; i < c.in.size(); ++i) in.push_back(c.in[i]);
    for (size_t i = 2 + L.carried; i < c.in.size(); ++i) values.push_back(c.in_value[i]);
    std::vector<PortInfo> planned;
    if (value_free && plan_body(b, in, values, planned)) {
      bool kept = true;
      for (size_t i = 0; i < L.carried; ++i) kept = kept && same_shape(planned[1 + i].shape, c.in[2 + i].shape);
      if (kept)
        for (size_t i = 0; i < L.carried; ++i) outs[i].shape = c.in[2 + i].shape;
    }
  }
  return outs;
}

std::vector<HeldTensor> eval_loop(const EvalContext& c) {
  const Node& n = c.node;
  const Body& b = body_of(n, "body");
  const LoopLayout L = loop_layout(n, b);
  const CompiledModel& body = compiled_body(b);
  const int64_t trips = read_count(n, c.in[0], "the trip count M");
  bool cond = truth(n, c.in[1], "the condition");
  const bool stop_on_cond = n.attr_int("stop_on_cond") != 0;
  std::vector<HeldTensor> carried;
  for (size_t i = 0; i < L.carried; ++i) carried.push_back(HeldTensor{c.in[2 + i], nullptr});
  auto counter = std::make_shared<Buffer>(sizeof(int64_t));
  auto flag = std::make_shared<Buffer>(1);
  std::vector<TensorView> in(2 + L.carried + L.captured);
  in[0] = TensorView{counter->data(), ElementType::i64, {}};
  in[1] = TensorView{flag->data(), ElementType::boolean, {}};
  for (size_t j = 0; j < L.carried + L.captured; ++j) in[2 + j] = c.in[2 + j];
  ScanCollector scans(n, L.scans);
  int64_t i = 0;
  for (; i < trips && cond; ++i) {
    check_cancelled(c.exec);
    *static_cast<int64_t*>(counter->data()) = i;
    *static_cast<uint8_t*>(flag->data()) = 1;
    std::vector<HeldTensor> fed;  // carried values as the body's parameters take them
    for (size_t j = 0; j < L.carried; ++j) {
      fed.push_back(as_kind(carried[j], body.inputs()[2 + j].kind));
      in[2 + j] = fed.back().view;
    }
    std::vector<HeldTensor> outs = run_compiled(body, in, c.exec);
    if (stop_on_cond) cond = truth(n, outs[0].view, "the body's condition");
    for (size_t j = 0; j < L.carried; ++j) carried[j] = std::move(outs[1 + j]);
    for (size_t k = 0; k < L.scans; ++k) scans.add(k, std::move(outs[1 + L.carried + k]), i);
  }
  std::vector<HeldTensor> result = std::move(carried);
  std::vector<PortInfo> empty_pieces;
  if (i == 0 && L.scans > 0) {
    // No iteration ran: the pieces' shapes come from planning the body, where that tells.
    std::vector<PortInfo> ports;
    for (const auto& t : in) ports.push_back(PortInfo{t.type, PartialShape(t.shape), kind_of(t)});
    std::vector<const TensorView*> values;
    for (size_t j = 0; j < in.size(); ++j) values.push_back(j < 2 + L.carried ? nullptr : &in[j]);
    if (!plan_body(b, ports, values, empty_pieces)) empty_pieces.clear();
  }
  for (size_t k = 0; k < L.scans; ++k) {
    const size_t o = 1 + L.carried + k;
    const PortInfo empty = o < empty_pieces.size() ? empty_pieces[o] : body_output(b, o);
    result.push_back(stack(n, scans.pieces[k], 0, false, empty, k));
  }
  return result;
}

// ---- Scan (opset 9+) ----------------------------------------------------------------------
// Inputs: N states, num_scan_inputs scanned tensors, captured values. The body takes (states,
// one slice of each scanned tensor, captured) and gives (states, scan output pieces).

struct ScanLayout {
  size_t states, scanned, captured, outputs;
  std::vector<int64_t> in_axes, in_reverse, out_axes, out_reverse;
};

std::vector<int64_t> per_entry(const Node& n, const char* attr, size_t count) {
  std::vector<int64_t> v = n.attr_ints(attr);
  if (v.empty()) v.assign(count, 0);
  if (v.size() != count)
    throw InputError(n.describe() + ": attribute '" + attr + "' needs " + std::to_string(count) + " entries, got " +
                     std::to_string(v.size()));
  return v;
}

ScanLayout scan_layout(const Node& n, const Body& b) {
  ScanLayout L;
  L.scanned = (size_t)n.attr_int("num_scan_inputs");
  L.captured = (size_t)n.attr_int("captured");
  if (L.scanned + L.captured > n.inputs.size())
    throw InputError(n.describe() + ": " + std::to_string(n.inputs.size()) + " inputs cannot hold " +
                     std::to_string(L.scanned) + " scanned and " + std::to_string(L.captured) + " captured values");
  L.states = n.inputs.size() - L.scanned - L.captured;
  check_body_inputs(n, "body", b, n.inputs.size());
  if (b.graph.outputs.size() < L.states)
    throw InputError(n.describe() + ": its body gives " + std::to_string(b.graph.outputs.size()) +
                     " outputs, fewer than its " + std::to_string(L.states) + " states");
  L.outputs = b.graph.outputs.size() - L.states;
  L.in_axes = per_entry(n, "scan_input_axes", L.scanned);
  L.in_reverse = per_entry(n, "scan_input_directions", L.scanned);
  L.out_axes = per_entry(n, "scan_output_axes", L.outputs);
  L.out_reverse = per_entry(n, "scan_output_directions", L.outputs);
  return L;
}

// The outputs of one scan over inputs `in` (values where known).
std::vector<PortInfo> scan_ports(const Node& n, const Body& b, const ScanLayout& L, const std::vector<PortInfo>& in,
                                 const std::vector<const TensorView*>& in_value) {
  int64_t length = kDynamic;
  std::vector<PortInfo> body_in;
  for (size_t i = 0; i < L.states; ++i) body_in.push_back(in[i]);
  for (size_t j = 0; j < L.scanned; ++j) {
    const PortInfo& x = in[L.states + j];
    if (x.kind != ValueKind::tensor)
      throw InputError(n.describe() + ": scanned input " + std::to_string(j) + " must be a tensor, got " +
                       kind_name(x.kind));
    PortInfo slice{x.type, PartialShape::dynamic_rank()};
    if (x.shape.rank_known) {
      const int64_t axis = normalize_axis(n, L.in_axes[j], x.shape.rank());
      const int64_t len = x.shape.dims[axis];
      if (len >= 0 && length >= 0 && len != length)
        throw InputError(n.describe() + ": scanned inputs have lengths " + std::to_string(length) + " and " +
                         std::to_string(len));
      if (len >= 0) length = len;
      slice.shape = x.shape;
      slice.shape.dims.erase(slice.shape.dims.begin() + axis);
    }
    body_in.push_back(slice);
  }
  for (size_t j = 0; j < L.captured; ++j) body_in.push_back(in[L.states + L.scanned + j]);
  std::vector<PortInfo> pieces;
  for (size_t o = 0; o < b.graph.outputs.size(); ++o) pieces.push_back(body_output(b, o));
  std::vector<const TensorView*> values(L.states + L.scanned, nullptr);
  for (size_t j = 0; j < L.captured; ++j) values.push_back(in_value[L.states + L.scanned + j]);
  std::vector<PortInfo> planned;
  bool states_kept = false;
  const CompiledModel& body = compiled_body(b);
  bool value_free = true;
  for (size_t i = 0; i < L.states + L.scanned; ++i) value_free = value_free && !body.value_keyed()[i];
  if (value_free && plan_body(b, body_in, values, planned)) {
    states_kept = true;
    for (size_t i = 0; i < L.states; ++i) states_kept = states_kept && same_shape(planned[i].shape, in[i].shape);
    if (states_kept) pieces = planned;
  }
  std::vector<PortInfo> outs;
  for (size_t i = 0; i < L.states; ++i) {
    // A state may be a sequence or optional, as a Loop's carried value may.
    if (in[i].type != pieces[i].type || (in[i].kind != pieces[i].kind && in[i].kind != optional_of(pieces[i].kind)))
      throw InputError(n.describe() + ": state " + std::to_string(i) + " starts as " + kind_name(in[i].kind) + " of " +
                       type_name(in[i].type) + " but the body gives " + kind_name(pieces[i].kind) + " of " +
                       type_name(pieces[i].type));
    outs.push_back(
        PortInfo{in[i].type, states_kept ? in[i].shape : merge_shapes(in[i].shape, pieces[i].shape), pieces[i].kind});
  }
  for (size_t k = 0; k < L.outputs; ++k) {
    const PortInfo& piece = pieces[L.states + k];
    if (piece.kind != ValueKind::tensor)
      throw InputError(n.describe() + ": scan output " + std::to_string(k) + " must be a tensor, the body gives " +
                       kind_name(piece.kind));
    PartialShape shape = PartialShape::dynamic_rank();
    if (piece.shape.rank_known) {
      shape = piece.shape;
      const int64_t axis = normalize_axis(n, L.out_axes[k], piece.shape.rank() + 1);
      shape.dims.insert(shape.dims.begin() + axis, length);
    }
    outs.push_back(PortInfo{piece.type, shape});
  }
  return outs;
}

// Opset 8's Scan scans each entry of a batch (axis 0 of every state and scanned input).
bool batched(const Node& n) { return n.attr_int("batched") != 0; }

PortInfo without_batch(const PortInfo& p) {
  PortInfo q = p;
  if (q.shape.rank_known && !q.shape.dims.empty()) q.shape.dims.erase(q.shape.dims.begin());
  return q;
}

std::vector<PortInfo> infer_scan(const InferContext& c) {
  const Node& n = c.node;
  const Body& b = body_of(n, "body");
  const ScanLayout L = scan_layout(n, b);
  if (!batched(n)) return scan_ports(n, b, L, c.in, c.in_value);
  std::vector<PortInfo> in = c.in;
  std::vector<const TensorView*> values = c.in_value;
  int64_t batch = kDynamic;
  for (size_t i = 0; i < L.states + L.scanned; ++i) {
    if (c.in[i].kind != ValueKind::tensor)
      throw InputError(n.describe() + ": input " + std::to_string(i) + " must be a tensor (opset 8's Scan slices " +
                       "every state along its batch axis), got " + kind_name(c.in[i].kind));
    if (c.in[i].shape.rank_known && c.in[i].shape.rank() == 0)
      throw InputError(n.describe() + ": input " + std::to_string(i) + " needs a batch axis");
    if (c.in[i].shape.rank_known) batch = std::max(batch, c.in[i].shape.dims[0]);
    in[i] = without_batch(c.in[i]);
    values[i] = nullptr;
  }
  std::vector<PortInfo> outs = scan_ports(n, b, L, in, values);
  for (auto& o : outs)
    if (o.shape.rank_known) o.shape.dims.insert(o.shape.dims.begin(), batch);
  return outs;
}

std::vector<HeldTensor> run_scan(const Node& n, const Body& b, const ScanLayout& L,
                                 const std::vector<TensorView>& in_all, ExecContext& exec) {
  const CompiledModel& body = compiled_body(b);
  std::vector<int64_t> axes(L.scanned);
  int64_t length = -1;
  for (size_t j = 0; j < L.scanned; ++j) {
    const TensorView& x = in_all[L.states + j];
    axes[j] = normalize_axis(n, L.in_axes[j], (int64_t)x.shape.size());
    const int64_t len = x.shape[axes[j]];
    if (length >= 0 && len != length)
      throw InputError(n.describe() + ": scanned inputs have lengths " + std::to_string(length) + " and " +
                       std::to_string(len));
    length = len;
  }
  std::vector<HeldTensor> states;
  for (size_t i = 0; i < L.states; ++i) states.push_back(HeldTensor{in_all[i], nullptr});
  std::vector<HeldTensor> slices(L.scanned);
  std::vector<TensorView> in(L.states + L.scanned + L.captured);
  for (size_t j = 0; j < L.captured; ++j) in[L.states + L.scanned + j] = in_all[L.states + L.scanned + j];
  ScanCollector scans(n, L.outputs);
  std::vector<HeldTensor> fed(L.states);  // states as the body's parameters take them
  for (int64_t t = 0; t < length; ++t) {
    check_cancelled(exec);
    for (size_t i = 0; i < L.states; ++i) {
      fed[i] = as_kind(states[i], body.inputs()[i].kind);
      in[i] = fed[i].view;
    }
    for (size_t j = 0; j < L.scanned; ++j) {
      const int64_t pos = L.in_reverse[j] ? length - 1 - t : t;
      take_slice(n, in_all[L.states + j], axes[j], pos, slices[j]);
      in[L.states + j] = slices[j].view;
    }
    std::vector<HeldTensor> outs = run_compiled(body, in, exec);
    for (size_t i = 0; i < L.states; ++i) states[i] = std::move(outs[i]);
    for (size_t k = 0; k < L.outputs; ++k) scans.add(k, std::move(outs[L.states + k]), t);
  }
  std::vector<HeldTensor> result = std::move(states);
  for (size_t k = 0; k < L.outputs; ++k)
    result.push_back(stack(n, scans.pieces[k], L.out_axes[k], L.out_reverse[k] != 0, body_output(b, L.states + k), k));
  return result;
}

std::vector<HeldTensor> eval_scan(const EvalContext& c) {
  const Node& n = c.node;
  const Body& b = body_of(n, "body");
  const ScanLayout L = scan_layout(n, b);
  if (!batched(n)) return run_scan(n, b, L, c.in, c.exec);
  const size_t sliced = L.states + L.scanned;
  int64_t batch = -1;
  for (size_t i = 0; i < sliced; ++i) {
    if (c.in[i].shape.empty()) throw InputError(n.describe() + ": input " + std::to_string(i) + " needs a batch axis");
    if (batch >= 0 && c.in[i].shape[0] != batch)
      throw InputError(n.describe() + ": inputs have batch sizes " + std::to_string(batch) + " and " +
                       std::to_string(c.in[i].shape[0]));
    batch = c.in[i].shape[0];
  }
  std::vector<std::vector<HeldTensor>> pieces(n.outputs.size());
  std::vector<HeldTensor> slices(sliced);
  std::vector<TensorView> in = c.in;
  for (int64_t e = 0; e < batch; ++e) {
    for (size_t i = 0; i < sliced; ++i) {
      take_slice(n, c.in[i], 0, e, slices[i]);
      in[i] = slices[i].view;
    }
    std::vector<HeldTensor> outs = run_scan(n, b, L, in, c.exec);
    for (size_t o = 0; o < outs.size(); ++o) pieces[o].push_back(std::move(outs[o]));
  }
  std::vector<HeldTensor> result;
  for (size_t o = 0; o < pieces.size(); ++o)
    result.push_back(stack(n, pieces[o], 0, false, without_batch(n.outputs[o]), o));
  return result;
}

OpDef with_eval(OpDef def, EvalFn eval) {
  def.eval = eval;
  return def;
}

AttrSpec engine_only(AttrSpec spec) { return spec.ir_name("-").onnx_name("-"); }

}  // namespace

KernelFn prepare_by_eval(const PrepareContext& ctx) {
  const Node* node = &ctx.node;
  EvalFn eval = op_def(ctx.node).eval;
  const size_t inputs = ctx.in.size();
  return [node, eval, inputs](const KernelArgs& a) {
    std::vector<TensorView> in;
    for (size_t i = 0; i < inputs; ++i) in.push_back(*a.in[i]);
    // The step emits its outputs when a stage ends at it (shapes known only by running); the
    // body's own steps never emit into this run.
    ExecContext body_exec = a.ctx ? *a.ctx : ExecContext{};
    body_exec.emit = nullptr;
    std::vector<HeldTensor> outs = eval(EvalContext{*node, in, body_exec});
    for (size_t o = 0; o < outs.size(); ++o) {
      const TensorView& want = *a.out[o];
      const TensorView& got = outs[o].view;
      const bool emitted = a.ctx && a.ctx->emit;
      if (got.type != want.type || (emitted ? got.shape.size() != want.shape.size() : got.shape != want.shape))
        throw InputError(node->describe() + ": output " + std::to_string(o) + " came out as " + type_name(got.type) +
                         dims_str(got.shape) + ", its plan expected " + type_name(want.type) + dims_str(want.shape));
      void* dst = output_memory(a, o, got.shape);
      if (got.bytes()) std::memcpy(dst, got.data, got.bytes());
    }
  };
}

void register_control_flow_ops(OpRegistry& r) {
  r.add(with_composites(with_eval(OpDef{"If", 1, -1, infer_if, prepare_by_eval}, eval_if)));
  r.add(with_composites(
      with_eval(OpDef{"Loop", 2, -1, infer_loop, prepare_by_eval}.with_attrs(
                    {engine_only(int_attr("captured", 0).at_least(0)), engine_only(bool_attr("stop_on_cond", true))}),
                eval_loop)));
  r.add(with_composites(with_eval(
      OpDef{"Scan", 1, -1, infer_scan, prepare_by_eval}.with_attrs(
          {int_attr("num_scan_inputs", 1).at_least(1).must_be_given(), ints_attr("scan_input_axes"),
           ints_attr("scan_input_directions"), ints_attr("scan_output_axes"), ints_attr("scan_output_directions"),
           engine_only(int_attr("captured", 0).at_least(0)), engine_only(bool_attr("batched", false))}),
      eval_scan)));
}

}  // namespace aiov
