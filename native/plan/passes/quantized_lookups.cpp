#include <map>
#include <set>

#include "plan/fold.hpp"
#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// Both shapes known and equal.
bool same_static_shape(const PartialShape& a, const PartialShape& b) {
  return a.rank_known && b.rank_known && a.is_static() && b.is_static() && a.dims == b.dims;
}

// The one u8 tensor a value is an elementwise function of: a walk up from the value over
// elementwise steps (layout-blind unary ops, layout-blind binary ops whose operands are one
// constant value or tensors of the result's shape, dequantizations, and the u8 lookups and
// quantizations they make) to the tensors it starts from, which must be one u8 tensor. Every
// output byte is then a function of that tensor's byte at the same place. Through a lookup or
// a quantization the walk goes on up where it can (an activation after a lookup composes into
// one table: Swish as x * sigmoid(x), both from one dequantized tensor); where it cannot, that
// u8 tensor is the source.
class ByteFunction {
 public:
  bool walk(const Value& v) {
    if (seen_.count(v.node.get())) return true;
    if (++nodes_ > kMaxNodes) return false;
    seen_.insert(v.node.get());
    const Node& n = *v.node;
    const ElementType type = n.outputs[v.index].type;
    if (type == ElementType::u8) {
      const bool through = (n.op == op_name::QuantizedLookup && const_of(n.inputs[1])) ||
                           (n.op == op_name::Quantize && const_of(n.inputs[1]) && const_of(n.inputs[2]));
      if (through) {
        const ByteFunction before = *this;
        if (walk(n.inputs[0])) return true;
        *this = before;
      }
      return take_source(v);
    }
    if (type != ElementType::f32 || n.outputs.size() != 1) return false;
    DequantizedU8 d;
    if (dequantized_u8(v, d)) return walk(d.q);
    if (kLayoutBlindUnary.count(n.op) && n.inputs.size() == 1) return walk(n.inputs[0]);
    if (!kLayoutBlindBinary.count(n.op) || n.inputs.size() != 2 || !numpy_broadcast(n)) return false;
    const PartialShape& out = n.outputs[0].shape;
    for (const Value& in : n.inputs) {
      const PartialShape& shape = in.node->outputs[in.index].shape;
      float unused = 0;
      if (one_float(in, unused) && shape.rank_known && out.rank_known && shape.dims.size() <= out.dims.size()) continue;
      if (!same_static_shape(shape, out) || !walk(in)) return false;
    }
    return true;
  }

  bool found() const { return has_source_; }
  const Value& source() const { return source_; }

 private:
  static constexpr int kMaxNodes = 32;

  bool take_source(const Value& v) {
    if (has_source_) return same(v, source_);
    source_ = v;
    has_source_ = true;
    return true;
  }

  Value source_;
  bool has_source_ = false;
  int nodes_ = 0;
  std::set<const Node*> seen_;
};

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

// The 256 bytes of quantizing `v` (q's scale and zero point) where `source` holds each
// possible byte: the graph's own ops folded now, so the bytes of running them. Null if a
// step cannot fold.
NodePtr requantized_table(const Value& v, const Value& source, const Node& q) {
  std::vector<uint8_t> bytes(256);
  for (int i = 0; i < 256; ++i) bytes[i] = (uint8_t)i;
  NodePtr every_byte = make_constant(ElementType::u8, Dims{256}, bytes.data(), bytes.size(), q.name);
  std::map<const Node*, NodePtr> done;
  NodePtr values = folded_with(v, source, every_byte, done);
  if (!values) return nullptr;
  std::vector<NodePtr> out =
      fold_node(*make_node(q.op, {Value{values, 0}, q.inputs[1], q.inputs[2]}, q.attrs, q.name), size_t{1} << 20);
  if (out.empty() || out[0]->outputs[0].type != ElementType::u8 || numel(out[0]->outputs[0].shape.dims) != 256)
    return nullptr;
  return out[0];
}

bool is_identity(const Node& table) {
  const auto* bytes = static_cast<const uint8_t*>(table.constant->data());
  for (int i = 0; i < 256; ++i)
    if (bytes[i] != i) return false;
  return true;
}

NodePtr lookup_of(const Value& source, const NodePtr& table, const std::string& name) {
  return make_node(op_name::QuantizedLookup, {source, Value{table, 0}}, {}, name);
}

// The two values have the same static shape.
bool same_shape(const Value& a, const Value& b) {
  return same_static_shape(a.node->outputs[a.index].shape, b.node->outputs[b.index].shape);
}

}  // namespace

// A QDQ model's elementwise activation between a dequantization and a quantization to u8
// (DequantizeLinear -> Sigmoid / HardSigmoid / Clip / x * 6 ... -> QuantizeLinear, a bare
// requantization DequantizeLinear -> QuantizeLinear, or Swish's x * sigmoid(x) with the sigmoid
// quantized on its own: any elementwise steps from one u8 tensor, ByteFunction) makes each
// output byte a function of the input byte alone. The steps run now on the 256 possible bytes, with the graph's own ops
// (so the same bytes as running them), and the model becomes aiov.QuantizedLookup of that
// table: no f32 tensor between the bytes, and a layout-blind op the NHWC regions carry through.
// A quantized Concat of such parts (Inception's, DenseNet's, SqueezeNet's: dequantized u8
// branches concatenated and quantized again) becomes a Concat of the parts' bytes, each
// through its own table.
bool quantized_lookups(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& q : ctx.order()) {
    if (q->op != op_name::Quantize || !ctx.live(*q) || q->outputs[0].type != ElementType::u8) continue;
    if (!const_of(q->inputs[1]) || !const_of(q->inputs[2])) continue;
    try {
      const Value& v = q->inputs[0];
      if (v.node->op == op_name::Concat && ctx.sole_user(*v.node) == q.get()) {
        // Quantizing a concatenation quantizes each part: a Concat of the parts' bytes, each
        // through its own table (none where the table is the identity: the same scale).
        std::vector<Value> parts;
        for (const Value& part : v.node->inputs) {
          ByteFunction f;
          if (!f.walk(part) || !f.found() || !same_shape(f.source(), part)) break;
          NodePtr table = requantized_table(part, f.source(), *q);
          if (!table) break;
          parts.push_back(is_identity(*table) ? f.source() : Value{lookup_of(f.source(), table, q->name), 0});
        }
        if (parts.size() != v.node->inputs.size()) continue;
        NodePtr concat = make_node(op_name::Concat, parts, v.node->attrs, v.node->name);
        ctx.replace(Value{q, 0}, Value{concat, 0});
        changed = true;
        continue;
      }
      ByteFunction f;
      if (!f.walk(v) || !f.found()) continue;
      const Value& source = f.source();
      const PartialShape &in = source.node->outputs[source.index].shape, &out = q->outputs[0].shape;
      if (!in.rank_known || !out.rank_known || in.rank() != out.rank()) continue;
      if (in.is_static() && out.is_static() && in.dims != out.dims) continue;
      NodePtr table = requantized_table(v, source, *q);
      if (!table) continue;
      ctx.replace(Value{q, 0}, Value{lookup_of(source, table, q->name), 0});
      changed = true;
    } catch (const std::exception&) {
      // A step that cannot run on the table (an op refusing these values) stays as it was.
    }
  }
  return changed;
}

}  // namespace aiov::passes
