// The kernel of an op that reads input 0 and writes output 0 in one element type, known only
// when the plan is built.
#pragma once
#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {

// body(x, y, args), with x and y input 0 and output 0 as pointers to that type's storage.
template <class Body>
KernelFn same_type_kernel(const PrepareContext& ctx, Body body) {
  return dispatch_type(ctx.in[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [body](const KernelArgs& a) { body(a.in[0]->as<T>(), a.out[0]->as<T>(), a); };
  });
}

}  // namespace aiov
