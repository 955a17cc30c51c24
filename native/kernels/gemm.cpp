// f32 GEMM drivers: packing, cache blocking, threading and ISA dispatch.
// The register-blocked micro-kernels live in gemm_avx512.cpp / gemm_avx2.cpp;
// this file also carries the portable kernels, so it builds on any target.
//
// Layout shared by all paths (BLIS-style):
//   A panel: mr rows of op(A), stored k-major: panel[k * mr + r] (alpha folded in).
//   B panel: nr columns of op(B), stored k-major: panel[k * nr + j], zero-padded.
// A tile call multiplies one A panel by one B panel over a K slice and merges
// the mr x nr result into C (beta, bias, ReLU handled in that merge).
#include "kernels/gemm.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

#include "core/types.hpp"
#include "executor/executor.hpp"

#if defined(AIOV_X86) && defined(__x86_64__)
#include <cpuid.h>
#endif

namespace aiov {
namespace {

using gemm_detail::KernelSet;
using gemm_detail::TileFlags;

// ---------------------------------------------------------------------------
// Scratch memory: grow-only, 64-byte aligned, one set per thread, so the hot
// path does not allocate once shapes have been seen.

size_t float_block_bytes(size_t n) { return std::max<size_t>(n, 16) * sizeof(float); }
float* alloc_floats(size_t n) { return static_cast<float*>(alloc_aligned(float_block_bytes(n))); }
void free_floats(float* p, size_t n) { free_aligned(p, float_block_bytes(n)); }

struct ScratchBuffer {
  float* data = nullptr;
  size_t capacity = 0;
  ~ScratchBuffer() { free_floats(data, capacity); }
  float* get(size_t n) {
    if (n > capacity) {
      const size_t grown = std::max(n, capacity + capacity / 2);
      free_floats(data, capacity);
      data = nullptr;
      capacity = 0;  // consistent if the allocation below throws
      data = alloc_floats(grown);
      capacity = grown;
    }
    return data;
  }
};

// Separate slots so a caller's shared buffer (whole packed A, gathered rows) is
// never reused by a task that runs on the same thread (block-sized A/B packs).
enum ScratchSlot { kSharedA, kSharedRows, kReduce, kBlockA, kBlockB, kSourceRows, kSlotCount };

float* scratch(ScratchSlot slot, size_t n) {
  thread_local ScratchBuffer buffers[kSlotCount];
  return buffers[slot].get(n);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------
// Portable kernels: plain loops the compiler vectorizes for the baseline ISA.

constexpr int kScalarMR = 4;
constexpr int kScalarNR = 8;

template <int ROWS>
void scalar_tile_rows(int cols, int64_t kc, const float* a, int64_t as, bool a_rows, const float* b, int64_t bs,
                      bool direct, float* c, int64_t ldc, const float* bias, const TileFlags& f) {
  float acc[ROWS][kScalarNR] = {};
  const int width = direct ? cols : kScalarNR;  // unpacked B: the row ends after `cols` values
  const int64_t a_rs = a_rows ? as : 1, a_ks = a_rows ? 1 : as;
  for (int seg = 0; seg < (f.a_ptrs ? f.segments : 1); ++seg)
    for (int64_t k = 0; k < kc; ++k, b += bs)
      for (int r = 0; r < ROWS; ++r) {
        const float av = f.a_ptrs      ? f.a_ptrs[seg * f.a_ptr_stride + r][k]
                         : f.a_offsets ? a[f.a_offsets[k] + r * f.a_step]
                                       : a[r * a_rs + k * a_ks];
        for (int j = 0; j < width; ++j) acc[r][j] += av * b[j];
      }
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < cols; ++j) {
      float x = acc[r][j];
      float* out = c + r * ldc + j;
      if (f.load_c) x += f.beta * *out;
      if (bias) x += bias[j];
      if (f.residual) x += f.residual[r * f.ld_residual + j];
      if (f.clamp) {  // min(max(x, lo), hi), NaN kept
        x = x < f.lo ? f.lo : x;
        x = x > f.hi ? f.hi : x;
      }
      *out = x;
    }
}

void scalar_tile(int rows, int cols, int64_t kc, const float* a, int64_t as, bool a_rows, const float* b,
                 int64_t bs, bool direct, float* c, int64_t ldc, const float* bias, const TileFlags& f) {
  TileFlags one = f;
  for (int p = 0; p < f.panels; ++p) {
    switch (rows) {
      case 1: scalar_tile_rows<1>(cols, kc, a, as, a_rows, b, bs, direct, c, ldc, bias, one); break;
      case 2: scalar_tile_rows<2>(cols, kc, a, as, a_rows, b, bs, direct, c, ldc, bias, one); break;
      case 3: scalar_tile_rows<3>(cols, kc, a, as, a_rows, b, bs, direct, c, ldc, bias, one); break;
      default: scalar_tile_rows<4>(cols, kc, a, as, a_rows, b, bs, direct, c, ldc, bias, one); break;
    }
    a += f.a_next;
    c += rows * ldc;
    if (one.residual) one.residual += rows * f.ld_residual;
  }
}

void scalar_dot(int rows, int64_t cols, int64_t k, const float* x, int64_t ldx, const float* y, int64_t ldy,
                float* c, int64_t c_rs, int64_t c_cs, float beta) {
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const float* xr = x + r * ldx;
      const float* yj = y + j * ldy;
      // Several partial sums: shorter dependency chains and smaller rounding error.
      float part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= k; i += 8)
        for (int l = 0; l < 8; ++l) part[l] += xr[i + l] * yj[i + l];
      for (; i < k; ++i) part[0] += xr[i] * yj[i];
      float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      float* out = c + r * c_rs + j * c_cs;
      *out = beta == 0.0f ? s : s + beta * *out;
    }
}

void scalar_stream(int rows, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                   int64_t ldc, float beta) {
  constexpr int64_t kSegment = 1024;  // C segment kept in L1 while B rows stream by
  for (int64_t j0 = 0; j0 < n; j0 += kSegment) {
    const int64_t nj = std::min(kSegment, n - j0);
    for (int r = 0; r < rows; ++r) {
      float* cr = c + r * ldc + j0;
      for (int64_t j = 0; j < nj; ++j) cr[j] = beta == 0.0f ? 0.0f : beta * cr[j];
    }
    for (int64_t kk = 0; kk < k; ++kk) {
      const float* br = b + kk * ldb + j0;
      for (int r = 0; r < rows; ++r) {
        const float av = a[r * lda + kk];
        float* cr = c + r * ldc + j0;
        for (int64_t j = 0; j < nj; ++j) cr[j] += av * br[j];
      }
    }
  }
}

const KernelSet kScalarKernels{"scalar",    kScalarMR,      kScalarNR, kScalarMR, 256, 64, 4096, &scalar_tile,
                               &scalar_dot, &scalar_stream, nullptr,   0};

// ---------------------------------------------------------------------------
// Run-time ISA selection: CPUID says what the core has, XCR0 says whether the
// OS saves the wider register state; both are needed before using ymm/zmm.

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

Isa detect_isa() {
#if defined(AIOV_X86) && defined(__x86_64__)
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::scalar;
  const bool osxsave = ecx & (1u << 27), avx = ecx & (1u << 28), fma = ecx & (1u << 12), f16c = ecx & (1u << 29);
  if (!(osxsave && avx && fma && f16c)) return Isa::scalar;
  uint32_t xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6) != 0x6) return Isa::scalar;  // SSE + AVX state
  if (__get_cpuid_max(0, nullptr) < 7) return Isa::scalar;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  if (!(ebx & (1u << 5))) return Isa::scalar;  // AVX2
  const bool avx512 = (ebx & (1u << 16)) && (ebx & (1u << 17)) && (ebx & (1u << 30)) && (ebx & (1u << 31));
  if (avx512 && (xcr0_lo & 0xE0) == 0xE0) return Isa::avx512;  // opmask + zmm0-15 upper + zmm16-31
  return Isa::avx2;
#else
  return Isa::scalar;
#endif
}

const KernelSet* choose_kernels() {
  Isa limit = Isa::avx512;
  // AIOV_GEMM_ISA can only lower the choice (testing the fallbacks).
  if (const char* env = std::getenv("AIOV_GEMM_ISA")) {
    if (!std::strcmp(env, "scalar")) limit = Isa::scalar;
    else if (!std::strcmp(env, "avx2")) limit = Isa::avx2;
  }
  Isa isa = std::min(detect_isa(), limit);
  (void)isa;
#if defined(AIOV_X86)
  if (isa == Isa::avx512)
    if (const KernelSet* k = gemm_detail::avx512_kernels()) return k;
  if (isa >= Isa::avx2)
    if (const KernelSet* k = gemm_detail::avx2_kernels()) return k;
#endif
  return &kScalarKernels;
}

const KernelSet& kernels() {
  static const KernelSet* chosen = choose_kernels();  // once; thread-safe static init
  return *chosen;
}

// ---------------------------------------------------------------------------
// Packing.

// dst[k * ds + r] = alpha * src[r * ld + k] for r < rows, k < kc.
void transpose_pack(const KernelSet& ks, int rows, int64_t kc, const float* src, int64_t ld, float alpha,
                    float* dst, int64_t ds) {
  if (ks.transpose) {
    for (int r0 = 0; r0 < rows; r0 += ks.transpose_rows)
      ks.transpose(std::min(ks.transpose_rows, rows - r0), kc, src + r0 * ld, ld, alpha, dst + r0, ds);
    return;
  }
  // Short k blocks keep the destination block in L1 while `rows` source rows stream.
  constexpr int64_t kStep = 16;
  for (int64_t k0 = 0; k0 < kc; k0 += kStep) {
    const int64_t kn = std::min(kStep, kc - k0);
    for (int r = 0; r < rows; ++r) {
      const float* s = src + r * ld + k0;
      float* d = dst + k0 * ds + r;
      for (int64_t k = 0; k < kn; ++k) d[k * ds] = alpha * s[k];
    }
  }
}

// Rows [m0, m0 + rows) x k [k0, k0 + kc) of op(A) -> panels of `rs` rows (rs <= mr),
// panel p at dst + p * panel_stride, element (k, r) at [k * mr + r].
void pack_a(const KernelSet& ks, bool ta, const float* A, int64_t lda, int64_t m0, int64_t rows, int64_t k0,
            int64_t kc, float alpha, float* dst, int64_t panel_stride, int rs, int mr) {
  for (int64_t p = 0; p * rs < rows; ++p) {
    const int n = (int)std::min<int64_t>(rs, rows - p * rs);
    const int64_t m = m0 + p * rs;
    float* d = dst + p * panel_stride;
    if (ta) {  // op(A)[m][k] = A[k][m]: each k is already a contiguous run of rows
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = A + (k0 + k) * lda + m;
        for (int r = 0; r < n; ++r) d[k * mr + r] = alpha * s[r];
      }
    } else {
      transpose_pack(ks, n, kc, A + m * lda + k0, lda, alpha, d, mr);
    }
  }
}

template <int NR>
void copy_panel_rows(const float* s, int64_t ldb, int64_t kn, float* d) {
  // Fixed width: compiles to straight vector moves instead of a memcpy call per row.
  for (int64_t k = 0; k < kn; ++k, s += ldb, d += NR)
    for (int j = 0; j < NR; ++j) d[j] = s[j];
}

// k [k0, k0 + kc) x columns [n0, n0 + nc) of op(B) -> panels of nr columns,
// panel p at dst + p * panel_stride, element (k, j) at [k * nr + j], zero-padded.
void pack_b(const KernelSet& ks, bool tb, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t n0,
            int64_t nc, int nr, float* dst, int64_t panel_stride) {
  if (tb) {  // op(B)[k][n] = B[n][k]: each panel column is a contiguous run of B
    for (int64_t p = 0; p * nr < nc; ++p) {
      const int cols = (int)std::min<int64_t>(nr, nc - p * nr);
      float* d = dst + p * panel_stride;
      transpose_pack(ks, cols, kc, B + (n0 + p * nr) * ldb + k0, ldb, 1.0f, d, nr);
      if (cols < nr)
        for (int64_t k = 0; k < kc; ++k)
          for (int j = cols; j < nr; ++j) d[k * nr + j] = 0.0f;
    }
    return;
  }
  // Short k blocks, all panels per block: the block's B rows are read front to
  // back (sequential streams) and each panel receives one contiguous run.
  constexpr int64_t kStep = 16;
  for (int64_t kb = 0; kb < kc; kb += kStep) {
    const int64_t kn = std::min(kStep, kc - kb);
    for (int64_t p = 0; p * nr < nc; ++p) {
      const int cols = (int)std::min<int64_t>(nr, nc - p * nr);
      const int64_t n = n0 + p * nr;
      float* d = dst + p * panel_stride + kb * nr;
      const float* s = B + (k0 + kb) * ldb + n;
      if (cols == nr && nr == 32) {
        copy_panel_rows<32>(s, ldb, kn, d);
      } else if (cols == nr && nr == 16) {
        copy_panel_rows<16>(s, ldb, kn, d);
      } else if (cols == nr && nr == 8) {
        copy_panel_rows<8>(s, ldb, kn, d);
      } else {
        for (int64_t k = 0; k < kn; ++k) {
          for (int j = 0; j < cols; ++j) d[k * nr + j] = s[k * ldb + j];
          for (int j = cols; j < nr; ++j) d[k * nr + j] = 0.0f;
        }
      }
    }
  }
}

// op(X) rows [r0, r0 + rows) -> dense rows x k (alpha folded in), for the dot-product paths.
void gather_rows(bool trans, const float* X, int64_t ldx, int64_t r0, int64_t rows, int64_t k, float alpha,
                 float* dst) {
  if (!trans) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = X + (r0 + r) * ldx;
      float* d = dst + r * k;
      for (int64_t i = 0; i < k; ++i) d[i] = alpha * s[i];
    }
    return;
  }
  // op(X)[r][i] = X[i][r]: walk X row by row (each holds one value of every output row).
  for (int64_t i = 0; i < k; ++i) {
    const float* s = X + i * ldx + r0;
    for (int64_t r = 0; r < rows; ++r) dst[r * k + i] = alpha * s[r];
  }
}

// ---------------------------------------------------------------------------
// Threading policy.

// Rough single-core cost of a piece of work, for deciding whether a split pays:
// ~100 GFLOP/s compute, ~80 GB/s for bytes streamed from L3.
inline double est_ns(double flops, double bytes) { return flops * 0.01 + bytes * 0.0125; }
// parallel_for costs a few microseconds to queue, but a sleeping worker takes
// ~30 us to wake (measured on a 2-core KVM guest) while the caller runs ahead,
// and then starts with cold caches: only split work well above that.
constexpr double kMinParallelNs = 20e3;
constexpr double kMinChunkNs = 5e3;
// Inside a model a worker is usually still spinning from the previous layer and takes a
// chunk at once: then smaller products split too (an MLP's 64 x 1024 x 10: 27 -> 18 us).
constexpr double kMinParallelNsSpinning = 5e3;

double min_parallel_ns(ThreadPool* pool) {
  return pool && pool->worker_spinning() ? kMinParallelNsSpinning : kMinParallelNs;
}

int usable_threads(ThreadPool* pool, int max_threads) { return pool ? pool->usable_threads(max_threads) : 1; }

// Threads for a product of `flops`: one when it is too small to split.
int product_threads(ThreadPool* pool, int max_threads, double flops) {
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
Split plan_split(int threads, int64_t units, double ns_per_unit, double min_ns) {
  const double total = ns_per_unit * (double)units;
  if (threads <= 1 || units <= 1 || total < min_ns) return {1, units};
  int64_t grain = (int64_t)(kMinChunkNs / std::max(ns_per_unit, 1e-3)) + 1;
  grain = std::max<int64_t>(1, std::min(grain, ceil_div(units, threads)));
  return {threads, grain};
}

// ---------------------------------------------------------------------------
// Drivers.

// Up to this many rows against unpacked B, the streaming kernel beats tiles.
constexpr int64_t kStreamMaxM = 4;

struct GemmArgs {
  const KernelSet* ks;
  int64_t M, N, K;
  int rs;  // rows per A panel: M spread evenly over ceil(M / mr) panels, so no panel is left with 1-3 rows
  bool ta;
  const float* A;
  int64_t lda;
  float alpha;
  const float* a_packed;  // whole op(A) (this chunk) as panels spaced K * mr apart, or null: pack per block
  bool tb;
  const float* B;
  int64_t ldb;
  const float* b_packed;  // PackedB panels spaced K * nr apart, or null: pack per block
  float* C;
  int64_t ldc;
  float beta;
  Epilogue epi;
  const RowSource* src;  // A made on demand (then A/lda/ta are unused)
  int64_t src_m0;        // row of the source where this call's row 0 is
  bool a_rows;           // the tiles read A rows where they lie (see use_a_rows), not packed panels
  bool narrow;           // a_rows with N <= nr / 2: tiles of up to mr_narrow rows (rs follows)
};

// Packing A into panels pays when each panel meets many B panels. With few output
// columns it is a copy as large as the product's reads of A, so the tiles read rows of A
// in place instead: A itself, or the rows a RowSource writes.
bool use_a_rows(const GemmArgs& g) {
  if (g.src) return true;
  // K below 32: a tile's rows of A are one or two cache lines each and stay in L1 across
  // every B panel, so packing (a transpose of all of A) costs more than it saves: 3-14%
  // on MobileNet's 1x1 expansions (12544 x 16 x 96, 3136 x 24 x 144); from K = 32 on it
  // measured level or slower.
  return !g.ta && g.alpha == 1.0f && (ceil_div(g.N, g.ks->nr) <= 2 || g.K < 32);
}

// A tile reads one value from each of up to 28 rows per step: rows a multiple of 2 KiB
// apart share two L1 sets (4 KiB: one) and evict each other. Rows made on demand get a
// stride that spreads them over the sets; rows of A in place with such a stride are copied
// (CopiedRows) instead of read where they lie.
int64_t spread_stride(int64_t kc) { return kc % 512 == 0 ? kc + 16 : kc; }
bool aliasing_stride(int64_t ld) { return ld % 512 == 0; }

class CopiedRows final : public RowSource {
 public:
  CopiedRows(const float* a, int64_t lda) : a_(a), lda_(lda) {}
  void rows(int64_t m0, int64_t rows, int64_t k0, int64_t kc, float* dst, int64_t ld) const override {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * ld, a_ + (m0 + r) * lda_ + k0, (size_t)kc * sizeof(float));
  }

 private:
  const float* a_;
  int64_t lda_;
};

// Panels of op(A) rows [m0, m0 + rows) x [k0, k0 + kc): rs rows per panel, mr apart.
void pack_a_rows(const GemmArgs& g, int64_t m0, int64_t rows, int64_t k0, int64_t kc, float* dst,
                 int64_t panel_stride, int rs, int mr) {
  if (!g.src) {
    pack_a(*g.ks, g.ta, g.A, g.lda, m0, rows, k0, kc, g.alpha, dst, panel_stride, rs, mr);
    return;
  }
  float* tmp = scratch(kSourceRows, (size_t)(rs * kc));
  for (int64_t p = 0; p * rs < rows; ++p) {
    const int n = (int)std::min<int64_t>(rs, rows - p * rs);
    g.src->rows(g.src_m0 + m0 + p * rs, n, k0, kc, tmp, kc);
    transpose_pack(*g.ks, n, kc, tmp, kc, g.alpha, dst + p * panel_stride, mr);
  }
}

// What the micro-kernel merges itself (beta, bias, residual, ReLU/clamp) and what is left
// for a pass over the finished tile while it is still in L1 (the other activations).
bool needs_post(const Epilogue& e) {
  return e.act.kind != ActKind::none && e.act.kind != ActKind::relu && e.act.kind != ActKind::clamp;
}
Epilogue post_part(const Epilogue& e) {
  Epilogue p = e;
  p.bias = nullptr;
  p.residual = nullptr;
  return p;
}

// A residual that is C itself (the plan gave the output the residual's memory): C holds the
// residual already, so it is dropped from `e` and the product is accumulated into C.
bool residual_is_c(Epilogue& e, const float* C, int64_t ldc) {
  if (e.residual != C || e.ld_residual != ldc) return false;
  e.residual = nullptr;
  return true;
}

// Merge of the tile at (row, col) of C. The first K slice applies beta, bias and the
// residual (read before C is written, so a residual may alias C); the last one clamps.
TileFlags tile_flags(const Epilogue& e, float beta, bool first, bool last, int64_t row, int64_t col) {
  TileFlags f;
  f.beta = first ? beta : 1.0f;
  f.load_c = first ? beta != 0.0f : true;
  if (first && e.residual) {
    f.residual = e.residual + row * e.ld_residual + col;
    f.ld_residual = e.ld_residual;
  }
  if (last && e.act.kind == ActKind::relu) {
    f.clamp = true;
    f.lo = 0.0f;
    f.hi = std::numeric_limits<float>::infinity();
  } else if (last && e.act.kind == ActKind::clamp) {
    f.clamp = true;
    f.lo = e.act.alpha;
    f.hi = e.act.beta;
  }
  return f;
}

int row_step(const KernelSet& ks, int64_t M) { return (int)ceil_div(M, ceil_div(M, ks.mr)); }

// Arguments common to both entry points; B, beta, bias and ReLU are set by the caller.
GemmArgs make_args(const KernelSet& ks, int64_t M, int64_t N, int64_t K, bool ta, const float* A, int64_t lda,
                   float alpha, float* C, int64_t ldc) {
  GemmArgs g{};
  g.ks = &ks;
  g.M = M;
  g.N = N;
  g.K = K;
  g.rs = row_step(ks, M);
  g.ta = ta;
  g.A = A;
  g.lda = lda;
  g.alpha = alpha;
  g.C = C;
  g.ldc = ldc;
  return g;
}

// Balanced K slices no larger than the kernel set's kc.
int64_t k_slice(const KernelSet& ks, int64_t K) { return ceil_div(K, ceil_div(K, ks.kc)); }

// C[m0:m1, n0:n1]; m0 is a multiple of g.rs, n0 a multiple of nr.
// Loop order (outer to inner): column block (B block of kc x nc lives in L2/L3),
// K slice, row block (mc x kc of A stays in L2), B panel (kc x nr in L1), A panel.
void compute_block(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const KernelSet& ks = *g.ks;
  const int mr = g.narrow ? ks.mr_narrow : ks.mr, nr = ks.nr, rs = g.rs;
  const int64_t K = g.K, kc = k_slice(ks, K);
  const int64_t mc_step = std::max<int64_t>(1, ks.mc / mr) * rs;
  // With a single row block, each B panel is used by one sweep of A panels only:
  // pack a few panels right before their sweeps (they stay in L2) instead of the
  // whole B block. Untransposed B is packed 256 columns at a time so each B row
  // is read in 1 KiB runs: shorter runs, one per 4 KiB page, defeat the prefetchers.
  const bool pack_b_in_groups = !g.b_packed && m1 - m0 <= mc_step;
  const int64_t group_panels = g.tb ? 1 : std::max(1, 256 / nr);
  for (int64_t jc = n0; jc < n1; jc += ks.nc) {
    const int64_t nc = std::min(ks.nc, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += kc) {
      const int64_t kcur = std::min(kc, K - pc);
      const bool first = pc == 0, last = pc + kcur == K;
      const float* bp;          // first B panel of this column block / K slice
      int64_t b_panel_stride;   // floats between consecutive B panels
      float* group = nullptr;   // pack_b_in_groups: buffer for group_panels panels
      if (g.b_packed) {
        bp = g.b_packed + (jc / nr) * K * nr + pc * nr;
        b_panel_stride = K * nr;
      } else if (pack_b_in_groups) {
        group = scratch(kBlockB, (size_t)(group_panels * kcur * nr));
        bp = group;
        b_panel_stride = kcur * nr;
      } else {
        float* buf = scratch(kBlockB, (size_t)(ceil_div(nc, nr) * kcur * nr));
        pack_b(ks, g.tb, g.B, g.ldb, pc, kcur, jc, nc, nr, buf, kcur * nr);
        bp = buf;
        b_panel_stride = kcur * nr;
      }
      const float* bias = first ? g.epi.bias : nullptr;
      const bool post = last && needs_post(g.epi);
      for (int64_t ic = m0; ic < m1; ic += mc_step) {
        const int64_t mc = std::min(mc_step, m1 - ic);
        const float* ap;
        int64_t a_panel_stride, a_stride;
        if (g.a_packed) {
          ap = g.a_packed + (ic / rs) * K * mr + pc * mr;
          a_panel_stride = K * mr;
          a_stride = mr;
        } else if (g.a_rows && g.src) {
          const int64_t ld = spread_stride(kcur);
          float* buf = scratch(kBlockA, (size_t)(mc * ld));
          g.src->rows(g.src_m0 + ic, mc, pc, kcur, buf, ld);
          ap = buf;
          a_panel_stride = rs * ld;
          a_stride = ld;
        } else if (g.a_rows) {
          ap = g.A + ic * g.lda + pc;
          a_panel_stride = rs * g.lda;
          a_stride = g.lda;
        } else {
          float* buf = scratch(kBlockA, (size_t)(ceil_div(mc, rs) * kcur * mr));
          pack_a_rows(g, ic, mc, pc, kcur, buf, kcur * mr, rs, mr);
          ap = buf;
          a_panel_stride = kcur * mr;
          a_stride = mr;
        }
        const bool a_rows = g.a_rows && !g.a_packed;
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const int cols = (int)std::min<int64_t>(nr, nc - jr);
          const float* b_panel;
          if (group) {
            const int64_t slot = (jr / nr) % group_panels;
            if (slot == 0)
              pack_b(ks, g.tb, g.B, g.ldb, pc, kcur, jc + jr, std::min(group_panels * nr, nc - jr), nr, group,
                     b_panel_stride);
            b_panel = group + slot * b_panel_stride;
          } else {
            b_panel = bp + (jr / nr) * b_panel_stride;
          }
          const float* bias_j = bias ? bias + jc + jr : nullptr;
          // The full panels in one call, then the short one at the end of the block.
          const int64_t full = mc / rs;
          for (int64_t ir = 0; ir < mc;) {
            const int rows = (int)std::min<int64_t>(rs, mc - ir);
            float* c = g.C + (ic + ir) * g.ldc + jc + jr;
            TileFlags flags = tile_flags(g.epi, g.beta, first, last, ic + ir, jc + jr);
            if (ir == 0 && full > 1) {
              flags.panels = (int)full;
              flags.a_next = a_panel_stride;
            }
            ks.tile(rows, cols, kcur, ap + (ir / rs) * a_panel_stride, a_stride, a_rows, b_panel, nr, false, c,
                    g.ldc, bias_j, flags);
            ir += (int64_t)flags.panels * rows;
          }
          if (post) apply_epilogue(g.C + ic * g.ldc + jc + jr, g.ldc, mc, cols, ic, jc + jr, post_part(g.epi));
        }
      }
    }
  }
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
bool row_tasks_pay(int64_t row_panels, int threads, int64_t K, int64_t padded_n) {
  const double b_bytes = (double)K * (double)padded_n * sizeof(float);
  return (row_panels >= 2 * threads && b_bytes <= 2e6) || row_panels >= 16 * threads;
}

// Packed-panel path for M > mr. With several threads, op(A) is packed once up
// front (shared, read-only) and the C grid is cut into column x row tasks, so
// each task only packs its own B columns.
void gemm_blocked(GemmArgs g, ThreadPool* pool, int max_threads) {
  const KernelSet& ks = *g.ks;
  g.a_rows = use_a_rows(g);
  const CopiedRows copied(g.A, g.lda);
  if (g.a_rows && !g.src && aliasing_stride(g.lda)) {
    g.src = &copied;
    g.src_m0 = 0;
  }
  if (g.a_rows && 2 * g.N <= ks.nr && ks.mr_narrow > ks.mr) {
    g.narrow = true;
    g.rs = (int)ceil_div(g.M, ceil_div(g.M, ks.mr_narrow));
  }
  const int mr = ks.mr, nr = ks.nr, rs = g.rs;
  const int threads = product_threads(pool, max_threads, 2.0 * g.M * g.N * g.K);
  if (threads == 1) {
    g.a_packed = nullptr;
    compute_block(g, 0, g.M, 0, g.N);
    return;
  }
  const int64_t np = ceil_div(g.N, nr), mp_all = ceil_div(g.M, rs);
  // Narrow tiles and A read in place need row tasks: the shared path packs mr-row panels.
  if (row_tasks_pay(mp_all, threads, g.K, np * nr) || (g.a_rows && (!g.src || g.narrow))) {
    g.a_packed = nullptr;
    // Units are tiles against panels, numbered tile-major. B packed on the fly is packed once
    // per chunk: then units are whole rows of tiles, about eight chunks' worth per thread.
    if (!g.b_packed) {
      run_split(pool, threads, mp_all, std::max<int64_t>(1, mp_all / (8 * threads)), [&](int64_t t0, int64_t t1) {
        compute_block(g, t0 * rs, std::min(g.M, t1 * rs), 0, g.N);
      });
      return;
    }
    run_split(pool, threads, mp_all * np, 1, [&](int64_t u0, int64_t u1) {
      tile_major_pieces(u0, u1, np, [&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
        compute_block(g, t0 * rs, std::min(g.M, t1 * rs), p0 * nr, std::min(g.N, p1 * nr));
      });
    });
    return;
  }
  // Bound the shared A pack (16 MiB): taller A is processed in row chunks.
  constexpr int64_t kMaxSharedA = int64_t{4} << 20;
  const int64_t chunk_rows = std::max<int64_t>(rs, (kMaxSharedA / std::max<int64_t>(g.K, 1)) / rs * rs);
  for (int64_t mb = 0; mb < g.M; mb += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, g.M - mb);
    const int64_t mp = ceil_div(rows, rs);
    float* ap = scratch(kSharedA, (size_t)(mp * g.K * mr));
    GemmArgs c = g;
    c.M = rows;
    c.A = g.ta ? g.A + mb : g.A + mb * g.lda;
    c.C = g.C + mb * g.ldc;
    c.src_m0 = g.src_m0 + mb;
    if (c.epi.residual) c.epi.residual += mb * c.epi.ld_residual;
    c.a_packed = ap;
    {
      // Pack A panels in parallel only when it is a sizeable job itself.
      Split s = plan_split(threads, mp, est_ns(0, 2.0 * mr * g.K * sizeof(float)), min_parallel_ns(pool));
      run_split(pool, s.threads, mp, s.grain, [&](int64_t p0, int64_t p1) {
        const int64_t r0 = p0 * rs, r1 = std::min(rows, p1 * rs);
        pack_a_rows(c, r0, r1 - r0, 0, c.K, ap + p0 * c.K * mr, c.K * mr, rs, mr);
      });
    }
    // Units are (B panel, row panel) pairs numbered panel-major, so a chunk is a run of row
    // panels against one B panel (then maybe the next) and the threads finish within a unit
    // of each other. B packed on the fly is packed by every chunk that uses it: then a chunk
    // is at least a whole column of row panels.
    const int64_t grain = g.b_packed ? 1 : mp;
    run_split(pool, threads, np * mp, grain, [&](int64_t u0, int64_t u1) {
      panel_major_pieces(u0, u1, mp, [&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
        compute_block(c, t0 * rs, std::min(rows, t1 * rs), p0 * nr, std::min(g.N, p1 * nr));
      });
    });
  }
}

// M <= mr: one A panel (compact, stride M) against every B panel over the
// whole K, i.e. a GEMV-like stream over B. B is either PackedB panels or the
// unpacked row-major op(B) == B read in place (packing it would cost as much as
// the product). Split over column panels.
void gemm_short(const GemmArgs& g, ThreadPool* pool, int max_threads) {
  const KernelSet& ks = *g.ks;
  const int nr = ks.nr;
  const int64_t M = g.M, K = g.K;
  const int threads = usable_threads(pool, max_threads);
  if (!g.b_packed && M <= kStreamMaxM) {
    // Few rows, unpacked B: stream B rows front to back (one pass over B).
    const float* a = g.A;
    int64_t lda = g.lda;
    if (g.ta || g.alpha != 1.0f) {
      float* rows = scratch(kSharedRows, (size_t)(M * K));
      gather_rows(g.ta, g.A, g.lda, 0, M, K, g.alpha, rows);
      a = rows;
      lda = K;
    }
    // Threads split K, not N: each then reads one contiguous stretch of B rows
    // (ideal for the prefetchers); the partial products are summed at the end.
    const double total_ns = est_ns(2.0 * M * K * g.N, (double)K * g.N * sizeof(float));
    int64_t parts = 1;
    if (threads > 1 && total_ns >= min_parallel_ns(pool))
      parts = std::min<int64_t>({2 * threads, ceil_div(K, 64), (int64_t)(total_ns / kMinChunkNs)});
    if (parts <= 1) {
      ks.stream((int)M, g.N, K, a, lda, g.B, g.ldb, g.C, g.ldc, g.beta);
      return;
    }
    float* partial = scratch(kReduce, (size_t)((parts - 1) * M * g.N));
    run_split(pool, threads, parts, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t k0 = K * p / parts, k1 = K * (p + 1) / parts;
        if (p == 0)
          ks.stream((int)M, g.N, k1 - k0, a + k0, lda, g.B + k0 * g.ldb, g.ldb, g.C, g.ldc, g.beta);
        else
          ks.stream((int)M, g.N, k1 - k0, a + k0, lda, g.B + k0 * g.ldb, g.ldb, partial + (p - 1) * M * g.N, g.N,
                    0.0f);
      }
    });
    for (int64_t p = 1; p < parts; ++p)
      for (int64_t m = 0; m < M; ++m) {
        const float* src = partial + ((p - 1) * M + m) * g.N;
        float* dst = g.C + m * g.ldc;
        for (int64_t n = 0; n < g.N; ++n) dst[n] += src[n];
      }
    return;
  }
  // The panel of M <= mr rows is A itself when A is untransposed and unscaled: one row has
  // the panel layout already, and a few rows against packed B the tiles read in place
  // (unless rows a multiple of 2 KiB apart would share L1 sets). Packing a single row went
  // through the transpose kernel and cost 7% of a batch-1 MLP.
  const bool plain = !g.ta && g.alpha == 1.0f && !g.src;
  const bool one_row = plain && M == 1;
  const bool rows_in_place = plain && M > 1 && g.b_packed && !aliasing_stride(g.lda);
  const float* ap = g.A;
  int64_t as = M == 1 ? 1 : g.lda;
  if (!one_row && !rows_in_place) {
    float* packed = scratch(kSharedRows, (size_t)(M * K));
    pack_a_rows(g, 0, M, 0, K, packed, 0, (int)M, (int)M);
    ap = packed;
    as = M;
  }
  const bool post = needs_post(g.epi);
  const int64_t np = ceil_div(g.N, nr);
  Split s = plan_split(threads, np, est_ns(2.0 * M * K * nr, (double)K * nr * sizeof(float)),
                       min_parallel_ns(pool));
  run_split(pool, s.threads, np, s.grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p * nr;
      const int cols = (int)std::min<int64_t>(nr, g.N - n);
      const float* bias = g.epi.bias ? g.epi.bias + n : nullptr;
      const TileFlags flags = tile_flags(g.epi, g.beta, true, true, 0, n);
      if (g.b_packed)
        ks.tile((int)M, cols, K, ap, as, rows_in_place, g.b_packed + p * K * nr, nr, false, g.C + n, g.ldc, bias,
                flags);
      else
        ks.tile((int)M, cols, K, ap, as, false, g.B + n, g.ldb, true, g.C + n, g.ldc, bias, flags);
      if (post) apply_epilogue(g.C + n, g.ldc, M, cols, 0, n, post_part(g.epi));
    }
  });
}

// out(r, j) = dot(x_r, y_j) for r < rows, j < cols, written at c[r * c_rs + j * c_cs]:
// used when one side has <= 4 vectors contiguous along K. Split over y.
void gemm_dot(const KernelSet& ks, int64_t rows, int64_t cols, int64_t K, const float* x, int64_t ldx,
              const float* y, int64_t ldy, float* c, int64_t c_rs, int64_t c_cs, float beta, ThreadPool* pool,
              int max_threads) {
  Split s = plan_split(usable_threads(pool, max_threads), cols, est_ns(2.0 * rows * K, (double)K * sizeof(float)),
                       min_parallel_ns(pool));
  run_split(pool, s.threads, cols, s.grain, [&](int64_t j0, int64_t j1) {
    for (int64_t r = 0; r < rows; r += 4)
      ks.dot((int)std::min<int64_t>(4, rows - r), j1 - j0, K, x + r * ldx, ldx, y + j0 * ldy, ldy,
             c + r * c_rs + j0 * c_cs, c_rs, c_cs, beta);
  });
}

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t m = 0; m < M; ++m) {
    float* row = C + m * ldc;
    if (beta == 0.0f)
      std::fill(row, row + N, 0.0f);
    else
      for (int64_t n = 0; n < N; ++n) row[n] *= beta;
  }
}


// Up to this many output columns, dot products along K (a pass over A per 4
// columns, no packing of A) beat B panels that would be largely zero padding
// and an A packing cost not amortised over many columns (measured ~90 vs 40-75
// GFLOP/s for N = 8..24).
constexpr int64_t kDotMaxN = 24;
// Up to this many rows of op(A) against a transposed B, dot products beat packing B.
constexpr int64_t kDotMaxM = 4;

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool,
           int max_threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const KernelSet& ks = kernels();
  if (trans_b && M <= kDotMaxM) {
    // C rows = op(A) rows (gathered, alpha folded) dotted with the stored rows of B.
    const float* x = A;
    int64_t ldx = lda;
    if (trans_a || alpha != 1.0f) {
      float* rows = scratch(kSharedRows, (size_t)(M * K));
      gather_rows(trans_a, A, lda, 0, M, K, alpha, rows);
      x = rows;
      ldx = K;
    }
    gemm_dot(ks, M, N, K, x, ldx, B, ldb, C, ldc, 1, beta, pool, max_threads);
    return;
  }
  if (!trans_a && N <= kDotMaxN) {
    // C columns = op(B) columns (gathered, alpha folded) dotted with the rows of A.
    const float* x = B;
    int64_t ldx = ldb;
    if (!trans_b || alpha != 1.0f) {
      float* cols = scratch(kSharedRows, (size_t)(N * K));
      gather_rows(!trans_b, B, ldb, 0, N, K, alpha, cols);
      x = cols;
      ldx = K;
    }
    gemm_dot(ks, N, M, K, x, ldx, A, lda, C, 1, ldc, beta, pool, max_threads);
    return;
  }
  GemmArgs g = make_args(ks, M, N, K, trans_a, A, lda, alpha, C, ldc);
  g.tb = trans_b;
  g.B = B;
  g.ldb = ldb;
  g.beta = beta;
  if (M <= ks.mr && !trans_b)
    gemm_short(g, pool, max_threads);
  else
    gemm_blocked(g, pool, max_threads);
}

void PackedB::AlignedFree::operator()(float* p) const { free_floats(p, count); }

namespace {
// The kernel set whose panels PackedB uses: the wide tiles (when the ISA has them) for a
// tall A against few columns, where they beat the default tiles; see gemm_avx512.cpp.
const KernelSet& kernels_for_weights(int64_t N, int64_t rows_hint) {
  const KernelSet& ks = kernels();
  if (ks.wide && rows_hint >= 512 && N <= 2 * ks.wide->nr && N % ks.wide->nr == 0) return *ks.wide;
  return ks;
}

const KernelSet& kernels_for_panels(int width) {
  const KernelSet& ks = kernels();
  if (width == ks.nr) return ks;
  if (ks.wide && width == ks.wide->nr) return *ks.wide;
  throw std::logic_error("PackedB was packed for a different GEMM kernel");
}

// Few columns are kept as dot-product rows, unless many rows of A will meet them.
bool row_layout_for(int64_t N, int64_t rows_hint) {
  return N <= kDotMaxN && (rows_hint < 0 || rows_hint <= 4 * kDotMaxM);
}
}  // namespace

std::string PackedB::layout(bool trans_b, int64_t K, int64_t N, int64_t ldb, int64_t rows_hint) {
  K = std::max<int64_t>(K, 0);
  N = std::max<int64_t>(N, 0);
  const KernelSet& ks = kernels_for_weights(N, rows_hint);
  return std::string(ks.name) + (row_layout_for(N, rows_hint) ? " rows" : " panels") + " nr=" +
         std::to_string(ks.nr) + (trans_b ? " B^T" : " B") + " K=" + std::to_string(K) + " N=" + std::to_string(N) +
         " ldb=" + std::to_string(ldb);
}

PackedB::PackedB(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb, int64_t rows_hint)
    : K_(std::max<int64_t>(K, 0)), N_(std::max<int64_t>(N, 0)) {
  const KernelSet& ks = kernels_for_weights(N_, rows_hint);
  panel_width_ = ks.nr;
  row_layout_ = row_layout_for(N_, rows_hint);
  size_ = row_layout_ ? (size_t)(N_ * K_) : (size_t)(ceil_div(N_, ks.nr) * K_ * ks.nr);
  data_ = std::unique_ptr<float[], AlignedFree>(alloc_floats(size_), AlignedFree{size_});
  if (N_ == 0 || K_ == 0) return;
  if (row_layout_)
    gather_rows(!trans_b, B, ldb, 0, N_, K_, 1.0f, data_.get());
  else
    pack_b(ks, trans_b, B, ldb, 0, K_, 0, N_, ks.nr, data_.get(), K_ * ks.nr);
}

namespace {

void sgemm_packed_impl(GemmArgs g, const PackedB& B, ThreadPool* pool, int max_threads) {
  const int64_t M = g.M, N = B.N(), K = B.K();
  if (M <= 0 || N <= 0) return;
  const KernelSet& ks = kernels();
  if (residual_is_c(g.epi, g.C, g.ldc)) g.beta = 1.0f;
  if (K == 0) {
    scale_c(M, N, g.beta, g.C, g.ldc);
    apply_epilogue(g.C, g.ldc, M, N, 0, 0, g.epi);
    return;
  }
  if (B.row_layout()) {
    const float* y = g.A;
    int64_t ldy = g.lda;
    if (g.ta || g.src) {
      float* rows = scratch(kSharedRows, (size_t)(M * K));
      if (g.src)
        g.src->rows(0, M, 0, K, rows, K);
      else
        gather_rows(true, g.A, g.lda, 0, M, K, 1.0f, rows);
      y = rows;
      ldy = K;
    }
    gemm_dot(ks, N, M, K, B.data(), K, y, ldy, g.C, 1, g.ldc, g.beta, pool, max_threads);
    if (!g.epi.empty()) apply_epilogue(g.C, g.ldc, M, N, 0, 0, g.epi);
    return;
  }
  const KernelSet& panels = kernels_for_panels(B.panel_width());
  g.ks = &panels;
  g.rs = row_step(panels, M);
  g.b_packed = B.data();
  if (M <= panels.mr)
    gemm_short(g, pool, max_threads);
  else
    gemm_blocked(g, pool, max_threads);
}

}  // namespace

void sgemm_packed(bool trans_a, int64_t M, const float* A, int64_t lda, const PackedB& B, const Epilogue& e,
                  float* C, int64_t ldc, ThreadPool* pool, int max_threads) {
  GemmArgs g = make_args(kernels(), M, B.N(), B.K(), trans_a, A, lda, 1.0f, C, ldc);
  g.epi = e;
  sgemm_packed_impl(g, B, pool, max_threads);
}

void sgemm_packed(int64_t M, const RowSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads) {
  GemmArgs g = make_args(kernels(), M, B.N(), B.K(), false, nullptr, 0, 1.0f, C, ldc);
  g.src = &A;
  g.epi = e;
  sgemm_packed_impl(g, B, pool, max_threads);
}

// Tiles whose A rows are looked up (or packed) together by the source drivers below: the
// per-thread tables stay small however tall a chunk, and the group's input is still in L2
// when the next panel reads it again.
constexpr int64_t kSourceGroupTiles = 32;

// What the drivers for A found in place (runs, grids) settle before they split the work:
// every tile runs the whole K against pre-packed panels, in units of one tile against one
// panel. Many tiles: whole rows of tiles against every panel, so each task reads its share
// of the input while it is in cache and the panels stay in L2. Few tiles (deep layers):
// panel ranges too, so B is streamed from memory once in all.
struct SourceTiles {
  SourceTiles(int64_t M_, const PackedB& B, const Epilogue& epilogue, const float* C, int64_t ldc, ThreadPool* pool_,
              int max_threads)
      : M(M_), N(B.N()), K(B.K()), ks(kernels_for_panels(B.panel_width())), e(epilogue),
        beta(residual_is_c(e, C, ldc) ? 1.0f : 0.0f), nr(ks.nr), rs(row_step(ks, M)), np(ceil_div(N, nr)),
        mp(ceil_div(M, rs)), post(needs_post(e)), pool(pool_),
        threads(product_threads(pool, max_threads, 2.0 * M * N * K)),
        row_tasks(row_tasks_pay(mp, threads, K, np * nr)) {}

  // fn(t0, t1, p0, p1) over every group of tiles [t0, t1) x panels [p0, p1), on the threads.
  template <class Fn>
  void run(const Fn& fn) const {
    run_split(pool, threads, mp * np, 1, [&](int64_t u0, int64_t u1) {
      auto piece = [&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
        for (int64_t g0 = t0; g0 < t1; g0 += kSourceGroupTiles) fn(g0, std::min(t1, g0 + kSourceGroupTiles), p0, p1);
      };
      if (row_tasks) tile_major_pieces(u0, u1, np, piece);
      else panel_major_pieces(u0, u1, mp, piece);
    });
  }

  const int64_t M, N, K;
  const KernelSet& ks;
  Epilogue e;  // without a residual that is C itself (then beta is 1)
  const float beta;
  const int nr, rs;
  const int64_t np, mp;
  const bool post;
  ThreadPool* const pool;
  const int threads;
  const bool row_tasks;
};

void sgemm_packed(int64_t M, const RunSource& A, const PackedB& B, const Epilogue& epilogue, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads) {
  const int64_t segments = A.segments();
  if (M <= 0 || B.N() <= 0) return;
  if (B.row_layout() || segments <= 0 || B.K() % segments != 0)
    throw std::logic_error("sgemm_packed: runs need B in panels and K a multiple of the segment count");
  // Each tile runs the whole K: slicing it into groups of segments measured 1-3% slower.
  const SourceTiles st(M, B, epilogue, C, ldc, pool, max_threads);
  const int64_t N = st.N, K = st.K;
  const int nr = st.nr, rs = st.rs;
  st.run([&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
    thread_local std::vector<const float*> table;
    thread_local std::vector<int> cuts;  // runs per row of each tile
    const int64_t per_tile = segments * rs, g0 = t0 * rs, g1 = std::min(M, t1 * rs), tiles = t1 - t0;
    table.resize((size_t)(tiles * per_tile));
    cuts.resize((size_t)tiles);
    for (int64_t i = 0; i < tiles; ++i) {
      cuts[i] = A.runs(g0 + i * rs, (int)std::min<int64_t>(rs, g1 - g0 - i * rs), table.data() + i * per_tile, rs);
      if (cuts[i] <= 0 || segments % cuts[i] != 0) throw std::logic_error("RunSource: bad run count");
    }
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t col = p * nr;
      const int cols = (int)std::min<int64_t>(nr, N - col);
      const float* bias = st.e.bias ? st.e.bias + col : nullptr;
      for (int64_t i = 0; i < tiles; ++i) {
        const int64_t row = g0 + i * rs;
        TileFlags f = tile_flags(st.e, st.beta, true, true, row, col);
        f.a_ptrs = table.data() + i * per_tile;
        f.segments = cuts[i];
        f.a_ptr_stride = rs;
        st.ks.tile((int)std::min<int64_t>(rs, g1 - row), cols, K / cuts[i], nullptr, 0, true, B.data() + p * K * nr,
                   nr, false, C + row * ldc + col, ldc, bias, f);
      }
      if (st.post) apply_epilogue(C + g0 * ldc + col, ldc, g1 - g0, cols, g0, col, post_part(st.e));
    }
  });
}

void sgemm_packed(int64_t M, const GridSource& A, const PackedB& B, const Epilogue& epilogue, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads) {
  if (M <= 0 || B.N() <= 0) return;
  if (B.row_layout()) throw std::logic_error("sgemm_packed: a grid needs B in panels");
  const SourceTiles st(M, B, epilogue, C, ldc, pool, max_threads);
  const int64_t N = st.N, K = st.K;
  const int nr = st.nr, rs = st.rs;
  const bool in_place = A.step() >= 1 && A.step() <= kMaxGridStep;
  // A piece of a tile: one span of the source, read in place (grid) or from a packed panel.
  struct Piece {
    int64_t row;
    int rows;
    const float* a;
    bool grid;
    int64_t k0, k1;
  };
  st.run([&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
    thread_local std::vector<Piece> pieces;
    // Rows that cannot be read in place (over the padding at an image's sides) are packed
    // once for all panels, rs rows per tile.
    float* packed = scratch(kSourceRows, (size_t)((t1 - t0) * rs * K));
    pieces.clear();
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t row0 = t * rs, row1 = std::min(M, row0 + rs);
      float* panel = packed + (t - t0) * rs * K;
      for (int64_t m = row0; m < row1;) {
        GridSource::Span s = A.span(m, row1 - m);
        if (s.rows <= 0 || s.rows > row1 - m || (s.base && (s.k0 < 0 || s.k0 > s.k1 || s.k1 > K)))
          throw std::logic_error("GridSource: bad span");
        if (!in_place) s.base = nullptr;
        if (s.base) {
          pieces.push_back(Piece{m, (int)s.rows, s.base, true, s.k0, s.k1});
        } else {
          A.pack(m, s.rows, panel + (m - row0), rs);
          pieces.push_back(Piece{m, (int)s.rows, panel + (m - row0), false, 0, K});
        }
        m += s.rows;
      }
    }
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t col = p * nr;
      const int cols = (int)std::min<int64_t>(nr, N - col);
      const float* bias = st.e.bias ? st.e.bias + col : nullptr;
      for (const Piece& piece : pieces) {
        TileFlags f = tile_flags(st.e, st.beta, true, true, piece.row, col);
        if (piece.grid) {
          f.a_offsets = A.offsets() + piece.k0;
          f.a_step = A.step();
        }
        st.ks.tile(piece.rows, cols, piece.k1 - piece.k0, piece.a, rs, false, B.data() + (p * K + piece.k0) * nr,
                   nr, false, C + piece.row * ldc + col, ldc, bias, f);
      }
      if (st.post)
        apply_epilogue(C + t0 * rs * ldc + col, ldc, std::min(M, t1 * rs) - t0 * rs, cols, t0 * rs, col,
                       post_part(st.e));
    }
  });
}

void transpose_f32(int64_t rows, int64_t cols, const float* src, int64_t ld, float* dst, int64_t ldd) {
  const KernelSet& ks = kernels();
  // Source rows in groups of 16: each group is read as 16 streams and written 16 values
  // (one 64-byte line) per destination row.
  for (int64_t r0 = 0; r0 < rows; r0 += 16)
    transpose_pack(ks, (int)std::min<int64_t>(16, rows - r0), cols, src + r0 * ld, ld, 1.0f, dst + r0, ldd);
}

const char* gemm_isa() { return kernels().name; }

}  // namespace aiov
