// Running compiled graphs from inside a kernel: the bodies of control-flow ops (If, Loop,
// Scan), and models whose output shapes are known only by running them. No Request and no
// Python: everything here runs on the worker that runs the enclosing step.
#pragma once
#include <vector>

#include "plan/compiled.hpp"

namespace aiov {

// The body compiled once (first use), shared by every plan and thread that runs it.
const CompiledModel& compiled_body(const Body& body);

// Runs `model` on `inputs` (checked against its input types and shapes): its plan for these
// shapes, or node by node when that plan says shapes are known only by running. The outputs
// own their memory.
std::vector<HeldTensor> run_compiled(const CompiledModel& model, const std::vector<TensorView>& inputs,
                                     ExecContext& exec);

// Runs `model` node by node: each node inferred with its inputs' values and computed at once
// into memory of its own, released after its last use. Outputs may be views of the inputs.
std::vector<HeldTensor> run_node_by_node(const CompiledModel& model, const std::vector<TensorView>& inputs,
                                         ExecContext& exec);

// The output shapes `model` gives for inputs of these types and shapes, when its plan knows
// them without running: `values[i]` is input i's value where known (null otherwise); an input
// whose value shapes the plan must have one. False when only running can tell.
bool planned_output_shapes(const CompiledModel& model, const std::vector<PortInfo>& in,
                           const std::vector<const TensorView*>& values, std::vector<PortInfo>& out);

// The kernel of an op with `eval` in a plan whose output shapes were known (an If whose
// branches agree, an optional op on a tensor): runs `eval` and copies its outputs into the
// planned memory.
KernelFn prepare_by_eval(const PrepareContext& ctx);

// What two shapes have in common (If branches, loop iterations, a sequence's elements): equal
// dimensions stay, others become dynamic; ranks that differ give a dynamic rank.
PartialShape merge_shapes(const PartialShape& a, const PartialShape& b);

}  // namespace aiov
