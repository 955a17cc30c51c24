#include "plan/compiled.hpp"

#include "plan/optimize.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

namespace aiov {

namespace {
constexpr size_t kPlanCacheLimit = 64;  // distinct input-shape signatures kept per model

std::string io_name(const Value& v) {
  const auto& names = v.node->output_names[v.index];
  if (!names.empty()) return *std::min_element(names.begin(), names.end());
  return v.node->name;
}

// Best-fit allocator over one arena; offsets are 64-byte aligned.
class ArenaPlanner {
 public:
  size_t alloc(size_t bytes) {
    bytes = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->second >= bytes && (best == free_.end() || it->second < best->second)) best = it;
    if (best != free_.end()) {
      size_t off = best->first, size = best->second;
      free_.erase(best);  // before push_back, which may invalidate iterators
      if (size > bytes) free_.push_back({off + bytes, size - bytes});
      return off;
    }
    size_t off = top_;
    top_ += bytes;
    return off;
  }
  void release(size_t off, size_t bytes) {
    bytes = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    free_.push_back({off, bytes});
    // Merge neighbours so large later tensors can reuse the space.
    std::sort(free_.begin(), free_.end());
    std::vector<std::pair<size_t, size_t>> merged;
    for (auto& f : free_) {
      if (!merged.empty() && merged.back().first + merged.back().second == f.first) merged.back().second += f.second;
      else merged.push_back(f);
    }
    free_.swap(merged);
    if (!free_.empty() && free_.back().first + free_.back().second == top_) {
      top_ = free_.back().first;
      free_.pop_back();
    }
  }
  size_t peak() const { return peak_; }
  void touch() { peak_ = std::max(peak_, top_); }
 private:
  std::vector<std::pair<size_t, size_t>> free_;
  size_t top_ = 0;
  size_t peak_ = 0;
};
}  // namespace

Dims pack_value(const void* data, size_t bytes) {
  Dims words((bytes + 7) / 8 + 1, 0);
  words[0] = (int64_t)bytes;
  if (bytes) std::memcpy(words.data() + 1, data, bytes);
  return words;
}

CompiledModel::CompiledModel(const Graph& graph, CompileOptions options) : options_(options) {
  // Names and declared types come from the model as given; the optimizer may replace the
  // nodes that produce the outputs.
  for (const auto& p : graph.parameters)
    inputs_.push_back({io_name(Value{p, 0}), p->outputs[0].type, p->outputs[0].shape});
  for (const auto& o : graph.outputs) {
    const PortInfo& pi = o.node->outputs[o.index];
    outputs_.push_back({io_name(o), pi.type, pi.shape});
  }
  graph_ = graph_optimization_enabled() ? optimize_graph(graph) : graph;
  order_ = graph_.topological_order();
  for (const auto& n : order_)
    if (n->op != "Parameter" && n->op != "Constant") OpRegistry::instance().get(n->op);
  // Parameters upstream of a value operand (not cut by a shape-only op) key the plans.
  std::unordered_map<const Node*, bool> seen;
  std::vector<const Node*> stack;
  for (const auto& n : order_) {
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
  for (const auto& p : graph_.parameters) {
    bool keyed = seen.count(p.get()) && seen[p.get()];
    value_keyed_.push_back(keyed);
    any_value_keyed_ = any_value_keyed_ || keyed;
  }
  // Static models are planned now so the first inference pays nothing extra.
  bool all_static = true;
  std::vector<Dims> shapes;
  for (const auto& in : inputs_) {
    all_static = all_static && in.shape.is_static();
    shapes.push_back(in.shape.dims);
  }
  if (all_static && !any_value_keyed_) plan_for(shapes);
}

size_t default_plan_cache_bytes() {
  static const size_t bytes = [] {
    const char* env = std::getenv("AIOV_PLAN_CACHE_BYTES");
    if (env && *env) {
      char* end = nullptr;
      unsigned long long v = std::strtoull(env, &end, 10);
      if (end && *end == '\0') return (size_t)v;
    }
    return size_t(1) << 30;
  }();
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
  std::shared_ptr<const ShapePlan> plan = build_plan(key);
  std::lock_guard<std::mutex> lock(mutex_);
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

std::shared_ptr<ShapePlan> CompiledModel::build_plan(const std::vector<Dims>& key) const {
  auto plan = std::make_shared<ShapePlan>();
  plan->key = key;
  std::vector<Dims> input_shapes(key.begin(), key.begin() + graph_.parameters.size());
  plan->input_shapes = input_shapes;
  // Values of value-keyed inputs become constants of this plan.
  std::vector<const void*> keyed_data(graph_.parameters.size(), nullptr);
  {
    size_t k = graph_.parameters.size();
    for (size_t i = 0; i < graph_.parameters.size(); ++i) {
      if (!value_keyed_[i]) continue;
      const Dims& words = key.at(k++);
      auto buf = std::make_shared<Buffer>((size_t)words[0]);
      if (words[0]) std::memcpy(buf->data(), words.data() + 1, (size_t)words[0]);
      plan->folded.push_back(buf);
      keyed_data[i] = buf->data();
    }
  }
  const OpRegistry& reg = OpRegistry::instance();

  // Value ids: one per (node, output).
  std::unordered_map<const Node*, int> first_value;
  auto value_of = [&](const Value& v) { return first_value.at(v.node.get()) + v.index; };
  std::vector<int> alias_root;     // storage owner of each value
  std::vector<bool> known;         // value known at plan time
  std::vector<bool> model_constant;  // value is a constant of graph_ (same bytes in every plan)
  std::vector<bool> runtime_node;  // per order index

  std::unordered_map<const Node*, int> param_index;
  for (size_t i = 0; i < graph_.parameters.size(); ++i) param_index[graph_.parameters[i].get()] = (int)i;

  for (const auto& np : order_) {
    const Node& n = *np;
    int base = (int)plan->values.size();
    first_value[&n] = base;
    if (n.op == "Parameter") {
      ValueSlot s;
      s.kind = ValueSlot::kInput;
      s.index = param_index.at(&n);
      s.type = n.outputs[0].type;
      s.shape = input_shapes.at(s.index);
      bool keyed = keyed_data[s.index] != nullptr;
      if (keyed) {
        s.kind = ValueSlot::kConstant;
        s.constant = keyed_data[s.index];
      }
      plan->values.push_back(s);
      alias_root.push_back(base);
      known.push_back(keyed);
      model_constant.push_back(false);
      continue;
    }
    if (n.op == "Constant") {
      ValueSlot s;
      s.kind = ValueSlot::kConstant;
      s.constant = n.constant->data();
      s.type = n.outputs[0].type;
      s.shape = n.outputs[0].shape.dims;
      plan->values.push_back(s);
      alias_root.push_back(base);
      known.push_back(true);
      model_constant.push_back(true);
      continue;
    }
    const OpDef& def = reg.get(n.op);
    // Concrete inference, with values known at plan time (constants, folded nodes).
    std::vector<TensorView> in_views(n.inputs.size());
    InferContext ictx{n, {}, {}};
    bool all_known = true;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      int v = value_of(n.inputs[i]);
      const ValueSlot& s = plan->values[v];
      in_views[i].type = s.type;
      in_views[i].shape = s.shape;
      in_views[i].data = known[v] ? const_cast<void*>(s.constant) : nullptr;
      ictx.in.push_back(PortInfo{s.type, PartialShape(s.shape)});
      ictx.in_value.push_back(known[v] ? &in_views[i] : nullptr);
      all_known = all_known && known[v];
    }
    all_known = all_known || def.shape_only;
    std::vector<PortInfo> outs = infer_outputs(def, ictx);
    PrepareContext pctx{n, in_views, {}, &shared_weights_, {}};
    for (const auto& in : n.inputs) pctx.in_model_constant.push_back(model_constant[value_of(in)]);
    for (size_t o = 0; o < outs.size(); ++o) {
      if (!outs[o].shape.is_static())
        throw InputError(n.describe() + ": output " + std::to_string(o) + " shape " + outs[o].shape.str() +
                         " could not be determined for input shapes of the model");
      TensorView tv;
      tv.type = outs[o].type;
      tv.shape = outs[o].shape.dims;
      pctx.out.push_back(tv);
    }
    if (all_known) {
      // Fold: run the kernel now, keep the result as a constant of this plan.
      for (size_t o = 0; o < outs.size(); ++o) {
        if (def.aliases_input0) {
          pctx.out[o].data = pctx.in[0].data;
        } else {
          auto buf = std::make_shared<Buffer>(pctx.out[o].bytes());
          plan->folded.push_back(buf);
          pctx.out[o].data = buf->data();
        }
      }
      if (!def.aliases_input0) run_kernel_now(def, pctx);
      for (size_t o = 0; o < outs.size(); ++o) {
        ValueSlot s;
        s.kind = ValueSlot::kConstant;
        s.constant = pctx.out[o].data;
        s.type = pctx.out[o].type;
        s.shape = pctx.out[o].shape;
        plan->values.push_back(s);
        alias_root.push_back((int)plan->values.size() - 1);
        known.push_back(true);
        // A view of a model constant (Reshape, Squeeze) is still that constant's bytes.
        model_constant.push_back(def.aliases_input0 && pctx.in_model_constant.at(0));
      }
      continue;
    }
    Step step{&n, def.aliases_input0 ? KernelFn() : def.prepare(pctx), {}, {}};
    for (const auto& in : n.inputs) step.ins.push_back(value_of(in));
    for (size_t o = 0; o < outs.size(); ++o) {
      ValueSlot s;
      s.kind = ValueSlot::kArena;
      s.type = pctx.out[o].type;
      s.shape = pctx.out[o].shape;
      int id = (int)plan->values.size();
      plan->values.push_back(s);
      alias_root.push_back(def.aliases_input0 ? alias_root[step.ins[0]] : id);
      known.push_back(false);
      model_constant.push_back(false);
      step.outs.push_back(id);
    }
    plan->steps.push_back(std::move(step));
  }

  // Outputs: written in place by their producing step when it owns the storage.
  std::vector<bool> root_is_output(plan->values.size(), false);
  for (size_t j = 0; j < graph_.outputs.size(); ++j) {
    int v = value_of(graph_.outputs[j]);
    plan->output_values.push_back(v);
    ValueSlot& s = plan->values[v];
    bool owns = alias_root[v] == v && s.kind == ValueSlot::kArena && !root_is_output[v];
    if (owns) {
      s.kind = ValueSlot::kOutput;
      s.index = (int64_t)j;
      root_is_output[v] = true;
    } else {
      plan->output_copies.push_back({v, (int)j});
    }
  }
  // Aliases of an output value read the output buffer.
  for (size_t v = 0; v < plan->values.size(); ++v) {
    int r = alias_root[v];
    if (r != (int)v && plan->values[r].kind == ValueSlot::kOutput && plan->values[v].kind == ValueSlot::kArena) {
      plan->values[v].kind = ValueSlot::kOutput;
      plan->values[v].index = plan->values[r].index;
    }
  }

  // Liveness-based arena plan over storage roots.
  std::vector<int> last_use(plan->values.size(), -1);
  for (size_t si = 0; si < plan->steps.size(); ++si) {
    for (int v : plan->steps[si].ins) last_use[alias_root[v]] = std::max(last_use[alias_root[v]], (int)si);
    for (int v : plan->steps[si].outs) last_use[alias_root[v]] = std::max(last_use[alias_root[v]], (int)si);
  }
  for (auto& c : plan->output_copies) last_use[alias_root[c.first]] = (int)plan->steps.size();
  ArenaPlanner arena;
  std::vector<size_t> root_offset(plan->values.size(), 0);
  auto root_bytes = [&](int r) { return byte_size(plan->values[r].type, numel(plan->values[r].shape)); };
  // An input dying at a step whose kernel may write over it (OpDef::reuses_input) hands its
  // memory to the output: no new buffer, and the output is written where the input was just
  // read, still in cache. Not when another input of the step shares that memory.
  std::vector<bool> handed_over(plan->values.size(), false);
  auto donor_for = [&](size_t si, int out) -> int {
    const Step& st = plan->steps[si];
    const int j = reg.get(st.node->op).reuses_input;
    if (j < 0 || j >= (int)st.ins.size() || st.outs.size() != 1) return -1;
    const int r = alias_root[st.ins[j]];
    if (plan->values[r].kind != ValueSlot::kArena || last_use[r] != (int)si || handed_over[r]) return -1;
    if (root_bytes(r) != root_bytes(out)) return -1;
    for (size_t i = 0; i < st.ins.size(); ++i)
      if ((int)i != j && alias_root[st.ins[i]] == r) return -1;
    return r;
  };
  for (size_t si = 0; si < plan->steps.size(); ++si) {
    for (int v : plan->steps[si].outs) {
      if (alias_root[v] != v || plan->values[v].kind != ValueSlot::kArena) continue;
      const int donor = donor_for(si, v);
      if (donor >= 0) {
        handed_over[donor] = true;
        root_offset[v] = root_offset[donor];
        continue;
      }
      root_offset[v] = arena.alloc(root_bytes(v));
      arena.touch();
    }
    std::vector<int> dying;
    for (int v : plan->steps[si].ins) dying.push_back(alias_root[v]);
    for (int v : plan->steps[si].outs) dying.push_back(alias_root[v]);
    std::sort(dying.begin(), dying.end());
    dying.erase(std::unique(dying.begin(), dying.end()), dying.end());
    for (int r : dying)
      if (last_use[r] == (int)si && plan->values[r].kind == ValueSlot::kArena && !handed_over[r])
        arena.release(root_offset[r], root_bytes(r));
  }
  plan->arena_bytes = arena.peak();
  for (size_t v = 0; v < plan->values.size(); ++v) {
    ValueSlot& s = plan->values[v];
    int r = alias_root[v];
    const ValueSlot& rs = plan->values[r];
    if (s.kind == ValueSlot::kArena) s.offset = root_offset[r];
    if ((int)v != r && rs.kind != ValueSlot::kArena && rs.kind != ValueSlot::kOutput) {
      // Alias of an input or a constant: same memory, another shape.
      s.kind = rs.kind;
      s.index = rs.index;
      s.constant = rs.constant;
    }
  }
  return plan;
}

}  // namespace aiov
