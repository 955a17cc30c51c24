// Graph rewrites applied once when a model is compiled, before any plan is built. Each rewrite
// is a pass in plan/passes/, run in the order of graph_passes() (docs/passes.md).
#pragma once
#include "plan/graph.hpp"

namespace aiov {

// A faster equivalent of `g` made of copies of its nodes (the caller's graph is untouched):
//  - constant subgraphs folded into constants;
//  - the erf form of Gelu recognised as one Gelu;
//  - 2-D convolutions with constant filters become aiov.FusedConv in NHWC, with following
//    per-channel scale/bias/BatchNorm folded into its bias and a per-channel filter scale
//    (the filter constant itself is not copied); layout changes move past layout-blind ops
//    (activations, elementwise, pooling, reductions) and cancel, so they remain only at the
//    edges of convolution regions;
//  - the attention chain of a transformer becomes aiov.Attention, MVN with a scale and shift
//    aiov.LayerNorm, MatMul with constant weights and a bias aiov.FusedMatMul;
//  - a residual Add and an activation after a fused op are applied as it writes its output;
//  - runs of elementwise ops become one aiov.ElementwiseChain;
//  - under a bf16 `precision` (what products compute in), fused convolutions that only
//    feed other fused convolutions hand them bf16 tensors (passes::carry_bf16).
// Parameters keep their order and the outputs compute the same values.
Graph optimize_graph(const Graph& g, ElementType precision = ElementType::f32);

// False when AIOV_GRAPH_OPT=0 (for debugging and for comparing against the plain graph).
bool graph_optimization_enabled();

}  // namespace aiov
