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

std::vector<NodePtr> fold_node(const Node& n, size_t max_bytes) {
  const OpDef& def = OpRegistry::instance().get(n.op);
  if (def.stateful) return {};  // its value is per request
  std::vector<TensorView> ins(n.inputs.size());
  for (size_t i = 0; i < ins.size(); ++i) {
    const Node& c = *n.inputs[i].node;
    ins[i] = TensorView{c.constant->data(), c.outputs[0].type, c.outputs[0].shape.dims};
  }
  std::vector<PortInfo> outs = infer_on(def, n, ins, std::vector<bool>(ins.size(), true));
  size_t total = 0;
  for (const PortInfo& o : outs) {
    if (!o.shape.is_static()) return {};
    total += byte_size(o.type, numel(o.shape.dims));
  }
  if (total > max_bytes) return {};
  PrepareContext pctx{n, ins, {}};
  for (const PortInfo& o : outs) pctx.out.push_back(TensorView{nullptr, o.type, o.shape.dims});
  std::vector<BufferPtr> results;
  fold_now(def, pctx, results);
  std::vector<NodePtr> constants;
  for (size_t o = 0; o < outs.size(); ++o) {
    constants.push_back(make_constant(outs[o].type, outs[o].shape.dims, pctx.out[o].data, pctx.out[o].bytes(), n.name));
    constants.back()->output_names = {n.output_names.size() > o ? n.output_names[o] : std::vector<std::string>{}};
  }
  return constants;
}

}  // namespace aiov
