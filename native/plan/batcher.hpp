// Automatic batching: requests of one compiled model that wait at the same time are joined
// along axis 0 into one inference on a batch model, and each gets its own rows back.
//
// A member request hands its job to the batcher instead of the pool. At most `max_in_flight`
// drivers run at once; a driver (a pool worker, or a thread calling infer) takes what waits
// in the queue (up to max_batch rows of members whose inputs agree on every axis but 0 and
// the padded ones), runs it and scatters the outputs. A member that finds a driver slot free
// starts one at once, so an idle engine runs a lone request without waiting. Workers never
// touch Python objects: members, ports and buffers are C++-owned.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "executor/executor.hpp"
#include "plan/compiled.hpp"

namespace aiov {

class Request;

struct BatchOptions {
  int64_t max_batch = 1;   // rows of one batch
  int64_t timeout_ms = 0;  // a partial batch waits this long for more, only while another runs
  int max_in_flight = 0;   // batches running at once (0: one per pool worker)
  struct Pad {             // an axis of an input along which members may differ in length
    int input = 0, axis = 0;
    std::vector<uint8_t> value;  // one element, the fill of the padding
  };
  std::vector<Pad> pads;
};

struct BatchStats {
  uint64_t batches = 0;         // inferences run (a batch of one member included)
  uint64_t members = 0;         // member jobs that ran in them
  uint64_t retried = 0;         // members re-run alone after their batch failed
  uint64_t cancelled = 0;       // members cancelled before their batch ran
  std::vector<uint64_t> sizes;  // sizes[k]: batches of k members
};

class Batcher : public std::enable_shared_from_this<Batcher> {
 public:
  // `model` runs the batches: its inputs take any size on axis 0.
  Batcher(std::shared_ptr<const CompiledModel> model, BatchOptions options);
  // `member` has begun (status running). Ends it later on some driver; pushes `token` to
  // `port` (if any) once it has.
  void submit(std::shared_ptr<Request> member, std::shared_ptr<CompletionPort> port, uint64_t token);
  // As submit, then drives batches on the calling thread until `member` has ended.
  void run_inline(std::shared_ptr<Request> member);
  BatchStats stats() const;
  void set_timeout_ms(int64_t ms);
  int64_t max_batch() const { return options_.max_batch; }

 private:
  struct Entry {
    std::shared_ptr<Request> member;
    std::shared_ptr<CompletionPort> port;
    uint64_t token = 0;
  };
  // One batch from the queue (under the lock); members cancelled while queued go to `dropped`.
  void take(std::unique_lock<std::mutex>& lock, std::vector<Entry>& batch, std::vector<Entry>& dropped);
  // Takes and runs one batch on this thread; false (and the driver slot given up) if none waited.
  bool step();
  // A driver that ran a batch: keeps driving on the pool if more waits, else frees its slot.
  void hand_on();
  void drive();
  void run(std::vector<Entry>& batch);
  // Adds `jobs` that ran as one joined batch, or each alone (retried if there were several).
  void count(size_t jobs, bool joined);
  bool run_joined(std::vector<Entry>& batch, double* ms);
  bool compatible(const Request& a, const Request& b) const;
  int64_t rows(const Request& r) const;
  // A member's own length of the padded input axis whose batch extent is `extent` (an output
  // axis that long is cut back to it); `extent` when no padded axis is that long.
  int64_t padded_length(const Request& member, const Request& joined, int64_t extent) const;
  std::shared_ptr<Request> spare();
  void end(Entry& e);

  std::shared_ptr<const CompiledModel> model_;
  BatchOptions options_;
  std::atomic<int64_t> timeout_ms_{0};
  std::vector<std::vector<const BatchOptions::Pad*>> pads_of_;  // per input
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;
  int in_flight_ = 0;   // driver slots taken
  int running_ = 0;     // drivers running a batch right now
  bool solo_ = false;   // a batch's outputs had no batch axis: every job runs alone from then on
  uint64_t ended_ = 0;  // batches ended (a waiting partial batch stops waiting when it moves)
  std::vector<std::shared_ptr<Request>> spares_;  // idle batch requests
  BatchStats stats_;
};

}  // namespace aiov
