// Weights derived from a compiled model's constants (packed GEMM panels, transformed
// filters), shared by all of its shape plans: a new input shape plans new activations but
// does not copy the weights again. A compiled model read from a blob starts with the entries
// its exporter had (restore), so it does not pack them again either.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "plan/packed_weights.hpp"

namespace aiov {

class SharedWeights {
 public:
  // An entry as a blob stores it: its source, recipe and kind, and the weights.
  struct Stored {
    const void* source = nullptr;
    std::string recipe;
    WeightsKind kind = WeightsKind::packed_b;
    std::shared_ptr<const void> weights;
  };

  // What `make` builds from the constant bytes at `source`. `recipe` names the call site
  // (so the type) and every parameter other than the source that shapes the result. The
  // entry lives while a plan holds it; the source must outlive this cache. An entry restored
  // from a blob is taken instead of making one when its kind is T's and `fits` accepts it
  // (the caller checks the dimensions it relies on: the blob is untrusted).
  template <class T, class Make, class Fits>
  std::shared_ptr<const T> get(const void* source, const std::string& recipe, Make&& make, Fits&& fits) {
    const Key key{source, recipe};
    std::shared_ptr<const void> restored;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = entries_.find(key);
      if (it != entries_.end())
        if (auto held = it->second.held.lock()) return std::static_pointer_cast<const T>(held);
      auto r = restored_.find(key);
      if (r != restored_.end()) {
        if (r->second.kind == weights_kind(static_cast<const T*>(nullptr))) restored = std::move(r->second.weights);
        restored_.erase(r);
      }
    }
    std::shared_ptr<const T> made = std::static_pointer_cast<const T>(restored);
    if (made && !fits(*made)) made.reset();  // dimensions that do not fit: packed again
    const bool was_restored = made != nullptr;
    if (!made) made = make();  // outside the lock: packing takes a while
    std::lock_guard<std::mutex> lock(mutex_);
    ++(was_restored ? restored_taken_ : made_);
    for (auto it = entries_.begin(); it != entries_.end();)  // drop what evicted plans released
      it = it->second.held.expired() ? entries_.erase(it) : std::next(it);
    auto& slot = entries_[key];
    if (auto held = slot.held.lock()) return std::static_pointer_cast<const T>(held);  // another plan was first
    slot.held = made;
    slot.kind = weights_kind(static_cast<const T*>(nullptr));
    slot.save = save_as<T>;
    return made;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t live = 0;
    for (const auto& e : entries_) live += !e.second.held.expired();
    return live;
  }

  // The live entries and the restored ones no plan took yet, for a blob, with how to write each.
  using Save = void (*)(const void*, ByteWriter&);
  void each(const std::function<void(const Stored&, Save)>& visit) const {
    std::vector<std::pair<Stored, Save>> live;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [key, e] : entries_)
        if (auto held = e.held.lock()) live.push_back({Stored{key.first, key.second, e.kind, held}, e.save});
      for (const auto& [key, r] : restored_) live.push_back({r, save_of(r.kind)});
    }
    for (const auto& [stored, save] : live)
      if (save) visit(stored, save);
  }

  // Entries read from a blob, offered to get() before it makes any (each taken once).
  void restore(std::vector<Stored> stored) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Stored& s : stored) restored_[Key{s.source, s.recipe}] = std::move(s);
  }

  // Restored entries no plan took (a static model's only plan is built): let go.
  void drop_restored() {
    std::lock_guard<std::mutex> lock(mutex_);
    restored_.clear();
  }

  // How many entries were made (packed) and how many were taken from a blob instead.
  size_t made() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return made_;
  }
  size_t restored() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return restored_taken_;
  }

 private:
  template <class T>
  static void save_as(const void* w, ByteWriter& out) {
    save_weights(*static_cast<const T*>(w), out);
  }
  static Save save_of(WeightsKind kind) {
    switch (kind) {
      case WeightsKind::packed_b:
        return save_as<PackedB>;
      case WeightsKind::group_panels:
        return save_as<GroupPanels>;
      case WeightsKind::winograd:
        return save_as<WinogradFilters>;
      case WeightsKind::packed_int8:
        return save_as<PackedInt8B>;
      case WeightsKind::floats:
        return save_as<FloatWeights>;
      case WeightsKind::grouped_int8:
        return save_as<GroupedInt8Panels>;
    }
    return nullptr;
  }
  using Key = std::pair<const void*, std::string>;
  struct Entry {
    std::weak_ptr<const void> held;
    WeightsKind kind = WeightsKind::packed_b;
    Save save = nullptr;
  };
  mutable std::mutex mutex_;
  std::map<Key, Entry> entries_;
  std::map<Key, Stored> restored_;
  size_t made_ = 0, restored_taken_ = 0;
};

}  // namespace aiov
