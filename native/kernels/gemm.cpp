// f32 GEMM drivers for A as a matrix or as rows made on demand: cache blocking around the
// micro-kernels (BLIS-style loops over the layouts in gemm_pack.hpp), the paths for few
// rows or few columns, and how each splits over the pool (gemm_threads.hpp).
#include "kernels/gemm.hpp"

#include <algorithm>
#include <cstring>

#include "executor/executor.hpp"
#include "kernels/gemm_bf16.hpp"
#include "kernels/gemm_driver.hpp"

namespace aiov {
namespace gemm_detail {
namespace {

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
void pack_a_rows(const GemmArgs& g, int64_t m0, int64_t rows, int64_t k0, int64_t kc, float* dst, int64_t panel_stride,
                 int rs, int mr) {
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
      const float* bp;         // first B panel of this column block / K slice
      int64_t b_panel_stride;  // floats between consecutive B panels
      float* group = nullptr;  // pack_b_in_groups: buffer for group_panels panels
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
          // The full panels in one call, then the short one at the end of the block.
          const int64_t full = mc / rs;
          for (int64_t ir = 0; ir < mc;) {
            Tile t = tile_at(g.epi, g.beta, first, last, ic + ir, jc + jr);
            t.rows = (int)std::min<int64_t>(rs, mc - ir);
            t.cols = cols;
            t.kc = kcur;
            t.a = ap + (ir / rs) * a_panel_stride;
            t.a_stride = a_stride;
            t.a_rows = a_rows;
            t.b = b_panel;
            t.b_stride = nr;
            t.c = g.C + (ic + ir) * g.ldc + jc + jr;
            t.ldc = g.ldc;
            if (ir == 0 && full > 1) {
              t.panels = (int)full;
              t.a_next = a_panel_stride;
            }
            ks.tile(t);
            ir += (int64_t)t.panels * t.rows;
          }
          if (post) apply_epilogue(g.C + ic * g.ldc + jc + jr, g.ldc, mc, cols, ic, jc + jr, post_part(g.epi));
        }
      }
    }
  }
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
  // Narrow tiles take a vector (nr / 2 columns) per row however few columns are real, and
  // their time goes with it: SqueezeNet's 1x1 into 4 channels (1800 x 32) took 14-16 us on
  // one core where 2 M N K flops said 5, too little to split.
  const int64_t cost_cols = g.narrow ? std::max<int64_t>(g.N, nr / 2) : g.N;
  const int threads = product_threads(pool, max_threads, 2.0 * g.M * cost_cols * g.K);
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
      run_split(pool, threads, mp_all, std::max<int64_t>(1, mp_all / (8 * threads)),
                [&](int64_t t0, int64_t t1) { compute_block(g, t0 * rs, std::min(g.M, t1 * rs), 0, g.N); });
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
          ks.stream((int)M, g.N, k1 - k0, a + k0, lda, g.B + k0 * g.ldb, g.ldb, partial + (p - 1) * M * g.N, g.N, 0.0f);
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
  Split s = plan_split(threads, np, est_ns(2.0 * M * K * nr, (double)K * nr * sizeof(float)), min_parallel_ns(pool));
  run_split(pool, s.threads, np, s.grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p * nr;
      const int cols = (int)std::min<int64_t>(nr, g.N - n);
      Tile t = tile_at(g.epi, g.beta, true, true, 0, n);
      t.rows = (int)M;
      t.cols = cols;
      t.kc = K;
      t.a = ap;
      t.a_stride = as;
      t.c = g.C + n;
      t.ldc = g.ldc;
      if (g.b_packed) {
        t.a_rows = rows_in_place;
        t.b = g.b_packed + p * K * nr;
        t.b_stride = nr;
      } else {
        t.b = g.B + n;
        t.b_stride = g.ldb;
        t.b_direct = true;
      }
      ks.tile(t);
      if (post) apply_epilogue(g.C + n, g.ldc, M, cols, 0, n, post_part(g.epi));
    }
  });
}

// out(r, j) = dot(x_r, y_j) for r < rows, j < cols, written at c[r * c_rs + j * c_cs]:
// used when one side has <= 4 vectors contiguous along K. Split over y.
void gemm_dot(const KernelSet& ks, int64_t rows, int64_t cols, int64_t K, const float* x, int64_t ldx, const float* y,
              int64_t ldy, float* c, int64_t c_rs, int64_t c_cs, float beta, ThreadPool* pool, int max_threads) {
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
}  // namespace gemm_detail

using namespace gemm_detail;

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool, int max_threads) {
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

void sgemm_packed(bool trans_a, int64_t M, const float* A, int64_t lda, const PackedB& B, const Epilogue& e, float* C,
                  int64_t ldc, ThreadPool* pool, int max_threads) {
  if (B.half()) return gemm_bf16(trans_a, M, A, lda, 1.0f, B, e, 0.0f, C, ldc, pool, max_threads);
  GemmArgs g = make_args(kernels(), M, B.N(), B.K(), trans_a, A, lda, 1.0f, C, ldc);
  g.epi = e;
  sgemm_packed_impl(g, B, pool, max_threads);
}

void sgemm_packed(int64_t M, const RowSource& A, const PackedB& B, const Epilogue& e, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads) {
  if (B.half()) return gemm_bf16(M, A, B, e, C, ldc, pool, max_threads);
  GemmArgs g = make_args(kernels(), M, B.N(), B.K(), false, nullptr, 0, 1.0f, C, ldc);
  g.src = &A;
  g.epi = e;
  sgemm_packed_impl(g, B, pool, max_threads);
}

}  // namespace aiov
