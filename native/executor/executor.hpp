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

struct ForState;  // parallel_for's shared state (executor.cpp)

class ThreadPool {
 public:
  explicit ThreadPool(int workers);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return (int)threads_.size(); }
  // Threads a parallel_for may run on: the workers and the caller, at most one per core
  // (more would only preempt each other) and at most max_threads when that is > 0.
  int usable_threads(int max_threads = 0) const;
  // Queue a job. Exceptions escaping a job are swallowed: callers wrap jobs
  // with their own per-job status (see Request), so a worker never dies.
  void submit(std::function<void()> job);
  // Run fn(begin, end) over [0, n) split into chunks of at least `grain`. Each thread
  // starts on its own contiguous part (the caller on the first), in chunks that shrink
  // toward its end, then helps with the others' (so the threads finish together).
  // The calling thread takes part; idle workers help. At most `max_threads`
  // threads work on it (0 = whole pool + caller). Rethrows the first exception.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn, int max_threads = 0);
  // parallel_for over n units of about `unit_ns` each (one core's estimate): on the calling
  // thread alone when the whole is below min_split_ns(), else in chunks of at least
  // kMinChunkNs. For kernels whose units vary in size with the shapes (a plane, a product, a
  // head), where a fixed grain would hand a few microseconds of work to a sleeping worker.
  void parallel_for_units(int64_t n, double unit_ns, const std::function<void(int64_t, int64_t)>& fn,
                          int max_threads = 0);
  // The least work (ns on one core) worth splitting now: waking a sleeping worker takes
  // 20-40 us on a virtual machine and it starts with cold caches, while one still spinning
  // from the previous layer takes work at once.
  double min_split_ns() const { return worker_spinning() ? kMinSplitNsSpinning : kMinSplitNs; }
  static constexpr double kMinSplitNs = 20e3;
  static constexpr double kMinSplitNsSpinning = 5e3;
  static constexpr double kMinChunkNs = 5e3;  // a chunk smaller than this costs more to hand out than it saves
  // Pinned: worker i runs only on the i-th CPU the process may use (round robin); else every
  // worker may run on all of them (the default). Throws where threads cannot be pinned.
  void pin_workers(bool pinned);
  // The CPUs each worker may run on now.
  std::vector<std::vector<int>> worker_cpus() const;
  // Jobs queued or running (not counting parallel_for helpers).
  int64_t pending() const { return pending_.load(std::memory_order_relaxed); }
  // Some worker is watching for work right now (it finished a task moments ago): work
  // handed over is taken within a microsecond, with no wake-up to pay.
  bool worker_spinning() const { return spinners_.load(std::memory_order_relaxed) > 0; }

 private:
  void worker_loop();
  // Runs push() (queueing `count` items) under mutex_ and wakes sleeping workers unless
  // spinning ones will take the items.
  template <class Push>
  void enqueue(int count, const Push& push);
  // Queues `count` helpers for a parallel_for; each takes a lane of `region`.
  void enqueue_helpers(ForState* region, int count);
  // Watches for queued work for up to `ns` (unlocked); true when some appeared.
  bool spin_for_work(int64_t ns);
  std::vector<std::thread> threads_;
  std::vector<int> cpus_;  // the CPUs the process could use when the pool was made
  // The lock and the counter spinning workers poll get lines of their own: a worker's poll
  // must not pull the lock's line from the thread that is handing it work.
  alignas(64) std::mutex mutex_;
  std::condition_variable cv_;
  // Helpers for parallel_for run before new jobs: finishing started work first
  // keeps latency low and bounds memory in flight.
  std::deque<ForState*> helpers_;
  std::deque<std::function<void()>> jobs_;
  std::atomic<int64_t> pending_{0};
  alignas(64) std::atomic<int> queued_{0};  // helpers_ + jobs_ sizes, readable without the mutex
  int sleepers_ = 0;                        // workers blocked on cv_ (guarded by mutex_)
  std::atomic<int> spinners_{0};            // workers watching queued_ (changed under mutex_)
  int max_spinners_ = 0;
  int64_t spin_ns_ = 0;
  bool stopping_ = false;
};

// How long a thread that just finished parallel work keeps watching for more before it
// sleeps (AIOV_WORKER_SPIN_US, default 300 us): waking a sleeping thread takes 20-40 us on
// a virtual machine, longer than many layers last.
int64_t worker_spin_ns();

// The process-wide pool (created on first use). Size: AIOV_NUM_THREADS or one
// worker per core. set_default_pool_size only has effect before first use.
ThreadPool& default_pool();
bool set_default_pool_size(int workers);
// The process exits while threads may still be inside the engine: the default pool is not
// destroyed with the statics (its workers end with the process).
void keep_default_pool_at_exit();
int hardware_threads();

// A queue of finished job tokens plus an eventfd (a pipe where there is none). A producer signals the fd only
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
  // "eventfd" or "pipe" (the portable fallback).
  const char* kind() const { return is_pipe_ ? "pipe" : "eventfd"; }

 private:
  void signal();
  void clear();

  int fd_ = -1;       // what event loops watch
  int wake_fd_ = -1;  // what producers write (the same eventfd, or the pipe's write end)
  bool is_pipe_ = false;
  std::mutex mutex_;
  std::vector<uint64_t> tokens_;
  std::atomic<bool> closed_{false};
};

}  // namespace aiov
