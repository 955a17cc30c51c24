#include "executor/executor.hpp"

#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

namespace aiov {

namespace {
// Workers run slightly below normal priority (AIOV_WORKER_NICE, default 2): when inference
// saturates every core, the application's own threads (its event loop above all) still get
// the CPU as soon as they wake. Without contention it changes nothing.
void lower_worker_priority() {
  const char* env = std::getenv("AIOV_WORKER_NICE");
  int nice = env ? std::atoi(env) : 2;
  if (nice > 0) ::setpriority(PRIO_PROCESS, (id_t)::syscall(SYS_gettid), nice);
}
}  // namespace

ThreadPool::ThreadPool(int workers) {
  if (workers < 1) workers = 1;
  threads_.reserve(workers);
  for (int i = 0; i < workers; ++i)
    threads_.emplace_back([this] {
      lower_worker_priority();
      worker_loop();
    });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::submit(std::function<void()> job) {
  pending_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void ThreadPool::worker_loop() {
  for (;;) {
    std::function<void()> task;
    bool is_job = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !helpers_.empty() || !jobs_.empty(); });
      if (!helpers_.empty()) {
        task = std::move(helpers_.front());
        helpers_.pop_front();
      } else if (!jobs_.empty()) {
        task = std::move(jobs_.front());
        jobs_.pop_front();
        is_job = true;
      } else {
        return;  // stopping and drained
      }
    }
    try {
      task();
    } catch (...) {
      // Jobs report their own status; nothing may unwind a worker.
    }
    if (is_job) pending_.fetch_sub(1, std::memory_order_relaxed);
  }
}

namespace {
struct ForState {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n, chunk, chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex m;
  std::condition_variable cv;
  std::exception_ptr error;
  std::atomic<bool> failed{false};

  // Take chunks until none is left. Returns after the last one this thread ran.
  void work() {
    for (;;) {
      int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks) return;
      if (!failed.load(std::memory_order_relaxed)) {
        int64_t b = c * chunk, e = std::min(n, b + chunk);
        try {
          (*fn)(b, e);
        } catch (...) {
          std::lock_guard<std::mutex> lock(m);
          if (!error) error = std::current_exception();
          failed = true;
        }
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(m);
        cv.notify_all();
      }
    }
  }
};
}  // namespace

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn, int max_threads) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int threads = size() + 1;
  if (max_threads > 0) threads = std::min(threads, max_threads);
  int64_t max_chunks = (n + grain - 1) / grain;
  if (threads <= 1 || max_chunks <= 1) {
    fn(0, n);
    return;
  }
  // A few chunks per thread balance uneven progress without much overhead.
  int64_t chunks = std::min<int64_t>(max_chunks, (int64_t)threads * 4);
  auto st = std::make_shared<ForState>();
  st->fn = &fn;
  st->n = n;
  st->chunk = (n + chunks - 1) / chunks;
  st->chunks = (n + st->chunk - 1) / st->chunk;
  int helpers = (int)std::min<int64_t>(threads - 1, st->chunks - 1);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // A helper holds the state alive; `fn` is only dereferenced while chunks
    // remain, and the caller does not return until every chunk is done.
    for (int i = 0; i < helpers; ++i) helpers_.push_back([st] { st->work(); });
  }
  if (helpers == 1) cv_.notify_one(); else cv_.notify_all();
  st->work();
  if (st->done.load(std::memory_order_acquire) < st->chunks) {
    // Brief spin first (other chunks are already running), then sleep: long spins steal the
    // core an event loop thread may need.
    for (int spin = 0; spin < 64 && st->done.load(std::memory_order_acquire) < st->chunks; ++spin)
      std::this_thread::yield();
    std::unique_lock<std::mutex> lock(st->m);
    st->cv.wait(lock, [&] { return st->done.load(std::memory_order_acquire) >= st->chunks; });
  }
  if (st->error) std::rethrow_exception(st->error);
}

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? (int)n : 1;
}

namespace {
std::mutex g_pool_mutex;
std::unique_ptr<ThreadPool> g_pool;
int g_pool_size = 0;
}  // namespace

bool set_default_pool_size(int workers) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool) return false;
  g_pool_size = workers;
  return true;
}

ThreadPool& default_pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) {
    int n = g_pool_size;
    if (n <= 0) {
      const char* env = std::getenv("AIOV_NUM_THREADS");
      n = env ? std::atoi(env) : 0;
    }
    if (n <= 0) n = hardware_threads();
    // Destroyed with the process's statics: workers finish the queued jobs (which never
    // need Python) and are joined, so no worker runs engine code during teardown.
    g_pool.reset(new ThreadPool(n));
  }
  return *g_pool;
}

CompletionPort::CompletionPort() {
  fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error("eventfd failed: errno " + std::to_string(errno));
}

CompletionPort::~CompletionPort() {
  if (fd_ >= 0) ::close(fd_);
}

void CompletionPort::push(uint64_t token) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    was_empty = tokens_.empty();
    tokens_.push_back(token);
  }
  if (was_empty) {
    uint64_t one = 1;
    ssize_t r;
    do { r = ::write(fd_, &one, sizeof one); } while (r < 0 && errno == EINTR);
  }
}

std::vector<uint64_t> CompletionPort::drain() {
  std::vector<uint64_t> out;
  std::lock_guard<std::mutex> lock(mutex_);
  // Clear the fd under the lock: a push after the swap sees an empty queue and
  // signals again, so no token is ever left without a pending wake-up.
  uint64_t v;
  ssize_t r;
  do { r = ::read(fd_, &v, sizeof v); } while (r < 0 && errno == EINTR);
  out.swap(tokens_);
  return out;
}

std::vector<uint64_t> CompletionPort::wait_drain(int64_t timeout_ms) {
  // Several consumers may wait on one port: a wake-up whose tokens another consumer
  // took is absorbed here, so callers only return with tokens, on close, or on timeout.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    std::vector<uint64_t> out = drain();
    if (!out.empty() || closed_.load()) return out;
    int wait_ms = -1;
    if (timeout_ms >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return out;
      wait_ms = (int)left.count();
    }
    pollfd p{fd_, POLLIN, 0};
    int r;
    do { r = ::poll(&p, 1, wait_ms); } while (r < 0 && errno == EINTR);
    if (r == 0 && timeout_ms >= 0) return drain();
  }
}

void CompletionPort::close() {
  closed_ = true;
  uint64_t one = 1;
  ssize_t r;
  do { r = ::write(fd_, &one, sizeof one); } while (r < 0 && errno == EINTR);
}

}  // namespace aiov
