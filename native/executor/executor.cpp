#include "executor/executor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__linux__)
#include <pthread.h>
#include <sys/eventfd.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>

#include "core/environment.hpp"

namespace aiov {

namespace {
// Workers may run below the caller's priority (AIOV_WORKER_NICE, default 0: the same). Measured
// (benchmarks/niceness.py, docs/configuration.md), a lower priority did not make the event loop
// more responsive, and it handed the cores to whatever else was busy: other processes, or
// another engine's threads in the same process (1.6-3.7x fewer inferences/s next to a
// spinning onnxruntime session).
// Read on the creating thread: a worker must never be the one to find a bad value.
int worker_nice() { return (int)env_int("AIOV_WORKER_NICE", 0); }

// `nice` levels below the niceness the thread inherited from its creator: setpriority takes
// an absolute value, which under a niced parent would otherwise raise the workers' priority.
void lower_worker_priority(int nice) {
  if (nice <= 0) return;
  const id_t tid = (id_t)::syscall(SYS_gettid);
  errno = 0;
  const int inherited = ::getpriority(PRIO_PROCESS, tid);  // -1 is a valid niceness: errno tells
  if (errno != 0) return;
  ::setpriority(PRIO_PROCESS, tid, std::min(inherited + nice, 19));
}
}  // namespace

int64_t worker_spin_ns() {
  static const int64_t ns = env_int("AIOV_WORKER_SPIN_US", 300) * 1000;
  return ns;
}

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Polls done() for up to spin_ns, yielding the core now and then so a thread that shares
// it (more runnable threads than cores) is not starved. True when done() held.
template <class Done>
bool spin_until(const Done& done, int64_t spin_ns) {
  if (spin_ns <= 0) return done();
  const int64_t deadline = now_ns() + spin_ns;
  for (int round = 1;; ++round) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (now_ns() > deadline) return done();
    if (round % 16 == 0) std::this_thread::yield();
  }
}
}  // namespace

ThreadPool::ThreadPool(int workers) {
  if (workers < 1) workers = 1;
  spin_ns_ = worker_spin_ns();
  const int nice = worker_nice();
  // The thread that calls parallel_for works too: spinning workers beyond the other cores
  // would only compete with it.
  max_spinners_ = std::max(0, std::min(workers, hardware_threads() - 1));
#if defined(__linux__)
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &allowed)) cpus_.push_back(c);
#endif
  threads_.reserve(workers);
  for (int i = 0; i < workers; ++i)
    threads_.emplace_back([this, nice] {
      lower_worker_priority(nice);
      worker_loop();
    });
}

void ThreadPool::pin_workers(bool pinned) {
#if defined(__linux__)
  if (cpus_.empty()) throw std::runtime_error("cannot pin workers: the CPUs this process may use are unknown");
  for (size_t i = 0; i < threads_.size(); ++i) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (pinned)
      CPU_SET(cpus_[i % cpus_.size()], &set);
    else
      for (int c : cpus_) CPU_SET(c, &set);
    const int rc = ::pthread_setaffinity_np(threads_[i].native_handle(), sizeof set, &set);
    if (rc != 0) throw std::runtime_error("cannot set the CPU affinity of a worker: " + std::string(std::strerror(rc)));
  }
#else
  if (pinned) throw std::runtime_error("pinning workers to CPUs is supported on Linux only");
#endif
}

std::vector<std::vector<int>> ThreadPool::worker_cpus() const {
  std::vector<std::vector<int>> out(threads_.size());
#if defined(__linux__)
  for (size_t i = 0; i < threads_.size(); ++i) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::pthread_getaffinity_np(const_cast<std::thread&>(threads_[i]).native_handle(), sizeof set, &set) != 0)
      continue;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) out[i].push_back(c);
  }
#else
  for (auto& cpus : out) cpus = cpus_;
#endif
  return out;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

// parallel_for's shared state, on the caller's stack: nothing is allocated per call. The
// range is cut into one lane per thread: a thread works through its own lane from the
// front, so the caller always takes the first part of a layer and each worker the same
// part as in the layer before, whose output its caches still hold (MobileNetV2's node
// times: 4021 -> 3656 us against one shared queue). A thread whose lane is empty takes
// work from the back of the fullest other lane.
struct ForState {
  // One cache line each: the caller's and a helper's claims must not contend for a line.
  struct alignas(64) Lane {
    std::mutex m;  // claims are few (each a quarter of what is left), so a lock is cheap
    int64_t front = 0, back = 0;
  };
  // Lanes live in the state up to this many threads (no allocation per call), beyond on the heap.
  static constexpr int kInlineLanes = 8;
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n, grain;
  int lane_count;
  Lane inline_lanes[kInlineLanes];
  std::unique_ptr<Lane[]> more_lanes;
  Lane* lanes;
  std::atomic<int> next_lane{1};  // lane 0 is the caller's
  // Helpers taken off the pool's queue and not yet out of work(): the caller returns (and
  // the state goes) only once this is 0 and no helper for it is left in the queue.
  std::atomic<int> active{0};
  // Units finished (or skipped after an error): every thread adds to it after each chunk
  // and the caller polls it, so it keeps off the lines of the read-only fields and lanes.
  alignas(64) std::atomic<int64_t> done{0};
  std::mutex m;
  std::condition_variable cv;
  std::exception_ptr error;
  std::atomic<bool> failed{false};

  ForState(const std::function<void(int64_t, int64_t)>& f, int64_t units, int64_t min_chunk, int threads)
      : fn(&f),
        n(units),
        grain(min_chunk),
        lane_count(threads),
        more_lanes(threads > kInlineLanes ? new Lane[(size_t)threads] : nullptr),
        lanes(more_lanes ? more_lanes.get() : inline_lanes) {
    for (int i = 0; i < threads; ++i) {
      lanes[i].front = n * i / threads;
      lanes[i].back = n * (i + 1) / threads;
    }
  }

  // A quarter of what is left in the lane (at least a grain): chunks shrink as the work
  // runs out, so the threads finish within about a grain of each other.
  int64_t chunk(int64_t left) const { return std::min(left, std::max(grain, (left + 3) / 4)); }

  bool claim_own(Lane& lane, int64_t& b, int64_t& e) {
    std::lock_guard<std::mutex> lock(lane.m);
    if (lane.front >= lane.back) return false;
    b = lane.front;
    e = lane.front = b + chunk(lane.back - b);
    return true;
  }

  bool steal(int64_t& b, int64_t& e) {
    for (;;) {
      Lane* fullest = nullptr;
      int64_t most = 0;
      for (int i = 0; i < lane_count; ++i) {
        Lane& lane = lanes[i];
        std::lock_guard<std::mutex> lock(lane.m);
        if (lane.back - lane.front > most) most = lane.back - lane.front, fullest = &lane;
      }
      if (!fullest) return false;
      std::lock_guard<std::mutex> lock(fullest->m);
      if (fullest->front >= fullest->back) continue;  // emptied meanwhile: look again
      e = fullest->back;
      b = fullest->back = e - chunk(e - fullest->front);
      return true;
    }
  }

  // Runs chunks until no lane has any left. Returns after the last one this thread ran.
  void work(int lane_index) {
    Lane* own = lane_index < lane_count ? &lanes[lane_index] : nullptr;
    int64_t b, e;
    while ((own && claim_own(*own, b, e)) || steal(b, e)) {
      if (!failed.load(std::memory_order_relaxed)) {
        try {
          (*fn)(b, e);
        } catch (...) {
          std::lock_guard<std::mutex> lock(m);
          if (!error) error = std::current_exception();
          failed = true;
        }
      }
      if (done.fetch_add(e - b, std::memory_order_acq_rel) + (e - b) == n) {
        std::lock_guard<std::mutex> lock(m);
        cv.notify_all();
      }
    }
  }
};

template <class Push>
void ThreadPool::enqueue(int count, const Push& push) {
  int wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    push();
    queued_.fetch_add(count, std::memory_order_release);
    // Spinners (counted under this lock) re-check the queues under it before sleeping, so
    // leaving them an item never loses a wake-up.
    wake = std::min(sleepers_, std::max(0, queued_.load(std::memory_order_relaxed) - spinners_.load()));
  }
  if (wake == 1)
    cv_.notify_one();
  else if (wake > 1)
    cv_.notify_all();
}

void ThreadPool::submit(std::function<void()> job) {
  pending_.fetch_add(1, std::memory_order_relaxed);
  enqueue(1, [&] { jobs_.push_back(std::move(job)); });
}

void ThreadPool::enqueue_helpers(ForState* region, int count) {
  enqueue(count, [&] { helpers_.insert(helpers_.end(), (size_t)count, region); });
}

bool ThreadPool::spin_for_work(int64_t ns) {
  return spin_until([this] { return queued_.load(std::memory_order_acquire) > 0; }, ns);
}

void ThreadPool::worker_loop() {
  bool just_worked = false;
  for (;;) {
    std::function<void()> task;
    ForState* region = nullptr;  // a parallel_for to help with
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto ready = [this] { return stopping_ || !helpers_.empty() || !jobs_.empty(); };
      // A worker that just finished a task watches for the next layer's work for a moment;
      // one that was idle already sleeps until notified.
      if (!ready() && just_worked && spinners_ < max_spinners_) {
        ++spinners_;
        // Helpers seen in the queue may be gone when the lock is ours (a parallel_for that
        // finished alone takes them back): then watch on for the rest of the spin.
        const int64_t deadline = now_ns() + spin_ns_;
        do {
          lock.unlock();
          spin_for_work(deadline - now_ns());
          lock.lock();
        } while (!ready() && now_ns() < deadline);
        --spinners_;
      }
      if (!ready()) {
        ++sleepers_;
        cv_.wait(lock, ready);
        --sleepers_;
      }
      if (!helpers_.empty()) {
        region = helpers_.front();
        helpers_.pop_front();
        // Counted under the lock the caller takes to withdraw its helpers: it waits for us.
        region->active.fetch_add(1, std::memory_order_relaxed);
      } else if (!jobs_.empty()) {
        task = std::move(jobs_.front());
        jobs_.pop_front();
      } else {
        return;  // stopping and drained
      }
      queued_.fetch_sub(1, std::memory_order_relaxed);
    }
    just_worked = true;
    if (region) {
      region->work(region->next_lane.fetch_add(1, std::memory_order_relaxed));  // catches its own errors
      region->active.fetch_sub(1, std::memory_order_release);                   // the last touch: the caller may return
      continue;
    }
    try {
      task();
    } catch (...) {
      // Jobs report their own status; nothing may unwind a worker.
    }
    pending_.fetch_sub(1, std::memory_order_relaxed);
  }
}

int ThreadPool::usable_threads(int max_threads) const {
  static const int cores = hardware_threads();  // cached: it may read sysfs
  int threads = std::min(size() + 1, cores);
  if (max_threads > 0) threads = std::min(threads, max_threads);
  return std::max(threads, 1);
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                              int max_threads) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int threads = usable_threads(max_threads);
  int64_t max_chunks = (n + grain - 1) / grain;
  if (threads <= 1 || max_chunks <= 1) {
    fn(0, n);
    return;
  }
  const int lanes = (int)std::min<int64_t>(threads, max_chunks);
  ForState st(fn, n, grain, lanes);
  enqueue_helpers(&st, lanes - 1);
  st.work(0);
  // The other chunks are already running: wait for them awake (a sleeping caller would pay
  // another wake-up), then sleep if they take long.
  if (!spin_until([&] { return st.done.load(std::memory_order_acquire) >= st.n; }, spin_ns_)) {
    std::unique_lock<std::mutex> lock(st.m);
    st.cv.wait(lock, [&] { return st.done.load(std::memory_order_acquire) >= st.n; });
  }
  // Every unit is done. Helpers still queued would find nothing: take them back. Those that
  // started are leaving work() (their lanes are empty): wait for them, then the state goes.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t before = helpers_.size();
    helpers_.erase(std::remove(helpers_.begin(), helpers_.end(), &st), helpers_.end());
    queued_.fetch_sub((int)(before - helpers_.size()), std::memory_order_relaxed);
  }
  spin_until([&] { return st.active.load(std::memory_order_acquire) == 0; }, int64_t{1} << 62);
  if (st.error) std::rethrow_exception(st.error);
}

void ThreadPool::parallel_for_units(int64_t n, double unit_ns, const std::function<void(int64_t, int64_t)>& fn,
                                    int max_threads) {
  if (n <= 0) return;
  unit_ns = std::max(unit_ns, 1e-3);
  if (n < 2 || unit_ns * (double)n < min_split_ns() || usable_threads(max_threads) <= 1) {
    fn(0, n);
    return;
  }
  const double grain = std::ceil(kMinChunkNs / unit_ns);
  parallel_for(n, grain >= (double)n ? n : std::max<int64_t>(1, (int64_t)grain), fn, max_threads);
}

namespace {
// The CPUs a cgroup quota allows (cgroup v2 cpu.max, else v1 cfs quota/period), rounded up;
// 0 when there is no quota or it cannot be read.
int cgroup_cpu_limit() {
  auto ceil_div = [](double quota, double period) {
    return quota > 0 && period > 0 ? (int)((quota + period - 1) / period) : 0;
  };
  {
    std::ifstream f("/sys/fs/cgroup/cpu.max");
    std::string quota;
    double period = 0;
    if (f >> quota >> period && quota != "max") return ceil_div(std::atof(quota.c_str()), period);
  }
  std::ifstream q("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), p("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double quota = 0, period = 0;
  if (q >> quota && p >> period) return ceil_div(quota, period);
  return 0;
}
}  // namespace

int hardware_threads() {
  static const int n = [] {
    unsigned cores = std::thread::hardware_concurrency();
    int n = cores ? (int)cores : 1;
#if defined(__linux__)
    // taskset / numactl / a container's cpuset: only these CPUs will ever run our threads.
    cpu_set_t set;
    if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) n = std::min(n, CPU_COUNT(&set));
#endif
    const int quota = cgroup_cpu_limit();
    if (quota > 0) n = std::min(n, quota);
    return std::max(n, 1);
  }();
  return n;
}

namespace {
std::mutex& g_pool_mutex = *new std::mutex;  // never destroyed: see keep_default_pool_at_exit
ThreadPool* g_pool = nullptr;
std::atomic<ThreadPool*> g_pool_made{nullptr};  // g_pool once made (set under g_pool_mutex)
std::atomic<bool> g_keep_pool{false};
// Destroyed with the process's statics: workers finish the queued jobs (which never need
// Python) and are joined, so no worker runs engine code during teardown.
struct PoolReaper {
  ~PoolReaper() {
    if (!g_keep_pool.load()) delete g_pool;
  }
} g_pool_reaper;
int g_pool_size = 0;
}  // namespace

bool set_default_pool_size(int workers) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool) return false;
  g_pool_size = workers;
  return true;
}

void keep_default_pool_at_exit() { g_keep_pool.store(true); }

ThreadPool& default_pool() {
  // Every run asks for the pool: once made, it is read without the lock.
  if (ThreadPool* made = g_pool_made.load(std::memory_order_acquire)) return *made;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) {
    int n = g_pool_size;
    if (n <= 0) n = (int)env_int("AIOV_NUM_THREADS", 0);
    if (n <= 0) n = hardware_threads();
    g_pool = new ThreadPool(n);
    g_pool_made.store(g_pool, std::memory_order_release);
  }
  return *g_pool;
}

CompletionPort::CompletionPort() {
  const bool want_pipe = env_choice("AIOV_COMPLETION_PORT", "eventfd") == "pipe";
#if defined(__linux__)
  if (!want_pipe) {
    fd_ = wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd_ >= 0) return;
  }
#endif
  // Where there is no eventfd (or AIOV_COMPLETION_PORT=pipe): a non-blocking pipe whose read
  // end is the fd event loops watch; drain empties it.
  int ends[2];
  if (::pipe(ends) != 0) throw std::runtime_error("cannot create the completion pipe: errno " + std::to_string(errno));
  for (int end : ends) {
    ::fcntl(end, F_SETFL, ::fcntl(end, F_GETFL) | O_NONBLOCK);
    ::fcntl(end, F_SETFD, FD_CLOEXEC);
  }
  fd_ = ends[0];
  wake_fd_ = ends[1];
  is_pipe_ = true;
}

CompletionPort::~CompletionPort() {
  if (fd_ >= 0) ::close(fd_);
  if (wake_fd_ >= 0 && wake_fd_ != fd_) ::close(wake_fd_);
}

void CompletionPort::signal() {
  // An eventfd adds 8-byte counts; a pipe takes any byte. A full pipe already signals.
  uint64_t one = 1;
  ssize_t r;
  do {
    r = ::write(wake_fd_, &one, is_pipe_ ? 1 : sizeof one);
  } while (r < 0 && errno == EINTR);
}

void CompletionPort::clear() {
  uint64_t buf[8];
  ssize_t r;
  do {
    r = ::read(fd_, buf, is_pipe_ ? sizeof buf : sizeof buf[0]);
  } while ((r < 0 && errno == EINTR) || (is_pipe_ && r == (ssize_t)sizeof buf));
}

void CompletionPort::push(uint64_t token) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    was_empty = tokens_.empty();
    tokens_.push_back(token);
  }
  if (was_empty) signal();
}

std::vector<uint64_t> CompletionPort::drain() {
  std::vector<uint64_t> out;
  std::lock_guard<std::mutex> lock(mutex_);
  // Clear the fd under the lock: a push after the swap sees an empty queue and
  // signals again, so no token is ever left without a pending wake-up.
  clear();
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
    do {
      r = ::poll(&p, 1, wait_ms);
    } while (r < 0 && errno == EINTR);
    if (r == 0 && timeout_ms >= 0) return drain();
  }
}

void CompletionPort::close() {
  closed_ = true;
  signal();
}

}  // namespace aiov
