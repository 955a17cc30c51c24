// Weights derived from a compiled model's constants (packed GEMM panels, transformed
// filters), shared by all of its shape plans: a new input shape plans new activations but
// does not copy the weights again.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace aiov {

class SharedWeights {
 public:
  // What `make` builds from the constant bytes at `source`. `recipe` names the call site
  // (so the type) and every parameter other than the source that shapes the result. The
  // entry lives while a plan holds it; the source must outlive this cache.
  template <class T, class Make>
  std::shared_ptr<const T> get(const void* source, const std::string& recipe, Make&& make) {
    const Key key{source, recipe};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = entries_.find(key);
      if (it != entries_.end())
        if (auto held = it->second.lock()) return std::static_pointer_cast<const T>(held);
    }
    std::shared_ptr<const T> made = make();  // outside the lock: packing takes a while
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();)  // drop what evicted plans released
      it = it->second.expired() ? entries_.erase(it) : std::next(it);
    auto& slot = entries_[key];
    if (auto held = slot.lock()) return std::static_pointer_cast<const T>(held);  // another plan was first
    slot = made;
    return made;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t live = 0;
    for (const auto& e : entries_) live += !e.second.expired();
    return live;
  }

 private:
  using Key = std::pair<const void*, std::string>;
  mutable std::mutex mutex_;
  std::map<Key, std::weak_ptr<const void>> entries_;
};

}  // namespace aiov
