// GEMM threading policy: when a product is worth splitting over the pool, into how many
// chunks, and how a chunk of numbered (row tile, B panel) units maps back onto C.
#pragma once
#include <algorithm>
#include <cstdint>

#include "executor/executor.hpp"

namespace aiov {
namespace gemm_detail {

// Rough single-core cost of a piece of work, for deciding whether a split pays:
// ~100 GFLOP/s compute, ~80 GB/s for bytes streamed from L3.
inline double est_ns(double flops, double bytes) { return flops * 0.01 + bytes * 0.0125; }
// When a split pays is the pool's rule (ThreadPool::min_split_ns): a sleeping worker takes
// ~30 us to wake, one still spinning from the previous layer takes a chunk at once (an MLP's
// 64 x 1024 x 10: 27 -> 18 us).
constexpr double kMinChunkNs = ThreadPool::kMinChunkNs;

inline double min_parallel_ns(ThreadPool* pool) { return pool ? pool->min_split_ns() : ThreadPool::kMinSplitNs; }

inline int usable_threads(ThreadPool* pool, int max_threads) { return pool ? pool->usable_threads(max_threads) : 1; }

// Threads for a product of `flops`: one when it is too small to split.
inline int product_threads(ThreadPool* pool, int max_threads, double flops) {
  return est_ns(flops, 0) < min_parallel_ns(pool) ? 1 : usable_threads(pool, max_threads);
}

// Runs fn over [0, n) on up to `threads` threads in chunks of >= grain units.
template <class Fn>
void run_split(ThreadPool* pool, int threads, int64_t n, int64_t grain, const Fn& fn) {
  if (threads <= 1 || pool == nullptr || n <= grain) {
    fn(int64_t{0}, n);
    return;
  }
  pool->parallel_for(n, grain, [&](int64_t b, int64_t e) { fn(b, e); }, threads);
}

// Splits n units so each chunk costs >= kMinChunkNs; threads = 1 when the whole is below
// min_ns (min_parallel_ns).
struct Split {
  int threads;
  int64_t grain;
};
inline Split plan_split(int threads, int64_t units, double ns_per_unit, double min_ns) {
  const double total = ns_per_unit * (double)units;
  if (threads <= 1 || units <= 1 || total < min_ns) return {1, units};
  int64_t grain = (int64_t)(kMinChunkNs / std::max(ns_per_unit, 1e-3)) + 1;
  grain = std::max<int64_t>(1, std::min<int64_t>(grain, (units + threads - 1) / threads));
  return {threads, grain};
}

// Work handed out as units of one row tile against one B panel (parallel_for's shrinking
// chunks then end within a unit of each other). A chunk [u0, u1) of units numbered
// tile-major covers whole rows of tiles except maybe at its ends; fn(t0, t1, p0, p1) gets
// each piece of tiles [t0, t1) x panels [p0, p1).
template <class Fn>
void tile_major_pieces(int64_t u0, int64_t u1, int64_t np, const Fn& fn) {
  const int64_t t0 = u0 / np, t1 = u1 / np;
  if (t0 == t1) {
    fn(t0, t0 + 1, u0 % np, u1 % np);
    return;
  }
  int64_t full0 = t0;
  if (u0 % np) fn(t0, t0 + 1, u0 % np, np), ++full0;
  if (full0 < t1) fn(full0, t1, int64_t{0}, np);
  if (u1 % np) fn(t1, t1 + 1, int64_t{0}, u1 % np);
}

// The same numbered panel-major: each piece is a run of tiles against one panel.
template <class Fn>
void panel_major_pieces(int64_t u0, int64_t u1, int64_t mp, const Fn& fn) {
  for (int64_t u = u0; u < u1;) {
    const int64_t p = u / mp, t0 = u % mp, t1 = std::min(mp, t0 + (u1 - u));
    fn(t0, t1, p, p + 1);
    u += t1 - t0;
  }
}

// Whether a product's threads should each take whole row blocks against all of B (rather
// than share column ranges): with tall A, or with a B small enough that every thread
// reading all of it stays in cache (convolutions above all), A (or the im2col made on
// demand) is produced once per thread and never round-trips through memory.
inline bool row_tasks_pay(int64_t row_panels, int threads, int64_t K, int64_t padded_n) {
  const double b_bytes = (double)K * (double)padded_n * sizeof(float);
  return (row_panels >= 2 * threads && b_bytes <= 2e6) || row_panels >= 16 * threads;
}

}  // namespace gemm_detail
}  // namespace aiov
