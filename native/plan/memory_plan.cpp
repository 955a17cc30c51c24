#include "plan/memory_plan.hpp"

#include <algorithm>

#include "plan/registry.hpp"

namespace aiov {

namespace {

// Best-fit allocator over one arena; offsets are 64-byte aligned.
class ArenaPlanner {
 public:
  size_t alloc(size_t bytes) {
    bytes = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->second >= bytes && (best == free_.end() || it->second < best->second)) best = it;
    if (best != free_.end()) {
      size_t off = best->first, size = best->second;
      free_.erase(best);  // before push_back, which may invalidate iterators
      if (size > bytes) free_.push_back({off + bytes, size - bytes});
      return off;
    }
    size_t off = top_;
    top_ += bytes;
    return off;
  }
  void release(size_t off, size_t bytes) {
    bytes = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    free_.push_back({off, bytes});
    // Merge neighbours so large later tensors can reuse the space.
    std::sort(free_.begin(), free_.end());
    std::vector<std::pair<size_t, size_t>> merged;
    for (auto& f : free_) {
      if (!merged.empty() && merged.back().first + merged.back().second == f.first)
        merged.back().second += f.second;
      else
        merged.push_back(f);
    }
    free_.swap(merged);
    if (!free_.empty() && free_.back().first + free_.back().second == top_) {
      top_ = free_.back().first;
      free_.pop_back();
    }
  }
  size_t peak() const { return peak_; }
  void touch() { peak_ = std::max(peak_, top_); }

 private:
  std::vector<std::pair<size_t, size_t>> free_;
  size_t top_ = 0;
  size_t peak_ = 0;
};

}  // namespace

void place_outputs(ShapePlan& plan, const std::vector<int>& alias_root) {
  std::vector<bool> root_is_output(plan.values.size(), false);
  // A Concat whose parts are written in place stays in the arena (the output buffer holds
  // no room for slices): its views that are outputs are copied.
  for (size_t v = 0; v < plan.values.size(); ++v)
    if (plan.values[v].in_slice) root_is_output[alias_root[v]] = true;
  for (size_t j = 0; j < plan.output_values.size(); ++j) {
    const int v = plan.output_values[j], r = alias_root[v];
    // A view of an arena value (a Reshape or same-type Convert on a model output) puts that
    // value itself in the output buffer, written there by its step, when it is not another
    // output already and fills the buffer exactly: no copy after the steps.
    ValueSlot& s = plan.values[r];
    const bool owns =
        s.kind == ValueSlot::kArena && !root_is_output[r] &&
        (r == v || byte_size(s.type, numel(s.shape)) == byte_size(plan.values[v].type, numel(plan.values[v].shape)));
    if (owns) {
      s.kind = ValueSlot::kOutput;
      s.index = (int64_t)j;
      root_is_output[r] = true;
    } else {
      plan.output_copies.push_back({v, (int)j});
    }
  }
  // Aliases of an output value read the output buffer.
  for (size_t v = 0; v < plan.values.size(); ++v) {
    int r = alias_root[v];
    if (r != (int)v && plan.values[r].kind == ValueSlot::kOutput && plan.values[v].kind == ValueSlot::kArena) {
      plan.values[v].kind = ValueSlot::kOutput;
      plan.values[v].index = plan.values[r].index;
    }
  }
}

void plan_arena(ShapePlan& plan, const std::vector<int>& alias_root) {
  const OpRegistry& reg = OpRegistry::instance();
  // Liveness over storage roots.
  std::vector<int> last_use(plan.values.size(), -1);
  for (size_t si = 0; si < plan.steps.size(); ++si) {
    for (int v : plan.steps[si].ins) last_use[alias_root[v]] = std::max(last_use[alias_root[v]], (int)si);
    for (int v : plan.steps[si].outs) last_use[alias_root[v]] = std::max(last_use[alias_root[v]], (int)si);
  }
  for (auto& c : plan.output_copies) last_use[alias_root[c.first]] = (int)plan.steps.size();
  for (int v : plan.live_out) last_use[alias_root[v]] = (int)plan.steps.size();
  ArenaPlanner arena;
  std::vector<size_t> root_offset(plan.values.size(), 0);
  auto root_bytes = [&](int r) { return byte_size(plan.values[r].type, numel(plan.values[r].shape)); };
  // An input dying at a step whose kernel may write over it (OpDef::reuses_input) hands its
  // memory to the output: no new buffer, and the output is written where the input was just
  // read, still in cache. Not when another input of the step shares that memory.
  std::vector<bool> handed_over(plan.values.size(), false);
  auto donor_for = [&](size_t si, int out) -> int {
    const Step& st = plan.steps[si];
    const int j = reg.get(st.node->op).reuses_input;
    if (j < 0 || j >= (int)st.ins.size() || st.outs.size() != 1) return -1;
    const int r = alias_root[st.ins[j]];
    if (plan.values[r].kind != ValueSlot::kArena || last_use[r] != (int)si || handed_over[r]) return -1;
    if (root_bytes(r) != root_bytes(out)) return -1;
    for (size_t i = 0; i < st.ins.size(); ++i)
      if ((int)i != j && alias_root[st.ins[i]] == r) return -1;
    return r;
  };
  // A root is placed at the first step that writes it: its own step, or the first of a
  // Concat's parts written in place (PlanValues: ValueSlot::in_slice), before the Concat's.
  std::vector<bool> placed(plan.values.size(), false);
  for (size_t si = 0; si < plan.steps.size(); ++si) {
    for (int v : plan.steps[si].outs) {
      const int r = alias_root[v];
      if (placed[r] || plan.values[r].kind != ValueSlot::kArena) continue;
      if (r != v && !plan.values[v].in_slice) continue;  // a view: its root is placed already
      placed[r] = true;
      const int donor = r == v ? donor_for(si, v) : -1;
      if (donor >= 0) {
        handed_over[donor] = true;
        root_offset[v] = root_offset[donor];
        continue;
      }
      root_offset[r] = arena.alloc(root_bytes(r));
      arena.touch();
    }
    std::vector<int> dying;
    for (int v : plan.steps[si].ins) dying.push_back(alias_root[v]);
    for (int v : plan.steps[si].outs) dying.push_back(alias_root[v]);
    std::sort(dying.begin(), dying.end());
    dying.erase(std::unique(dying.begin(), dying.end()), dying.end());
    for (int r : dying)
      if (last_use[r] == (int)si && plan.values[r].kind == ValueSlot::kArena && !handed_over[r])
        arena.release(root_offset[r], root_bytes(r));
  }
  plan.arena_bytes = arena.peak();
  for (size_t v = 0; v < plan.values.size(); ++v) {
    ValueSlot& s = plan.values[v];
    int r = alias_root[v];
    const ValueSlot& rs = plan.values[r];
    if (s.kind == ValueSlot::kArena) s.offset = root_offset[r] + s.slice_offset;
    if ((int)v != r && rs.kind != ValueSlot::kArena && rs.kind != ValueSlot::kOutput) {
      // Alias of an input or a constant: same memory, another shape.
      s.kind = rs.kind;
      s.index = rs.index;
      s.constant = rs.constant;
    }
  }
}

}  // namespace aiov
