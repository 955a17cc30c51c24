#include "plan/graph.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <unordered_map>
#include <unordered_set>

#include "plan/registry.hpp"

namespace aiov {

namespace {
std::atomic<uint64_t> g_next_id{1};

template <class T>
const T* attr_as(const Attrs& attrs, const std::string& k) {
  auto it = attrs.find(k);
  if (it == attrs.end()) return nullptr;
  return std::get_if<T>(&it->second);
}
}  // namespace

uint64_t next_node_id() { return g_next_id.fetch_add(1); }

int64_t Node::attr_int(const std::string& k, int64_t dflt) const {
  if (auto v = attr_as<int64_t>(attrs, k)) return *v;
  if (auto v = attr_as<double>(attrs, k)) return (int64_t)*v;
  if (has_attr(k)) throw InputError(describe() + ": attribute '" + k + "' must be an integer");
  return dflt;
}
double Node::attr_float(const std::string& k, double dflt) const {
  if (auto v = attr_as<double>(attrs, k)) return *v;
  if (auto v = attr_as<int64_t>(attrs, k)) return (double)*v;
  if (has_attr(k)) throw InputError(describe() + ": attribute '" + k + "' must be a number");
  return dflt;
}
std::string Node::attr_str(const std::string& k, const std::string& dflt) const {
  if (auto v = attr_as<std::string>(attrs, k)) return *v;
  if (has_attr(k)) throw InputError(describe() + ": attribute '" + k + "' must be a string");
  return dflt;
}
std::vector<int64_t> Node::attr_ints(const std::string& k, const std::vector<int64_t>& dflt) const {
  if (auto v = attr_as<std::vector<int64_t>>(attrs, k)) return *v;
  if (auto v = attr_as<int64_t>(attrs, k)) return {*v};
  if (auto v = attr_as<std::vector<double>>(attrs, k)) {
    if (v->empty()) return {};
  }
  if (has_attr(k)) throw InputError(describe() + ": attribute '" + k + "' must be a list of integers");
  return dflt;
}
std::vector<double> Node::attr_floats(const std::string& k, const std::vector<double>& dflt) const {
  if (auto v = attr_as<std::vector<double>>(attrs, k)) return *v;
  if (auto v = attr_as<std::vector<int64_t>>(attrs, k)) return std::vector<double>(v->begin(), v->end());
  if (has_attr(k)) throw InputError(describe() + ": attribute '" + k + "' must be a list of numbers");
  return dflt;
}

Node::~Node() {
  std::vector<NodePtr> pending;
  for (auto& v : inputs) pending.push_back(std::move(v.node));
  while (!pending.empty()) {
    NodePtr n = std::move(pending.back());
    pending.pop_back();
    // Sole owner: take its inputs before it dies, so its own destructor has nothing to recurse into.
    if (n && n.use_count() == 1)
      for (auto& v : n->inputs) pending.push_back(std::move(v.node));
  }
}

std::string Node::describe() const { return op + " '" + name + "'"; }

static std::string default_name(const std::string& op, uint64_t id) { return op + "_" + std::to_string(id); }

namespace {
struct KindWords {
  const char* key;
  const char* name;
};
// Indexed by ValueKind.
constexpr KindWords kKindWords[] = {
    {"tensor", "a tensor"},
    {"sequence", "a sequence"},
    {"optional_tensor", "an optional tensor"},
    {"optional_sequence", "an optional sequence"},
};
static_assert(std::size(kKindWords) == size_t(ValueKind::optional_sequence) + 1, "one entry per ValueKind");

const KindWords& kind_words(ValueKind kind) {
  static constexpr KindWords unknown{"unknown", "an unknown kind of value"};
  return size_t(kind) < std::size(kKindWords) ? kKindWords[size_t(kind)] : unknown;
}
}  // namespace

const char* kind_name(ValueKind kind) { return kind_words(kind).name; }
const char* kind_key(ValueKind kind) { return kind_words(kind).key; }

ValueKind kind_from_key(const std::string& key) {
  for (size_t i = 0; i < std::size(kKindWords); ++i)
    if (key == kKindWords[i].key) return ValueKind(i);
  throw InputError("unknown value kind '" + key +
                   "' (expected tensor, sequence, optional_tensor or optional_sequence)");
}

NodePtr make_parameter(ElementType type, const PartialShape& shape, const std::string& name, ValueKind kind) {
  if (type == ElementType::undefined) throw InputError("Parameter: element type must be defined");
  auto n = std::make_shared<Node>();
  n->id = next_node_id();
  n->op = "Parameter";
  n->name = name.empty() ? default_name(n->op, n->id) : name;
  for (auto d : shape.dims)
    if (d < -1) throw InputError("Parameter '" + n->name + "': dimension " + std::to_string(d) + " is invalid");
  if (shape.rank_known) check_tensor_size(shape.dims, "Parameter '" + n->name + "'");
  n->outputs = {PortInfo{type, shape, kind}};
  n->output_names.resize(1);
  if (!name.empty()) n->output_names[0] = {name};
  return n;
}

NodePtr make_constant(ElementType type, const Dims& shape, const void* data, size_t bytes, const std::string& name) {
  auto buffer = std::make_shared<Buffer>(bytes);
  if (bytes) std::memcpy(buffer->data(), data, bytes);
  return make_constant(type, shape, std::move(buffer), name);
}

NodePtr make_constant(ElementType type, const Dims& shape, BufferPtr data, const std::string& name) {
  for (auto d : shape)
    if (d < 0) throw InputError("Constant: shape " + dims_str(shape) + " must be static");
  check_tensor_size(shape, "Constant '" + name + "'");
  size_t need = byte_size(type, numel(shape));
  if (data->size() != need)
    throw InputError("Constant: shape " + dims_str(shape) + " of " + type_name(type) + " needs " +
                     std::to_string(need) + " bytes, got " + std::to_string(data->size()));
  auto n = std::make_shared<Node>();
  n->id = next_node_id();
  n->op = "Constant";
  n->name = name.empty() ? default_name(n->op, n->id) : name;
  n->constant = std::move(data);
  n->outputs = {PortInfo{type, PartialShape(shape)}};
  n->output_names.resize(1);
  return n;
}

static std::vector<PortInfo> run_inference(const OpDef& def, const Node& n, std::vector<TensorView>& const_views) {
  InferContext ctx{n, {}, {}};
  const_views.resize(n.inputs.size());
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const Value& v = n.inputs[i];
    ctx.in.push_back(v.node->outputs[v.index]);
    const Node& src = *v.node;
    if (src.op == "Constant") {
      TensorView& tv = const_views[i];
      tv.data = src.constant->data();
      tv.type = src.outputs[0].type;
      tv.shape = src.outputs[0].shape.dims;
      ctx.in_value.push_back(&tv);
    } else {
      ctx.in_value.push_back(nullptr);
    }
  }
  return infer_outputs(def, ctx);
}

void revalidate(Node& n) {
  if (n.op == "Parameter" || n.op == "Constant") return;
  const OpDef& def = n.def ? *n.def : OpRegistry::instance().get(n.op);
  n.def = &def;
  std::vector<PortInfo> in;
  for (const Value& v : n.inputs) in.push_back(v.node->outputs[v.index]);
  validate_attrs(def, n, in);
  std::vector<TensorView> views;
  n.outputs = run_inference(def, n, views);
  n.output_names.resize(n.outputs.size());
}

NodePtr make_node(const std::string& op, std::vector<Value> inputs, Attrs attrs, const std::string& name,
                  std::map<std::string, BodyPtr> bodies) {
  const OpDef& def = OpRegistry::instance().get(op);
  auto n = std::make_shared<Node>();
  n->id = next_node_id();
  n->op = op;
  n->name = name.empty() ? default_name(op, n->id) : name;
  int count = (int)inputs.size();
  if (count < def.min_inputs || (def.max_inputs >= 0 && count > def.max_inputs)) {
    std::string want = def.max_inputs < 0 ? "at least " + std::to_string(def.min_inputs)
                       : def.min_inputs == def.max_inputs
                           ? std::to_string(def.min_inputs)
                           : std::to_string(def.min_inputs) + " to " + std::to_string(def.max_inputs);
    throw InputError(n->describe() + ": expected " + want + " inputs, got " + std::to_string(count));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = inputs[i];
    if (!v.node || v.index < 0 || v.index >= (int)v.node->outputs.size())
      throw InputError(n->describe() + ": input " + std::to_string(i) + " is not a valid node output");
  }
  n->inputs = std::move(inputs);
  n->attrs = std::move(attrs);
  n->bodies = std::move(bodies);
  for (const auto& [key, body] : n->bodies)
    if (!body) throw InputError(n->describe() + ": subgraph '" + key + "' is missing");
  revalidate(*n);
  return n;
}

BodyPtr make_body(Graph graph) {
  auto body = std::make_shared<Body>();
  for (const auto& n : graph.topological_order())
    for (const auto& [key, inner] : n->bodies) body->depth = std::max(body->depth, inner->depth + 1);
  if (body->depth > kMaxBodyDepth)
    throw InputError("subgraphs are nested " + std::to_string(body->depth) + " deep; aiov runs at most " +
                     std::to_string(kMaxBodyDepth) + " levels");
  body->graph = std::move(graph);
  return body;
}

std::vector<NodePtr> Graph::topological_order() const {
  std::vector<NodePtr> order;
  std::unordered_set<const Node*> done;
  std::unordered_set<const Node*> on_stack;
  // Iterative DFS: deep chains (hundreds of layers) must not overflow the C stack.
  struct Frame {
    NodePtr node;
    size_t next_input;
  };
  std::vector<Frame> stack;
  auto visit = [&](const NodePtr& root) {
    if (done.count(root.get())) return;
    stack.push_back({root, 0});
    on_stack.insert(root.get());
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.next_input < f.node->inputs.size()) {
        NodePtr child = f.node->inputs[f.next_input++].node;
        if (done.count(child.get())) continue;
        if (on_stack.count(child.get())) throw InputError("the graph has a cycle through " + child->describe());
        on_stack.insert(child.get());
        stack.push_back({child, 0});
      } else {
        on_stack.erase(f.node.get());
        done.insert(f.node.get());
        order.push_back(f.node);
        stack.pop_back();
      }
    }
  };
  for (const auto& p : parameters) visit(p);
  for (const auto& o : outputs) visit(o.node);
  for (const auto& s : sinks) visit(s);
  std::unordered_set<const Node*> params;
  for (const auto& p : parameters) params.insert(p.get());
  for (const auto& n : order)
    if (n->op == "Parameter" && !params.count(n.get()))
      throw InputError("Parameter '" + n->name + "' is used by the model but not listed in its parameters");
  return order;
}

void Graph::revalidate_all() const {
  for (const auto& n : topological_order()) revalidate(*n);
}

ElementType type_from_name(const std::string& name) {
  for (int i = 0; i < (int)ElementType::count_; ++i)
    if (name == type_name((ElementType)i)) return (ElementType)i;
  static const std::pair<const char*, ElementType> aliases[] = {
      {"f32", ElementType::f32},     {"float32", ElementType::f32}, {"float", ElementType::f32},
      {"float64", ElementType::f64}, {"float16", ElementType::f16}, {"bool", ElementType::boolean},
      {"int8", ElementType::i8},     {"int16", ElementType::i16},   {"int32", ElementType::i32},
      {"int64", ElementType::i64},   {"uint8", ElementType::u8},    {"uint16", ElementType::u16},
      {"uint32", ElementType::u32},  {"uint64", ElementType::u64},  {"bfloat16", ElementType::bf16}};
  for (auto& a : aliases)
    if (name == a.first) return a.second;
  throw InputError("unknown element type '" + name + "'");
}

}  // namespace aiov
