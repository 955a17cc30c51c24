#include "plan/subgraph.hpp"

#include <cstring>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "core/out_of_memory.hpp"
#include "plan/composite.hpp"
#include "plan/fold.hpp"
#include "plan/state.hpp"

namespace aiov {

const CompiledModel& compiled_body(const Body& body) {
  // A failed compile leaves the flag unset: the next run tries again and reports the same error.
  std::call_once(body.compile_once,
                 [&] { body.compiled = std::make_shared<const CompiledModel>(body.graph, CompileOptions{}); });
  return *body.compiled;
}

namespace {

void check_cancelled(const ExecContext& exec) {
  if (exec.abort && exec.abort->load(std::memory_order_relaxed)) throw Cancelled("inference was cancelled");
}

void check_input_count(const CompiledModel& model, size_t given) {
  if (given != model.inputs().size())
    throw InputError("subgraph: expected " + std::to_string(model.inputs().size()) + " inputs, got " +
                     std::to_string(given));
}

void check_input(const IoInfo& info, ElementType type, const PartialShape& shape, ValueKind kind) {
  if (kind != info.kind)
    throw InputError("subgraph input '" + info.name + "': expected " + kind_name(info.kind) + ", got " +
                     kind_name(kind));
  if (type != info.type)
    throw InputError("subgraph input '" + info.name + "': expected element type " + type_name(info.type) + ", got " +
                     type_name(type));
  if (kind == ValueKind::tensor && shape.is_static() && !info.shape.compatible(shape.dims))
    throw InputError("subgraph input '" + info.name + "': expected shape " + info.shape.str() + ", got " + shape.str());
}

// The plan key of `model` for these inputs: their shapes, then the values of value-keyed ones.
std::vector<Dims> plan_key(const CompiledModel& model, const std::vector<TensorView>& inputs) {
  std::vector<Dims> key;
  for (const auto& t : inputs) key.push_back(t.shape);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (model.value_keyed()[i]) key.push_back(pack_value(inputs[i].data, inputs[i].bytes()));
  return key;
}

HeldTensor own_copy(const TensorView& t) {
  HeldTensor h{t, std::make_shared<Buffer>(t.bytes())};
  if (t.bytes()) std::memcpy(h.keep->data(), t.data, t.bytes());
  h.view.data = h.keep->data();
  return h;
}

// One run of a plan whose shapes are all known: a fresh arena and output memory per run,
// so any number of threads may run the same plan at once.
std::vector<HeldTensor> run_plan_once(const ShapePlan& plan, const std::vector<TensorView>& inputs, ExecContext& exec) {
  BufferPtr arena;
  try {
    arena = std::make_shared<Buffer>(plan.arena_bytes);
  } catch (const std::bad_alloc&) {
    rethrow_out_of_memory_for("the intermediate values of a subgraph");
  }
  std::vector<HeldTensor> outs;
  for (int v : plan.output_values) {
    const ValueSlot& s = plan.values[v];
    HeldTensor h;
    h.view.type = s.type;
    h.view.shape = s.shape;
    h.keep = std::make_shared<Buffer>(byte_size(s.type, numel(s.shape)));
    h.view.data = h.keep->data();
    outs.push_back(std::move(h));
  }
  std::vector<TensorView> views(plan.values.size());
  for (size_t v = 0; v < views.size(); ++v) {
    const ValueSlot& s = plan.values[v];
    views[v].type = s.type;
    views[v].shape = s.shape;
    switch (s.kind) {
      case ValueSlot::kInput:
        views[v].data = inputs[s.index].data;
        break;
      case ValueSlot::kConstant:
        views[v].data = const_cast<void*>(s.constant);
        break;
      case ValueSlot::kArena:
        views[v].data = static_cast<char*>(arena->data()) + s.offset;
        break;
      case ValueSlot::kOutput:
        views[v].data = outs[s.index].view.data;
        break;
      case ValueSlot::kEmitted:  // only in staged plans, which run node by node
      case ValueSlot::kCarried:
        throw std::logic_error("a staged plan run in one pass");
    }
  }
  std::vector<const TensorView*> ptrs;
  for (const Step& st : plan.steps) {
    check_cancelled(exec);
    if (!st.fn) continue;
    ptrs.clear();
    for (int v : st.ins) ptrs.push_back(&views[v]);
    for (int v : st.outs) ptrs.push_back(&views[v]);
    try {
      st.fn(KernelArgs{ptrs.data(), ptrs.data() + st.ins.size(), &exec});
    } catch (const std::bad_alloc&) {
      rethrow_out_of_memory_for(st.node->describe());
    }
  }
  for (const auto& c : plan.output_copies) {
    const TensorView& src = views[c.first];
    if (src.bytes()) std::memcpy(outs[c.second].view.data, src.data, src.bytes());
  }
  return outs;
}

}  // namespace

std::vector<HeldTensor> run_compiled(const CompiledModel& model, const std::vector<TensorView>& inputs,
                                     ExecContext& exec) {
  check_input_count(model, inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    check_input(model.inputs()[i], inputs[i].type, PartialShape(inputs[i].shape), kind_of(inputs[i]));
  std::shared_ptr<const ShapePlan> plan = model.plan_for(plan_key(model, inputs));
  // A staged plan (a data-dependent op inside) runs node by node too: one pass, no stages.
  if (!plan->node_by_node && !plan->resume) return run_plan_once(*plan, inputs, exec);
  std::vector<HeldTensor> outs = run_node_by_node(model, inputs, exec);
  // A view of an input dies with the caller's buffer (a Loop reuses its own): copy it.
  for (HeldTensor& h : outs)
    if (h.view.composite)
      h = owned(std::move(h));
    else if (!h.keep)
      h = own_copy(h.view);
  return outs;
}

std::vector<HeldTensor> run_node_by_node(const CompiledModel& model, const std::vector<TensorView>& inputs,
                                         ExecContext& exec) {
  const Graph& graph = model.graph();
  check_input_count(model, inputs.size());
  std::unordered_map<const Node*, int> param_index;
  for (size_t i = 0; i < graph.parameters.size(); ++i) param_index[graph.parameters[i].get()] = (int)i;
  // Readers left per node; the outputs' nodes are never released.
  std::unordered_map<const Node*, int> readers;
  readers.reserve(model.order().size());
  for (const auto& n : model.order())
    for (const Value& v : n->inputs) ++readers[v.node.get()];
  std::unordered_set<const Node*> pinned;
  for (const Value& o : graph.outputs) pinned.insert(o.node.get());
  std::unordered_map<const Node*, std::vector<HeldTensor>> values;
  values.reserve(model.order().size());  // no rehashing while a (loop body's) run fills it
  for (const auto& np : model.order()) {
    const Node& n = *np;
    std::vector<HeldTensor>& outs = values[&n];
    if (n.op == "Parameter") {
      outs.push_back(HeldTensor{inputs.at(param_index.at(&n)), nullptr});
    } else if (n.op == "Constant") {
      TensorView tv{n.constant->data(), n.outputs[0].type, n.outputs[0].shape.dims};
      outs.push_back(HeldTensor{tv, n.constant});
    } else {
      try {
        check_cancelled(exec);
        const OpDef& def = op_def(n);
        std::vector<TensorView> in;
        std::vector<HeldTensor> held;
        std::vector<bool> from_constant;
        for (const Value& v : n.inputs) {
          held.push_back(values.at(v.node.get()).at(v.index));
          in.push_back(held.back().view);
          from_constant.push_back(v.node->op == "Constant");
        }
        if (def.eval) {
          outs = def.eval(EvalContext{n, in, exec, &held});
          // An output that shows an input (a Loop that ran no iteration) keeps it alive.
          for (HeldTensor& h : outs) {
            h = owned(std::move(h));
            for (size_t i = 0; i < in.size() && !h.keep && !h.view.composite && h.view.data; ++i)
              if (in[i].data == h.view.data) h.keep = values.at(n.inputs[i].node.get()).at(n.inputs[i].index).keep;
          }
        } else {
          std::vector<PortInfo> infos = infer_on(def, n, in, std::vector<bool>(in.size(), true));
          if (n.op == "ReadValue" && exec.variables) {
            // As in a plan: the variable's current shape, else its initial value's or declared one.
            const VariableSlot& slot = exec.variables->slots.at(exec.variables->index_of(n.attr_str("variable_id")));
            infos.at(0).shape = read_value_plan_shape(n, in, slot.set ? &slot.shape : nullptr);
          }
          PrepareContext pctx{n, in, {}, &model.shared_weights(), from_constant};
          for (size_t o = 0; o < infos.size(); ++o) {
            if (!infos[o].shape.is_static())
              throw InputError(n.describe() + ": output " + std::to_string(o) + " shape " + infos[o].shape.str() +
                               " could not be determined from its inputs");
            HeldTensor h;
            h.view.type = infos[o].type;
            h.view.shape = infos[o].shape.dims;
            if (def.aliases_input0) {
              h.view.data = in[0].data;
              h.keep = values.at(n.inputs[0].node.get()).at(n.inputs[0].index).keep;
            } else {
              h.keep = std::make_shared<Buffer>(h.view.bytes());
              h.view.data = h.keep->data();
            }
            pctx.out.push_back(h.view);
            outs.push_back(std::move(h));
          }
          if (!def.aliases_input0 || def.stateful) {  // Assign aliases its input but writes the state
            std::vector<const TensorView*> ptrs;
            for (const auto& t : pctx.in) ptrs.push_back(&t);
            for (const auto& t : pctx.out) ptrs.push_back(&t);
            def.prepare(pctx)(KernelArgs{ptrs.data(), ptrs.data() + pctx.in.size(), &exec});
          }
        }
      } catch (const std::bad_alloc&) {
        rethrow_out_of_memory_for(n.describe());
      }
    }
    for (const Value& v : n.inputs)
      if (--readers[v.node.get()] == 0 && !pinned.count(v.node.get())) values.erase(v.node.get());
  }
  std::vector<HeldTensor> result;
  for (const Value& o : graph.outputs) result.push_back(owned(values.at(o.node.get()).at(o.index)));
  return result;
}

bool planned_output_shapes(const CompiledModel& model, const std::vector<PortInfo>& in,
                           const std::vector<const TensorView*>& values, std::vector<PortInfo>& out) {
  check_input_count(model, in.size());
  std::vector<Dims> key;
  for (size_t i = 0; i < in.size(); ++i) {
    check_input(model.inputs()[i], in[i].type, in[i].shape, in[i].kind);
    if (!in[i].shape.is_static()) return false;
    key.push_back(in[i].shape.dims);
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (!model.value_keyed()[i]) continue;
    if (!values[i]) return false;
    key.push_back(pack_value(values[i]->data, values[i]->bytes()));
  }
  std::shared_ptr<const ShapePlan> plan = model.plan_for(key);
  if (plan->node_by_node || plan->resume) return false;
  out.clear();
  for (int v : plan->output_values) out.push_back(PortInfo{plan->values[v].type, PartialShape(plan->values[v].shape)});
  return true;
}

}  // namespace aiov
