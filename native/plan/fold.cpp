#include "plan/fold.hpp"

#include "plan/composite.hpp"

namespace aiov {

std::vector<PortInfo> infer_on(const OpDef& def, const Node& n, const std::vector<TensorView>& in,
                               const std::vector<bool>& known) {
  InferContext ctx{n, {}, {}};
  for (size_t i = 0; i < in.size(); ++i) {
    ctx.in.push_back(PortInfo{in[i].type, PartialShape(in[i].shape), kind_of(in[i])});
    ctx.in_value.push_back(known[i] ? &in[i] : nullptr);
  }
  return infer_outputs(def, ctx);
}

void fold_now(const OpDef& def, PrepareContext& ctx, std::vector<BufferPtr>& keep) {
  if (def.aliases_input0) {
    for (TensorView& out : ctx.out) out.data = ctx.in[0].data;
    return;
  }
  for (TensorView& out : ctx.out) {
    keep.push_back(std::make_shared<Buffer>(out.bytes()));
    out.data = keep.back()->data();
  }
  run_kernel_now(def, ctx);
}

}  // namespace aiov
