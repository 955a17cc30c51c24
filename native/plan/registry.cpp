#include "plan/registry.hpp"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "executor/executor.hpp"

namespace aiov {

const OpRegistry& OpRegistry::instance() {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    register_elementwise_ops(*r);
    register_matmul_ops(*r);
    register_movement_ops(*r);
    register_softmax_ops(*r);
    register_shape_ops(*r);
    register_indexing_ops(*r);
    register_reduce_ops(*r);
    register_nn_ops(*r);
    register_resize_ops(*r);
    register_fused_conv_ops(*r);
    register_attention_ops(*r);
    return r;
  }();
  return *registry;
}

void OpRegistry::add(OpDef def) {
  if (find(def.type)) throw std::logic_error("op registered twice: " + def.type);
  ops_.push_back(std::move(def));
}

const OpDef* OpRegistry::find(const std::string& type) const {
  for (const auto& d : ops_)
    if (d.type == type) return &d;
  return nullptr;
}

const OpDef& OpRegistry::get(const std::string& type) const {
  if (auto d = find(type)) return *d;
  throw NotSupported("op '" + type + "' is not supported by the aiov engine");
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& d : ops_) out.push_back(d.type);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<PortInfo> infer_outputs(const OpDef& def, const InferContext& ctx) {
  std::vector<PortInfo> outs = def.infer(ctx);
  for (size_t o = 0; o < outs.size(); ++o)
    if (outs[o].shape.rank_known)
      check_tensor_size(outs[o].shape.dims, ctx.node.describe() + " output " + std::to_string(o));
  return outs;
}

void expect_type_match(const Node& n, const PortInfo& a, const PortInfo& b) {
  if (a.type != b.type && a.type != ElementType::dynamic && b.type != ElementType::dynamic)
    throw InputError(n.describe() + ": input element types must match, got " + type_name(a.type) +
                     " and " + type_name(b.type));
}

PartialShape broadcast_shapes(const Node& n, const PartialShape& a, const PartialShape& b,
                              const std::string& mode) {
  if (!a.rank_known || !b.rank_known) return PartialShape::dynamic_rank();
  if (mode == "none") {
    if (a.rank() != b.rank())
      throw InputError(n.describe() + ": shapes " + a.str() + " and " + b.str() +
                       " must be equal (auto_broadcast='none')");
    Dims out(a.dims.size());
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t x = a.dims[i], y = b.dims[i];
      if (x >= 0 && y >= 0 && x != y)
        throw InputError(n.describe() + ": shapes " + a.str() + " and " + b.str() +
                         " must be equal (auto_broadcast='none')");
      out[i] = x >= 0 ? x : y;
    }
    return PartialShape(out);
  }
  if (mode != "numpy")
    throw NotSupported(n.describe() + ": auto_broadcast '" + mode + "' is not supported (use 'numpy' or 'none')");
  size_t r = std::max(a.dims.size(), b.dims.size());
  Dims out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t x = i < r - a.dims.size() ? 1 : a.dims[i - (r - a.dims.size())];
    int64_t y = i < r - b.dims.size() ? 1 : b.dims[i - (r - b.dims.size())];
    if (x == 1) out[i] = y;
    else if (y == 1) out[i] = x;
    else if (x < 0 && y < 0) out[i] = kDynamic;
    else if (x < 0) out[i] = y;
    else if (y < 0) out[i] = x;
    else if (x == y) out[i] = x;
    else
      throw InputError(n.describe() + ": shapes " + a.str() + " and " + b.str() +
                       " cannot be broadcast together (dimension " + std::to_string(i) + ": " +
                       std::to_string(x) + " vs " + std::to_string(y) + ")");
  }
  return PartialShape(out);
}

int64_t normalize_axis(const Node& n, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    throw InputError(n.describe() + ": axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(rank) + " (expected " + std::to_string(-rank) + ".." +
                     std::to_string(rank - 1) + ")");
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> row_strides(const Dims& d) {
  std::vector<int64_t> s(d.size(), 1);
  for (int i = (int)d.size() - 2; i >= 0; --i) s[i] = s[i + 1] * d[i + 1];
  return s;
}

void for_rows(const ExecContext& ctx, int64_t rows, int64_t len, const std::function<void(int64_t, int64_t)>& fn) {
  if (rows * len >= (1 << 15) && ctx.pool && rows > 1)
    ctx.pool->parallel_for(rows, std::max<int64_t>(1, (1 << 13) / std::max<int64_t>(1, len)), fn, ctx.max_threads);
  else
    fn(0, rows);
}

void run_kernel_now(const OpDef& def, const PrepareContext& ctx) {
  std::vector<const TensorView*> ins, outs;
  for (const auto& t : ctx.in) ins.push_back(&t);
  for (const auto& t : ctx.out) outs.push_back(&t);
  ExecContext exec;
  def.prepare(ctx)(KernelArgs{ins.data(), outs.data(), &exec});
}

FusedOutput::FusedOutput(const PrepareContext& ctx) : has_residual(ctx.in.size() > 3) {
  const Node& n = ctx.node;
  try {
    act.kind = act_kind_from_name(n.attr_str("act", "none"));
  } catch (const std::invalid_argument& e) {
    throw InputError(n.describe() + ": " + e.what());
  }
  act.alpha = (float)n.attr_float("act_alpha", 0.0);
  act.beta = (float)n.attr_float("act_beta", 0.0);
}

Epilogue FusedOutput::at(const KernelArgs& a, int64_t ld, int64_t first) const {
  Epilogue e;
  e.bias = a.in[2]->as<float>() + first;
  if (has_residual) {
    e.residual = a.in[3]->as<float>() + first;
    e.ld_residual = ld;
  }
  e.act = act;
  return e;
}

}  // namespace aiov
