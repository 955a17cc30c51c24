#include "plan/compiled.hpp"
#include "core/out_of_memory.hpp"
#include "core/environment.hpp"

#include "plan/fold.hpp"
#include "plan/memory_plan.hpp"
#include "plan/optimize.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace aiov {

namespace {
constexpr size_t kPlanCacheLimit = 64;  // distinct input-shape signatures kept per model

std::string io_name(const Value& v) {
  const auto& names = v.node->output_names[v.index];
  if (!names.empty()) return *std::min_element(names.begin(), names.end());
  return v.node->name;
}

// Parameters upstream of a value operand (OpDef::value_inputs, not cut by a shape-only op):
// their values, not only their shapes, decide the plan, so they key it.
std::vector<bool> find_value_keyed_inputs(const std::vector<NodePtr>& order, const std::vector<NodePtr>& parameters) {
  std::unordered_map<const Node*, bool> seen;
  std::vector<const Node*> stack;
  for (const auto& n : order) {
    if (n->op == "Parameter" || n->op == "Constant") continue;
    for (int i : OpRegistry::instance().get(n->op).value_inputs)
      if (i < (int)n->inputs.size()) stack.push_back(n->inputs[i].node.get());
  }
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (seen[n]) continue;
    seen[n] = true;
    if (n->op == "Parameter" || n->op == "Constant") continue;
    if (OpRegistry::instance().get(n->op).shape_only) continue;
    for (const auto& in : n->inputs) stack.push_back(in.node.get());
  }
  std::vector<bool> keyed;
  for (const auto& p : parameters) keyed.push_back(seen.count(p.get()) && seen[p.get()]);
  return keyed;
}

// The values of the value-keyed inputs, unpacked from the plan key (see pack_value) into
// buffers the plan keeps: per input, its data, or null for an input keyed by shape only.
std::vector<const void*> keyed_input_values(const std::vector<Dims>& key, const std::vector<bool>& value_keyed,
                                            ShapePlan& plan) {
  std::vector<const void*> data(value_keyed.size(), nullptr);
  size_t k = value_keyed.size();
  for (size_t i = 0; i < value_keyed.size(); ++i) {
    if (!value_keyed[i]) continue;
    const Dims& words = key.at(k++);
    auto buf = std::make_shared<Buffer>((size_t)words[0]);
    if (words[0]) std::memcpy(buf->data(), words.data() + 1, (size_t)words[0]);
    plan.folded.push_back(buf);
    data[i] = buf->data();
  }
  return data;
}

// Where a node's output goes when it is written straight into its slice of a Concat along
// the last axis (OpDef::writes_concat_slice): that Concat, the output's first element in a
// row of it, and the row's length.
struct ConcatSlice {
  const Node* concat = nullptr;
  int64_t first = 0, row = 0;
};

// The Concats along the last axis whose parts can be written in place, part by part: each a
// node's only output, read by that Concat alone (once), not a graph output, with a static last
// dimension. The Concat may have any readers (Inception's next branches), but is not itself a
// graph output. Not in a graph with data-dependent or run-to-know shapes, whose plans stop in
// stages (a part and its Concat in different stages).
std::unordered_map<const Node*, ConcatSlice> find_concat_slices(const std::vector<NodePtr>& order,
                                                                const std::vector<Value>& graph_outputs) {
  const OpRegistry& reg = OpRegistry::instance();
  std::unordered_map<const Node*, int> readers;
  for (const auto& n : order) {
    if (n->op == "Parameter" || n->op == "Constant") continue;
    const OpDef& def = reg.get(n->op);
    if (def.data_dependent || def.eval) return {};
    for (const Value& in : n->inputs) ++readers[in.node.get()];
  }
  std::unordered_set<const Node*> outputs;  // never in place: a part, or a Concat, that is a graph output
  for (const Value& o : graph_outputs) outputs.insert(o.node.get());
  std::unordered_map<const Node*, ConcatSlice> slices;
  for (const auto& n : order) {
    if (n->op != "Concat" || n->inputs.size() < 2 || outputs.count(n.get())) continue;
    const PartialShape& shape = n->outputs[0].shape;
    if (!shape.rank_known || shape.rank() < 1) continue;
    if (normalize_axis(*n, n->attr_int("axis"), shape.rank()) != shape.rank() - 1) continue;
    std::unordered_map<const Node*, ConcatSlice> parts;
    int64_t row = 0;
    for (const Value& in : n->inputs) {
      const Node* p = in.node.get();
      const PartialShape& ps = p->outputs[in.index].shape;
      const OpDef* def = p->op == "Parameter" || p->op == "Constant" ? nullptr : &reg.get(p->op);
      if (!def || !def->writes_concat_slice || !def->writes_concat_slice(*p) || p->outputs.size() != 1 ||
          readers[p] != 1 || outputs.count(p) || !ps.rank_known || ps.rank() != shape.rank() || ps.dims.back() < 0) {
        parts.clear();
        break;
      }
      parts[p] = ConcatSlice{n.get(), row, 0};
      row += ps.dims.back();
    }
    for (auto& [p, slice] : parts) {
      slice.row = row;
      slices[p] = slice;
    }
  }
  return slices;
}

// A plan's values as scheduling creates them: one id per (node, output), in node order.
struct PlanValues {
  ShapePlan& plan;
  std::unordered_map<const Node*, int> first;                  // id of each node's output 0
  std::vector<int> alias_root;                                 // storage owner of each value
  std::vector<bool> known;                                     // value known at plan time
  std::vector<bool> model_constant;                            // a constant of the model (same bytes in every plan)
  std::map<std::string, const Dims*> state_shapes;             // per variable: its shape, null when unset
  std::unordered_map<const Node*, ConcatSlice> concat_slices;  // find_concat_slices
  std::unordered_map<int, ConcatSlice> sliced_values;          // parts that are steps' outputs, by value id

  int id(const Value& v) const { return first.at(v.node.get()) + v.index; }
  // root: the value whose storage this one is, -1 for its own.
  int add(const ValueSlot& s, int root, bool is_known, bool is_model_constant) {
    const int id = (int)plan.values.size();
    plan.values.push_back(s);
    alias_root.push_back(root < 0 ? id : root);
    known.push_back(is_known);
    model_constant.push_back(is_model_constant);
    return id;
  }
};

ValueSlot slot(ValueSlot::Kind kind, ElementType type, const Dims& shape) {
  ValueSlot s;
  s.kind = kind;
  s.type = type;
  s.shape = shape;
  return s;
}

// Thrown while planning when an output shape is known only by running its node.
struct NeedsRunTimeShapes {};

// A Pad by nothing on every side is its input's bytes. Swin pads each stage to a multiple of its
// window by sizes it computes from the input, zero whenever the window divides it; OpenVINO
// drops such a Pad, where its kernel copied the tensor.
bool pads_nothing(const Node& n, const PrepareContext& ctx) {
  if (n.op != "Pad" || ctx.in.size() < 3 || !ctx.in[1].data || !ctx.in[2].data) return false;
  for (size_t i : {1, 2})
    for (int64_t p : read_int_tensor(n, ctx.in[i], "pads"))
      if (p != 0) return false;
  return true;
}

// A Gather of index 0 along an axis with only ones before it (torchvision's detectors take
// images[0] of a batch of one) is the first bytes of its input.
bool gathers_leading_block(const Node& n, const PrepareContext& ctx) {
  if (n.op != "Gather" || ctx.in.size() < 3 || !ctx.in[1].data || !ctx.in[2].data || n.attr_int("batch_dims") != 0)
    return false;
  const Dims& s = ctx.in[0].shape;
  const auto axis = read_int_tensor(n, ctx.in[2], "axis");
  const auto index = read_int_tensor(n, ctx.in[1], "indices");
  if (axis.size() != 1 || index.size() != 1) return false;
  const int64_t rank = (int64_t)s.size(), a = axis[0] < 0 ? axis[0] + rank : axis[0];
  if (a < 0 || a >= rank || s[a] <= 0 || (index[0] != 0 && index[0] != -s[a])) return false;
  for (int64_t i = 0; i < a; ++i)
    if (s[i] != 1) return false;
  return true;
}

// A Concat some of whose parts are written in place (PlanValues::sliced_values) copies only
// the others into their slices of each row; null when there are none.
KernelFn concat_rest(const Node& n, const std::vector<int>& ins, const PlanValues& values, const TensorView& out) {
  const ShapePlan& plan = values.plan;
  struct Copy {
    size_t input, bytes, at;
  };
  const size_t esize = bit_width(out.type) / 8;
  const int64_t row = out.shape.back(), rows = row ? numel(out.shape) / row : 0;
  std::vector<Copy> copies;
  int64_t first = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const int64_t length = plan.values[ins[i]].shape.back();
    auto part = values.sliced_values.find(ins[i]);
    if (part == values.sliced_values.end() || part->second.concat != &n) {
      if (length) copies.push_back({i, (size_t)length * esize, (size_t)first * esize});
    } else if (part->second.first != first || part->second.row != row) {
      throw std::logic_error(n.describe() + ": a part written in place is not where the plan put it");
    }
    first += length;
  }
  if (copies.empty()) return KernelFn();
  const size_t row_bytes = (size_t)row * esize;
  return [copies, rows, row_bytes](const KernelArgs& k) {
    char* o = static_cast<char*>(k.out[0]->data);
    for (const Copy& c : copies) {
      const char* x = static_cast<const char*>(k.in[c.input]->data);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(o + r * row_bytes + c.at, x + r * c.bytes, c.bytes);
    }
  };
}

// Node n's outputs, with the concrete shapes its inputs have in this plan: computed now when
// every input is known at plan time (or the op reads only shapes), else a step of the plan
// writing them to the arena. Returns true when the step emits outputs whose shapes only a run
// finds (a data-dependent op): the stage ends there.
bool schedule_node(const Node& n, PlanValues& values, SharedWeights& shared, ElementType precision) {
  ShapePlan& plan = values.plan;
  const OpDef& def = OpRegistry::instance().get(n.op);
  std::vector<TensorView> in_views(n.inputs.size());
  std::vector<bool> in_known(n.inputs.size());
  bool all_known = true;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    int v = values.id(n.inputs[i]);
    const ValueSlot& s = plan.values[v];
    in_views[i].type = s.type;
    in_views[i].shape = s.shape;
    in_views[i].data = values.known[v] ? const_cast<void*>(s.constant) : nullptr;
    in_known[i] = values.known[v];
    all_known = all_known && values.known[v];
  }
  all_known = (all_known || def.shape_only) && !def.stateful;
  std::vector<PortInfo> outs = infer_on(def, n, in_views, in_known);
  if (n.op == "ReadValue") {
    auto it = values.state_shapes.find(n.attr_str("variable_id"));
    outs.at(0).shape = read_value_plan_shape(n, in_views, it == values.state_shapes.end() ? nullptr : it->second);
  }
  PrepareContext pctx{n, in_views, {}, &shared, {}};
  for (const auto& in : n.inputs) pctx.in_model_constant.push_back(values.model_constant[values.id(in)]);
  bool all_static = true;
  for (const auto& o : outs) all_static = all_static && o.shape.is_static();
  bool ranks_known = true;
  for (const auto& o : outs) ranks_known = ranks_known && o.shape.rank_known;
  if (def.eval && !all_static && (all_known || !ranks_known)) {
    // Only running tells the shapes (a Loop's scan outputs, an If whose branches differ): with
    // known inputs it runs now and its outputs are constants of the plan. With unknown inputs
    // it ends a stage like a data-dependent op (below), unless it cannot tell even the ranks:
    // then the whole model runs node by node.
    if (!all_known) throw NeedsRunTimeShapes{};
    ExecContext exec;
    for (HeldTensor& t : def.eval(EvalContext{n, in_views, exec})) {
      if (!t.keep) {
        t.keep = std::make_shared<Buffer>(t.view.bytes());
        if (t.view.bytes()) std::memcpy(t.keep->data(), t.view.data, t.view.bytes());
      }
      plan.folded.push_back(t.keep);
      ValueSlot s = slot(ValueSlot::kConstant, t.view.type, t.view.shape);
      s.constant = t.keep->data();
      values.add(s, -1, true, false);
    }
    return false;
  }
  bool emits = false;
  for (const auto& o : outs) emits = emits || (!all_known && (def.data_dependent || def.eval) && !o.shape.is_static());
  for (size_t o = 0; o < outs.size(); ++o) {
    if (!outs[o].shape.is_static() && !emits)
      throw InputError(n.describe() + ": output " + std::to_string(o) + " shape " + outs[o].shape.str() +
                       " could not be determined for input shapes of the model");
    TensorView tv;
    tv.type = outs[o].type;
    tv.shape = outs[o].shape.rank_known ? outs[o].shape.dims : Dims{};
    pctx.out.push_back(tv);
  }
  if (all_known) {
    // Fold: the result is a constant of this plan.
    fold_now(def, pctx, plan.folded);
    for (const TensorView& out : pctx.out) {
      ValueSlot s = slot(ValueSlot::kConstant, out.type, out.shape);
      s.constant = out.data;
      // A view of a model constant (Reshape, Squeeze) is still that constant's bytes.
      values.add(s, -1, true, def.aliases_input0 && pctx.in_model_constant.at(0));
    }
    return false;
  }
  pctx.inference_precision = precision;
  Step step{&n, KernelFn(), {}, {}, {}};
  pctx.kernel_choice = &step.kernel;
  auto slice = values.concat_slices.find(&n);
  const bool into_concat = slice != values.concat_slices.end() && pctx.out.size() == 1 && !emits;
  if (into_concat) pctx.out_row_stride = slice->second.row;
  bool parts_in_place = false;
  for (const auto& in : n.inputs) {
    auto part = values.sliced_values.find(values.id(in));
    parts_in_place = parts_in_place || (part != values.sliced_values.end() && part->second.concat == &n);
  }
  if (parts_in_place) {
    for (const auto& in : n.inputs) step.ins.push_back(values.id(in));
    step.fn = concat_rest(n, step.ins, values, pctx.out.at(0));
    step.kernel = step.fn ? "the parts not written in place copied" : "every part written in place";
    step.outs.push_back(values.add(slot(ValueSlot::kArena, pctx.out[0].type, pctx.out[0].shape), -1, false, false));
    for (int v : step.ins) {
      auto part = values.sliced_values.find(v);
      if (part == values.sliced_values.end() || part->second.concat != &n) continue;
      // The part's storage is the Concat's, from its slice's first element on.
      values.alias_root[v] = step.outs[0];
      plan.values[v].slice_offset = (size_t)part->second.first * (bit_width(plan.values[v].type) / 8);
      plan.values[v].in_slice = true;
    }
    plan.steps.push_back(std::move(step));
    return false;
  }
  // A Convert to the type it reads (an ONNX Identity or Cast to the same type, often on a model
  // output) is its input's bytes: a view like a Reshape, where its kernel copied them.
  // So is a Concat of one input (torchvision's detectors batch their one image with one):
  // its kernel copied the whole image.
  const bool same_bytes =
      outs.size() == 1 && in_views.size() == 1 && in_views[0].type == outs[0].type && outs[0].kind == ValueKind::tensor;
  const bool view = def.aliases_input0 || pads_nothing(n, pctx) || gathers_leading_block(n, pctx) ||
                    ((n.op == "Convert" || n.op == "Concat") && same_bytes);
  if (!view || def.stateful) step.fn = def.prepare(pctx);
  for (const auto& in : n.inputs) step.ins.push_back(values.id(in));
  for (const TensorView& out : pctx.out) {
    const int root = view ? values.alias_root[step.ins[0]] : -1;
    const auto kind = emits ? ValueSlot::kEmitted : ValueSlot::kArena;
    step.outs.push_back(values.add(slot(kind, out.type, out.shape), root, false, false));
  }
  if (into_concat) values.sliced_values[step.outs[0]] = slice->second;
  plan.steps.push_back(std::move(step));
  return emits;
}

// After a stage that stops at order[stop]: where the next stage starts, and the values of this
// stage the rest of the graph reads (kept alive to the end of the stage).
void record_resume(const std::vector<NodePtr>& order, size_t stop, const std::vector<Value>& graph_outputs,
                   PlanValues& values) {
  ShapePlan& plan = values.plan;
  auto resume = std::make_shared<PlanResume>();
  resume->next_node = stop + 1;
  resume->emitted = plan.steps.back().outs;
  for (size_t i = 0; i <= stop; ++i) resume->value_of_node.push_back(values.first.at(order[i].get()));
  resume->known = values.known;
  resume->model_constant = values.model_constant;
  std::vector<bool> read_later(plan.values.size(), false);
  for (size_t i = stop + 1; i < order.size(); ++i)
    for (const Value& in : order[i]->inputs)
      if (values.first.count(in.node.get())) read_later[values.alias_root[values.id(in)]] = true;
  for (const Value& o : graph_outputs)
    if (values.first.count(o.node.get())) read_later[values.alias_root[values.id(o)]] = true;
  for (size_t v = 0; v < read_later.size(); ++v)
    if (read_later[v]) plan.live_out.push_back((int)v);
  plan.resume = std::move(resume);
}

// The nodes of `order` from `start` on in the plan: model inputs (the value-keyed ones as
// constants) and constants as they are, then each op inferred with concrete shapes and folded
// or made a step, until a step emits data-dependent shapes (see PlanResume).
void schedule(const std::vector<NodePtr>& order, size_t start, const std::vector<NodePtr>& parameters,
              const std::vector<Value>& graph_outputs, const std::vector<const void*>& keyed, SharedWeights& shared,
              PlanValues& values, ElementType precision) {
  ShapePlan& plan = values.plan;
  std::unordered_map<const Node*, int> param_index;
  for (size_t i = 0; i < parameters.size(); ++i) param_index[parameters[i].get()] = (int)i;
  for (size_t pos = start; pos < order.size(); ++pos) {
    const Node& n = *order[pos];
    values.first[&n] = (int)plan.values.size();
    if (n.op == "Parameter") {
      const int i = param_index.at(&n);
      ValueSlot s = slot(keyed[i] ? ValueSlot::kConstant : ValueSlot::kInput, n.outputs[0].type, plan.input_shapes[i]);
      s.index = i;
      s.constant = keyed[i];
      values.add(s, -1, keyed[i] != nullptr, false);
    } else if (n.op == "Constant") {
      ValueSlot s = slot(ValueSlot::kConstant, n.outputs[0].type, n.outputs[0].shape.dims);
      s.constant = n.constant->data();
      values.add(s, -1, true, true);
    } else {
      bool stops;
      try {
        stops = schedule_node(n, values, shared, precision);
      } catch (const std::bad_alloc&) {
        rethrow_out_of_memory_for(n.describe());  // folding its constants, or its weights' layout
      }
      if (stops) {
        record_resume(order, pos, graph_outputs, values);
        return;
      }
    }
  }
}

// Each variable's shape in a first stage's key ({-1}: the variable has no value), for ReadValue.
void set_state_shapes(const ShapePlan& first_stage, const std::vector<VariableDesc>& variables, PlanValues& values) {
  const std::vector<Dims>& key = first_stage.key;
  const size_t first_state = key.size() - variables.size();
  for (size_t v = 0; v < variables.size(); ++v) {
    const Dims& shape = key[first_state + v];
    const bool unset = shape.size() == 1 && shape[0] < 0;
    values.state_shapes[variables[v].id] = unset ? nullptr : &shape;
  }
}

constexpr int64_t kStageMarker = INT64_MIN;  // no input shape or packed value starts with it

bool same_port(const PortInfo& a, const PortInfo& b, bool compare_shapes) {
  return a.type == b.type && a.kind == b.kind &&
         (!compare_shapes || (a.shape.rank_known == b.shape.rank_known && a.shape.dims == b.shape.dims));
}

// An optimized graph given with its model (from a blob) takes the same inputs and gives the
// same outputs: the requests are sized and checked by the model's.
void check_same_interface(const Graph& model, const Graph& optimized) {
  bool same = model.parameters.size() == optimized.parameters.size() &&
              model.outputs.size() == optimized.outputs.size() && model.sinks.size() == optimized.sinks.size();
  for (size_t i = 0; same && i < model.parameters.size(); ++i)
    same = same_port(model.parameters[i]->outputs[0], optimized.parameters[i]->outputs[0], true);
  for (size_t i = 0; same && i < model.outputs.size(); ++i) {
    const Value& a = model.outputs[i];
    const Value& b = optimized.outputs[i];
    same = same_port(a.node->outputs[a.index], b.node->outputs[b.index], false);
  }
  if (!same) throw InputError("the optimized graph does not take the inputs and give the outputs of its model");
}

}  // namespace

Dims pack_value(const void* data, size_t bytes) {
  Dims words((bytes + 7) / 8 + 1, 0);
  words[0] = (int64_t)bytes;
  if (bytes) std::memcpy(words.data() + 1, data, bytes);
  return words;
}

CompiledModel::CompiledModel(const Graph& graph, CompileOptions options, const Graph* optimized,
                             std::vector<SharedWeights::Stored> packed)
    : options_(options) {
  // Names and declared types come from the model as given; the optimizer may replace the
  // nodes that produce the outputs.
  for (const auto& p : graph.parameters)
    inputs_.push_back({io_name(Value{p, 0}), p->outputs[0].type, p->outputs[0].shape, p->outputs[0].kind});
  for (const auto& o : graph.outputs) {
    const PortInfo& pi = o.node->outputs[o.index];
    outputs_.push_back({io_name(o), pi.type, pi.shape, pi.kind});
  }
  for (const auto& n : graph.topological_order())
    for (const PortInfo& p : n->outputs) has_composites_ = has_composites_ || p.kind != ValueKind::tensor;
  // The optimizer's passes know tensors only; a model with sequences runs as written.
  if (optimized) {
    check_same_interface(graph, *optimized);
    graph_ = *optimized;
  } else {
    graph_ =
        graph_optimization_enabled() && !has_composites_ ? optimize_graph(graph, options_.inference_precision) : graph;
  }
  order_ = graph_.topological_order();
  for (const auto& n : order_)
    if (n->op != "Parameter" && n->op != "Constant") OpRegistry::instance().get(n->op);
  value_keyed_ = find_value_keyed_inputs(order_, graph_.parameters);
  for (size_t i = 0; i < inputs_.size(); ++i)  // a sequence's values do not key plans (all run node by node)
    if (inputs_[i].kind != ValueKind::tensor) value_keyed_[i] = false;
  variables_ = collect_variables(order_);
  any_value_keyed_ = std::find(value_keyed_.begin(), value_keyed_.end(), true) != value_keyed_.end();
  // Static models are planned now so the first inference pays nothing extra.
  bool all_static = true;
  std::vector<Dims> shapes;
  for (const auto& in : inputs_) {
    all_static = all_static && in.shape.is_static();
    shapes.push_back(in.shape.dims);
  }
  shared_weights_.restore(std::move(packed));
  // (A stateful model's plans also depend on its variables' shapes: planned at first use.)
  if (all_static && !any_value_keyed_ && variables_.empty()) {
    plan_for(shapes);
    shared_weights_.drop_restored();  // what this plan did not take, no other plan would
  }
}

size_t default_plan_cache_bytes() {
  static const size_t bytes = (size_t)env_int("AIOV_PLAN_CACHE_BYTES", int64_t{1} << 30);
  return bytes;
}

size_t CompiledModel::cached_plans() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return plans_.size();
}

size_t CompiledModel::cached_plan_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return plan_bytes_;
}

namespace {
// Memory a plan owns: constants folded for it (values of keyed inputs among them) and its key.
size_t plan_bytes(const ShapePlan& plan) {
  size_t bytes = 0;
  for (const auto& b : plan.folded) bytes += b->size();
  for (const auto& k : plan.key) bytes += k.size() * sizeof(int64_t);
  return bytes;
}
}  // namespace

namespace {
BuiltPlan describe(const ShapePlan& plan, double build_ms) {
  BuiltPlan d;
  d.input_shapes = plan.input_shapes;
  d.continuation = plan.previous_stage != nullptr;
  d.node_by_node = plan.node_by_node;
  d.arena_bytes = plan.arena_bytes;
  d.build_ms = build_ms;
  for (const Step& st : plan.steps) {
    std::string outputs;
    for (int v : st.outs) outputs += (outputs.empty() ? "" : ",") + dims_str(plan.values[v].shape);
    d.steps.push_back({st.node->name, st.node->op, std::move(outputs), st.kernel});
  }
  return d;
}
}  // namespace

std::shared_ptr<const ShapePlan> CompiledModel::plan_for(const std::vector<Dims>& key) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = plans_.find(key);
    if (it != plans_.end()) {
      it->second.last_use = ++use_clock_;
      return it->second.plan;
    }
  }
  // Built outside the lock: planning may fold constants and take a while.
  const auto started = std::chrono::steady_clock::now();
  std::shared_ptr<const ShapePlan> plan = build_plan(key);
  BuiltPlan described;
  if (options_.log_plans)
    described =
        describe(*plan, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
  std::lock_guard<std::mutex> lock(mutex_);
  if (options_.log_plans) {
    if (built_plans_.size() >= kBuiltPlanLog) {
      built_plans_.erase(built_plans_.begin());
      ++built_plans_dropped_;
    }
    built_plans_.push_back(std::move(described));
  }
  auto ins = plans_.emplace(key, CachedPlan{plan, plan_bytes(*plan), 0});
  if (ins.second) plan_bytes_ += ins.first->second.bytes;
  ins.first->second.last_use = ++use_clock_;
  // Least recently used plans go until the cache fits its budget. Jobs running an evicted
  // plan hold their own reference: it lives until they are done with it.
  while (plans_.size() > 1 && (plans_.size() > kPlanCacheLimit || plan_bytes_ > options_.plan_cache_bytes)) {
    auto oldest = plans_.begin();
    for (auto it = plans_.begin(); it != plans_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    plan_bytes_ -= oldest->second.bytes;
    plans_.erase(oldest);
  }
  return ins.first->second.plan;
}

std::vector<BuiltPlan> CompiledModel::take_built_plans(size_t* dropped) const {
  std::lock_guard<std::mutex> lock(mutex_);
  *dropped = built_plans_dropped_;
  built_plans_dropped_ = 0;
  return std::exchange(built_plans_, {});
}

std::vector<Dims> continuation_key(const ShapePlan& plan, const std::vector<Dims>& emitted_shapes) {
  std::vector<Dims> key = plan.key;
  key.insert(key.end(), emitted_shapes.begin(), emitted_shapes.end());
  key.push_back(Dims{kStageMarker, (int64_t)emitted_shapes.size()});
  return key;
}

namespace {
// Drops the steps of a last stage whose outputs no step and no model output reads: a node
// read only for its shape (a ShapeOf, folded when the plan is built) does not run. Graph
// passes leave such nodes when a rewrite reads a shape the old chain computed (fuse_attention's
// sequence-first heads; torch's exports size reshapes and scales from the tensors they cut).
void drop_unread_steps(ShapePlan& plan, const PlanValues& values, const std::vector<Value>& graph_outputs) {
  std::vector<bool> read(plan.values.size(), false);
  for (const Value& o : graph_outputs) read[values.id(o)] = true;
  std::vector<bool> keep(plan.steps.size(), false);
  for (size_t si = plan.steps.size(); si-- > 0;) {
    const Step& st = plan.steps[si];
    bool needed = OpRegistry::instance().get(st.node->op).stateful;
    for (int v : st.outs) needed = needed || read[v];
    if (!needed) continue;
    keep[si] = true;
    for (int v : st.ins) read[v] = true;
  }
  std::vector<Step> steps;
  for (size_t si = 0; si < plan.steps.size(); ++si)
    if (keep[si]) steps.push_back(std::move(plan.steps[si]));
  plan.steps = std::move(steps);
}

// The stage's values placed: model outputs only in the last stage, the rest in the arena.
void place_values(ShapePlan& plan, const PlanValues& values, const std::vector<Value>& graph_outputs) {
  if (!plan.resume) {
    drop_unread_steps(plan, values, graph_outputs);
    for (const Value& o : graph_outputs) plan.output_values.push_back(values.id(o));
    place_outputs(plan, values.alias_root);
  }
  plan_arena(plan, values.alias_root);
}

// A plan without steps for shapes known only by running: the model runs node by node.
std::shared_ptr<ShapePlan> node_by_node_plan(const ShapePlan& planned) {
  auto dynamic = std::make_shared<ShapePlan>();
  dynamic->key = planned.key;
  dynamic->input_shapes = planned.input_shapes;
  dynamic->node_by_node = true;
  return dynamic;
}
}  // namespace

std::shared_ptr<ShapePlan> CompiledModel::build_plan(const std::vector<Dims>& key) const {
  if (!key.empty() && !key.back().empty() && key.back()[0] == kStageMarker) return build_continuation(key);
  auto plan = std::make_shared<ShapePlan>();
  plan->key = key;
  plan->input_shapes.assign(key.begin(), key.begin() + graph_.parameters.size());
  // Sequences and optionals live only in node-by-node runs.
  if (has_composites_) return node_by_node_plan(*plan);
  const std::vector<const void*> keyed = keyed_input_values(key, value_keyed_, *plan);
  PlanValues values{*plan, {}, {}, {}, {}, {}, {}, {}};
  values.concat_slices = find_concat_slices(order_, graph_.outputs);
  set_state_shapes(*plan, variables_, values);
  try {
    schedule(order_, 0, graph_.parameters, graph_.outputs, keyed, shared_weights_, values,
             options_.inference_precision);
  } catch (const NeedsRunTimeShapes&) {
    return node_by_node_plan(*plan);
  }
  place_values(*plan, values, graph_.outputs);
  return plan;
}

std::shared_ptr<ShapePlan> CompiledModel::build_continuation(const std::vector<Dims>& key) const {
  const size_t emitted = (size_t)key.back().at(1);
  if (key.size() < emitted + 1) throw std::logic_error("malformed continuation key");
  const std::vector<Dims> parent_key(key.begin(), key.end() - 1 - (std::ptrdiff_t)emitted);
  const std::shared_ptr<const ShapePlan> parent = plan_for(parent_key);
  if (!parent->resume || parent->resume->emitted.size() != emitted)
    throw std::logic_error("continuation key does not fit its stage");
  const PlanResume& resume = *parent->resume;
  auto plan = std::make_shared<ShapePlan>();
  plan->key = key;
  plan->input_shapes = parent->input_shapes;
  plan->previous_stage = parent;  // its constants stay where they are
  PlanValues values{*plan, {}, {}, resume.known, resume.model_constant, {}, {}, {}};
  // The variables' shapes are in the first stage's key.
  const ShapePlan* first_stage = parent.get();
  while (first_stage->previous_stage) first_stage = first_stage->previous_stage.get();
  set_state_shapes(*first_stage, variables_, values);
  // The earlier stages' values keep their ids: what they computed is read in place.
  plan->values = parent->values;
  for (size_t v = 0; v < plan->values.size(); ++v) {
    ValueSlot& s = plan->values[v];
    values.alias_root.push_back((int)v);
    if (s.kind != ValueSlot::kInput && s.kind != ValueSlot::kConstant) {
      s.kind = ValueSlot::kCarried;
      s.index = (int64_t)v;
    }
  }
  for (size_t o = 0; o < emitted; ++o) plan->values[resume.emitted[o]].shape = key[key.size() - 1 - emitted + o];
  for (size_t i = 0; i < resume.value_of_node.size(); ++i) values.first[order_[i].get()] = resume.value_of_node[i];
  const std::vector<const void*> keyed = keyed_input_values(key, value_keyed_, *plan);
  try {
    schedule(order_, resume.next_node, graph_.parameters, graph_.outputs, keyed, shared_weights_, values,
             options_.inference_precision);
  } catch (const NeedsRunTimeShapes&) {
    // A control-flow op after the data-dependent one: the request reruns the model node by node.
    return node_by_node_plan(*plan);
  }
  place_values(*plan, values, graph_.outputs);
  return plan;
}

}  // namespace aiov
