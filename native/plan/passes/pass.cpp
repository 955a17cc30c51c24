#include "plan/passes/pass.hpp"

#include <algorithm>

#include "plan/passes/matchers.hpp"

namespace aiov {

using passes::same;

PassContext::PassContext(const Graph& src) { clone(src); }

void PassContext::clone(const Graph& src) {
  std::unordered_map<const Node*, NodePtr> copy;
  for (const NodePtr& n : src.topological_order()) {
    auto c = std::make_shared<Node>(*n);
    for (Value& in : c->inputs) in.node = copy.at(in.node.get());
    copy[n.get()] = c;
  }
  for (const NodePtr& p : src.parameters) {
    auto it = copy.find(p.get());
    g_.parameters.push_back(it != copy.end() ? it->second : p);
  }
  for (const Value& o : src.outputs) g_.outputs.push_back(Value{copy.at(o.node.get()), o.index});
  for (const NodePtr& s : src.sinks) g_.sinks.push_back(copy.at(s.get()));
  refresh();
}

void PassContext::refresh() {
  order_ = g_.topological_order();
  users_.clear();
  output_refs_.clear();
  live_.clear();
  for (const NodePtr& n : order_) {
    live_.insert(n.get());
    for (const Value& in : n->inputs) users_[in.node.get()].push_back(n.get());
  }
  for (const Value& o : g_.outputs) ++output_refs_[o.node.get()];
  for (const NodePtr& s : g_.sinks) ++output_refs_[s.get()];  // kept, though nothing reads them
}

const std::vector<Node*>& PassContext::users(const Node& n) const {
  static const std::vector<Node*> none;
  auto it = users_.find(&n);
  return it == users_.end() ? none : it->second;
}

Node* PassContext::sole_user(const Node& n) const {
  const std::vector<Node*>& us = users(n);
  if (us.size() != 1 || output_refs_.count(&n)) return nullptr;
  return us[0];
}

// Counts the uses of a node a rewrite wired in, and of the new nodes behind it.
void PassContext::adopt(Node* root) {
  std::vector<Node*> todo{root};
  while (!todo.empty()) {
    Node* n = todo.back();
    todo.pop_back();
    if (!live_.insert(n).second) continue;
    for (const Value& in : n->inputs) {
      users_[in.node.get()].push_back(n);
      if (!live_.count(in.node.get())) todo.push_back(in.node.get());
    }
  }
}

void PassContext::unuse(const Value& v, Node* user) {
  std::vector<Node*>& us = users_[v.node.get()];
  auto it = std::find(us.begin(), us.end(), user);
  if (it != us.end()) us.erase(it);
}

// A node nothing reads any more leaves the graph, and so, in turn, may its inputs.
void PassContext::drop_if_unused(const Node* first) {
  std::vector<const Node*> todo{first};
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    if (!live_.count(n) || output_refs_.count(n)) continue;
    auto it = users_.find(n);
    if (it != users_.end() && !it->second.empty()) continue;
    if (std::any_of(g_.parameters.begin(), g_.parameters.end(), [&](const NodePtr& p) { return p.get() == n; }))
      continue;
    live_.erase(n);
    for (const Value& in : n->inputs) {
      unuse(in, const_cast<Node*>(n));
      todo.push_back(in.node.get());
    }
  }
}

void PassContext::replace(const Value& from, const Value& to) {
  // The readers as they are now: new nodes behind `to` may read `from` themselves.
  std::vector<Node*> readers = users_[from.node.get()];
  std::sort(readers.begin(), readers.end());
  readers.erase(std::unique(readers.begin(), readers.end()), readers.end());
  adopt(to.node.get());
  for (Node* r : readers)
    for (Value& in : r->inputs)
      if (same(in, from)) {
        in = to;
        unuse(from, r);
        users_[to.node.get()].push_back(r);
      }
  for (Value& o : g_.outputs)
    if (same(o, from)) {
      o = to;
      if (--output_refs_[from.node.get()] == 0) output_refs_.erase(from.node.get());
      ++output_refs_[to.node.get()];
    }
  drop_if_unused(from.node.get());
}

void PassContext::set_input(Node& n, size_t i, const Value& v) {
  const Value old = n.inputs.at(i);
  n.inputs[i] = v;
  if (!live_.count(&n)) return;
  adopt(v.node.get());
  users_[v.node.get()].push_back(&n);
  unuse(old, &n);
  drop_if_unused(old.node.get());
}

}  // namespace aiov
