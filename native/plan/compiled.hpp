// A compiled model: a graph snapshot plus execution plans per input-shape signature.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plan/graph.hpp"
#include "plan/registry.hpp"
#include "plan/state.hpp"

namespace aiov {

// Default byte budget of a compiled model's plan cache (AIOV_PLAN_CACHE_BYTES overrides).
size_t default_plan_cache_bytes();

struct CompileOptions {
  int num_threads = 0;     // intra-op thread cap (0: whole pool)
  bool profiling = false;  // record per-node times
  // Bytes of plan-owned memory (folded constants, keys) the plan cache may keep; least
  // recently used plans go first. The newest plan is kept even when it alone is larger.
  size_t plan_cache_bytes = default_plan_cache_bytes();
  // What matrix products compute in (PrepareContext::inference_precision): f32 or bf16.
  ElementType inference_precision = ElementType::f32;
  // Describe every plan built (BuiltPlan) for aiov's DEBUG log, until taken.
  bool log_plans = false;
};

// Where a value's bytes live while a plan runs. kEmitted: memory a data-dependent step
// allocates once it knows the size; kCarried: a value an earlier stage computed (the same
// value id there).
struct ValueSlot {
  enum Kind { kInput, kConstant, kArena, kOutput, kEmitted, kCarried } kind = kArena;
  int64_t index = 0;  // input or output number
  size_t offset = 0;  // arena offset
  // A part of a Concat written in place: its storage (alias_root) is the Concat's, and it
  // starts this many bytes into it (its rows lie the Concat's row apart).
  size_t slice_offset = 0;
  bool in_slice = false;
  const void* constant = nullptr;
  ElementType type = ElementType::f32;
  Dims shape;
};

struct Step {
  const Node* node;
  KernelFn fn;
  std::vector<int> ins, outs;  // value ids
  std::string kernel;          // the kernel its prepare picked, when it picks (PrepareContext::note_kernel)
};

// Data-dependent shapes run in stages. A plan stops after the first step whose output shapes
// depend on values known only at run time (OpDef::data_dependent): that step emits its
// outputs, and the rest of the graph is the plan of a longer key, the stage's key followed by
// the emitted shapes and a marker (continuation_key). The next stage continues the same value
// numbering and reads the earlier stages' values in place (kCarried).
struct PlanResume {
  size_t next_node = 0;            // position in the topological order where the next stage starts
  std::vector<int> emitted;        // value ids of the stopping step's outputs
  std::vector<int> value_of_node;  // per node position up to next_node: its output 0's value id
  std::vector<bool> known, model_constant;
};

struct ShapePlan {
  std::vector<Dims> input_shapes;
  std::vector<Dims> key;  // input shapes, then the raw values of value-keyed inputs
  std::vector<ValueSlot> values;
  std::vector<Step> steps;
  size_t arena_bytes = 0;
  std::vector<int> output_values;
  std::vector<std::pair<int, int>> output_copies;  // (value, output) copied after the steps
  std::vector<BufferPtr> folded;                   // constants computed while planning
  std::shared_ptr<const PlanResume> resume;        // set: a later stage runs the rest
  std::vector<int> live_out;                       // values a later stage reads (kept to the end)
  // The stage before this one: its constants are this plan's too (counted once, there).
  std::shared_ptr<const ShapePlan> previous_stage;
  // Some output shape is known only by running (a Loop's scan outputs): the plan has no
  // steps, and the model runs node by node (run_node_by_node in plan/subgraph.hpp). A later
  // stage may be one too (a Loop after a NonZero): the run then starts over node by node.
  bool node_by_node = false;
};

// The key of the stage after `plan` once its data-dependent step emitted these shapes.
std::vector<Dims> continuation_key(const ShapePlan& plan, const std::vector<Dims>& emitted_shapes);

struct IoInfo {
  std::string name;  // a tensor name, or the node's friendly name
  ElementType type;
  PartialShape shape;  // a sequence's or optional's: its elements'
  ValueKind kind = ValueKind::tensor;
};

// A plan as aiov's DEBUG log describes it: recorded where it is built (maybe on a worker),
// taken and logged by a Python thread (CompiledModel::take_built_plans).
struct BuiltPlan {
  std::vector<Dims> input_shapes;
  bool continuation = false;  // a later stage, after a data-dependent step
  bool node_by_node = false;
  size_t arena_bytes = 0;
  double build_ms = 0;
  struct StepInfo {
    std::string name, op, outputs, kernel;
  };
  std::vector<StepInfo> steps;
};

// Raw bytes of a tensor as int64 words (a plan-key entry).
Dims pack_value(const void* data, size_t bytes);

class CompiledModel {
 public:
  // `optimized`: what optimize_graph made of `graph` before (read from a blob), used as it is
  // instead of optimizing again; its inputs and outputs must match the model's (InputError).
  // `packed`: the weights its exporter derived from those constants (deserialize_graphs),
  // taken by the plans instead of packing again.
  CompiledModel(const Graph& graph, CompileOptions options, const Graph* optimized = nullptr,
                std::vector<SharedWeights::Stored> packed = {});
  const std::vector<IoInfo>& inputs() const { return inputs_; }
  const std::vector<IoInfo>& outputs() const { return outputs_; }
  const CompileOptions& options() const { return options_; }
  const Graph& graph() const { return graph_; }
  // The optimized graph's nodes, inputs before users.
  const std::vector<NodePtr>& order() const { return order_; }
  SharedWeights& shared_weights() const { return shared_weights_; }
  // Plan for a key: concrete input shapes, followed by the packed values of the
  // value-keyed inputs in input order (see pack_value), then per variable its current shape
  // ({-1} when it has no value). Cached; thread-safe.
  std::shared_ptr<const ShapePlan> plan_for(const std::vector<Dims>& key) const;
  // Inputs whose values (not only shapes) determine the plan.
  const std::vector<bool>& value_keyed() const { return value_keyed_; }
  bool has_value_keyed() const { return any_value_keyed_; }
  // Some value is a sequence or an optional: every plan runs the model node by node.
  bool has_composites() const { return has_composites_; }
  // The variables of a stateful model (ReadValue/Assign), each request keeps its own values.
  const std::vector<VariableDesc>& variables() const { return variables_; }
  size_t cached_plans() const;
  // Bytes the cached plans own (what plan_cache_bytes bounds).
  size_t cached_plan_bytes() const;
  // Weights derived from constants that the cached plans hold (packed, transformed).
  size_t shared_weight_count() const { return shared_weights_.size(); }
  // The plans built since the last call (with CompileOptions::log_plans), oldest first; at
  // most kBuiltPlanLog are kept, `dropped` counts the older ones let go.
  std::vector<BuiltPlan> take_built_plans(size_t* dropped) const;
  static constexpr size_t kBuiltPlanLog = 64;

 private:
  std::shared_ptr<ShapePlan> build_plan(const std::vector<Dims>& key) const;
  // The plan of a continuation key: the stage after its parent's stopping step.
  std::shared_ptr<ShapePlan> build_continuation(const std::vector<Dims>& key) const;
  std::vector<bool> value_keyed_;
  bool any_value_keyed_ = false;
  bool has_composites_ = false;
  std::vector<VariableDesc> variables_;
  Graph graph_;
  std::vector<NodePtr> order_;
  CompileOptions options_;
  std::vector<IoInfo> inputs_, outputs_;
  struct CachedPlan {
    std::shared_ptr<const ShapePlan> plan;
    size_t bytes = 0;
    uint64_t last_use = 0;
  };
  mutable std::mutex mutex_;
  mutable std::map<std::vector<Dims>, CachedPlan> plans_;
  mutable size_t plan_bytes_ = 0;
  mutable uint64_t use_clock_ = 0;
  mutable SharedWeights shared_weights_;
  mutable std::vector<BuiltPlan> built_plans_;  // under mutex_
  mutable size_t built_plans_dropped_ = 0;
};

}  // namespace aiov
