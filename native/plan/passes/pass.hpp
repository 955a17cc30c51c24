// The graph-pass interface: a pass is a name and a function that rewrites a graph through a
// PassContext. The passes, in the order they run, are AIOV_GRAPH_PASSES (plan/passes/passes.hpp).
#pragma once
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "plan/graph.hpp"

namespace aiov {

// A copy of a model's graph being rewritten, with its consumers kept current as it changes,
// so a pass can rewrite in one walk over the nodes instead of re-sorting after each change.
class PassContext {
 public:
  // Works on copies of src's nodes: the caller's graph is never touched.
  explicit PassContext(const Graph& src);

  Graph& graph() { return g_; }
  // Nodes in topological order as of the start of the current pass. Nodes a rewrite has made
  // unreachable stay listed (skip them with `live`); nodes it created are not listed.
  const std::vector<NodePtr>& order() const { return order_; }
  // The usual walk of a pass: rewrite(n) for each node of order() still live when the walk
  // gets to it; returns whether any call rewrote something (returned true).
  template <class Rewrite>
  bool rewrite_live(Rewrite&& rewrite) {
    bool changed = false;
    for (const NodePtr& n : order_)
      if (live(*n) && rewrite(n)) changed = true;
    return changed;
  }
  // Re-sorts and recounts; the pass driver calls it after each pass that changed the graph.
  void refresh();

  // Whether n still feeds an output of the graph.
  bool live(const Node& n) const { return live_.count(&n) != 0; }
  // The consumers of node n's outputs, one entry per input slot that reads one.
  const std::vector<Node*>& users(const Node& n) const;
  // The single consumer of node n's outputs, if there is exactly one use and it is not a
  // graph output (only then may n's result disappear into a fused op).
  Node* sole_user(const Node& n) const;
  // Every reader of `from` (nodes of the graph and graph outputs) reads `to` instead. Nodes
  // that lose their last reader leave the graph.
  void replace(const Value& from, const Value& to);
  // Node n (of the graph) reads `v` at input slot i.
  void set_input(Node& n, size_t i, const Value& v);

  static NodePtr shared(Node* n) { return n->shared_from_this(); }

 private:
  Graph g_;
  std::vector<NodePtr> order_;
  std::unordered_map<const Node*, std::vector<Node*>> users_;  // consumer per input slot
  std::unordered_map<const Node*, int> output_refs_;           // graph outputs per node
  std::unordered_set<const Node*> live_;                       // reachable from the outputs; their reads are in users_

  void clone(const Graph& src);
  void adopt(Node* n);
  void unuse(const Value& v, Node* user);
  void drop_if_unused(const Node* n);
};

struct Pass {
  const char* name;
  // Rewrites ctx's graph; returns whether anything changed.
  bool (*run)(PassContext& ctx);
};

// The optimizer's passes in the order they run.
const std::vector<Pass>& graph_passes();

}  // namespace aiov
