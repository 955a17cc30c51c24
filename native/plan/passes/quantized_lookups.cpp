#include <map>

#include "plan/fold.hpp"
#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// The f32 tensor operand of an elementwise step that keeps its shape: a layout-blind unary op
// (Sigmoid, HardSigmoid, Clamp, ...), or a layout-blind binary op whose other operand is one
// constant value of no higher rank (x * 6, x + 3, Maximum(x, 0)). -1: not such a step.
int step_operand(const Node& n) {
  if (n.outputs.size() != 1 || n.outputs[0].type != ElementType::f32) return -1;
  const auto f32 = [&](int i) { return n.inputs[i].node->outputs[n.inputs[i].index].type == ElementType::f32; };
  if (kLayoutBlindUnary.count(n.op) && n.inputs.size() == 1) return f32(0) ? 0 : -1;
  if (!kLayoutBlindBinary.count(n.op) || n.inputs.size() != 2 || !numpy_broadcast(n)) return -1;
  float unused = 0;
  for (int at : {0, 1}) {
    const Value &x = n.inputs[at], &c = n.inputs[1 - at];
    const PartialShape& xs = x.node->outputs[x.index].shape;
    if (f32(at) && one_float(c, unused) && xs.rank_known && c.node->outputs[0].shape.dims.size() <= xs.dims.size())
      return at;
  }
  return -1;
}

// The value `v` computes, with `raw` replaced by `by`, folded to a constant: the same ops and
// kernels as the graph's, run now on the constant. Null if some node cannot fold.
NodePtr folded_with(const Value& v, const Value& raw, const NodePtr& by, std::map<const Node*, NodePtr>& done) {
  if (same(v, raw)) return by;
  if (const_of(v)) return v.node;
  const Node& n = *v.node;
  if (n.outputs.size() != 1 || n.op == op_name::Parameter) return nullptr;
  if (auto it = done.find(&n); it != done.end()) return it->second;
  std::vector<Value> ins;
  for (const Value& in : n.inputs) {
    NodePtr c = folded_with(in, raw, by, done);
    if (!c) return nullptr;
    ins.push_back(Value{c, 0});
  }
  std::vector<NodePtr> out = fold_node(*make_node(n.op, ins, n.attrs, n.name), size_t{1} << 20);
  return done[&n] = out.empty() ? nullptr : out[0];
}

}  // namespace

// A QDQ model's elementwise activation between a dequantization and a quantization to u8
// (DequantizeLinear -> Sigmoid / HardSigmoid / Clip / x * 6 ... -> QuantizeLinear, or a bare
// requantization DequantizeLinear -> QuantizeLinear) makes each output byte a function of the
// input byte alone. The steps run now on the 256 possible bytes, with the graph's own ops
// (so the same bytes as running them), and the model becomes aiov.QuantizedLookup of that
// table: no f32 tensor between the bytes, and a layout-blind op the NHWC regions carry through.
bool quantized_lookups(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& q : ctx.order()) {
    if (q->op != op_name::Quantize || !ctx.live(*q) || q->outputs[0].type != ElementType::u8) continue;
    if (!const_of(q->inputs[1]) || !const_of(q->inputs[2])) continue;
    // Up from the quantization over steps, each the sole reader of the one before, to a
    // dequantized u8 tensor.
    Value v = q->inputs[0];
    const Node* reader = q.get();
    DequantizedU8 d;
    bool found = false;
    for (int steps = 0; steps < 16; ++steps) {
      if (dequantized_u8(v, d)) {
        found = true;
        break;
      }
      const int at = step_operand(*v.node);
      if (at < 0 || ctx.sole_user(*v.node) != reader) break;
      reader = v.node.get();
      v = v.node->inputs[at];
    }
    const PartialShape &in = d.q.node->outputs[d.q.index].shape, &out = q->outputs[0].shape;
    if (!found || !in.rank_known || !out.rank_known || in.rank() != out.rank()) continue;
    try {
      std::vector<uint8_t> bytes(256);
      for (int i = 0; i < 256; ++i) bytes[i] = (uint8_t)i;
      NodePtr every_byte = make_constant(ElementType::u8, Dims{256}, bytes.data(), bytes.size(), q->name);
      std::map<const Node*, NodePtr> done;
      NodePtr table = folded_with(Value{q, 0}, d.q, every_byte, done);
      if (!table || table->outputs[0].type != ElementType::u8 || numel(table->outputs[0].shape.dims) != 256) continue;
      NodePtr lookup = make_node(op_name::QuantizedLookup, {d.q, Value{table, 0}}, {}, q->name);
      ctx.replace(Value{q, 0}, Value{lookup, 0});
      changed = true;
    } catch (const std::exception&) {
      // A step that cannot run on the table (an op refusing these values) stays as it was.
    }
  }
  return changed;
}

}  // namespace aiov::passes
