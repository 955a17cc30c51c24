// Worker pool, intra-op parallel_for, and completion ports.
// Workers never touch Python objects: jobs are plain C++ closures over engine state.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace aiov {

class ThreadPool {
 public:
  explicit ThreadPool(int workers);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return (int)threads_.size(); }
  // Queue a job. Exceptions escaping a job are swallowed: callers wrap jobs
  // with their own per-job status (see Request), so a worker never dies.
  void submit(std::function<void()> job);
  // Run fn(begin, end) over [0, n) split into chunks of at least `grain`.
  // The calling thread takes part; idle workers help. At most `max_threads`
  // threads work on it (0 = whole pool + caller). Rethrows the first exception.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int64_t, int64_t)>& fn, int max_threads = 0);
  // Jobs queued or running (not counting parallel_for helpers).
  int64_t pending() const { return pending_.load(std::memory_order_relaxed); }

 private:
  void worker_loop();
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable cv_;
  // Helpers for parallel_for run before new jobs: finishing started work first
  // keeps latency low and bounds memory in flight.
  std::deque<std::function<void()>> helpers_;
  std::deque<std::function<void()>> jobs_;
  std::atomic<int64_t> pending_{0};
  bool stopping_ = false;
};

// The process-wide pool (created on first use). Size: AIOV_NUM_THREADS or one
// worker per core. set_default_pool_size only has effect before first use.
ThreadPool& default_pool();
bool set_default_pool_size(int workers);
int hardware_threads();

// A queue of finished job tokens plus an eventfd. A producer signals the fd only
// on the empty -> non-empty edge; a consumer drains every token in one call.
class CompletionPort {
 public:
  CompletionPort();
  ~CompletionPort();
  CompletionPort(const CompletionPort&) = delete;
  CompletionPort& operator=(const CompletionPort&) = delete;

  int fd() const { return fd_; }
  void push(uint64_t token);
  // Non-blocking: every token queued so far (possibly none); clears the fd.
  std::vector<uint64_t> drain();
  // Blocks until a token arrives, the port is closed, or timeout_ms passes
  // (negative = forever). Returns what was drained (empty on timeout/close).
  std::vector<uint64_t> wait_drain(int64_t timeout_ms);
  // Wakes blocked waiters for good; later pushes are still queued.
  void close();
  bool closed() const { return closed_.load(); }

 private:
  int fd_ = -1;
  std::mutex mutex_;
  std::vector<uint64_t> tokens_;
  std::atomic<bool> closed_{false};
};

}  // namespace aiov
