// Where a plan's values live while it runs: model outputs written in place by the step that
// produces them, everything else a step writes in one arena laid out by liveness.
#pragma once
#include <vector>

#include "plan/compiled.hpp"

namespace aiov {

// alias_root[v]: the value whose storage value v is (itself, or the input of a view op).

// Each of plan.output_values goes straight into the caller's output buffer when its step owns
// that storage (an arena value not already another output); the others are copied after the
// steps (plan.output_copies). Views of an output read the output buffer.
void place_outputs(ShapePlan& plan, const std::vector<int>& alias_root);

// Offsets in one arena for the remaining arena values: a value's memory returns to the arena
// after the last step that reads it, and a step whose kernel may write over a dying input
// (OpDef::reuses_input) takes that input's memory. Sets plan.arena_bytes; views of inputs and
// constants become those inputs and constants.
void plan_arena(ShapePlan& plan, const std::vector<int>& alias_root);

}  // namespace aiov
