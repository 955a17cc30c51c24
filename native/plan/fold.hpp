// Constant folding, one implementation for the graph optimizer (constant subgraphs of the
// model) and the planner (values known once the input shapes, and value-keyed inputs, are).
#pragma once
#include <vector>

#include "plan/registry.hpp"

namespace aiov {

// Output types and shapes of node n for inputs of these types and shapes; where known[i],
// input i's value (in[i].data) is there for the inference to read.
std::vector<PortInfo> infer_on(const OpDef& def, const Node& n, const std::vector<TensorView>& in,
                               const std::vector<bool>& known);

// Computes ctx.out (types and shapes set) now, from inputs whose data is known: the op's
// kernel runs on the calling thread into new buffers appended to `keep`. An op whose output
// is its input's memory seen with another shape (OpDef::aliases_input0) gets a view of input
// 0 instead.
void fold_now(const OpDef& def, PrepareContext& ctx, std::vector<BufferPtr>& keep);

// Node n, whose inputs are all Constant nodes, as one Constant node per output (named after
// n), or empty when it cannot fold now: a stateful op, outputs of unknown size or larger than
// `max_bytes` in all. Throws what the op's inference or kernel throws.
std::vector<NodePtr> fold_node(const Node& n, size_t max_bytes);

}  // namespace aiov
