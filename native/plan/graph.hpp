// The model graph: nodes built through the op registry, which infers their outputs.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/types.hpp"

namespace aiov {

struct Node;
struct OpDef;
struct Body;
using NodePtr = std::shared_ptr<Node>;
using BodyPtr = std::shared_ptr<const Body>;

// One output port of a node.
struct Value {
  NodePtr node;
  int index = 0;
};

using Attr = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;
using Attrs = std::map<std::string, Attr>;

// What a port carries. A sequence is an ordered list of tensors of one element type; an
// optional is empty or holds one tensor (optional_tensor) or one sequence (optional_sequence).
enum class ValueKind : uint8_t { tensor, sequence, optional_tensor, optional_sequence };
// "a tensor", "a sequence", "an optional tensor", "an optional sequence" (for messages).
const char* kind_name(ValueKind kind);
// "tensor", "sequence", "optional_tensor", "optional_sequence" (the Python API's spelling), and
// back: an InputError names the spellings for any other key.
const char* kind_key(ValueKind kind);
ValueKind kind_from_key(const std::string& key);

struct PortInfo {
  ElementType type = ElementType::dynamic;
  // For a tensor its shape; for a sequence or optional its elements' type and (merged) shape.
  PartialShape shape;
  ValueKind kind = ValueKind::tensor;
};

// enable_shared_from_this: nodes handed back from Python reuse their C++ owner instead of
// getting a Python-refcount deleter, so engine threads may drop node references freely.
struct Node : std::enable_shared_from_this<Node> {
  uint64_t id = 0;   // creation order; stable default names and sorting
  std::string op;    // registry key, e.g. "Add"
  std::string name;  // friendly name
  Attrs attrs;
  std::vector<Value> inputs;
  std::vector<PortInfo> outputs;
  std::vector<std::vector<std::string>> output_names;  // tensor names per output
  BufferPtr constant;                                  // data of a Constant node
  const OpDef* def = nullptr;                          // the op's registry entry (null for Parameter and Constant)
  // Subgraphs the node owns, by attribute name (If's then_branch/else_branch, Loop's body).
  std::map<std::string, BodyPtr> bodies;

  Node() = default;
  Node(const Node&) = default;
  // Releases the chain of inputs iteratively: the default recursive release of a long
  // chain of nodes (100,000 layers) would overflow the stack.
  ~Node();

  bool has_attr(const std::string& k) const { return attrs.count(k) != 0; }
  int64_t attr_int(const std::string& k, int64_t dflt) const;
  double attr_float(const std::string& k, double dflt) const;
  std::string attr_str(const std::string& k, const std::string& dflt) const;
  std::vector<int64_t> attr_ints(const std::string& k, const std::vector<int64_t>& dflt) const;
  std::vector<double> attr_floats(const std::string& k, const std::vector<double>& dflt) const;
  // The same, with the default the op's attribute schema declares (plan/registry.hpp).
  int64_t attr_int(const std::string& k) const;
  double attr_float(const std::string& k) const;
  std::string attr_str(const std::string& k) const;
  std::vector<int64_t> attr_ints(const std::string& k) const;
  std::vector<double> attr_floats(const std::string& k) const;
  // "Add 'name'" for error messages.
  std::string describe() const;
};

uint64_t next_node_id();

NodePtr make_parameter(ElementType type, const PartialShape& shape, const std::string& name,
                       ValueKind kind = ValueKind::tensor);
// Copies `bytes` bytes from `data`.
NodePtr make_constant(ElementType type, const Dims& shape, const void* data, size_t bytes, const std::string& name);
// Takes `data` as it is (it may be memory the engine does not own: Buffer::is_external).
NodePtr make_constant(ElementType type, const Dims& shape, BufferPtr data, const std::string& name);
// Creates a node of a registered op and infers its outputs (throws on invalid input).
NodePtr make_node(const std::string& op, std::vector<Value> inputs, Attrs attrs, const std::string& name,
                  std::map<std::string, BodyPtr> bodies = {});
// Re-runs type/shape inference of `node` from its current inputs.
void revalidate(Node& node);

// A model: parameters in, values out. Nodes are reachable from outputs.
struct Graph {
  std::vector<NodePtr> parameters;
  std::vector<Value> outputs;
  // Nodes run for their effect though no output reads them (Assign writing a variable).
  std::vector<NodePtr> sinks;
  // Nodes feeding the outputs and sinks, inputs before users. Throws if a reachable
  // Parameter is not listed in `parameters`.
  std::vector<NodePtr> topological_order() const;
  // Re-infers every node (after a parameter's shape changed).
  void revalidate_all() const;
};

class CompiledModel;

// A subgraph owned by a node. It is self-contained: the values it reads from the enclosing
// scope are inputs of the owning node, passed to trailing parameters of the body, so the
// engine never resolves names. Immutable once made; shared by every copy of its node.
struct Body {
  Graph graph;
  int depth = 1;  // 1 + the deepest body nested inside it
  // The body compiled once, on first use (plan/subgraph.cpp), by every plan and thread.
  mutable std::once_flag compile_once;
  mutable std::shared_ptr<const CompiledModel> compiled;
};

// Nesting bound for bodies inside bodies: each level runs on the C stack of the caller.
constexpr int kMaxBodyDepth = 32;
// A body over `graph`: its depth checked against kMaxBodyDepth (InputError).
BodyPtr make_body(Graph graph);

ElementType type_from_name(const std::string& name);

}  // namespace aiov
